import { test } from 'node:test';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import {
  defaultStorageOptions,
  newMessage,
  payloadOf,
  type AppendRef,
  type ChannelLog,
  type Log,
  type NewMessage,
  type StorageEngine,
  type StorageOptions,
  type StoredMessage,
} from '../src/storage/engine.js';
import { driverNames, getDriver } from '../src/storage/registry.js';
import '../src/storage/builtin.js';

const quiet: Log = { info() {}, warn() {}, error() {}, debug() {} };

async function memory(more: Partial<StorageOptions> = {}) {
  const engine: StorageEngine = getDriver('memory').create({ ...defaultStorageOptions, ...more }, quiet);
  const events: string[] = [];
  const commits: StoredMessage[] = [];
  await engine.start((channel, batch) => {
    for (const m of batch) {
      events.push(`commit ${channel} ${m.offset}`);
      commits.push(m);
    }
  });
  return { engine, events, commits };
}

const msg = (text: string | Buffer, timestamp = Date.now()): NewMessage => newMessage(timestamp, 'p', '', typeof text === 'string' ? Buffer.from(text) : text);

/** Appends are committed in a microtask after the code that made them: this waits for it. */
const committed = (): Promise<void> => Promise.resolve();

const offsets = async (log: ChannelLog, from = 1): Promise<number[]> =>
  (await log.read(from, 100_000, Infinity)).map((m) => m.offset);
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** What the ring should still hold: the newest `retainMessages`, then within `retainBytes` (0: no byte bound). */
function retain(model: { payload: Buffer }[], retainMessages: number, retainBytes: number): void {
  while (model.length > retainMessages) model.shift();
  let bytes = model.reduce((n, m) => n + m.payload.length, 0);
  while (retainBytes > 0 && bytes > retainBytes && model.length > 0) bytes -= model.shift()!.payload.length;
}

test('builtin registers the memory and file drivers', () => {
  assert.ok(driverNames().includes('file') && driverNames().includes('memory'));
  assert.throws(() => getDriver('nope'), /unknown storage driver "nope"/);
  assert.equal(getDriver('memory').check, undefined, 'nothing on disk to check');
});

test('memory: the appends of one callback are committed together right after it: batch to the commit handler, then acks, in offset order', async () => {
  const { engine, events } = await memory();
  const log = engine.channel('m');
  assert.equal(log.replayable, false);
  for (let i = 0; i < 3; i++) {
    log.append(msg(`x${i}`), (err, offset) => events.push(`ack ${offset} ${String(err)}`));
    events.push(`returned ${i + 1}`);
  }
  // Nothing is visible before the commit: head and reads show what the broker has seen.
  assert.equal(log.head, 0);
  assert.deepEqual(await offsets(log), []);
  assert.deepEqual(events, [
    'returned 1', 'returned 2', 'returned 3',
    'commit m 1', 'commit m 2', 'commit m 3',
    'ack 1 null', 'ack 2 null', 'ack 3 null',
  ]);
  assert.equal(log.head, 3);
  assert.deepEqual(await offsets(log), [1, 2, 3]);
  log.append(msg('later'), (err, offset) => events.push(`ack ${offset} ${String(err)}`));
  await committed();
  assert.deepEqual(events.slice(-2), ['commit m 4', 'ack 4 null'], 'the next callback is the next batch');
  assert.deepEqual(engine.channels(), ['m']);
});

test('memory: a batch mixing appends with and without a callback tells each callback its own offset and ref', async () => {
  const { engine, events } = await memory();
  const log = engine.channel('mixed');
  const told = (err: Error | null, offset: number, ref: AppendRef, channel: string, bytes: number) => events.push(`ack ${offset} ${ref} ${channel} ${bytes} ${String(err)}`);
  log.append(msg('a'));
  log.append(msg('bb'));
  log.append(msg('ccc'), told, 'r3');
  log.append(msg('dddd'));
  log.append(msg('eeeee'), told, 'r5');
  await committed();
  assert.deepEqual(events, [
    'commit mixed 1', 'commit mixed 2', 'commit mixed 3', 'commit mixed 4', 'commit mixed 5',
    'ack 3 r3 mixed 3 null', 'ack 5 r5 mixed 5 null',
  ]);
  log.append(msg('f'));
  await committed();
  assert.deepEqual(events.slice(7), ['commit mixed 6'], 'a batch nobody asked about is committed and tells no one');
});

test('memory: a commit handler or append callback that throws is logged; the others still run', async () => {
  const errors: string[] = [];
  const engine = getDriver('memory').create(defaultStorageOptions, { ...quiet, error: (_o: unknown, m?: string) => void errors.push(String(m)) });
  let calls = 0;
  await engine.start(() => {
    calls++;
    throw new Error('handler bug');
  });
  const log = engine.channel('t');
  const acks: number[] = [];
  log.append(msg('a'), () => {
    throw new Error('callback bug');
  });
  log.append(msg('b'), (_err, offset) => acks.push(offset));
  await committed();
  assert.equal(calls, 1);
  assert.deepEqual(acks, [2]);
  assert.deepEqual(errors, ['storage: commit handler threw', 'storage: append callback threw']);
  assert.equal(log.head, 2);
  // A lone append (a batch of one, committed without the batch arrays) is handled alike.
  log.append(msg('c'), (_err, offset) => acks.push(offset));
  await committed();
  assert.equal(calls, 2);
  assert.deepEqual(acks, [2, 3]);
  assert.deepEqual(errors, ['storage: commit handler threw', 'storage: append callback threw', 'storage: commit handler threw']);
  assert.equal(log.head, 3);
});

test('memory: a lone append is a batch of one that holds nothing after the call; a channel appended to by a handler is committed in the same pass', async () => {
  const engine = getDriver('memory').create(defaultStorageOptions, quiet);
  const events: string[] = [];
  let lone: readonly StoredMessage[] | null = null;
  await engine.start((channel, batch) => {
    events.push(`commit ${channel} ${batch.map((m) => `${m.offset}:${m.data.subarray(m.start, m.end).toString()}`).join(',')}`);
    if (channel === 'a' && lone === null) {
      lone = batch;
      // A handler that publishes (the broker's never do today) joins this commit pass.
      engine.channel('b').append(msg('from a'), (_err, offset) => events.push(`ack b ${offset}`));
    }
  });
  engine.channel('a').append(msg('one'), (_err, offset) => events.push(`ack a ${offset}`));
  await committed();
  assert.deepEqual(events, ['commit a 1:one', 'ack a 1', 'commit b 1:from a', 'ack b 1']);
  // The one-slot batch is the engine's: after the call it no longer holds the message or its payload.
  assert.equal(lone!.length, 1);
  assert.notEqual(lone![0]!.offset, 1);
  assert.equal(lone![0]!.end - lone![0]!.start, 0);
  // Batches of one and of several alternate on a channel with consecutive offsets.
  const log = engine.channel('a');
  log.append(msg('x'));
  log.append(msg('y'));
  await committed();
  log.append(msg('z'));
  await committed();
  assert.deepEqual(events.slice(4), ['commit a 2:x,3:y', 'commit a 4:z']);
  assert.deepEqual(await offsets(log), [1, 2, 3, 4]);
});

test('memory: the ring holds retainMessages; reads and first follow it', async () => {
  const { engine } = await memory({ retainMessages: 5 });
  const log = engine.channel('ring');
  for (let i = 1; i <= 12; i++) log.append(msg(`m${i}`));
  await committed();
  assert.equal(log.first, 8);
  assert.equal(log.head, 12);
  assert.deepEqual(await offsets(log), range(8, 12), 'from before first starts at first');
  assert.deepEqual(await offsets(log, 10), [10, 11, 12]);
  assert.deepEqual((await log.read(9, 2, Infinity)).map((m) => payloadOf(m).toString()), ['m9', 'm10']);
  assert.deepEqual(await offsets(log, 13), []);
  assert.deepEqual(log.stats(), { channel: 'ring', first: 8, head: 12, messages: 5, bytes: 13 });
});

test('memory: without retainMessages the ring holds 10,000', async () => {
  const { engine } = await memory();
  const log = engine.channel('big');
  for (let i = 1; i <= 10_500; i++) log.append(msg('.'));
  await committed();
  assert.equal(log.first, 501);
  assert.equal(log.stats().messages, 10_000);
});

test('memory: without retainBytes a channel holds at most 16 MiB of payload; retainBytes raises it', async () => {
  // 10,000 messages of 64 KiB would be 625 MiB in one channel: the default byte bound keeps 256.
  const big = Buffer.alloc(64 * 1024, 0x61);
  const { engine } = await memory();
  const log = engine.channel('large');
  for (let i = 1; i <= 300; i++) log.append(msg(big));
  await committed();
  assert.deepEqual(log.stats(), { channel: 'large', first: 45, head: 300, messages: 256, bytes: 16 * 1024 * 1024 });
  assert.ok(payloadOf((await log.read(45, 1, Infinity))[0]!).equals(big));

  const raised = await memory({ retainBytes: 32 * 1024 * 1024 });
  const more = raised.engine.channel('large');
  for (let i = 1; i <= 600; i++) more.append(msg(big));
  await committed();
  assert.equal(more.stats().messages, 512);
});

test('memory: the ring grows on demand and shrinks after retention, keeping order through wrap-around', async () => {
  // retainBytes drops from the front while appends grow the ring: the copy on resize must
  // follow the ring's start, not slot 0. 3 bytes each, 30 bytes kept: 10 messages.
  const { engine } = await memory({ retainBytes: 30, retainMessages: 1000 });
  const log = engine.channel('grow');
  for (let i = 1; i <= 500; i++) {
    log.append(msg(String(i % 1000).padStart(3, '0')));
    await committed();
    const held = await log.read(1, 1000, Infinity);
    assert.deepEqual(held.map((m) => m.offset), range(Math.max(1, i - 9), i), `after append ${i}`);
  }
  // Grown to its bound (not a power of two), then emptied by age: it shrinks, and keeps order.
  const wide = await memory({ retainMessages: 300, retainAgeMs: 60_000 });
  const w = wide.engine.channel('wide');
  const old = Date.now() - 120_000;
  for (let i = 1; i <= 1000; i++) w.append(msg(`w${i}`, old));
  await committed();
  assert.deepEqual(w.stats(), { channel: 'wide', first: 701, head: 1000, messages: 300, bytes: 1201 }, 'the bound holds once grown');
  for (let i = 1001; i <= 1100; i++) w.append(msg(`w${i}`));
  await committed();
  assert.deepEqual(await offsets(w), range(1001, 1100), 'aged out, then refilled');
  assert.deepEqual((await w.read(1099, 10, Infinity)).map((m) => payloadOf(m).toString()), ['w1099', 'w1100']);
});

test('memory: retainBytes and retainAgeMs drop the oldest messages', async () => {
  const { engine } = await memory({ retainBytes: 10 });
  const log = engine.channel('bytes');
  for (let i = 0; i < 6; i++) log.append(msg('abcd')); // 4 bytes each
  await committed();
  assert.deepEqual(await offsets(log), [5, 6]);

  const aged = await memory({ retainAgeMs: 60_000 });
  const old = aged.engine.channel('age');
  const now = Date.now();
  old.append(msg('old', now - 120_000));
  old.append(msg('older than a minute', now - 61_000));
  old.append(msg('fresh', now));
  await committed();
  assert.deepEqual(await offsets(old), [3]);
  assert.equal(old.first, 3);
});

test('memory: resolve for each position kind', async () => {
  const { engine } = await memory({ retainMessages: 50 });
  const log = engine.channel('r');
  const T0 = 1_700_000_000_000;
  for (let i = 1; i <= 60; i++) log.append(msg(`m${i}`, T0 + i * 1000));
  await committed();
  assert.equal(await log.resolve({ kind: 'beginning' }), 11);
  assert.equal(await log.resolve({ kind: 'new' }), 61);
  assert.equal(await log.resolve({ kind: 'offset', offset: 30 }), 30);
  assert.equal(await log.resolve({ kind: 'last', count: 5 }), 56);
  assert.equal(await log.resolve({ kind: 'last', count: 500 }), 11);
  assert.equal(await log.resolve({ kind: 'time', time: T0 + 20_500 }), 21);
  assert.equal(await log.resolve({ kind: 'time', time: 0 }), 11);
  assert.equal(await log.resolve({ kind: 'time', time: T0 + 61_000 }), 61);
});

test('memory: rotate and close are harmless and close is idempotent', async () => {
  const { engine, commits } = await memory();
  engine.channel('c').append(msg('x'));
  await engine.rotate();
  await engine.close();
  await engine.close();
  assert.equal(commits.length, 1);
});

test('memory: the ring against a model: any mix of payload sizes and bounds reads back exactly what is held, after every append', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 12 }),
      fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 3000 })),
      // Sizes spread evenly, not biased small: byte bounds then drop one, several or all.
      fc.array(fc.nat({ max: 600 }).map((n) => (n * 7919) % 601), { minLength: 1, maxLength: 300 }),
      async (retainMessages, retainBytes, sizes) => {
        const { engine, commits } = await memory({ retainMessages, retainBytes });
        const log = engine.channel('model');
        const model: { offset: number; payload: Buffer }[] = [];
        let offset = 0;
        for (const size of sizes) {
          offset++;
          const payload = Buffer.alloc(size, offset % 251);
          if (size > 0) payload.writeUInt8(offset % 256, 0);
          log.append(newMessage(1000 + offset, `p${offset % 3}`, offset % 2 ? '' : 'r', payload));
          await committed();
          model.push({ offset, payload });
          retain(model, retainMessages, retainBytes);
          // After every append, not only at the end: a wrong message dropped later would hide.
          const now = await log.read(1, 100_000, Infinity);
          assert.deepEqual(now.map((m) => m.offset), model.map((m) => m.offset));
          for (let i = 0; i < now.length; i++) assert.ok(payloadOf(now[i]!).equals(model[i]!.payload), `payload of ${now[i]!.offset} after ${offset}`);
        }
        const held = await log.read(1, 100_000, Infinity);
        assert.deepEqual(held.map((m) => m.offset), model.map((m) => m.offset));
        for (let i = 0; i < held.length; i++) {
          assert.ok(payloadOf(held[i]!).equals(model[i]!.payload), `payload of ${held[i]!.offset}`);
          assert.equal(held[i]!.timestamp, 1000 + held[i]!.offset);
          assert.equal(held[i]!.publisher, `p${held[i]!.offset % 3}`);
          assert.equal(held[i]!.reply, held[i]!.offset % 2 ? '' : 'r');
        }
        assert.equal(log.stats().bytes, model.reduce((n, m) => n + m.payload.length, 0));
        assert.equal(log.first, model.length ? model[0]!.offset : offset + 1);
        assert.equal(commits.length, sizes.length, 'every append was committed live');
      },
    ),
    { numRuns: 300 },
  );
});

test('memory: payloads packed into shared slabs read back intact while slabs fill, empty and are reused across channels', async () => {
  // Sizes around the slab sizes (256 B doubling to 256 KiB) and past the own-buffer size
  // (64 KiB), on two channels sharing the engine's slab pool: a slab handed back while one
  // of its messages is still held would be overwritten by the other channel's payloads.
  const sizes = [0, 1, 100, 255, 256, 300, 4096, 20_000, 65_536, 70_000];
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 20 }),
      fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 200_000 })),
      fc.array(fc.tuple(fc.constantFrom(...sizes), fc.boolean()), { minLength: 1, maxLength: 120 }),
      async (retainMessages, retainBytes, appends) => {
        const { engine } = await memory({ retainMessages, retainBytes });
        const logs = [engine.channel('a'), engine.channel('b')];
        const models: { offset: number; payload: Buffer }[][] = [[], []];
        const next = [0, 0];
        const earlier: { copy: Buffer; expected: Buffer }[] = [];
        for (const [size, second] of appends) {
          const c = second ? 1 : 0;
          const offset = ++next[c]!;
          const payload = Buffer.alloc(size);
          for (let i = 0; i < size; i += 97) payload[i] = (offset * 31 + i + c) % 256;
          logs[c]!.append(newMessage(1000 + offset, 'p', '', payload));
          await committed();
          const model = models[c]!;
          model.push({ offset, payload });
          retain(model, retainMessages, retainBytes);
          for (const k of [0, 1]) {
            const held = await logs[k]!.read(1, 100_000, Infinity);
            assert.deepEqual(held.map((m) => m.offset), models[k]!.map((m) => m.offset), `channel ${k} offsets`);
            for (let i = 0; i < held.length; i++) assert.ok(payloadOf(held[i]!).equals(models[k]![i]!.payload), `channel ${k} payload of ${held[i]!.offset}`);
            if (held.length) earlier.push({ copy: payloadOf(held[0]!), expected: Buffer.from(models[k]![0]!.payload) });
          }
        }
        // What a reader was given is its own: later appends and slab reuse leave it alone.
        for (const e of earlier) assert.ok(e.copy.equals(e.expected), 'a payload read earlier changed');
      },
    ),
    { numRuns: 200 },
  );
});

test('memory: a slab goes back to the pool only once none of its messages is held, with a large payload in between', async () => {
  // m1 and m3 share the first 256 B slab with m2's own buffer between them; m4 starts a new
  // slab and m5 pushes m1 out. Handing the first slab back then (its oldest message is gone
  // and the next one is elsewhere) would let channel b's first slab overwrite m3.
  const { engine } = await memory({ retainMessages: 4 });
  const a = engine.channel('a');
  const fill = (n: number, byte: number) => Buffer.alloc(n, byte);
  a.append(msg(fill(100, 1)));
  a.append(msg(fill(70_000, 2)));
  a.append(msg(fill(100, 3)));
  a.append(msg(fill(200, 4)));
  a.append(msg(fill(10, 5)));
  const b = engine.channel('b');
  b.append(msg(fill(100, 0xee)));
  b.append(msg(fill(100, 0xff)));
  await committed();
  const held = await a.read(1, 10, Infinity);
  assert.deepEqual(held.map((m) => m.offset), [2, 3, 4, 5]);
  assert.ok(payloadOf(held[1]!).equals(fill(100, 3)), 'm3 intact');
  assert.deepEqual(held.map((m) => [payloadOf(m).length, payloadOf(m)[0]]), [[70_000, 2], [100, 3], [200, 4], [10, 5]]);
});

test('memory: batches of views into shared reads, on two channels in one turn, read back intact while slabs switch and bounds drop within a batch', async () => {
  // One commit holds a whole batch: its payload copies into slabs are made together at the
  // end of the batch (native/copy-list.ts), so a batch that starts slabs, drops messages past
  // small bounds, or interleaves with another channel's batch must read back as appended.
  const sizes = [0, 10, 64, 65, 200, 256, 1000, 4096, 20_000, 70_000];
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 30 }),
      fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 100_000 })),
      fc.array(fc.array(fc.tuple(fc.constantFrom(...sizes), fc.boolean()), { minLength: 1, maxLength: 60 }), { minLength: 1, maxLength: 8 }),
      async (retainMessages, retainBytes, batches) => {
        const { engine } = await memory({ retainMessages, retainBytes });
        const logs = [engine.channel('a'), engine.channel('b')];
        const models: { offset: number; payload: Buffer }[][] = [[], []];
        const next = [0, 0];
        for (const batch of batches) {
          // The batch's payloads are views into one buffer, as publishes into one socket read.
          const read = Buffer.allocUnsafe(batch.reduce((n, [size]) => n + size + 7, 0));
          let at = 0;
          for (const [size, second] of batch) {
            const c = second ? 1 : 0;
            const offset = ++next[c]!;
            at += 7; // a frame header between payloads
            for (let i = 0; i < size; i++) read[at + i] = (offset * 31 + i * 7 + c) & 0xff;
            logs[c]!.append({ timestamp: 1000 + offset, publisher: 'p', reply: '', data: read, start: at, end: at + size });
            models[c]!.push({ offset, payload: Buffer.from(read.subarray(at, at + size)) });
            at += size;
          }
          await committed();
          read.fill(0xaa); // the read's buffer reused: the ring must hold copies made before
          for (const k of [0, 1]) {
            const model = models[k]!;
            retain(model, retainMessages, retainBytes);
            const held = await logs[k]!.read(1, 100_000, Infinity);
            assert.deepEqual(held.map((m) => m.offset), model.map((m) => m.offset), `channel ${k} offsets`);
            for (let i = 0; i < held.length; i++) assert.ok(payloadOf(held[i]!).equals(model[i]!.payload), `channel ${k} payload of ${held[i]!.offset}`);
          }
        }
      },
    ),
    { numRuns: 200 },
  );
});
