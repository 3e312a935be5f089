import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AppendCallback, AppendRef } from '../src/storage/engine.js';
import fc from 'fast-check';
import { AckList, AckListPool } from '../src/storage/filelog/ack-list.js';

type Call = [string, Error | null, number, AppendRef, string, number];

function recorder(name: string, calls: Call[]): AppendCallback {
  return (err, offset, ref, channel, bytes) => calls.push([name, err, offset, ref, channel, bytes]);
}

test('every record is told once, in order, with its offset, ref and size, across callback runs', () => {
  const calls: Call[] = [];
  const a = recorder('a', calls);
  const b = recorder('b', calls);
  const list = new AckList();
  const expected: Call[] = [];
  // Runs of one callback, records with no callback, refs only after a while, and more records
  // than the first capacity (16) and its growth (64), so the sizes move twice.
  for (let i = 0; i < 300; i++) {
    const fn = i < 20 ? a : i < 25 ? undefined : i % 50 < 40 ? b : a;
    // Number refs from record 30 on (0 among them), string refs from record 100 on, some not
    // ASCII (kept as UTF-8 bytes, read back as strings), and records with neither between.
    const ref: AppendRef =
      i >= 100 && i % 3 === 0 ? (i % 7 === 0 ? `ñ✓${i}😀` : `id${i}`) : i >= 30 && i % 4 === 0 ? (i === 60 ? 0 : i * 2 ** 40 + 5) : '';
    list.push(fn, ref, i * 1000 + 7);
    if (fn) expected.push([fn === a ? 'a' : 'b', null, 500 + i, ref, 'chan', i * 1000 + 7]);
  }
  assert.equal(list.count, 300);
  list.call(500, 'chan', null, () => assert.fail('nothing throws'));
  assert.deepEqual(calls, expected);
});

test('with an error every callback is told offset 0, and one that throws does not stop the rest', () => {
  const calls: Call[] = [];
  const thrown: unknown[] = [];
  const list = new AckList();
  const boom: AppendCallback = () => {
    throw new Error('callback failed');
  };
  list.push(recorder('a', calls), 'x', 1);
  list.push(boom, '', 2);
  list.push(recorder('a', calls), '', 3);
  const err = new Error('disk full');
  list.call(10, 'c', err, (e) => thrown.push(e));
  assert.deepEqual(calls, [['a', err, 0, 'x', 'c', 1], ['a', err, 0, '', 'c', 3]]);
  assert.equal(thrown.length, 1);
  assert.match(String(thrown[0]), /callback failed/);
});

test('concat lists the other records after these, runs, refs and sizes kept', () => {
  const calls: Call[] = [];
  const a = recorder('a', calls);
  const b = recorder('b', calls);
  const first = new AckList();
  first.push(a, '', 5);
  first.push(a, '', 6);
  const second = new AckList();
  second.push(a, 'r3', 7); // same callback as the end of the first: one run
  second.push(b, '', 8);
  for (let i = 0; i < 40; i++) second.push(undefined, '', 0);
  second.push(b, 'r46', 9);
  second.push(b, 2 ** 50 + 3, 10);
  first.concat(second);
  assert.equal(first.count, 46);
  first.call(1, 'c', null, () => assert.fail('nothing throws'));
  assert.deepEqual(calls, [
    ['a', null, 1, '', 'c', 5],
    ['a', null, 2, '', 'c', 6],
    ['a', null, 3, 'r3', 'c', 7],
    ['b', null, 4, '', 'c', 8],
    ['b', null, 45, 'r46', 'c', 9],
    ['b', null, 46, 2 ** 50 + 3, 'c', 10],
  ]);
});

test('a pooled ack list, reused batch after batch, tells exactly what a fresh one would; a second release lists it once', () => {
  const pool = new AckListPool(2);
  const record = fc.record({
    fn: fc.constantFrom<'a' | 'b' | 'none'>('a', 'b', 'none'),
    ref: fc.oneof(fc.constant(''), fc.integer({ min: 0, max: 2 ** 40 }), fc.string({ minLength: 1, maxLength: 6 }), fc.constantFrom('ñ✓', '😀x')),
    bytes: fc.integer({ min: 0, max: 1 << 20 }),
  });
  fc.assert(
    fc.property(fc.array(fc.array(record, { maxLength: 40 }), { minLength: 1, maxLength: 5 }), (batches) => {
      for (const batch of batches) {
        const calls: { pooled: Call[]; fresh: Call[] } = { pooled: [], fresh: [] };
        const fns = (k: 'pooled' | 'fresh') => ({ a: recorder('a', calls[k]), b: recorder('b', calls[k]), none: undefined });
        const lists = { pooled: pool.get(), fresh: new AckList() };
        for (const k of ['pooled', 'fresh'] as const) {
          const f = fns(k);
          for (const r of batch) lists[k].push(f[r.fn], r.ref, r.bytes);
          lists[k].call(7, 'chan', null, () => assert.fail('nothing throws'));
        }
        assert.deepEqual(calls.pooled, calls.fresh);
        assert.equal(lists.pooled.count, batch.length);
        assert.equal(lists.pooled.acked, lists.fresh.acked);
        assert.equal(lists.pooled.ackedBytes, lists.fresh.ackedBytes);
        pool.release(lists.pooled);
      }
    }),
    { numRuns: 300 },
  );
  const x = pool.get();
  pool.get();
  pool.release(x);
  pool.release(x);
  assert.equal(pool.get(), x);
  assert.notEqual(pool.get(), x, 'released twice, listed once');
  const big = new AckList();
  for (let i = 0; i < 70_000; i++) big.push(undefined, '', 1);
  pool.release(big);
  assert.notEqual(pool.get(), big, 'a list grown past 64 Ki records is not kept');
});
