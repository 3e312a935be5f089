// The native record checksums (native/record-crc.c): the same values as zlib and as the
// JavaScript path, byte for byte, and data written by either is read and verified by the other.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { crc32 as zlibCrc32 } from 'node:zlib';
import fc from 'fast-check';
import { newMessage } from '../src/storage/engine.js';
import { recordCrcAddon, checksumImplementation } from '../src/native/addon.js';
import { HEADER_BYTES, decodeRecord, recordLength, recordProblem, sealRecords, sealRecordsInJs } from '../src/storage/filelog/record.js';
import { payloadOf } from '../src/storage/engine.js';
import { ChunkPool, Stage } from '../src/storage/filelog/stage.js';
import { BIN, ROOT, startBroker } from './helpers/broker.js';
import { runNode } from './helpers/child.js';
import { RawClient } from './helpers/raw.js';

const run = promisify(execFile);
const addon = recordCrcAddon;
const noAddon = addon === null ? `the addon is not loaded here: ${checksumImplementation()}` : false;

/** The records of a batch as one buffer, in the order they go to disk. */
function staged(payloadSizes: number[], publisher = 'probe-7', reply = ''): Buffer {
  const stage = new Stage(new ChunkPool());
  payloadSizes.forEach((size, i) => {
    const payload = Buffer.alloc(size);
    for (let k = 0; k < size; k++) payload[k] = (k * 31 + i * 7) & 0xff;
    stage.add(newMessage(1_700_000_000_000 + i, publisher, reply, payload), i + 1, undefined);
  });
  return Buffer.concat(stage.take().iovecs);
}

/** Start of every record in `buf`. */
function recordStarts(buf: Buffer): number[] {
  const starts: number[] = [];
  for (let at = 0; at < buf.length; at += recordLength(buf, at)) starts.push(at);
  return starts;
}

test('where CI runs, npm ci has built the addon and the file log uses it', (t) => {
  if (process.env.CI !== 'true') {
    t.skip('only checked under CI=true, where the install step must have built it');
    return;
  }
  assert.notEqual(addon, null, checksumImplementation());
  assert.match(checksumImplementation(), /^native, (carry-less multiplication|tables)$/);
  assert.equal(sealRecords, addon!.seal);
});

test('the addon computes zlib’s CRC-32 for any bytes, range and starting CRC', { skip: noAddon }, () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 5000 }),
      fc.nat(),
      fc.nat(),
      fc.integer({ min: 0, max: 0xffffffff }),
      (bytes, a, b, seed) => {
        const buf = Buffer.from(bytes);
        const from = buf.length ? a % (buf.length + 1) : 0;
        const to = from + (buf.length - from ? b % (buf.length - from + 1) : 0);
        // zlib answers 0 for no bytes over a null pointer (its "initial value" call); the CRC of
        // no bytes continuing from `seed` is `seed`.
        const expected = (crc: number): number => (to > from ? zlibCrc32(buf.subarray(from, to), crc) : crc);
        assert.equal(addon!.crc32(buf, from, to, seed), expected(seed));
        assert.equal(addon!.crc32(buf, from, to), expected(0));
      },
    ),
    { numRuns: 500 },
  );
  // Every length around the 16-byte blocks and the 64-byte folding threshold.
  const data = Buffer.alloc(300);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7919 + 13) & 0xff;
  for (let len = 0; len <= 290; len++) assert.equal(addon!.crc32(data, 3, 3 + len), zlibCrc32(data.subarray(3, 3 + len)), `length ${len}`);
});

test('the table path, taken where the CPU has no carry-less multiply, gives the same CRCs', { skip: noAddon }, async () => {
  // FLUCTUAT_NO_CLMUL is read when the addon loads, so this runs in a process of its own.
  const script = `
    import { createRequire } from 'node:module';
    import { crc32 } from 'node:zlib';
    const addon = createRequire(process.cwd() + '/')('./native/build/Release/record_crc.node');
    const data = Buffer.alloc(5000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7919 + 13) & 0xff;
    let bad = 0;
    for (let len = 1; len <= 5000; len += len < 300 ? 1 : 97)
      for (const seed of [0, 0xdeadbeef]) if (addon.crc32(data, 0, len, seed) !== crc32(data.subarray(0, len), seed)) bad++;
    console.log(JSON.stringify({ implementation: addon.implementation, bad }));`;
  const out = await runNode(['--input-type=module', '-e', script], { cwd: ROOT, env: { ...process.env, FLUCTUAT_NO_CLMUL: '1' } });
  assert.equal(out.code, 0, out.stderr);
  assert.deepEqual(JSON.parse(out.stdout), { implementation: 'tables', bad: 0 });
});

test('records the stage seals carry zlib’s CRC of their bytes 12..end, whichever code sealed them', () => {
  fc.assert(
    fc.property(
      fc.array(fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 1900, max: 2100 }), fc.integer({ min: 2049, max: 40_000 })), { minLength: 1, maxLength: 40 }),
      fc.string({ maxLength: 20 }),
      fc.string({ maxLength: 12 }),
      (sizes, publisher, reply) => {
        const buf = staged(sizes, publisher, reply);
        const starts = recordStarts(buf);
        assert.equal(starts.length, sizes.length);
        for (const at of starts) {
          const end = at + recordLength(buf, at);
          assert.equal(buf.readUInt32LE(at + 8), zlibCrc32(buf.subarray(at + 12, end)), `record at ${at}`);
        }
        // Both ways of sealing a run rewrite exactly the CRCs, nothing else.
        const blank = Buffer.from(buf);
        for (const at of starts) blank.writeUInt32LE(0, at + 8);
        const byJs = Buffer.from(blank);
        sealRecordsInJs(byJs, 0, byJs.length);
        assert.deepEqual(byJs, buf);
        if (addon) {
          const byAddon = Buffer.from(blank);
          assert.equal(addon.seal(byAddon, 0, byAddon.length), starts.length);
          assert.deepEqual(byAddon, buf);
        }
      },
    ),
    { numRuns: 150 },
  );
});

test('payloads staged as ranges of shared reads land in their records intact, copied at once or later in one native call', () => {
  fc.assert(
    fc.property(
      // Each payload: which read it comes from, where in it, and its size (tiny, around the
      // 64-byte line between an at-once and a deferred copy, up to inline's 2 KiB, and large).
      fc.array(
        fc.record({
          read: fc.integer({ min: 0, max: 3 }),
          at: fc.integer({ min: 0, max: 5000 }),
          size: fc.oneof(fc.integer({ min: 0, max: 80 }), fc.integer({ min: 60, max: 2048 }), fc.integer({ min: 2049, max: 6000 })),
        }),
        { minLength: 1, maxLength: 120 },
      ),
      fc.integer({ min: 0, max: 0xffff }),
      (specs, seed) => {
        // Four "socket reads" of random bytes; every payload is a range of one of them.
        const reads = Array.from({ length: 4 }, (_, r) => {
          const b = Buffer.alloc(12_000);
          for (let k = 0; k < b.length; k++) b[k] = (k * 131 + r * 17 + seed) & 0xff;
          return b;
        });
        const stage = new Stage(new ChunkPool());
        specs.forEach((p, i) => {
          const data = reads[p.read]!;
          stage.add({ timestamp: 1_700_000_000_000 + i, publisher: 'probe', reply: '', data, start: p.at, end: p.at + p.size }, i + 1, undefined);
        });
        const buf = Buffer.concat(stage.take().iovecs);
        const starts = recordStarts(buf);
        assert.equal(starts.length, specs.length);
        starts.forEach((at, i) => {
          const length = recordLength(buf, at);
          assert.equal(recordProblem(buf, at, length, i + 1), null, `record ${i + 1}`);
          const p = specs[i]!;
          assert.deepEqual(payloadOf(decodeRecord(buf, at, length, 'c')), reads[p.read]!.subarray(p.at, p.at + p.size), `payload of record ${i + 1}`);
        });
      },
    ),
    { numRuns: 200 },
  );
});

test('the native copy makes every copy it is given, or none when one is out of bounds', { skip: noAddon }, () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ s: fc.integer({ min: 0, max: 2 }), from: fc.integer({ min: 0, max: 90 }), at: fc.integer({ min: 0, max: 190 }), n: fc.integer({ min: 0, max: 10 }) }), { maxLength: 30 }),
      (ops) => {
        const sources = [Buffer.from('a'.repeat(100)), Buffer.from('0123456789'.repeat(10)), Buffer.alloc(100, 7)];
        const byCopy = Buffer.alloc(200);
        for (const o of ops) sources[o.s]!.copy(byCopy, o.at, o.from, o.from + o.n);
        const byAddon = Buffer.alloc(200);
        addon!.copy(byAddon, sources, new Int32Array(ops.flatMap((o) => [o.s, o.from, o.at, o.n])), ops.length);
        assert.deepEqual(byAddon, byCopy);
      },
    ),
  );
  const dst = Buffer.alloc(8);
  const src = [Buffer.from('abcdefgh')];
  for (const bad of [[0, 4, 0, 5], [0, 0, 4, 5], [1, 0, 0, 1], [-1, 0, 0, 1], [0, -1, 0, 1], [0, 0, 0, -1]]) {
    assert.throws(() => addon!.copy(dst, src, new Int32Array([0, 0, 0, 2, ...bad]), 2), RangeError, `op ${bad.join(',')}`);
    assert.deepEqual(dst, Buffer.alloc(8), 'the good copy before a bad one is not made either');
  }
  assert.throws(() => addon!.copy(dst, src, new Int32Array(4), 2), /expected \(buffer, buffer\[\], Int32Array/, 'count past the ops');
  assert.throws(() => addon!.copy(dst, ['x' as unknown as Buffer], new Int32Array(4), 1), /every source must be a buffer/);
  const many = Array.from({ length: 513 }, () => Buffer.alloc(1));
  assert.throws(() => addon!.copy(dst, many, new Int32Array(4), 1), /expected \(buffer, buffer\[\]/, 'more sources than one call takes');
  addon!.copy(dst, many.slice(0, 512), new Int32Array([511, 0, 0, 1]), 1);
  assert.throws(() => addon!.copy(dst, src, new Uint32Array(4) as unknown as Int32Array, 1), /expected \(buffer/);
});

test('sealing refuses a run whose length fields do not fit it, and ranges outside the buffer', () => {
  const buf = staged([10, 20, 30]);
  const [, second] = recordStarts(buf);
  const sealers: [string, (b: Buffer, from: number, to: number) => unknown][] = [['JavaScript', sealRecordsInJs]];
  if (addon) sealers.push(['addon', addon.seal]);
  for (const [name, seal] of sealers) {
    // A run cut inside its last record.
    assert.throws(() => seal(Buffer.from(buf), 0, buf.length - 1), RangeError, name);
    // A length field below the header's size (0 would never move on).
    for (const bad of [0, HEADER_BYTES - 1]) {
      const broken = Buffer.from(buf);
      broken.writeUInt32LE(bad, second! + 4);
      assert.throws(() => seal(broken, 0, broken.length), RangeError, `${name}, length ${bad}`);
    }
    // A length field past the end of the run.
    const long = Buffer.from(buf);
    long.writeUInt32LE(buf.length, second! + 4);
    assert.throws(() => seal(long, 0, long.length), RangeError, `${name}, length past the end`);
  }
  if (addon) {
    assert.throws(() => addon.seal(buf, 0, buf.length + 1), /from <= to <= buffer.length/);
    assert.throws(() => addon.seal(buf, 5, 4), /from <= to <= buffer.length/);
    assert.throws(() => addon.crc32(buf, 0, buf.length + 1), /from <= to <= buffer.length/);
    assert.throws(() => addon.crc32('not a buffer' as unknown as Buffer, 0, 1), /expected \(buffer, from, to/);
    assert.equal(addon.seal(buf, 7, 7), 0, 'an empty run seals nothing');
  }
});

test('a data directory written without the addon is verified with it, and the other way round', { skip: noAddon }, async () => {
  const sizes = [16, 256, 3000, 0, 70_000];
  async function publish(port: number, round: string): Promise<void> {
    const c = await RawClient.machine(port);
    sizes.forEach((size, i) => c.pub('mixed.sizes', Buffer.alloc(size, i + 1), `${round}${i}`));
    for (let i = 0; i < sizes.length; i++) await c.waitFor((f) => f.line.startsWith(`ACK ${round}${i} `), 20_000);
    await c.close();
  }
  async function check(dataDir: string, env: Record<string, string>): Promise<{ records: number; problems: number }> {
    const { stdout } = await run(process.execPath, [BIN, 'check', '--data', dataDir, '--json'], { env: { ...process.env, ...env } });
    const report = JSON.parse(stdout) as { records: number; problems: unknown[] };
    return { records: report.records, problems: report.problems.length };
  }

  const js = { FLUCTUAT_NATIVE: '0' };
  const broker = await startBroker({ env: js, args: ['--fsync', 'always'] });
  try {
    const started = broker.logs.find((l) => l.msg === 'storage: file engine started');
    assert.match(String(started?.checksums), /^JavaScript: the native addon is turned off/);
    await publish(broker.port, 'a');
    await broker.stop();
    assert.deepEqual(await check(broker.dataDir, {}), { records: sizes.length, problems: 0 });

    // Killed, so the next start verifies every record instead of trusting a clean shutdown.
    broker.logs.length = 0;
    await broker.restart();
    await broker.kill();
    const native = await startBroker({ dataDir: broker.dataDir, args: ['--fsync', 'always'] });
    try {
      const started2 = native.logs.find((l) => l.msg === 'storage: file engine started');
      assert.match(String(started2?.checksums), /^native, /);
      const recovered = native.logs.find((l) => String(l.msg).startsWith('storage: recovered'));
      assert.equal(recovered?.msg, 'storage: recovered, every record verified');
      await publish(native.port, 'b');
    } finally {
      await native.stop();
    }
    assert.deepEqual(await check(broker.dataDir, js), { records: 2 * sizes.length, problems: 0 });
  } finally {
    await broker.dispose();
  }
});

test('the console example in docs/storage.md prints what it shows', { skip: noAddon }, async () => {
  const doc = fs.readFileSync(path.join(ROOT, 'docs', 'storage.md'), 'utf8');
  const section = doc.slice(doc.indexOf('### Checksums: the native addon'));
  const block = /```console\n([^`]*)```/.exec(section)![1]!;
  const lines = block.trimEnd().split('\n');
  let checked = 0;
  for (let i = 0; i < lines.length; i += 2) {
    const command = lines[i]!.replace(/^\$ /, '');
    const expected = lines[i + 1]!.replace('carry-less multiplication', addon!.implementation);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fluctuat-doc-'));
    try {
      const { stdout } = await run('bash', ['-c', command.replaceAll('/tmp/fluctuat-doc', dir)], { cwd: ROOT });
      assert.equal(stdout.trim(), expected, command);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    checked++;
  }
  assert.equal(checked, 2);
});
