// The outbox's chunk grows while a connection fills it within a turn and falls back after a
// quiet turn; written chunks are reused, never while the socket still holds them; every byte
// arrives in order either way. Over a real loopback socket.
import type net from 'node:net';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Outbox } from '../src/server/outbox.js';
import { socketPair } from './helpers/socket-pair.js';

/** Calls `seen` with every chunk the socket is asked to write, passing the write (and its callback) on. */
function tapWrites(socket: net.Socket, seen: (chunk: Buffer) => void): void {
  const write = socket.write.bind(socket) as (chunk: Buffer, cb?: () => void) => boolean;
  socket.write = ((chunk: Buffer, cb?: () => void) => {
    seen(chunk);
    return write(chunk, cb);
  }) as typeof socket.write;
}

test('a burst is written in chunks that grow to 256 KiB, a quiet turn brings them back to 64 KiB, and nothing is lost', async () => {
  const { server, client, close } = await socketPair();
  try {
    const writes: number[] = [];
    tapWrites(server, (chunk) => writes.push(chunk.length));
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

test('chunks the socket has written are reused, and one it still holds is never written over', async () => {
  const { server, client, close } = await socketPair();
  try {
    // Which memory each large write came from (small ones are copies from Node's pool).
    const backing: ArrayBuffer[] = [];
    tapWrites(server, (chunk) => {
      if (chunk.length > 4096) backing.push(chunk.buffer as ArrayBuffer);
    });
    // The client reads nothing at first: the kernel's buffers fill and chunks wait in the socket.
    client.pause();
    const out = new Outbox(server, 64 * 1024 * 1024, () => {});
    const line = (i: number): string => `${String(i).padStart(9, '0')} ${'abcdefghij'.repeat(5)}\n`;
    let expected = '';
    let next = 0;
    const burst = (count: number): void => {
      for (const end = next + count; next < end; next++) {
        out.writeAscii(line(next));
        expected += line(next);
      }
    };
    // ~90 KB a turn (a chunk and a bit) until the socket holds some: how much the kernel takes
    // first depends on its buffer sizes.
    for (let turn = 0; turn < 2_000 && server.writableLength < 512 * 1024; turn++) {
      burst(1_500);
      await nextTurn();
    }
    assert.ok(server.writableLength > 256 * 1024, `writes are waiting in the socket: ${server.writableLength} bytes`);

    let received = '';
    client.setEncoding('latin1');
    client.on('data', (d: string) => (received += d));
    client.resume();
    for (let turn = 0; turn < 40; turn++) {
      burst(1_500);
      await new Promise((r) => setTimeout(r, 2));
    }
    for (let i = 0; i < 500 && received.length < expected.length; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(received.length, expected.length);
    assert.ok(received === expected, 'every line arrives whole and in order');
    assert.ok(new Set(backing).size < backing.length / 2, `chunks were reused: ${new Set(backing).size} distinct of ${backing.length} writes`);
  } finally {
    close();
  }
});
