import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { defaultStorageOptions, newMessage, payloadOf, type ChannelLog, type Log, type StorageOptions } from '../src/storage/engine.js';
import { FileStorageEngine } from '../src/storage/filelog/engine.js';
import { SparseIndex } from '../src/storage/filelog/segment.js';
import { getDriver } from '../src/storage/registry.js';
import '../src/storage/builtin.js';

// --- helpers -------------------------------------------------------------------------------

class TestLog implements Log {
  readonly lines: { level: string; obj: Record<string, unknown>; msg: string }[] = [];
  info(obj: object, msg = ''): void { this.lines.push({ level: 'info', obj: obj as Record<string, unknown>, msg }); }
  warn(obj: object, msg = ''): void { this.lines.push({ level: 'warn', obj: obj as Record<string, unknown>, msg }); }
  error(obj: object, msg = ''): void { this.lines.push({ level: 'error', obj: obj as Record<string, unknown>, msg }); }
  debug(obj: object, msg = ''): void { this.lines.push({ level: 'debug', obj: obj as Record<string, unknown>, msg }); }
  at(level: string): { obj: Record<string, unknown>; msg: string }[] { return this.lines.filter((l) => l.level === level); }
}

/** Every record of these tests is 43 bytes: 32 header + 'tester' + a 5-byte payload. */
const RECORD = 43;
const SEG1 = '00000000000000000001.seg';

function tempDir(t: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fluctuat-recovery-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const options = (dir: string, more: Partial<StorageOptions> = {}): StorageOptions => ({
  ...defaultStorageOptions,
  dataDir: dir,
  fsyncIntervalMs: 2,
  ...more,
});

async function openEngine(t: TestContext, dir: string) {
  const log = new TestLog();
  const engine = new FileStorageEngine(options(dir), log);
  await engine.start(() => {});
  t.after(() => engine.close());
  return { engine, log };
}

function put(log: ChannelLog, text: string): Promise<number> {
  return new Promise((resolve, reject) =>
    log.append(newMessage(Date.now(), 'tester', '', Buffer.from(text)), (err, offset) =>
      err ? reject(err) : resolve(offset),
    ),
  );
}

const payload = (o: number): string => `m${String(o).padStart(4, '0')}`;

/** Writes `count` records to `channel` (rotating after each `perSegment`), then closes. */
async function populate(dir: string, channel: string, count: number, perSegment = count): Promise<void> {
  const engine = new FileStorageEngine(options(dir), new TestLog());
  await engine.start(() => {});
  const log = engine.channel(channel);
  for (let o = 1; o <= count; o++) {
    await put(log, payload(o));
    if (o % perSegment === 0 && o < count) await engine.rotate();
  }
  await engine.close();
}

const offsetsOf = async (log: ChannelLog, from = 1): Promise<number[]> => (await log.read(from, 10_000, Infinity)).map((m) => m.offset);
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

function flipByte(file: string, position: number): void {
  const fd = fs.openSync(file, 'r+');
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, position);
  b[0]! ^= 0x40;
  fs.writeSync(fd, b, 0, 1, position);
  fs.closeSync(fd);
}

const check = (dir: string, repair = false) => getDriver('file').check!(options(dir), repair);

// --- tests ---------------------------------------------------------------------------------

test('a torn tail of garbage is truncated and logged; the next offset follows the last good record', async (t) => {
  const dir = tempDir(t);
  await populate(dir, 'torn', 10);
  const file = path.join(dir, 'torn', SEG1);
  fs.appendFileSync(file, Buffer.from('garbage after a crash'.repeat(3)));
  const { engine, log } = await openEngine(t, dir);
  const warn = log.at('warn');
  assert.equal(warn.length, 1);
  assert.deepEqual(
    { ...warn[0]!.obj, problem: undefined },
    { channel: 'torn', segment: SEG1, position: 10 * RECORD, offset: 11, bytes: 63, problem: undefined },
  );
  assert.match(String(warn[0]!.obj['problem']), /magic/);
  assert.equal(fs.statSync(file).size, 10 * RECORD);
  const ch = engine.channel('torn');
  assert.equal(ch.head, 10);
  assert.equal(await put(ch, payload(11)), 11);
  assert.deepEqual(await offsetsOf(ch), range(1, 11));
});

test('a record cut in half is truncated; its offset is given out again (it was never complete)', async (t) => {
  const dir = tempDir(t);
  await populate(dir, 'half', 10);
  const file = path.join(dir, 'half', SEG1);
  fs.truncateSync(file, 9 * RECORD + 20);
  const { engine, log } = await openEngine(t, dir);
  const warn = log.at('warn')[0]!;
  assert.equal(warn.obj['position'], 9 * RECORD);
  assert.equal(warn.obj['offset'], 10, 'the header was readable: its offset');
  assert.equal(warn.obj['bytes'], 20);
  assert.match(String(warn.obj['problem']), /torn record/);
  const ch = engine.channel('half');
  assert.equal(ch.head, 9);
  assert.equal(await put(ch, 'again'), 10);
  assert.equal(payloadOf((await ch.read(10, 1, Infinity))[0]!).toString(), 'again');
});

test('a torn header (fewer than 32 bytes) is truncated too', async (t) => {
  const dir = tempDir(t);
  await populate(dir, 'hdr', 3);
  fs.truncateSync(path.join(dir, 'hdr', SEG1), 2 * RECORD + 5);
  const { engine, log } = await openEngine(t, dir);
  assert.equal(log.at('warn')[0]!.obj['offset'], 3, 'unreadable header: the expected offset');
  assert.equal(engine.channel('hdr').head, 2);
});

test('check finds a flipped byte with its channel, segment, position and offset', async (t) => {
  const dir = tempDir(t);
  await populate(dir, 'probes.flip', 10, 5);
  await populate(dir, 'clean', 3);
  flipByte(path.join(dir, 'probes.flip', SEG1), 2 * RECORD + 40); // payload of offset 3
  const report = await check(dir);
  assert.equal(report.channels, 2);
  assert.equal(report.segments, 3);
  assert.equal(report.records, 2 + 5 + 3, 'records verified good');
  assert.equal(report.problems.length, 1);
  const p = report.problems[0]!;
  assert.deepEqual({ ...p, problem: '' }, { channel: 'probes.flip', segment: SEG1, position: 2 * RECORD, offset: 3, problem: '' });
  assert.match(p.problem, /checksum mismatch.*valid records up to offset 5 follow/);
  assert.deepEqual(report.orphans, []);
  assert.deepEqual(report.repaired, []);
  assert.equal(fs.statSync(path.join(dir, 'probes.flip', SEG1)).size, 5 * RECORD, 'check alone changes nothing');
});

test('damage in an older segment: served up to the bad record, then a gap, later segments intact', async (t) => {
  const dir = tempDir(t);
  await populate(dir, 'old', 15, 5); // segments 1-5, 6-10, 11-15
  flipByte(path.join(dir, 'old', SEG1), 3 * RECORD + 8); // the stored CRC of offset 4
  const { engine, log } = await openEngine(t, dir);
  const error = log.at('error')[0]!;
  assert.equal(error.obj['segment'], SEG1);
  assert.equal(error.obj['offset'], 4);
  assert.equal(log.at('warn').length, 0, 'nothing truncated');
  const ch = engine.channel('old');
  assert.deepEqual(await offsetsOf(ch), [1, 2, 3, ...range(6, 15)]);
  assert.deepEqual(await offsetsOf(ch, 4), range(6, 15), 'a read inside the gap resumes after it');
  assert.equal(await put(ch, 'next'), 16);
  assert.equal(fs.statSync(path.join(dir, 'old', SEG1)).size, 5 * RECORD, 'the evidence stays on disk');
});

test('damage followed by valid records in the last segment: nothing truncated, no offset reused', async (t) => {
  const dir = tempDir(t);
  await populate(dir, 'mid', 10);
  flipByte(path.join(dir, 'mid', SEG1), 4 * RECORD + 40); // offset 5
  const { engine, log } = await openEngine(t, dir);
  assert.equal(log.at('warn').length, 0);
  assert.equal(log.at('error')[0]!.obj['skippedUpTo'], 10);
  const ch = engine.channel('mid');
  assert.equal(ch.head, 4);
  assert.deepEqual(await offsetsOf(ch), range(1, 4));
  assert.equal(await put(ch, 'next'), 11, 'offsets 5..10 were seen before the crash: never again');
  assert.deepEqual(await offsetsOf(ch), [1, 2, 3, 4, 11]);
  assert.equal(fs.statSync(path.join(dir, 'mid', SEG1)).size, 10 * RECORD);
});

test('repair truncates at the first bad record, keeps later segments, and preserves offsets', async (t) => {
  const dir = tempDir(t);
  await populate(dir, 'fix', 10, 5); // 1-5, 6-10
  await populate(dir, 'last', 10);
  flipByte(path.join(dir, 'fix', SEG1), 1 * RECORD + 40); // offset 2
  flipByte(path.join(dir, 'last', SEG1), 6 * RECORD + 40); // offset 7, valid records follow
  const report = await check(dir, true);
  assert.deepEqual(report.problems.map((p) => [p.channel, p.offset]), [['fix', 2], ['last', 7]]);
  assert.equal(report.repaired.length, 3);
  assert.match(report.repaired[0]!, /^fix\/00000000000000000001\.seg: truncated at byte 43 \(offset 2\), 172 bytes removed$/);
  assert.match(report.repaired[1]!, /^last\/00000000000000000001\.seg: truncated at byte 258 \(offset 7\)/);
  assert.match(report.repaired[2]!, /^last\/00000000000000000011\.seg: created empty/);

  const again = await check(dir);
  assert.deepEqual(again.problems, []);
  assert.equal(again.records, 1 + 5 + 6);

  const { engine, log } = await openEngine(t, dir);
  assert.deepEqual(log.at('error'), []);
  assert.deepEqual(log.at('warn'), []);
  assert.deepEqual(await offsetsOf(engine.channel('fix')), [1, ...range(6, 10)]);
  assert.equal(await put(engine.channel('fix'), 'n'), 11);
  const last = engine.channel('last');
  assert.equal(last.head, 6, 'head is the last readable record, so reads up to head never come back empty');
  assert.deepEqual(await offsetsOf(last), range(1, 6));
  assert.equal(await put(last, 'n'), 11, 'offsets 7..10 existed once: skipped');
  assert.deepEqual(await offsetsOf(last), [...range(1, 6), 11]);
});

test('check lists orphans: stray files, bad channel names, non-segment files in channels', async (t) => {
  const dir = tempDir(t);
  await populate(dir, 'ok', 2);
  fs.writeFileSync(path.join(dir, 'notes.txt'), 'x');
  fs.mkdirSync(path.join(dir, 'bad name'));
  fs.writeFileSync(path.join(dir, 'ok', 'x.seg'), 'x');
  fs.writeFileSync(path.join(dir, 'ok', '00000000000000000001.seg.bak'), 'x');
  fs.mkdirSync(path.join(dir, 'ok', 'sub'));
  const report = await check(dir);
  assert.deepEqual(report.problems, []);
  assert.deepEqual(
    [...report.orphans].sort(),
    ['bad name', 'notes.txt', 'ok/00000000000000000001.seg.bak', 'ok/sub', 'ok/x.seg'],
  );
  assert.equal(report.records, 2);
});

test('check of a missing data directory fails with a clear message', async () => {
  await assert.rejects(check(path.join(os.tmpdir(), 'fluctuat-no-such-dir-' + process.pid)), /cannot read data directory/);
});

test('a record that goes bad after start is never served', async (t) => {
  const dir = tempDir(t);
  await populate(dir, 'rot', 5);
  const { engine } = await openEngine(t, dir);
  flipByte(path.join(dir, 'rot', SEG1), 2 * RECORD + 40);
  await assert.rejects(engine.channel('rot').read(1, 100, Infinity), /corrupt record in channel rot, segment 0+1\.seg, position 86, offset 3/);
});

// --- the clean-shutdown record -----------------------------------------------------------------

const CLEAN = '.clean-shutdown.json';
const recovered = (log: TestLog) => log.lines.find((l) => l.msg.startsWith('storage: recovered'))!;

test('after a clean close the next start takes every unchanged segment from the record: same reads, offsets, times and retention', async (t) => {
  const dir = tempDir(t);
  const t0 = Date.now();
  await populate(dir, 'ok', 15, 5); // segments 1-5, 6-10, 11-15
  assert.ok(fs.existsSync(path.join(dir, CLEAN)), 'written by the clean close');
  const { engine, log } = await openEngine(t, dir);
  assert.equal(recovered(log).msg, 'storage: recovered after a clean shutdown');
  assert.deepEqual(recovered(log).obj, { segments: 3, verified: 0, fromCleanShutdown: 3 });
  assert.equal(fs.existsSync(path.join(dir, CLEAN)), false, 'deleted at start, before any write');
  const ch = engine.channel('ok');
  assert.deepEqual(await offsetsOf(ch), range(1, 15));
  assert.deepEqual((await ch.read(7, 2, Infinity)).map((m) => payloadOf(m).toString()), [payload(7), payload(8)]);
  assert.deepEqual(ch.stats(), { channel: 'ok', first: 1, head: 15, messages: 15, bytes: 15 * RECORD });
  assert.equal(await ch.resolve({ kind: 'time', time: t0 - 1000 }), 1, 'index timestamps came back');
  assert.equal(await put(ch, 'after'), 16, 'appends continue in the active segment');
  assert.deepEqual(fs.readdirSync(path.join(dir, 'ok')).sort(), [SEG1, '00000000000000000006.seg', '00000000000000000011.seg']);
  // Retention by age judges a segment by its newest record: that came back too.
  const aged = new FileStorageEngine(options(dir, { retainAgeMs: 60_000 }), new TestLog());
  await engine.close();
  await aged.start(() => {});
  t.after(() => aged.close());
  await aged.maintain(Date.now());
  assert.equal(fs.readdirSync(path.join(dir, 'ok')).length, 3, 'nothing is a minute old yet');
  await aged.maintain(Date.now() + 120_000);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'ok')), ['00000000000000000011.seg'], 'all but the active segment aged out');
});

test('no clean close (a crash), a changed segment, or an unreadable record: those segments are verified as before', async (t) => {
  const dir = tempDir(t);
  await populate(dir, 'c', 15, 5);
  // A crash after the start: the record was taken, so the next start verifies everything.
  const first = await openEngine(t, dir);
  assert.equal(recovered(first.log).obj['verified'], 0);
  const crashed = await openEngine(t, dir); // the first engine is still open: as after a crash
  assert.equal(recovered(crashed.log).msg, 'storage: recovered, every record verified');
  assert.deepEqual(recovered(crashed.log).obj, { segments: 3, verified: 3, fromCleanShutdown: 0 });
  await first.engine.close();
  await crashed.engine.close();
  // A segment written to after the clean close is scanned, and its damage found as always.
  flipByte(path.join(dir, 'c', '00000000000000000006.seg'), 2 * RECORD + 8);
  const changed = await openEngine(t, dir);
  assert.deepEqual(recovered(changed.log).obj, { segments: 3, verified: 1, fromCleanShutdown: 2 });
  assert.equal(changed.log.at('error')[0]!.obj['offset'], 8);
  assert.deepEqual(await offsetsOf(changed.engine.channel('c')), [...range(1, 7), ...range(11, 15)]);
  await changed.engine.close();
  // A record that is not what a clean close writes: a warning, then every segment verified.
  fs.writeFileSync(path.join(dir, CLEAN), '{"version":1,"channels":{"c":[{"base":"x"}]}}');
  const bad = await openEngine(t, dir);
  assert.match(bad.log.at('warn')[0]!.msg, /unreadable clean-shutdown record/);
  assert.equal(recovered(bad.log).obj['verified'], 3);
  assert.equal(fs.existsSync(path.join(dir, CLEAN)), false);
});

test('fluctuat check ignores the record, and a repair removes it', async (t) => {
  const dir = tempDir(t);
  await populate(dir, 'r', 10);
  const check = getDriver('file').check!;
  const clean = await check(options(dir), false);
  assert.deepEqual([clean.orphans, clean.problems], [[], []]);
  assert.ok(fs.existsSync(path.join(dir, CLEAN)));
  flipByte(path.join(dir, 'r', SEG1), 9 * RECORD + 40); // offset 10: a torn tail
  const repaired = await check(options(dir), true);
  assert.equal(repaired.repaired.length, 1);
  assert.equal(fs.existsSync(path.join(dir, CLEAN)), false, 'the next start verifies the repaired data');
});

test('a recorded sparse index of any length is restored (a segment of many GB has ~16,000 entries per GB)', () => {
  const n = 500_000;
  const offsets = Array.from({ length: n }, (_, i) => 1 + i * 100);
  const positions = Array.from({ length: n }, (_, i) => i * 65_536);
  const index = new SparseIndex();
  index.restore([offsets, positions, positions.map((p) => p + 1)]);
  const e = index.floor(1 + 123_456 * 100 + 50);
  assert.deepEqual([index.offsetAt(e), index.positionAt(e)], [1 + 123_456 * 100, 123_456 * 65_536]);
  assert.equal(index.entries()[0].length, n);
});
