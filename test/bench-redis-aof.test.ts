/**
 * The benchmark's durable peer Redis AOF: a redis-server of the benchmark's own with an
 * append-only file, fed XADDs whose replies count as acknowledgements, and read with XREAD.
 * Real redis-server processes; skipped only where none is installed (.ci/run installs one).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Conn } from '../bench/lib/conn.js';
import { startRedisAof, redisServerVersion } from '../bench/lib/targets.js';
import { RedisReader, redis } from '../bench/lib/wire.js';
import { runBench } from './helpers/bench.js';

const installed = redisServerVersion();
const skip = 'down' in installed ? installed.down : false;

test('XADD replies are acknowledgements, however the replies are cut into reads', () => {
  const { frame, payloadAt } = redis.xadd('bench.d', Buffer.from('0123456789abcdef'));
  // Trimmed to about 64 MiB of payloads, as the benchmark's fluctuat keeps 64 MiB a channel.
  const keep = String((64 * 1024 * 1024) / 16);
  assert.equal(frame.toString('latin1'), `*8\r\n$4\r\nXADD\r\n$7\r\nbench.d\r\n$6\r\nMAXLEN\r\n$1\r\n~\r\n$${keep.length}\r\n${keep}\r\n$1\r\n*\r\n$1\r\np\r\n$16\r\n0123456789abcdef\r\n`);
  assert.equal(frame.toString('latin1', payloadAt, payloadAt + 16), '0123456789abcdef');

  const replies = Buffer.from('$15\r\n1732519000000-0\r\n$15\r\n1732519000000-1\r\n:1\r\n$16\r\n1732519000001-17\r\n');
  for (let cut = 1; cut < replies.length; cut++) {
    const r = new RedisReader('bench.d');
    r.push(replies.subarray(0, cut));
    r.push(replies.subarray(cut));
    assert.equal(r.acks, 4, `cut at ${cut}`);
    assert.equal(r.errors, 0);
  }
  const failed = new RedisReader('bench.d');
  const events: string[] = [];
  failed.onEvent = (e, d) => events.push(`${e} ${d}`);
  failed.push(Buffer.from('-ERR wrong number of arguments for \'xadd\' command\r\n'));
  assert.equal(failed.acks, 0);
  assert.deepEqual(events, ["error ERR wrong number of arguments for 'xadd' command"]);
});

test('a stream reader counts the entries of XREAD replies cut anywhere, and asks for more after each reply', () => {
  const entry = (id: string, payload: string): string => `*2\r\n$${id.length}\r\n${id}\r\n*2\r\n$1\r\np\r\n$${payload.length}\r\n${payload}\r\n`;
  const key = 'bench.t*2\r\n'; // a key's bytes are skipped by its length, whatever they hold
  const reply = (entries: string[]): string => `*1\r\n*2\r\n$${key.length}\r\n${key}\r\n*${entries.length}\r\n${entries.join('')}`;
  const wire = Buffer.from(
    '+PONG\r\n' + reply([entry('1-0', 'a'), entry('1-1', 'x'.repeat(300)), entry('2-0', '')]) + '*-1\r\n' + reply([entry('17-3', 'last\r\n*2')]),
  );
  for (let cut = 1; cut < wire.length; cut++) {
    for (const watch of [false, true]) {
      const r = new RedisReader(key, true);
      const events: string[] = [];
      const payloads: string[] = [];
      r.onEvent = (e, d) => events.push(d ? `${e} ${d}` : e);
      if (watch) r.onPayload = (buf, start, len) => payloads.push(buf.toString('latin1', start, start + len));
      r.push(wire.subarray(0, cut));
      r.push(wire.subarray(cut));
      assert.equal(r.messages, 4, `cut at ${cut}`);
      assert.deepEqual(events, ['ready PONG', 'batch 2-0', 'batch 2-0', 'batch 17-3'], `cut at ${cut}`);
      assert.equal(r.lastId, '17-3');
      if (watch) assert.deepEqual(payloads, ['a', 'x'.repeat(300), '', 'last\r\n*2']);
    }
  }
});

test('startRedisAof: an acknowledged XADD is already in the append-only file', { skip }, async () => {
  // `always`: Redis writes and fsyncs the log before it answers. Under `everysec` it may put the
  // write off for up to 2 s while a background fsync runs, so an answered XADD can still be unwritten.
  const r = await startRedisAof('always');
  try {
    const c = await Conn.open(r.endpoint, 'bench.aof');
    const N = 1000;
    const frames = Array.from({ length: N }, (_, i) => c.publishFrame(Buffer.from(`payload-${String(i).padStart(6, '0')}`)).frame);
    c.write(Buffer.concat(frames));
    const deadline = Date.now() + 10_000;
    while (c.reader.acks < N && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
    assert.equal(c.reader.acks, N, 'every XADD answered with its entry id');
    c.close();
    // Redis 7 keeps the log in appendonlydir/ (base and incremental files).
    const files = fs.readdirSync(path.join(r.dataDir!, 'appendonlydir')).map((f) => path.join(r.dataDir!, 'appendonlydir', f));
    const aof = Buffer.concat(files.map((f) => fs.readFileSync(f))).toString('latin1');
    assert.ok(aof.includes('payload-000000') && aof.includes(`payload-${String(N - 1).padStart(6, '0')}`), 'first and last append in the AOF');
  } finally {
    await r.stop();
  }
  assert.equal(fs.existsSync(r.dataDir!), false, 'its directory is removed');
});

test('npm run bench: Redis AOF in fan-out (a stream each subscriber reads), in latency, and in durable publishes under the matching appendfsync, with a ratio column', { skip }, async () => {
  const { result: r, markdown: md } = await runBench<{ brokers: Record<string, { label: string; version: string }>; cells: { scenario: string; target: string; n: number; median: number; lost: number; errors: number; failures: string[] }[] }>(
    ['--targets', 'fluctuat,redis-aof', '--scenarios', 'durable-interval,tput-1x8-256,lat-20k'],
    { BENCH_RUNS: '1', BENCH_SECONDS: '0.5', BENCH_LATENCY_SECONDS: '0.5', BENCH_WARMUP: '0.2' },
  );
  assert.deepEqual(r.brokers['redis-aof'], { label: 'Redis AOF', version: (installed as { version: string }).version }, 'the version of the redis-server run');
  assert.deepEqual(
    r.cells.map((c) => `${c.scenario}/${c.target}`),
    ['tput-1x8-256/fluctuat', 'tput-1x8-256/redis-aof', 'lat-20k/fluctuat', 'lat-20k/redis-aof', 'durable-interval/fluctuat', 'durable-interval/redis-aof'],
  );
  for (const c of r.cells) {
    assert.equal(c.n, 1, `${c.target} measured: ${JSON.stringify(c.failures)}`);
    assert.ok(c.median > 0);
    assert.equal(c.lost, 0, `${c.scenario}/${c.target}: nothing lost, every durable publish acknowledged`);
    assert.equal(c.errors, 0);
  }
  assert.match(md, /\| scenario \| ÷ Redis AOF \|/);
  assert.match(md, /\| durable pub\+ack 16 B: --fsync interval \| \d/);
  assert.match(md, /\| 1→8 fan-out, 256 B \| \d/);
  // Latency reads each entry's payload (its send time): the stream reader's payload path.
  const lat = r.cells.find((c) => c.scenario === 'lat-20k' && c.target === 'redis-aof') as unknown as { latency: { p50: number; p99: number } };
  assert.ok(lat.latency.p50 > 0 && lat.latency.p99 >= lat.latency.p50, JSON.stringify(lat.latency));
});
