import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkList } from '../src/loop/work-list.js';

test('work list: add says when a pass is due; a pass runs items in order, items added meanwhile too, and leaves the list empty for reuse', () => {
  const list = new WorkList<string>();
  assert.equal(list.add('a'), true, 'the first item schedules a pass');
  assert.equal(list.add('b'), false);
  const ran: string[] = [];
  list.drain((item) => {
    ran.push(item);
    if (item === 'a') assert.equal(list.add('c'), false, 'added during the pass: it joins it');
  }, () => assert.fail('nothing threw'));
  assert.deepEqual(ran, ['a', 'b', 'c']);
  assert.equal(list.length, 0);
  assert.equal(list.add('d'), true, 'empty again: the next item schedules the next pass');
  list.drain((item) => ran.push(item), () => assert.fail('nothing threw'));
  assert.deepEqual(ran, ['a', 'b', 'c', 'd']);
});

test('work list: when a pass throws, the items after the one that threw go back through `again` and the error propagates', () => {
  const list = new WorkList<number>();
  for (const n of [1, 2, 3, 4]) list.add(n);
  const ran: number[] = [];
  const again: number[] = [];
  assert.throws(
    () =>
      list.drain(
        (n) => {
          ran.push(n);
          if (n === 2) throw new Error('bug');
        },
        (n) => again.push(n),
      ),
    /bug/,
  );
  assert.deepEqual(ran, [1, 2]);
  assert.deepEqual(again, [3, 4]);
  assert.equal(list.length, 0);
  // Rescheduled the usual way, they are the next pass.
  for (const n of again) list.add(n);
  list.drain((n) => ran.push(n), () => assert.fail('nothing threw'));
  assert.deepEqual(ran, [1, 2, 3, 4]);
});
