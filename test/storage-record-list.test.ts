import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecordList, RecordListPool } from '../src/storage/filelog/record-list.js';

/** Every record of `list` as [length, timestamp, publisher, reply]. */
function records(list: RecordList): [number, number, string, string][] {
  const out: [number, number, string, string][] = [];
  let run = 0;
  for (let i = 0; i < list.count; i++) {
    if (i === list.publishers.ends[run]) run++;
    out.push([list.lengths[i]!, list.timestamps[i]!, list.publishers.values[run]!, list.replies?.[i] ?? '']);
  }
  return out;
}

test('a record list keeps each record, with publishers as runs and replies once one is given', () => {
  const list = new RecordList();
  const expected: [number, number, string, string][] = [];
  for (let i = 0; i < 200; i++) {
    const publisher = i < 50 ? 'a' : i < 51 ? 'b' : i % 40 < 20 ? 'a' : 'c';
    const reply = i >= 120 && i % 9 === 0 ? `_INBOX.${i}` : '';
    list.push(40 + i, 1_700_000_000_000 + i / 4, publisher, reply);
    expected.push([40 + i, 1_700_000_000_000 + i / 4, publisher, reply]);
  }
  assert.equal(list.count, 200);
  assert.deepEqual(records(list), expected);
  assert.ok(list.publishers.count < 20, `${list.publishers.count} runs`);
});

test('the pool hands lists back empty, keeps a bounded number and no very large one', () => {
  const pool = new RecordListPool(2);
  const a = pool.get();
  a.push(50, 1, 'p', 'r');
  pool.release(a);
  const again = pool.get();
  assert.equal(again, a, 'reused');
  assert.equal(again.count, 0);
  assert.equal(again.publishers.count, 0);
  assert.ok(again.publishers.values.every((v) => v === undefined), 'holds no publisher of the batch before');
  assert.equal(again.replies, null);
  again.push(60, 2, 'q', '');
  assert.deepEqual(records(again), [[60, 2, 'q', '']]);
  // Several batches through one list: runs reuse the slots of the batch before, and a batch
  // with fewer runs than that one reads none of its leftovers.
  for (const batch of [['a', 'b', 'b', 'c'], ['d'], ['e', 'e', 'f'], ['g', 'h', 'i', 'j', 'k']]) {
    pool.release(again);
    assert.equal(pool.get(), again);
    batch.forEach((p, i) => again.push(i, i, p, ''));
    assert.deepEqual(records(again), batch.map((p, i) => [i, i, p, '']));
    assert.equal(again.publishers.count, new Set(batch).size);
  }

  const lists = [pool.get(), pool.get(), pool.get()];
  for (const l of lists) pool.release(l);
  assert.equal(pool.get(), lists[1]);
  assert.equal(pool.get(), lists[0]);
  assert.notEqual(pool.get(), lists[2], 'only two were kept');

  const big = pool.get();
  for (let i = 0; i < 70_000; i++) big.push(50, i, 'p', '');
  pool.release(big);
  assert.notEqual(pool.get(), big, 'a list grown past 64 Ki records is not kept');
});
