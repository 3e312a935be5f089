// The outbox's chunk grows while a connection fills it within a turn and falls back after a
// quiet turn; every byte arrives in order either way. Over a real loopback socket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Outbox } from '../src/server/outbox.js';
import { socketPair } from './helpers/socket-pair.js';

test('a burst is written in chunks that grow to 256 KiB, a quiet turn brings them back to 64 KiB, and nothing is lost', async () => {
  const { server, client, close } = await socketPair();
  try {
    const writes: number[] = [];
    const write = server.write.bind(server) as (chunk: Buffer) => boolean;
    server.write = ((chunk: Buffer) => {
      writes.push(chunk.length);
      return write(chunk);
    }) as typeof server.write;
    let received = Buffer.alloc(0);
    client.on('data', (d: Buffer) => (received = Buffer.concat([received, d])));

    const out = new Outbox(server, 64 * 1024 * 1024, () => {});
    const line = (i: number): string => `line ${String(i).padStart(8, '0')} ${'x'.repeat(100)}\n`;
    let expected = '';
    const burst = (from: number, count: number): void => {
      for (let i = from; i < from + count; i++) {
        out.writeAscii(line(i));
        expected += line(i);
      }
    };

    burst(0, 10_000); // ~1.1 MB in one turn
    await nextTurn();
    await nextTurn();
    const first = writes.splice(0);
    assert.equal(first[0], 64 * 1024 - ((64 * 1024) % line(0).length), 'the first chunk is the usual 64 KiB');
    assert.ok(Math.max(...first) > 128 * 1024, `chunks grew: ${first.join(', ')}`);
    assert.ok(Math.max(...first) <= 256 * 1024, `and stayed within 256 KiB: ${first.join(', ')}`);

    burst(10_000, 3); // a quiet turn
    await nextTurn();
    await nextTurn();
    assert.deepEqual(writes.splice(0), [3 * line(0).length]);

    burst(20_000, 2_000); // the next burst starts small again
    await nextTurn();
    await nextTurn();
    const third = writes.splice(0);
    assert.ok(third[0]! <= 64 * 1024, `after a quiet turn the chunk is 64 KiB again: ${third.join(', ')}`);

    const total = Buffer.byteLength(expected);
    for (let i = 0; i < 500 && received.length < total; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(received.toString(), expected);
  } finally {
    close();
  }
});
