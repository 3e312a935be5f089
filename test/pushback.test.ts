import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Pushback, type Waiter } from '../src/core/pushback.js';

/** A publisher that records which channels were released to it. */
function waiter(): Waiter & { got: string[] } {
  const got: string[] = [];
  return { got, released: (channel) => got.push(channel) };
}

test('pushback: a channel is held while any holder holds it; its waiters are released once, when the last lets go', () => {
  const p = new Pushback<string>(10_000, () => assert.fail('nothing is overdue'));
  assert.equal(p.isHeld('a'), false);
  p.hold('s1', 'a');
  p.hold('s2', 'a');
  p.hold('s1', 'b');
  p.hold('s1', 'a'); // again: nothing changes
  assert.equal(p.isHeld('a'), true);
  assert.equal(p.isHeld('b'), true);
  assert.equal(p.isHeld('c'), false);

  const w1 = waiter();
  const w2 = waiter();
  p.wait('a', w1);
  p.wait('a', w1); // a waiter waits once per channel
  p.wait('b', w1);
  p.wait('a', w2);
  assert.deepEqual(p.figures(), { heldChannels: 2, waitingPublishers: 3 });
  assert.equal(p.counters.publisherWaits, 3);
  assert.equal(p.counters.holds, 2);

  p.release('s1'); // b is free; a is still held by s2
  assert.deepEqual(w1.got, ['b']);
  assert.deepEqual(w2.got, []);
  assert.equal(p.isHeld('a'), true);
  assert.equal(p.isHeld('b'), false);

  p.release('s2');
  assert.deepEqual(w1.got, ['b', 'a']);
  assert.deepEqual(w2.got, ['a']);
  assert.deepEqual(p.figures(), { heldChannels: 0, waitingPublishers: 0 });
  p.release('s2'); // twice: nothing
  assert.deepEqual(w1.got, ['b', 'a']);
});

test('pushback: a cancelled waiter is not released; a holder that never drains is overdue once, after the timeout', async () => {
  const overdue: [string, string, number][] = [];
  const p = new Pushback<string>(60, (h, c, ms) => overdue.push([h, c, ms]));
  const gone = waiter();
  const stays = waiter();
  p.hold('stuck', 'x');
  p.wait('x', gone);
  p.wait('x', stays);
  p.cancel(gone, ['x']);
  const start = Date.now();
  while (overdue.length === 0 && Date.now() - start < 5000) await new Promise((r) => setTimeout(r, 5));
  assert.equal(overdue.length, 1);
  assert.equal(overdue[0]![0], 'stuck');
  assert.equal(overdue[0]![1], 'x');
  assert.ok(overdue[0]![2] >= 60, `overdue after ${overdue[0]![2]} ms`);
  // Released before it was handed over: its waiters go on, and it is not overdue twice.
  assert.deepEqual(stays.got, ['x']);
  assert.deepEqual(gone.got, []);
  assert.equal(p.isHeld('x'), false);
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(overdue.length, 1);
});

test('pushback: a holder that drains in time is never overdue, however often it holds again', async () => {
  const p = new Pushback<string>(80, (h) => assert.fail(`${h} overdue`));
  const start = Date.now();
  while (Date.now() - start < 300) {
    p.hold('busy', 'x');
    await new Promise((r) => setTimeout(r, 20));
    p.release('busy');
  }
  assert.equal(p.isHeld('x'), false);
});
