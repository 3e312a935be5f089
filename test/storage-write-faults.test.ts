import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { defaultStorageOptions, newMessage, type AppendRef, type ChannelLog, type Log, type StoredMessage } from '../src/storage/engine.js';
import { FileStorageEngine } from '../src/storage/filelog/engine.js';
import { InlineWrites } from '../src/storage/filelog/inline-writes.js';
import { Broker, defaultBrokerOptions } from '../src/core/broker.js';
import { noteWaitingReaders } from '../src/loop/input-backlog.js';

const quiet: Log = { info() {}, warn() {}, error() {}, debug() {} };

test('inline writes: small batches only; a run of slow writes or one stall sends every write to the thread pool for the back-off', () => {
  let now = 1000;
  let busy = false;
  const inline = new InlineWrites({ maxBytes: 1024, sharedMaxBytes: 100, slowMs: 1, slowMsPerMiB: 1, strikes: 3, outOf: 16, stallMs: 20, backoffMs: 5000 }, () => now, () => busy);
  assert.equal(inline.allowed(1024), true);
  assert.equal(inline.allowed(1025), false);
  busy = true;
  assert.equal(inline.allowed(100), true, 'while the loop has other work');
  assert.equal(inline.allowed(101), false, 'while the loop has other work');
  busy = false;
  inline.took(0.9, 100);
  assert.equal(inline.allowed(10), true, 'a fast write changes nothing');

  // A slow write now and then among fast ones (a preempted loop) never adds up to a back-off.
  for (let i = 0; i < 200; i++) {
    inline.took(i % 8 === 0 ? 3 : 0.1, 100);
    assert.equal(inline.allowed(10), true, `write ${i}: two slow ones in any 16 at most`);
  }

  // Three slow among the last sixteen: the disk is slow.
  for (let i = 0; i < 16; i++) inline.took(0.1, 100);
  inline.took(3, 100);
  inline.took(0.1, 100);
  inline.took(3, 100);
  assert.equal(inline.allowed(10), true, 'two strikes');
  inline.took(3, 100);
  assert.equal(inline.allowed(10), false, 'third strike: backing off');
  now += 4999;
  assert.equal(inline.allowed(10), false);
  now += 1;
  assert.equal(inline.allowed(10), true, 'tries inline again after the back-off');

  // The strikes before the back-off do not count after it.
  inline.took(3, 100);
  inline.took(3, 100);
  assert.equal(inline.allowed(10), true, 'the count starts over');

  // One write past stallMs is enough.
  now += 10_000;
  for (let i = 0; i < 16; i++) inline.took(0.1, 100);
  inline.took(25, 100);
  assert.equal(inline.allowed(10), false, 'a stall backs off at once');

  // A large write may take longer: 1 ms, plus 1 ms for each MiB.
  now += 10_000;
  for (let i = 0; i < 16; i++) inline.took(4.5, 4 * 1024 * 1024);
  assert.equal(inline.allowed(10), true, '4 MiB in 4.5 ms is not slow');
  for (let i = 0; i < 3; i++) inline.took(5.5, 4 * 1024 * 1024);
  assert.equal(inline.allowed(10), false, '4 MiB in 5.5 ms is');
});

function append(log: ChannelLog, payload: Buffer): Promise<number> {
  return new Promise((resolve, reject) =>
    log.append(newMessage(Date.now(), 'p', '', payload), (err, offset) => (err ? reject(err) : resolve(offset))),
  );
}

/**
 * A real ENOSPC: the segment's descriptor is closed as idle, and its path now leads to
 * /dev/full, so the next write fails the way a full disk does. Small batches are written
 * from the event loop, large ones on the thread pool: both must refuse the appends.
 */
for (const [how, size] of [
  ['inline (small batch)', 16],
  ['thread pool (large batch)', 2 * 1024 * 1024],
] as const) {
  test(`a write that fails with ENOSPC, ${how}: its appends are refused and never committed`, async (t: TestContext) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fluctuat-faults-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const engine = new FileStorageEngine({ ...defaultStorageOptions, dataDir: dir, fsync: 'never' }, quiet);
    const committed: StoredMessage[] = [];
    await engine.start((_channel, batch) => committed.push(...batch));
    t.after(() => engine.close());
    const log = engine.channel('full');
    for (let i = 1; i <= 3; i++) assert.equal(await append(log, Buffer.alloc(size, 0x61)), i);

    await engine.maintain(Date.now());
    await engine.maintain(Date.now()); // unused since the last call: its descriptor is closed
    const [segment] = fs.readdirSync(path.join(dir, 'full')).filter((f) => f.endsWith('.seg'));
    const file = path.join(dir, 'full', segment!);
    fs.renameSync(file, `${file}.kept`);
    fs.symlinkSync('/dev/full', file);

    await assert.rejects(append(log, Buffer.alloc(size, 0x62)), /ENOSPC/);
    await assert.rejects(append(log, Buffer.from('after')), 'later appends fail too (the disk is still full, or the log is disabled)');
    assert.deepEqual(
      committed.map((m) => m.offset),
      [1, 2, 3],
      'nothing past the failed write reached the commit handler',
    );
    assert.equal(log.head, 3);
    // The failed batch's staging chunks went back to the pool once, not once per path.
    const idle = engine.pool.idle;
    assert.equal(new Set(idle).size, idle.length, 'a staging chunk is pooled twice');
  });
}

test('a refused append reports its payload size although the caller reuses its message at once (the broker does)', async (t: TestContext) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fluctuat-faults-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const engine = new FileStorageEngine({ ...defaultStorageOptions, dataDir: dir }, quiet);
  await engine.start(() => {});
  const log = engine.channel('closed');
  await engine.close();
  const reused = { timestamp: Date.now(), publisher: 'p', reply: '', data: Buffer.from('after'), start: 0, end: 5 };
  const outcome = new Promise<[Error | null, number, AppendRef]>((resolve) =>
    log.append(reused, (err, _offset, ref, _channel, bytes) => resolve([err, bytes, ref]), 'ack-7'),
  );
  reused.data = Buffer.alloc(0); // what Broker.publish does right after append
  const [err, bytes, ref] = await outcome;
  assert.match(String(err), /closed/);
  assert.equal(bytes, 5, 'sessions subtract this from their in-flight bytes');
  assert.equal(ref, 'ack-7');
});

test('stats counts the file driver\'s inline and thread-pool writes and its back-offs', async (t: TestContext) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fluctuat-faults-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const engine = new FileStorageEngine({ ...defaultStorageOptions, dataDir: dir, fsync: 'never' }, quiet);
  const broker = new Broker(engine, defaultBrokerOptions, quiet);
  await broker.start();
  t.after(() => engine.close());
  const log = engine.channel('counted');
  const before = broker.stats(0);
  assert.deepEqual([before.storageInlineWrites, before.storagePoolWrites, before.storageInlineBackoffs], [0, 0, 0]);
  await append(log, Buffer.from('small')); // opens the segment (the general path), then writes inline
  await append(log, Buffer.from('small again')); // open segment, small batch: inline
  await append(log, Buffer.alloc(2 * 1024 * 1024, 0x61)); // larger than a staging batch: not inline
  const after = broker.stats(0);
  assert.ok(after.storageInlineWrites! >= 1, `inline writes: ${after.storageInlineWrites}`);
  assert.ok(after.storagePoolWrites! >= 1, `pool writes: ${after.storagePoolWrites}`);
  assert.equal(after.storageInlineWrites! + after.storagePoolWrites!, 3, 'one write per append here');
  assert.equal(after.storageInlineBackoffs, 0);
});

test('a lone channel writes a batch of 256 KiB from the event loop, but on the thread pool while input waits for the next turn', async (t: TestContext) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fluctuat-faults-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const engine = new FileStorageEngine({ ...defaultStorageOptions, dataDir: dir, fsync: 'never' }, quiet);
  await engine.start(() => {});
  t.after(() => engine.close());
  const log = engine.channel('lone');
  await append(log, Buffer.from('opens the segment'));
  const counts = (): [number, number] => [engine.inline.counts.inline, engine.inline.counts.pool];
  const [inline0, pool0] = counts();
  await append(log, Buffer.alloc(256 * 1024, 0x61));
  assert.deepEqual(counts(), [inline0 + 1, pool0], 'nothing else to do: inline');
  noteWaitingReaders(1);
  try {
    await append(log, Buffer.alloc(256 * 1024, 0x62));
    assert.deepEqual(counts(), [inline0 + 1, pool0 + 1], 'input waiting: the pool');
  } finally {
    noteWaitingReaders(-1);
  }
  await append(log, Buffer.alloc(100 * 1024, 0x63));
  assert.deepEqual(counts(), [inline0 + 2, pool0 + 1], 'inline again');
});
