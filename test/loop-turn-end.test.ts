// atTurnEnd: one pass at the end of the turn, in order; work added during the pass joins it
// (an immediate set from inside the check phase would wait a whole turn); a task that throws
// propagates and the tasks after it still run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { atTurnEnd } from '../src/loop/turn-end.js';

test('tasks run in order after the turn, and a task added by one runs in the same pass', async () => {
  const seen: string[] = [];
  await new Promise<void>((done) => {
    atTurnEnd(() => {
      seen.push('a');
      setImmediate(() => {
        seen.push('immediate set during the pass');
        done();
      });
      atTurnEnd(() => seen.push('added by a'));
    });
    atTurnEnd(() => seen.push('b'));
    seen.push('this turn');
  });
  assert.deepEqual(seen, ['this turn', 'a', 'b', 'added by a', 'immediate set during the pass']);
});

test('a task that throws propagates, and the tasks after it run in the next pass', async () => {
  const seen: string[] = [];
  const errors: Error[] = [];
  const onError = (err: Error): void => {
    errors.push(err);
  };
  const listeners = process.listeners('uncaughtException');
  process.removeAllListeners('uncaughtException');
  process.on('uncaughtException', onError);
  try {
    await new Promise<void>((done) => {
      atTurnEnd(() => seen.push('first'));
      atTurnEnd(() => {
        throw new Error('boom');
      });
      atTurnEnd(() => seen.push('after'));
      atTurnEnd(() => done());
    });
  } finally {
    process.off('uncaughtException', onError);
    for (const l of listeners) process.on('uncaughtException', l);
  }
  assert.deepEqual(seen, ['first', 'after']);
  assert.deepEqual(errors.map((e) => e.message), ['boom']);
});
