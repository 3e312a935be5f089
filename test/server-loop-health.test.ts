// The event loop's health in `stats` (src/server/loop-health.ts): a loop held up shows as
// lateness and busy time in the window it happened in, and only there; collections are
// counted; a real broker reports every figure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import v8 from 'node:v8';
import vm from 'node:vm';
import { LoopHealth } from '../src/server/loop-health.js';
import { startBroker } from './helpers/broker.js';
import { RawClient } from './helpers/raw.js';

const FIELDS = ['loopDelayP50Us', 'loopDelayP99Us', 'loopDelayMaxUs', 'loopBusyPercent', 'gcPauses', 'gcPauseMs', 'gcPauseMaxMs', 'gcMajor'];

/** Keeps the thread busy for `ms`, as a long task would. */
function hold(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

test('a held loop shows in the window it happened in, with its garbage collections, and the next window is clean', async () => {
  // Windows end when the test says (roll), not on the timer.
  const health = new LoopHealth({ windowMs: 3_600_000, resolutionMs: 5 }).start();
  try {
    await sleep(50); // a few quiet periods of the timer
    hold(150);
    let junk: unknown[] = [];
    for (let i = 0; i < 200_000; i++) junk.push({ i, s: `x${i}` }); // young-generation garbage
    junk = [];
    await sleep(50);
    health.roll();
    const held = health.figures();
    assert.deepEqual(Object.keys(held).sort(), [...FIELDS].sort());
    assert.ok(held.loopDelayMaxUs >= 100_000, `max lateness ${held.loopDelayMaxUs} µs after a 150 ms hold`);
    assert.ok(held.loopDelayP50Us < held.loopDelayMaxUs);
    assert.ok(held.loopBusyPercent >= 30 && held.loopBusyPercent <= 100, `busy ${held.loopBusyPercent}%`);
    assert.ok(held.gcPauses >= 1, `collections: ${held.gcPauses}`);
    assert.ok(held.gcPauseMs > 0 && held.gcPauseMaxMs <= held.gcPauseMs + 0.1);
    assert.ok(held.gcMajor <= held.gcPauses);

    await sleep(150);
    health.roll();
    const quiet = health.figures();
    assert.ok(quiet.loopDelayMaxUs < 100_000, `the hold is not counted again: ${quiet.loopDelayMaxUs} µs`);
    assert.ok(quiet.loopBusyPercent < held.loopBusyPercent, `busy ${quiet.loopBusyPercent}% then ${held.loopBusyPercent}%`);
  } finally {
    health.stop();
  }
});

test('full collections are counted apart: a forced one is a major collection, scavenges are not', async () => {
  v8.setFlagsFromString('--expose-gc');
  // gc() is a full collection; gc({ type: 'minor' }) a scavenge.
  const gc = vm.runInNewContext('gc') as (options?: { type: 'minor' }) => void;
  const health = new LoopHealth({ windowMs: 3_600_000, resolutionMs: 5 }).start();
  try {
    gc({ type: 'minor' });
    gc({ type: 'minor' });
    await sleep(20); // the observer is called after the collection, from the loop
    health.roll();
    const minor = health.figures();
    assert.ok(minor.gcPauses >= 2, `collections: ${minor.gcPauses}`);
    assert.equal(minor.gcMajor, 0);
    gc();
    gc();
    await sleep(20);
    health.roll();
    assert.equal(health.figures().gcMajor, 2);
  } finally {
    health.stop();
  }
});

test('a broker reports its event loop’s health in STATS', async (t) => {
  const broker = await startBroker({ storage: 'memory' });
  t.after(() => broker.stop());
  const c = await RawClient.machine(broker.port);
  t.after(() => c.close());
  const stats = await c.stats();
  for (const f of FIELDS) {
    assert.equal(typeof stats[f], 'number', `${f} in ${JSON.stringify(stats)}`);
    assert.ok(Number.isFinite(stats[f]) && stats[f]! >= 0, `${f} = ${stats[f]}`);
  }
  assert.ok(stats.loopBusyPercent! <= 100);
});
