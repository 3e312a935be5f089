/**
 * The file log's bounded pool of open segment descriptors: many more channels than open
 * files, every channel appendable and readable, nothing acknowledged lost (kill -9 included),
 * and a descriptor with unsynced acknowledged writes is never closed before its fsync.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { defaultStorageOptions, newMessage, payloadOf, type ChannelLog, type Log, type StorageOptions } from '../src/storage/engine.js';
import { FileStorageEngine } from '../src/storage/filelog/engine.js';
import { defaultOpenFiles } from '../src/storage/filelog/fd-pool.js';
import { startBroker } from './helpers/broker.js';
import { RawClient, until } from './helpers/raw.js';

const quiet: Log = { info() {}, warn() {}, error() {}, debug() {} };

function tempDir(t: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fluctuat-fds-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function openEngine(t: TestContext, dir: string, options: Partial<StorageOptions>) {
  const engine = new FileStorageEngine({ ...defaultStorageOptions, dataDir: dir, ...options }, quiet);
  let maxOpen = 0;
  await engine.start(() => {
    maxOpen = Math.max(maxOpen, engine.files.size);
  });
  t.after(() => engine.close());
  return { engine, maxOpen: () => Math.max(maxOpen, engine.files.size) };
}

function put(log: ChannelLog, text: string): Promise<number> {
  return new Promise((resolve, reject) =>
    log.append(newMessage(Date.now(), 'p', '', Buffer.from(text)), (err, offset) =>
      err ? reject(err) : resolve(offset),
    ),
  );
}

const texts = async (log: ChannelLog): Promise<string[]> => (await log.read(1, 1000, Infinity)).map((m) => payloadOf(m).toString());
const count = (c: RawClient, prefix: string): number => c.frames.filter((f) => f.line.startsWith(prefix)).length;
const openFds = (): number => fs.readdirSync('/proc/self/fd').length;

for (const fsync of ['always', 'interval', 'never'] as const) {
  test(`400 channels through 8 open files (fsync ${fsync}): all appendable and readable, before and after a restart`, async (t) => {
    const dir = tempDir(t);
    const channels = Array.from({ length: 400 }, (_, i) => `many.c${i}`);
    const before = openFds();
    {
      const { engine, maxOpen } = await openEngine(t, dir, { fsync, maxOpenFiles: 8 });
      // All at once: 400 channels want a segment in the same turn.
      const acks = await Promise.all(channels.map((c) => put(engine.channel(c), `${c}#1`)));
      assert.deepEqual(new Set(acks), new Set([1]));
      await Promise.all(channels.map((c) => put(engine.channel(c), `${c}#2`)));
      for (const c of channels) assert.deepEqual(await texts(engine.channel(c)), [`${c}#1`, `${c}#2`]);
      assert.ok(maxOpen() <= 8, `at most 8 segment files open, saw ${maxOpen()}`);
      assert.ok(engine.files.evictions > 0 && engine.files.waits > 0, 'the pool had to close descriptors and make opens wait');
      // Directory fsyncs and recovery scans open a descriptor for a moment, outside the pool.
      assert.ok(openFds() - before <= 8 + 2, `process descriptors grew by ${openFds() - before}`);
      await engine.close();
    }
    const { engine, maxOpen } = await openEngine(t, dir, { fsync, maxOpenFiles: 8 });
    assert.equal(engine.channels().length, 400);
    await Promise.all(channels.map((c) => put(engine.channel(c), `${c}#3`)));
    const reads = await Promise.all(channels.map((c) => texts(engine.channel(c))));
    reads.forEach((got, i) => assert.deepEqual(got, [1, 2, 3].map((n) => `${channels[i]}#${n}`)));
    assert.ok(maxOpen() <= 8);
  });
}

test('a descriptor with unsynced acknowledged writes is fsynced before the pool closes it', async (t) => {
  // One slot, two channels: b's open must wait for a's group fsync, which acknowledges a first.
  const dir = tempDir(t);
  const { engine } = await openEngine(t, dir, { fsync: 'interval', fsyncIntervalMs: 20, maxOpenFiles: 1 });
  const order: string[] = [];
  const a = engine.channel('slot.a');
  const b = engine.channel('slot.b');
  await put(a, 'first'); // a's segment exists, written and synced
  const pa = put(a, 'a2').then(() => order.push('ack a'));
  await new Promise((r) => setImmediate(r)); // a2 is written, its fsync pending
  const pb = put(b, 'b1').then(() => order.push('ack b'));
  await Promise.all([pa, pb]);
  assert.deepEqual(order, ['ack a', 'ack b']);
  assert.ok(engine.files.evictions >= 1);
  assert.deepEqual(await texts(a), ['first', 'a2']);
  assert.deepEqual(await texts(b), ['b1']);
});

test('an open that waits for a slot brings the group fsync of writes nobody waits for back to the interval\'s pace', { timeout: 30_000 }, async (t) => {
  // One slot, and a pace for unacknowledged writes that would keep b waiting for ~a day.
  const { engine } = await openEngine(t, tempDir(t), { fsync: 'interval', fsyncIntervalMs: 20, fsyncUnackedMs: 1e8, maxOpenFiles: 1 });
  const a = engine.channel('slot.a');
  const b = engine.channel('slot.b');
  const pa = put(a, 'a1'); // no ref: its fsync keeps the slow pace until someone waits
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(engine.counters().storageGroupSyncs, 0, 'a1 waits for the slow pace');
  await Promise.all([pa, put(b, 'b1')]);
  assert.ok(engine.files.waits >= 1 && engine.files.evictions >= 1, 'b waited for a\'s slot');
  assert.deepEqual(await texts(a), ['a1']);
  assert.deepEqual(await texts(b), ['b1']);
});

test('the default bound is half the open-file limit', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fluctuat-limits-'));
  try {
    const file = path.join(dir, 'limits');
    fs.writeFileSync(file, 'Limit                     Soft Limit           Hard Limit           Units\nMax open files            256                  4096                 files\n');
    assert.equal(defaultOpenFiles(file), 128);
    fs.writeFileSync(file, 'Max open files            unlimited            unlimited            files\n');
    assert.equal(defaultOpenFiles(file), 65_536);
    assert.equal(defaultOpenFiles(path.join(dir, 'missing')), 256);
    assert.ok(defaultOpenFiles() >= 16);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a broker under ulimit -n 256 serves 1,500 channels and keeps every acknowledged message through kill -9', async () => {
  const broker = await startBroker({ openFilesLimit: 256, args: ['--fsync', 'interval'] });
  const channels = Array.from({ length: 1500 }, (_, i) => `fd.c${i}`);
  try {
    const c = await RawClient.machine(broker.port);
    channels.forEach((ch, i) => c.pub(ch, `${ch}#1`, `a${i}`));
    await until(() => count(c, 'ACK a') === channels.length, 'first acks', 120_000);
    const errors = c.frames.filter((f) => f.line.startsWith('-ERR') || f.line.startsWith('ERR'));
    assert.deepEqual(errors, [], 'no publish refused');
    channels.forEach((ch, i) => c.pub(ch, `${ch}#2`, `b${i}`));
    await until(() => count(c, 'ACK b') === channels.length, 'second acks', 120_000);
    await c.close();
    await broker.kill();

    await broker.restart();
    const r = await RawClient.machine(broker.port);
    r.send('SUB r fd.> from=beginning');
    await until(() => count(r, 'LIVE r ') === channels.length, 'every channel replayed', 120_000);
    const got = new Map<string, string[]>();
    for (const f of r.frames.filter((x) => x.line.startsWith('MSG r '))) {
      const ch = f.line.split(' ')[2]!;
      got.set(ch, [...(got.get(ch) ?? []), f.payload!.toString()]);
    }
    for (const ch of channels) assert.deepEqual(got.get(ch), [`${ch}#1`, `${ch}#2`], ch);
    // Still appendable after the restart, every channel.
    channels.forEach((ch, i) => r.pub(ch, `${ch}#3`, `c${i}`));
    await until(() => count(r, 'ACK c') === channels.length, 'acks after restart', 120_000);
    assert.ok(r.frames.filter((f) => f.line.startsWith('ACK c')).every((f) => f.line.endsWith(' 3')));
    await r.close();
    const started = broker.logs.filter((l) => l.msg === 'storage: file engine started').at(-1)!;
    assert.equal(started.maxOpenFiles, 128, 'half of the 256 descriptors');
  } finally {
    await broker.dispose();
  }
});

test('serve --open-files sets the bound, and the broker keeps to it', async () => {
  const broker = await startBroker({ args: ['--fsync', 'interval', '--open-files', '16'] });
  try {
    const c = await RawClient.machine(broker.port);
    const channels = Array.from({ length: 200 }, (_, i) => `few.c${i}`);
    channels.forEach((ch, i) => c.pub(ch, ch, `a${i}`));
    await until(() => count(c, 'ACK a') === channels.length, 'acks', 60_000);
    const started = broker.logs.filter((l) => l.msg === 'storage: file engine started').at(-1)!;
    assert.equal(started.maxOpenFiles, 16);
    await c.close();
  } finally {
    await broker.dispose();
  }
});
