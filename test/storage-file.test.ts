import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  defaultStorageOptions,
  newMessage,
  payloadOf,
  type AppendRef,
  type ChannelLog,
  type Log,
  type NewMessage,
  type StorageOptions,
  type StoredMessage,
} from '../src/storage/engine.js';
import type { FileChannelLog } from '../src/storage/filelog/channel-log.js';
import { FileStorageEngine } from '../src/storage/filelog/engine.js';
import { getDriver } from '../src/storage/registry.js';
import { kept as keptMessage } from '../src/core/broker.js';
import '../src/storage/builtin.js';
import { until } from './helpers/raw.js';

// --- helpers -------------------------------------------------------------------------------

class TestLog implements Log {
  readonly lines: { level: string; obj: Record<string, unknown>; msg: string }[] = [];
  info(obj: object, msg = ''): void { this.lines.push({ level: 'info', obj: obj as Record<string, unknown>, msg }); }
  warn(obj: object, msg = ''): void { this.lines.push({ level: 'warn', obj: obj as Record<string, unknown>, msg }); }
  error(obj: object, msg = ''): void { this.lines.push({ level: 'error', obj: obj as Record<string, unknown>, msg }); }
  debug(obj: object, msg = ''): void { this.lines.push({ level: 'debug', obj: obj as Record<string, unknown>, msg }); }
  at(level: string): { obj: Record<string, unknown>; msg: string }[] { return this.lines.filter((l) => l.level === level); }
}

function tempDir(t: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fluctuat-storage-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function openEngine(t: TestContext, dir: string, options: Partial<StorageOptions> = {}) {
  const log = new TestLog();
  const engine = new FileStorageEngine({ ...defaultStorageOptions, dataDir: dir, fsyncIntervalMs: 2, ...options }, log);
  const commits: StoredMessage[] = [];
  const order: string[] = [];
  await engine.start((channel, batch) => {
    for (const m of batch) {
      assert.equal(m.channel, channel);
      commits.push(m);
      order.push(`commit ${m.offset}`);
    }
    assert.equal(engine.channel(channel).head, batch[batch.length - 1]!.offset, 'head moves before the handler runs');
  });
  t.after(() => engine.close());
  return { engine, commits, order, log };
}

const msg = (text: string, timestamp = Date.now(), publisher = 'tester'): NewMessage => newMessage(timestamp, publisher, '', Buffer.from(text));

/**
 * A payload as a session hands it over: a stretch of a larger socket read, with other bytes
 * (0xEE) around it, at a start that varies with `i` (0 included).
 */
function inRead(payload: Buffer, i: number): { data: Buffer; start: number; end: number } {
  const before = i % 4 === 0 ? 0 : (i % 13) + 1;
  const data = Buffer.concat([Buffer.alloc(before, 0xee), payload, Buffer.alloc(i % 3, 0xee)]);
  return { data, start: before, end: before + payload.length };
}

function put(log: ChannelLog, m: NewMessage): Promise<number> {
  return new Promise((resolve, reject) => log.append(m, (err, offset) => (err ? reject(err) : resolve(offset))));
}

function putMany(log: ChannelLog, count: number, text = (i: number) => `message ${i}`, ts = (_i: number) => Date.now()) {
  return Promise.all(Array.from({ length: count }, (_, i) => put(log, msg(text(i), ts(i)))));
}

const offsets = (ms: readonly StoredMessage[]): number[] => ms.map((m) => m.offset);
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const segmentFiles = (dir: string, channel: string): string[] =>
  fs.readdirSync(path.join(dir, channel)).filter((f) => f.endsWith('.seg')).sort();

// --- tests ---------------------------------------------------------------------------------

test('append and read round trip; commits in offset order; acks after commits', async (t) => {
  const dir = tempDir(t);
  const { engine, commits, order } = await openEngine(t, dir);
  const log = engine.channel('probes.eu.clock');
  const big = Buffer.alloc(100_000, 7);
  const sent: NewMessage[] = [];
  const acks: Promise<number>[] = [];
  for (let i = 0; i < 100; i++) {
    const m: NewMessage = {
      timestamp: 1_700_000_000_000 + i + 0.5,
      publisher: i % 2 ? 'αβγ' : 'probe',
      reply: i % 3 ? '' : `_INBOX.${i}`,
      ...inRead(i === 50 ? big : Buffer.from(`payload ${i}`), i),
    };
    sent.push(m);
    acks.push(put(log, m).then((o) => (order.push(`ack ${o}`), o)));
  }
  assert.equal(log.head, 0, 'nothing is readable before it is written');
  assert.deepEqual(await Promise.all(acks), range(1, 100));
  assert.deepEqual(offsets(commits), range(1, 100));
  for (let o = 1; o <= 100; o++) assert.ok(order.indexOf(`commit ${o}`) < order.indexOf(`ack ${o}`), `offset ${o}`);

  const all = await log.read(1, 1000, Infinity);
  assert.deepEqual(offsets(all), range(1, 100));
  all.forEach((m, i) => {
    const s = sent[i]!;
    assert.equal(m.channel, 'probes.eu.clock');
    assert.equal(m.timestamp, s.timestamp);
    assert.equal(m.publisher, s.publisher);
    assert.equal(m.reply, s.reply);
    assert.ok(payloadOf(m).equals(payloadOf(s)));
  });
  assert.deepEqual(offsets(await log.read(40, 10, Infinity)), range(40, 49));
  assert.deepEqual(offsets(await log.read(1, 1000, 1)), [1], 'at least one message whatever maxBytes');
  assert.deepEqual(await log.read(101, 10, Infinity), [], 'nothing past head');
  assert.deepEqual(log.stats(), {
    channel: 'probes.eu.clock',
    first: 1,
    head: 100,
    messages: 100,
    bytes: fs.statSync(path.join(dir, 'probes.eu.clock', '00000000000000000001.seg')).size,
  });
  assert.deepEqual(engine.channels(), ['probes.eu.clock']);
  assert.ok(engine.has('probes.eu.clock') && !engine.has('other'));
});

test('the broker is handed each written message as it was appended, payloads ranges of the written chunks', async (t) => {
  const dir = tempDir(t);
  const kept: StoredMessage[] = [];
  const log = new TestLog();
  const engine = new FileStorageEngine({ ...defaultStorageOptions, dataDir: dir, fsyncIntervalMs: 2 }, log);
  const commits: { offset: number; timestamp: number; publisher: string; reply: string; payload: Buffer }[] = [];
  await engine.start((_channel, batch) => {
    // What a consumer sees during the handler, copied, and what a queue group would keep.
    for (const m of batch) commits.push({ offset: m.offset, timestamp: m.timestamp, publisher: m.publisher, reply: m.reply, payload: Buffer.from(payloadOf(m)) });
    for (const m of batch) kept.push(keptMessage(m));
  });
  t.after(() => engine.close());
  const channel = engine.channel('mixed');
  // Sizes around the inline bound (2048) and the 16 KiB staging chunk, names of every length.
  const sizes = [0, 1, 16, 2047, 2048, 2049, 15_000, 16_384, 70_000, 300];
  const sent: NewMessage[] = [];
  for (let i = 0; i < 400; i++) {
    const size = sizes[i % sizes.length]!;
    sent.push({
      timestamp: 1_700_000_000_000 + i / 8,
      publisher: ['probe', 'αβγ', 'p'.repeat(300), 'probe'][i % 4]!,
      reply: i % 5 === 0 ? `_INBOX.r${i}` : '',
      ...inRead(Buffer.alloc(size, (i * 7) & 0xff), i),
    });
  }
  await Promise.all(sent.map((m) => put(channel, m)));
  assert.equal(commits.length, sent.length);
  commits.forEach((c, i) => {
    const s = sent[i]!;
    assert.equal(c.offset, i + 1);
    assert.equal(c.timestamp, s.timestamp, `timestamp of ${i + 1}`);
    assert.equal(c.publisher, s.publisher, `publisher of ${i + 1}`);
    assert.equal(c.reply, s.reply, `reply of ${i + 1}`);
    assert.ok(c.payload.equals(payloadOf(s)), `payload of ${i + 1}`);
  });
  // The staging chunks went back to the pool after the handler; writing more reuses them. What
  // a consumer kept past the handler (copied where it viewed a chunk) is unchanged.
  await Promise.all(Array.from({ length: 2000 }, (_, i) => put(channel, msg('z'.repeat(i % 700)))));
  kept.slice(0, sent.length).forEach((k, i) => assert.ok(payloadOf(k).equals(payloadOf(sent[i]!)), `kept payload of ${i + 1}`));
});

test('the file driver is registered and creates working engines', async (t) => {
  const dir = tempDir(t);
  const engine = getDriver('file').create({ ...defaultStorageOptions, dataDir: dir }, new TestLog());
  t.after(() => engine.close());
  await engine.start(() => {});
  assert.equal(engine.driver, 'file');
  assert.equal(await put(engine.channel('x'), msg('hi')), 1);
});

test('offsets continue across rotation by size and across restarts', async (t) => {
  const dir = tempDir(t);
  let { engine } = await openEngine(t, dir, { segmentBytes: 1000 });
  let log = engine.channel('rot');
  // Several batches, so that segments roll between them.
  for (let round = 0; round < 10; round++) await putMany(log, 30, (i) => `round ${round} message ${i}`);
  const files = segmentFiles(dir, 'rot');
  assert.ok(files.length > 3, `rolled into ${files.length} segments`);
  assert.equal(files[0], '00000000000000000001.seg');
  assert.deepEqual(offsets(await log.read(1, 1000, Infinity)), range(1, 300));
  // Segment names are the offsets of their first records.
  const bases = files.map((f) => Number(f.slice(0, 20)));
  const firstOfEach = await Promise.all(bases.map(async (b) => (await log.read(b, 1, Infinity))[0]?.offset));
  assert.deepEqual(firstOfEach.slice(0, -1), bases.slice(0, -1));

  await engine.close();
  ({ engine } = await openEngine(t, dir, { segmentBytes: 1000 }));
  log = engine.channel('rot');
  assert.equal(log.head, 300);
  assert.equal(await put(log, msg('after restart')), 301);
  const all = await log.read(1, 1000, Infinity);
  assert.deepEqual(offsets(all), range(1, 301));
  assert.equal(payloadOf(all[300]!).toString(), 'after restart');
});

test('a burst staged in a single turn is written in several batches and still rolls by size', async (t) => {
  const dir = tempDir(t);
  const { engine, commits } = await openEngine(t, dir, { segmentBytes: 1024 * 1024 });
  const log = engine.channel('burst');
  const payload = Buffer.alloc(1000, 1);
  const acks: Promise<number>[] = [];
  for (let i = 0; i < 5000; i++) acks.push(put(log, newMessage(Date.now(), 'p', '', payload)));
  assert.deepEqual(await Promise.all(acks), range(1, 5000));
  assert.deepEqual(offsets(commits), range(1, 5000));
  assert.ok(segmentFiles(dir, 'burst').length >= 4, '5 MB in 1 MB segments');
  assert.equal((await log.read(1, 10_000, Infinity)).length, 5000);
});

test('a backlog of staged batches goes out in a few large writes, each batch committed and acknowledged in order', async (t) => {
  // 5,000 publishes of ~1 KB in one turn: five batches of ~1 MiB queue up behind the first
  // write. One write a batch held a flooded channel to a batch a turn (Stage.takeGroup).
  const dir = tempDir(t);
  const { engine, commits, order } = await openEngine(t, dir, { segmentBytes: 64 * 1024 * 1024, fsync: 'never' });
  const log = engine.channel('backlog');
  const acks: Promise<number>[] = [];
  const payloads: Buffer[] = [];
  for (let i = 0; i < 5000; i++) {
    const payload = Buffer.alloc(1000 + (i % 7), i % 251);
    payloads.push(payload);
    const { data, start, end } = inRead(payload, i);
    acks.push(new Promise((resolve, reject) => log.append({ timestamp: Date.now(), publisher: 'p', reply: '', data, start, end }, (err, offset) => {
      order.push(`ack ${offset}`);
      if (err) reject(err);
      else resolve(offset);
    })));
  }
  assert.deepEqual(await Promise.all(acks), range(1, 5000));
  const c = engine.counters();
  const writes = c.storagePoolWrites! + c.storageInlineWrites!;
  assert.ok(writes <= 3, `5 MB staged at once went out in ${writes} writes, not one per 1 MiB batch`);
  assert.deepEqual(offsets(commits), range(1, 5000));
  // Each batch is committed before its acknowledgements, and batches in offset order.
  const firstAck = (o: number) => order.indexOf(`ack ${o}`);
  for (let o = 1; o <= 5000; o++) assert.ok(order.indexOf(`commit ${o}`) < firstAck(o), `commit ${o} before its ack`);
  const read = await log.read(1, 10_000, Infinity);
  assert.equal(read.length, 5000);
  for (let i = 0; i < read.length; i++) assert.ok(payloadOf(read[i]!).equals(payloads[i]!), `payload ${i + 1}`);
  assert.equal(segmentFiles(dir, 'backlog').length, 1);
});

test('rotate() starts a new segment; an empty active segment is left alone', async (t) => {
  const dir = tempDir(t);
  const { engine } = await openEngine(t, dir);
  const log = engine.channel('hup');
  await putMany(log, 5);
  await engine.rotate();
  assert.deepEqual(segmentFiles(dir, 'hup'), ['00000000000000000001.seg', '00000000000000000006.seg']);
  await engine.rotate();
  assert.equal(segmentFiles(dir, 'hup').length, 2, 'nothing to rotate');
  assert.deepEqual(await putMany(log, 3), [6, 7, 8]);
  assert.equal(fs.statSync(path.join(dir, 'hup', '00000000000000000006.seg')).size > 0, true);
  assert.deepEqual(offsets(await log.read(1, 100, Infinity)), range(1, 8));
});

test('resolve: beginning, offset, time, last N, new', async (t) => {
  const dir = tempDir(t);
  // Large records and small segments: several segments, each with several index entries.
  const { engine } = await openEngine(t, dir, { segmentBytes: 300_000 });
  const log = engine.channel('when');
  const T0 = 1_700_000_000_000;
  for (let round = 0; round < 10; round++) {
    await putMany(log, 10, (i) => `${round}-${i}`.padEnd(20_000, '.'), (i) => T0 + (round * 10 + i) * 1000);
  }
  assert.ok(segmentFiles(dir, 'when').length >= 3);
  assert.equal(await log.resolve({ kind: 'beginning' }), 1);
  assert.equal(await log.resolve({ kind: 'new' }), 101);
  assert.equal(await log.resolve({ kind: 'offset', offset: 42 }), 42);
  assert.equal(await log.resolve({ kind: 'last', count: 10 }), 91);
  assert.equal(await log.resolve({ kind: 'last', count: 1000 }), 1);
  assert.equal(await log.resolve({ kind: 'last', count: 0 }), 101);
  assert.equal(await log.resolve({ kind: 'time', time: 0 }), 1);
  assert.equal(await log.resolve({ kind: 'time', time: T0 + 57_000 }), 58, 'exact timestamp');
  assert.equal(await log.resolve({ kind: 'time', time: T0 + 57_500 }), 59, 'between two messages');
  assert.equal(await log.resolve({ kind: 'time', time: T0 + 99_000 }), 100);
  assert.equal(await log.resolve({ kind: 'time', time: T0 + 99_001 }), 101, 'after everything: new');
  for (const o of [1, 17, 58, 99, 100]) assert.equal((await log.read(o, 1, 1))[0]?.offset, o, `seek to ${o}`);
});

for (const fsync of ['always', 'interval', 'never'] as const) {
  test(`fsync ${fsync}: every append is acknowledged, and survives a restart`, async (t) => {
    const dir = tempDir(t);
    let { engine } = await openEngine(t, dir, { fsync, fsyncIntervalMs: 5 });
    const a = engine.channel('a');
    const b = engine.channel('b.c');
    const [oa, ob] = await Promise.all([putMany(a, 300), putMany(b, 200)]);
    assert.deepEqual(oa, range(1, 300));
    assert.deepEqual(ob, range(1, 200));
    // A callback-less append is fine too.
    a.append(msg('no callback'));
    await engine.close();
    ({ engine } = await openEngine(t, dir, { fsync }));
    assert.equal(engine.channel('a').head, 301);
    assert.equal(engine.channel('b.c').head, 200);
    assert.deepEqual(engine.channels().sort(), ['a', 'b.c']);
  });
}

test('fsync interval: commits come on write, acks only after the group fsync', async (t) => {
  const dir = tempDir(t);
  // An interval so long that only close() can run the fsync.
  const { engine, commits } = await openEngine(t, dir, { fsync: 'interval', fsyncIntervalMs: 1e8 });
  const log = engine.channel('slow');
  let acked = 0;
  for (let i = 0; i < 10; i++) log.append(msg(`m${i}`), (err) => { assert.equal(err, null); acked++; });
  while (commits.length < 10) await new Promise((r) => setImmediate(r));
  assert.equal(log.head, 10);
  assert.equal((await log.read(1, 100, Infinity)).length, 10, 'readable before it is durable');
  assert.equal(acked, 0, 'not acknowledged before an fsync');
  await engine.close();
  assert.equal(acked, 10);
});

test('channels that write in the same turn count as sharing the disk (smaller write groups); one channel alone does not', async (t) => {
  const dir = tempDir(t);
  const { engine, commits } = await openEngine(t, dir, { fsync: 'never' });
  for (let i = 0; i < 100; i++) engine.channel('alone').append(msg(`a${i}`));
  while (commits.length < 100) await new Promise((r) => setImmediate(r));
  assert.equal(engine.sharing(), false, 'one channel writing');
  engine.channel('alone').append(msg('b'));
  engine.channel('other').append(msg('c'));
  while (commits.length < 102) await new Promise((r) => setImmediate(r));
  assert.equal(engine.sharing(), true, 'two channels wrote in one turn');
});

test('fsync interval: 1,024 acknowledgements waiting start the group fsync before its interval; fewer, or publishes without a ref, wait for it', async (t) => {
  const dir = tempDir(t);
  // An interval so long that only an early group fsync, or close(), can acknowledge anything.
  const { engine, commits } = await openEngine(t, dir, { fsync: 'interval', fsyncIntervalMs: 1e8 });
  const log = engine.channel('early');
  let acked = 0;
  const ack = (err: Error | null): void => {
    assert.equal(err, null);
    acked++;
  };
  const turns = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
  };
  // 2,000 publishes that asked for no acknowledgement (no ref), and 1,023 that did: not enough.
  for (let i = 0; i < 2000; i++) log.append(msg(`quiet ${i}`), ack);
  for (let i = 0; i < 1023; i++) log.append(msg(`m${i}`), ack, `r${i}`);
  while (commits.length < 3023) await turns(1);
  // Time enough for an fsync that should not have started (an early one takes a few ms).
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(acked, 0, 'under the mark, the acknowledgements wait for the interval');
  assert.equal(engine.counters().storageGroupSyncs, 0);
  // One more (in another write) crosses it: the group fsync covers everything written.
  log.append(msg('the 1,024th'), ack, 'last');
  for (let i = 0; i < 10_000 && acked < 3024; i++) await turns(1);
  assert.equal(acked, 3024, 'acknowledged by an early group fsync, an interval of 1e8 ms notwithstanding');
  const c = engine.counters();
  assert.equal(c.storageEarlySyncs, 1, 'stats count it');
  assert.equal(c.storageGroupSyncs, 1);
});

test('fsync interval: the early group fsync follows fsyncAcks and fsyncBytes; 0 turns either off', async (t) => {
  const turns = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
  };
  // [options, publishes of 100 B with a ref, whether they are acknowledged before the interval]
  const cases = [
    [{ fsyncAcks: 10, fsyncBytes: 0 }, 10, true],
    [{ fsyncAcks: 10, fsyncBytes: 0 }, 9, false],
    [{ fsyncAcks: 0, fsyncBytes: 1000 }, 10, true],
    [{ fsyncAcks: 0, fsyncBytes: 1000 }, 9, false],
    [{ fsyncAcks: 0, fsyncBytes: 0 }, 3000, false],
  ] as const;
  for (const [options, n, early] of cases) {
    const { engine, commits } = await openEngine(t, tempDir(t), { fsync: 'interval', fsyncIntervalMs: 1e8, ...options });
    const log = engine.channel('early');
    let acked = 0;
    for (let i = 0; i < n; i++) log.append(newMessage(Date.now(), 'p', '', Buffer.alloc(100, 0x61)), () => acked++, `r${i}`);
    while (commits.length < n) await turns(1);
    if (early) {
      for (let i = 0; i < 10_000 && acked < n; i++) await turns(1);
      assert.equal(acked, n, `${JSON.stringify(options)}, ${n} acks: an early group fsync`);
      assert.equal(engine.counters().storageEarlySyncs, 1);
    } else {
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(acked, 0, `${JSON.stringify(options)}, ${n} acks: they wait for the interval`);
      assert.equal(engine.counters().storageGroupSyncs, 0);
    }
    await engine.close();
  }
});

test('fsync interval: writes nobody waits for keep the slower unacked pace; an acknowledgement, or fsyncUnackedBytes written, bring back the interval; 0 turns the slower pace off', async (t) => {
  const quiet = (log: ChannelLog, n: number, size: number, done: () => void): void => {
    for (let i = 0; i < n; i++) log.append(newMessage(Date.now(), 'p', '', Buffer.alloc(size, 0x61)), done);
  };
  // An interval of 1 ms, a pace for the rest so slow that only a reason to hurry can fsync.
  const { engine } = await openEngine(t, tempDir(t), { fsync: 'interval', fsyncIntervalMs: 1, fsyncUnackedMs: 1e8, fsyncUnackedBytes: 4096, fsyncAcks: 0, fsyncBytes: 0 });
  const log = engine.channel('pace');
  let done = 0;
  quiet(log, 10, 10, () => done++); // no ref: nobody waits for an acknowledgement
  await new Promise((r) => setTimeout(r, 200)); // 200 intervals
  assert.equal(engine.counters().storageGroupSyncs, 0, 'ten small writes nobody waits for: no fsync yet');
  assert.equal(done, 0);
  let acked = 0;
  log.append(msg('asks'), () => acked++, 'r1');
  await until(() => acked === 1, 'the acknowledgement, at the interval\'s pace');
  assert.equal(done, 10, 'its group fsync covered the writes before it');
  assert.equal(engine.counters().storageGroupSyncs, 1);
  quiet(log, 40, 200, () => done++); // ~9 KiB in one write: past fsyncUnackedBytes
  await until(() => done === 50, () => `the writes past fsyncUnackedBytes, at the interval's pace (${done - 10} of 40)`);
  assert.equal(engine.counters().storageGroupSyncs, 2);
  // fsyncUnackedMs 0: every write keeps the interval's pace.
  const off = await openEngine(t, tempDir(t), { fsync: 'interval', fsyncIntervalMs: 1, fsyncUnackedMs: 0, fsyncAcks: 0, fsyncBytes: 0 });
  let offDone = 0;
  quiet(off.engine.channel('pace'), 10, 10, () => offDone++);
  await until(() => offDone === 10, 'fsyncUnackedMs 0: the interval');
});

test('fsync interval: one group fsync acknowledges several writes, each with its own offset, then the next fsync the rest', async (t) => {
  const dir = tempDir(t);
  const { engine, commits } = await openEngine(t, dir, { fsync: 'interval', fsyncIntervalMs: 1e8 });
  const log = engine.channel('grouped') as FileChannelLog;
  const acks: [number, AppendRef][] = [];
  const put = (i: number): void => log.append(msg(`m${i}`), (err, offset, ref) => { assert.equal(err, null); acks.push([offset, ref]); }, `r${i}`);
  // Five writes (one per turn) before the fsync: small ones are copied onto a run, a large one
  // (over 32) is kept as it is, and the small ones after it are copied onto that.
  const batches = [[1], [2, 3, 4], range(5, 44), [45, 46], [47]];
  for (const batch of batches) {
    for (const i of batch) put(i);
    while (commits.length < batch[batch.length - 1]!) await new Promise((r) => setImmediate(r));
  }
  assert.deepEqual(acks, []);
  await log.sync();
  assert.deepEqual(acks, range(1, 47).map((i) => [i, `r${i}`]));
  // After the fsync the next writes are acknowledged with their own offsets.
  put(48);
  put(49);
  while (commits.length < 49) await new Promise((r) => setImmediate(r));
  await log.sync();
  assert.deepEqual(acks.slice(47), [[48, 'r48'], [49, 'r49']]);
});

test('fsync interval: a roll does not wait for an fsync; the next one covers the closed segments, even one retention deleted, and acks in offset order', async (t) => {
  const dir = tempDir(t);
  // Segments of ~5 records, retention of ~2 segments, and an fsync only when asked.
  const { engine, commits, log: events } = await openEngine(t, dir, { fsync: 'interval', fsyncIntervalMs: 1e8, segmentBytes: 500, retainBytes: 1000 });
  const log = engine.channel('rolling') as FileChannelLog;
  const acks: number[] = [];
  const put = (i: number): void => log.append(msg(`m${i}`.padEnd(62, '.')), (err, offset) => { assert.equal(err, null); acks.push(offset); });
  for (let i = 1; i <= 40; i++) {
    put(i);
    while (commits.length < i) await new Promise((r) => setImmediate(r)); // one write each
  }
  assert.ok(segmentFiles(dir, 'rolling').length < 8, 'retention deleted closed segments before any fsync');
  assert.ok(log.first > 1);
  assert.deepEqual(acks, [], 'no roll fsynced (and so acknowledged) the segment it closed');
  await log.sync();
  assert.deepEqual(acks, range(1, 40), 'one group fsync acknowledges every segment, in offset order');
  assert.deepEqual(events.at('error'), [], 'a deleted segment is skipped, not an fsync failure');
  put(41);
  while (commits.length < 41) await new Promise((r) => setImmediate(r));
  await log.sync();
  assert.deepEqual(acks.slice(40), [41], 'the channel goes on');
});

test('segments roll when their first record is older than segmentAgeMs', async (t) => {
  const dir = tempDir(t);
  const { engine } = await openEngine(t, dir, { segmentAgeMs: 60_000 });
  const log = engine.channel('aged');
  await putMany(log, 3, undefined, () => Date.now() - 120_000);
  await putMany(log, 2);
  await putMany(log, 2);
  assert.deepEqual(segmentFiles(dir, 'aged'), ['00000000000000000001.seg', '00000000000000000004.seg']);
});

test('idle descriptors are closed and reopened on demand', async (t) => {
  const dir = tempDir(t);
  const { engine } = await openEngine(t, dir);
  const log = engine.channel('idle');
  await putMany(log, 5);
  await engine.rotate();
  await putMany(log, 5);
  await engine.maintain(Date.now());
  await engine.maintain(Date.now()); // unused since the last call: closed
  assert.deepEqual(await putMany(log, 2), [11, 12]);
  assert.deepEqual(offsets(await log.read(1, 100, Infinity)), range(1, 12));
});

test('close is idempotent, flushes staged appends, and later appends fail', async (t) => {
  const dir = tempDir(t);
  const { engine } = await openEngine(t, dir, { fsync: 'interval', fsyncIntervalMs: 1000 });
  const log = engine.channel('c');
  const acked = putMany(log, 50);
  await Promise.all([engine.close(), engine.close()]);
  assert.deepEqual(await acked, range(1, 50), 'close acknowledged what it fsynced');
  await assert.rejects(put(log, msg('late')), /closed/);
  await engine.close();
});

test('a message that cannot be stored fails alone; offsets stay contiguous', async (t) => {
  const dir = tempDir(t);
  const { engine } = await openEngine(t, dir);
  const log = engine.channel('c');
  const results = await Promise.allSettled([
    put(log, msg('one')),
    put(log, msg('too long a name', Date.now(), 'x'.repeat(70_000))),
    put(log, msg('two')),
  ]);
  assert.deepEqual(results.map((r) => (r.status === 'fulfilled' ? r.value : 'rejected')), [1, 'rejected', 2]);
});

test('when a new segment cannot be created, staged appends fail and their offsets are reused', async (t) => {
  const dir = tempDir(t);
  const { engine, log } = await openEngine(t, dir, { segmentBytes: 100 });
  const ch = engine.channel('fail');
  assert.deepEqual(await putMany(ch, 5), range(1, 5)); // one batch, past segmentBytes
  fs.mkdirSync(path.join(dir, 'fail', '00000000000000000006.seg')); // the next segment's name, taken
  const failed = await Promise.allSettled([put(ch, msg('a')), put(ch, msg('b'))]);
  assert.deepEqual(failed.map((r) => r.status), ['rejected', 'rejected']);
  assert.match(String((failed[0] as PromiseRejectedResult).reason), /EEXIST/);
  assert.equal(log.at('error').length, 1);
  assert.equal(ch.head, 5);
  fs.rmdirSync(path.join(dir, 'fail', '00000000000000000006.seg'));
  assert.deepEqual(await putMany(ch, 2), [6, 7], 'nobody saw 6 and 7: given out again');
  assert.deepEqual(offsets(await ch.read(1, 100, Infinity)), range(1, 7));
});

test('bad channel names are refused; unknown entries in dataDir are ignored with a warning', async (t) => {
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'README.txt'), 'not a channel');
  fs.mkdirSync(path.join(dir, 'not a channel'));
  const { engine, log } = await openEngine(t, dir);
  assert.throws(() => engine.channel('../etc'), TypeError);
  assert.throws(() => engine.channel('a..b'), TypeError);
  assert.deepEqual(engine.channels(), []);
  const warned = log.at('warn').map((l) => l.obj['file']).sort();
  assert.deepEqual(warned, ['README.txt', 'not a channel']);
});

test('sequential reads resume where the last one stopped, reading ahead across window and segment ends', async (t) => {
  const dir = tempDir(t);
  const { engine } = await openEngine(t, dir, { segmentBytes: 3 * 1024 * 1024 });
  const log = engine.channel('replay');
  // ~7 MiB of records of uneven sizes: windows (256 KiB–1 MiB) end inside records, and
  // segments end every 3 MiB.
  const sizes = Array.from({ length: 2500 }, (_, i) => 1 + ((i * 7919) % 5800));
  const body = (i: number): Buffer => Buffer.alloc(sizes[i - 1]!, i % 251);
  for (let i = 1; i <= sizes.length; i += 100) {
    await Promise.all(Array.from({ length: Math.min(100, sizes.length - i + 1) }, (_, j) => put(log, newMessage(Date.now(), 'tester', '', body(i + j)))));
  }
  const cursors = (): number => ((log as unknown as { cursors: Map<number, unknown> | null }).cursors?.size ?? 0);
  // Two readers in turn, with different budgets: each resumes its own place.
  const readers = [
    { next: 1, seen: 0, maxMessages: 1000, maxBytes: 150_000 },
    { next: 1, seen: 0, maxMessages: 37, maxBytes: Infinity },
  ];
  while (readers.some((r) => r.next <= sizes.length)) {
    for (const r of readers) {
      if (r.next > sizes.length) continue;
      const batch = await log.read(r.next, r.maxMessages, r.maxBytes);
      assert.ok(batch.length > 0);
      for (const m of batch) {
        assert.equal(m.offset, r.next, 'no repeat, no gap');
        assert.ok(payloadOf(m).equals(body(m.offset)), `payload of ${m.offset}`);
        r.next++;
      }
      assert.ok(cursors() >= 1 || r.next > sizes.length, 'the place is kept');
    }
  }
  assert.deepEqual(readers.map((r) => r.next), [sizes.length + 1, sizes.length + 1]);
  // A reader that asks for an offset nobody stopped at seeks as before.
  assert.deepEqual(offsets(await log.read(1234, 3, Infinity)), [1234, 1235, 1236]);
  // Places nobody came back for are dropped by the maintenance pass after a while.
  (log as unknown as { cursors: Map<number, { savedAt: number }> }).cursors.forEach((c) => (c.savedAt -= 60_000));
  await engine.maintain(Date.now());
  assert.equal(cursors(), 0);
});

test('reads concurrent with rotation and retention never repeat or reorder, and gaps land on first', async (t) => {
  const dir = tempDir(t);
  const { engine } = await openEngine(t, dir, { segmentBytes: 2000, retainMessages: 150 });
  const log = engine.channel('busy');
  let next = 1;
  const seen: number[] = [];
  const reader = async (): Promise<void> => {
    for (let i = 0; i < 5; i++) {
      const batch = await log.read(next, 3, Infinity); // slower than the writer: falls behind retention
      if (batch.length === 0) return;
      const firstNow = log.first;
      assert.ok(batch[0]!.offset === next || batch[0]!.offset <= firstNow, `resumed at ${batch[0]!.offset}, asked ${next}`);
      batch.forEach((m, j) => assert.equal(m.offset, batch[0]!.offset + j));
      seen.push(...offsets(batch));
      next = batch[batch.length - 1]!.offset + 1;
    }
  };
  for (let round = 0; round < 40; round++) {
    // The reader runs while appends, rotations and deletions happen in the same turns.
    const writer = async (): Promise<void> => {
      const appended = putMany(log, 20);
      await engine.rotate();
      await engine.maintain(Date.now());
      await appended;
      await engine.maintain(Date.now());
    };
    await Promise.all([reader(), writer()]);
  }
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i]! > seen[i - 1]!, 'strictly increasing');
  assert.ok(seen.some((o, i) => i > 0 && o > seen[i - 1]! + 1), 'the reader did fall behind retention');
  assert.equal(log.head, 800);
  assert.ok(log.first > 1, 'retention removed old segments');
  assert.ok(log.stats().messages >= 150);
  // A read that starts in a deleted stretch resumes at first.
  const fromOne = await log.read(1, 5, Infinity);
  assert.equal(fromOne[0]!.offset, log.first);
});

/** `old` records of ~5 KB in segment 1, then 20 small ones in segment `old + 1`; 10 kept by retention. */
async function oldThenNew(t: TestContext, dir: string, name: string, old: number) {
  const { engine } = await openEngine(t, dir, { retainMessages: 10 });
  const log = engine.channel(name);
  await putMany(log, old, (i) => `old ${i}`.padEnd(5000, '-'));
  await engine.rotate();
  await putMany(log, 20);
  return { engine, log };
}

test('a kept place in a segment that retention then deletes is not used: the next read starts at first', async (t) => {
  const dir = tempDir(t);
  // 400 records of ~5 KB: the first read stops inside segment 1 and reads its next window ahead.
  const { engine, log } = await oldThenNew(t, dir, 'moved', 400);
  const first = await log.read(1, 10, Infinity);
  assert.deepEqual(offsets(first), range(1, 10));
  await engine.maintain(Date.now()); // segment 1 goes, with the reader's place and read-ahead in it
  assert.deepEqual(segmentFiles(dir, 'moved'), ['00000000000000000401.seg']);
  const next = await log.read(11, 1000, Infinity);
  assert.deepEqual(offsets(next), range(401, 420), 'from the new first, nothing from the deleted file');
  assert.equal(payloadOf(first[9]!).toString(), 'old 9'.padEnd(5000, '-'), 'what was returned before stays intact');
});

test('a read holding a segment finishes even if retention deletes the segment meanwhile', async (t) => {
  const dir = tempDir(t);
  const { engine, log } = await oldThenNew(t, dir, 'gone', 100);
  const reading = log.read(1, 1000, Infinity); // starts on segment 1
  await engine.maintain(Date.now()); // deletes segment 1 while the read is opening it
  const got = await reading;
  assert.ok(got.length > 0);
  for (let i = 1; i < got.length; i++) assert.equal(got[i]!.offset, got[i - 1]!.offset + 1);
  assert.ok(got[0]!.offset === 1 || got[0]!.offset === 101, `started at ${got[0]!.offset}`);
  assert.equal(got[got.length - 1]!.offset, 120);
  assert.deepEqual(segmentFiles(dir, 'gone'), ['00000000000000000101.seg']);
});

test('retention by message count keeps at least that many and never the active segment', async (t) => {
  const dir = tempDir(t);
  const { engine } = await openEngine(t, dir, { retainMessages: 25 });
  const log = engine.channel('count');
  for (let i = 0; i < 6; i++) {
    await putMany(log, 10);
    await engine.rotate(); // segments of exactly 10 messages
  }
  await engine.maintain(Date.now());
  assert.equal(log.first, 31, 'three segments of 10 hold 30 >= 25');
  assert.equal(log.stats().messages, 30);
  assert.deepEqual(offsets(await log.read(1, 100, Infinity)), range(31, 60));
  assert.equal(segmentFiles(dir, 'count')[0], '00000000000000000031.seg');
});

test('retention by bytes', async (t) => {
  const dir = tempDir(t);
  const { engine } = await openEngine(t, dir, { retainBytes: 3000 });
  const log = engine.channel('bytes');
  for (let i = 0; i < 5; i++) {
    await putMany(log, 10, () => 'x'.repeat(100 - 38)); // 100-byte records: 1000 bytes a segment
    await engine.rotate();
  }
  await engine.maintain(Date.now());
  assert.equal(log.stats().bytes, 3000);
  assert.equal(log.first, 21);
});

test('pinned readers: size and count retention keep what the slowest has still to read, age retention does not wait; unpinned, the bounds apply again', async (t) => {
  const dir = tempDir(t);
  const now = Date.now();
  const hour = 3600_000;
  const { engine } = await openEngine(t, dir, { retainMessages: 25, retainAgeMs: 2 * hour });
  const log = engine.channel('pinned');
  assert.ok(log.pin && log.unpin);
  const slow = { next: 12 };
  const slower = { next: -1 }; // its start position is being resolved: keeps nothing yet
  log.pin(slow);
  log.pin(slower);
  for (let i = 0; i < 6; i++) {
    await putMany(log, 10);
    await engine.rotate(); // segments of exactly 10 messages
  }
  await engine.maintain(now);
  assert.equal(log.first, 11, 'the segment holding offset 12 and every later one stay');
  slower.next = 5; // resolved before first: it reads on from first (after a GAP), so that stays
  await engine.maintain(now);
  assert.equal(log.first, 11);
  slower.next = 45;
  slow.next = 31; // both read on: the pins follow the readers without a call
  await engine.maintain(now);
  assert.equal(log.first, 31, 'only the bound keeps 31-60 once the reader is past them');
  log.pin({ next: 31 });
  await engine.maintain(now + 3 * hour);
  assert.equal(log.first, log.head + 1, 'age retention removed what a pinned reader still wanted');
  log.unpin(slow);
  log.unpin(slower);
  log.unpin({ next: 0 }); // not pinned: ignored
});

test('retention by age, judged by the newest record of a segment; offsets survive a restart', async (t) => {
  const dir = tempDir(t);
  const now = Date.now();
  const hour = 3600_000;
  let { engine } = await openEngine(t, dir, { retainAgeMs: hour });
  let log = engine.channel('age');
  await putMany(log, 10, undefined, () => now - 3 * hour);
  await engine.rotate();
  await putMany(log, 10, undefined, (i) => (i < 9 ? now - 3 * hour : now)); // newest is recent
  await engine.rotate();
  await putMany(log, 10, undefined, () => now - 2 * hour);
  await engine.rotate();
  await engine.maintain(now);
  assert.equal(log.first, 11, 'the first segment expired; the second has a recent record');
  await engine.maintain(now + 2 * hour);
  assert.equal(log.first, log.head + 1, 'everything expired: the channel is empty');
  assert.equal(log.stats().messages, 0);
  assert.deepEqual(await log.read(1, 10, Infinity), []);
  assert.deepEqual(segmentFiles(dir, 'age'), ['00000000000000000031.seg'], 'the active segment stays');
  await engine.close();
  ({ engine } = await openEngine(t, dir));
  log = engine.channel('age');
  assert.equal(log.head, 30, 'the empty active segment remembers the next offset');
  assert.equal(await put(log, msg('next')), 31);
});

test('a refused append is told after append returns, takes no offset, and the next append is stored; after close every append is refused', async (t) => {
  const dir = tempDir(t);
  const { engine, commits } = await openEngine(t, dir);
  const log = engine.channel('refusals');
  const outcomes: string[] = [];
  const told = (label: string) => (err: Error | null, offset: number, ref: AppendRef, channel: string, bytes: number) =>
    outcomes.push(`${label} ${err ? `${err.name}: ${err.message.split(' (')[0]}` : 'ok'} ${offset} ${ref} ${channel} ${bytes}`);
  // A publisher name past the record format's 65,535 bytes cannot be stored.
  log.append(msg('too big a name', Date.now(), 'p'.repeat(70_000)), told('long'), 'r1');
  assert.deepEqual(outcomes, [], 'not told synchronously: the caller is still in its turn');
  log.append(msg('fine'), told('fine'), 'r2');
  await (log as FileChannelLog).settle();
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(outcomes, ['long RangeError: message too large to store 0 r1 refusals 14', 'fine ok 1 r2 refusals 4']);
  assert.deepEqual(commits.map((m) => m.offset), [1], 'the refused message took no offset');
  await engine.close();
  log.append(msg('late'), told('late'), 'r3');
  assert.equal(outcomes.length, 2);
  await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(outcomes.slice(2), ['late Error: storage engine is closed 0 r3 refusals 4']);
});
