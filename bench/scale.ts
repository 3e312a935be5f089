/**
 * `npm run bench:scale`: how fluctuat's cost grows (issue 5, point 3). Against one broker per
 * dimension (file storage, the default), over loopback:
 *
 *  - idle connections: 0 → 10,000 machine-mode connections that do nothing; broker RSS, so
 *    memory per connection;
 *  - channels: 0 → 100,000 channels with one 16 B message each; RSS, the rate at which new
 *    channels are created, and the 1→1 publish rate on one channel with that many around;
 *  - subscribers: 1 → 10,000 subscribers (one connection each) on one channel; RSS and
 *    deliveries per second of one publisher's messages;
 *  - wildcard patterns: 0 → 1,000 non-matching patterns (`bench.*.p<i>`) held by another
 *    connection; the 1→1 rate on `bench.w.x`, to show whether matching scans them all.
 *
 * Options: `npm run bench:scale -- --help` (a flag or a BENCH_* variable each; flags win).
 * Writes <out>/scale-<date>.json and scale-latest.json. Needs ~2 × max-connections file
 * descriptors in this process; `ulimit -n` is checked first.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { Conn, type Endpoint } from './lib/conn.js';
import { run } from './lib/gen.js';
import { treeRssBytes } from './lib/proc.js';
import { si } from './lib/stats.js';
import { ROOT, startFluctuat, type Running } from './lib/targets.js';
import { fluctuat } from './lib/wire.js';

const count = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('a whole number of at least 1');
  return n;
};
const seconds = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('a positive number of seconds');
  return n;
};
const program = new Command('bench:scale')
  .description('How fluctuat\'s cost grows: idle connections, channels (file and memory storage), subscribers on one channel, wildcard patterns. Writes <out>/scale-<date>.json, scale-latest.json and .md, and a plot.')
  .addOption(new Option('--max-connections <n>', 'idle connections, at most').env('BENCH_SCALE_CONNS').argParser(count).default(10_000))
  .addOption(new Option('--max-channels <n>', 'file channels, at most').env('BENCH_SCALE_CHANNELS').argParser(count).default(100_000))
  // Memory channels grow their ring on demand (a few hundred bytes for one message), so the
  // memory dimension goes as far as the file one.
  .addOption(new Option('--max-memory-channels <n>', 'memory channels, at most').env('BENCH_SCALE_MEM_CHANNELS').argParser(count).default(100_000))
  .addOption(new Option('--max-subscribers <n>', 'subscribers on one channel, at most').env('BENCH_SCALE_SUBS').argParser(count).default(10_000))
  .addOption(new Option('--max-patterns <n>', 'wildcard patterns, at most').env('BENCH_SCALE_PATTERNS').argParser(count).default(1000))
  .addOption(new Option('--seconds <s>', 'measured window of each rate').env('BENCH_SECONDS').argParser(seconds).default(1.5))
  .addOption(new Option('--out <dir>', 'where the results go').env('BENCH_OUT').default(path.join(ROOT, 'bench', 'results'), 'bench/results'))
  .addOption(new Option('--plot <file>', 'the SVG plot; "none" for none').env('BENCH_SCALE_PLOT').default(path.join(ROOT, 'docs', 'img', 'bench-scale.svg'), 'docs/img/bench-scale.svg, or bench-scale.svg in another --out'))
  .showHelpAfterError('(npm run bench:scale -- --help for every option)')
  .parse(process.argv);
// An exploratory run with its own --out keeps its plot there, away from the one the docs show.
if (program.getOptionValueSource('plot') === 'default' && program.getOptionValueSource('out') !== 'default') program.setOptionValue('plot', path.join(path.resolve(program.opts<{ out: string }>().out), 'bench-scale.svg'));
const opts = program
  .opts<{ maxConnections: number; maxChannels: number; maxMemoryChannels: number; maxSubscribers: number; maxPatterns: number; seconds: number; out: string; plot: string }>();
const MAX_CONNS = opts.maxConnections;
const MAX_CHANNELS = opts.maxChannels;
const MAX_MEM_CHANNELS = opts.maxMemoryChannels;
const MAX_SUBS = opts.maxSubscribers;
const MAX_PATTERNS = opts.maxPatterns;
const SECONDS = opts.seconds;
const OUT = path.resolve(opts.out);
const PLOT = opts.plot;

/** Broker limits raised above what is measured (defaults: 10,000 connections, 1,000 per address). */
const LIMITS = ['--max-connections', '30000', '--max-connections-per-address', '30000', '--max-subscriptions', '5000'];

interface Point {
  dimension: 'idle connections' | 'channels' | 'channels (memory storage)' | 'subscribers on one channel' | 'wildcard patterns';
  count: number;
  rssMiB: number;
  /** Extra bytes per item against the first point. */
  bytesPerItem: number | null;
  /** msgs/s: 1→1 publish rate (channels, patterns), deliveries/s (subscribers), creation rate. */
  rate: number | null;
  rateOf: string;
}

const points: Point[] = [];
/** Where a dimension could not go on, and the broker's own words. */
const failures: { dimension: string; at: number; error: string }[] = [];
const steps = (max: number, list: number[]): number[] => [...new Set([...list.filter((n) => n < max), max])];

async function settle(pid: number): Promise<number> {
  // Let the broker finish what it was doing; RSS read twice, the lower kept.
  await sleep(1000);
  const a = treeRssBytes(pid) ?? 0;
  await sleep(300);
  const b = treeRssBytes(pid) ?? 0;
  return Math.min(a, b);
}

function record(p: Omit<Point, 'bytesPerItem'>, base: { count: number; rss: number }, rssBytes: number): void {
  // Below 1,000 items the RSS noise (a few MiB) swamps the per-item figure: none is given.
  // A negative slope is RSS noise (the heap shrank): reported as 0.
  const per = p.count - base.count >= 1000 ? Math.max(0, (rssBytes - base.rss) / (p.count - base.count)) : null;
  points.push({ ...p, bytesPerItem: per });
  console.log(
    `${p.dimension.padEnd(28)} ${p.count.toLocaleString('en-US').padStart(8)}  RSS ${p.rssMiB.toFixed(1).padStart(7)} MiB  ${per === null ? '' : `${Math.round(per).toLocaleString('en-US')} B each  `}${p.rate === null ? '' : `${si(p.rate)} ${p.rateOf}`}`,
  );
}

async function openMany(ep: Endpoint, n: number, topic: string): Promise<Conn[]> {
  const out: Conn[] = [];
  for (let i = 0; i < n; i += 200) {
    const batch = await Promise.all(Array.from({ length: Math.min(200, n - i) }, () => Conn.open(ep, topic, 30_000)));
    out.push(...batch);
  }
  return out;
}

async function oneToOne(b: Running, topic: string): Promise<number> {
  const o = await run({ endpoint: b.endpoint, mode: 'throughput', topic, pubs: 1, subs: 1, size: 16, window: 16_000, warmupMs: 300, durationMs: SECONDS * 1000, brokerPid: b.pid });
  return o.rate;
}

async function idleConnections(): Promise<void> {
  const b = await startFluctuat({ storage: 'file', extra: LIMITS });
  const conns: Conn[] = [];
  try {
    const base = { count: 0, rss: await settle(b.pid!) };
    record({ dimension: 'idle connections', count: 0, rssMiB: base.rss / 2 ** 20, rate: null, rateOf: '' }, base, base.rss);
    for (const n of steps(MAX_CONNS, [1000, 2500, 5000])) {
      conns.push(...(await openMany(b.endpoint, n - conns.length, 'bench.idle')));
      const rss = await settle(b.pid!);
      record({ dimension: 'idle connections', count: n, rssMiB: rss / 2 ** 20, rate: null, rateOf: '' }, base, rss);
    }
  } finally {
    for (const c of conns) c.close();
    await b.stop();
  }
}

async function channels(storage: 'file' | 'memory'): Promise<void> {
  const dimension = storage === 'file' ? 'channels' : 'channels (memory storage)';
  const b = await startFluctuat({ storage, extra: LIMITS });
  try {
    const rate0 = await oneToOne(b, 'bench.chan.hot');
    const base = { count: 0, rss: await settle(b.pid!) };
    record({ dimension, count: 0, rssMiB: base.rss / 2 ** 20, rate: rate0, rateOf: 'msgs/s 1→1 on one channel' }, base, base.rss);
    const pub = await Conn.open(b.endpoint, 'unused');
    let made = 0;
    const payload = Buffer.alloc(16, 0x63);
    for (const n of steps(storage === 'file' ? MAX_CHANNELS : MAX_MEM_CHANNELS, [1000, 10_000])) {
      // One acked message on each new channel, 256 in flight.
      const t = process.hrtime.bigint();
      const start = pub.reader.acks;
      const want = n - made;
      let sent = 0;
      while (pub.reader.acks - start < want) {
        if (pub.reader.errors) {
          const at = made + (pub.reader.acks - start);
          failures.push({ dimension, at, error: pub.reader.lastError });
          console.log(`${dimension}: the broker refused to create more channels at ${at.toLocaleString('en-US')}: ${pub.reader.lastError}`);
          pub.close();
          return;
        }
        const parts: Buffer[] = [];
        while (sent < want && sent - (pub.reader.acks - start) < 256) parts.push(fluctuat.publish(`bench.c${made + sent++}.x`, payload, 'c').frame);
        if (parts.length) pub.write(Buffer.concat(parts));
        await new Promise<void>((r) => pub.socket.once('data', () => r()));
      }
      const createRate = want / (Number(process.hrtime.bigint() - t) / 1e9);
      made = n;
      const rss = await settle(b.pid!);
      const rate = await oneToOne(b, 'bench.chan.hot');
      record({ dimension, count: n, rssMiB: rss / 2 ** 20, rate, rateOf: `msgs/s 1→1 on one channel (created ${si(createRate)}/s)` }, base, rss);
    }
    pub.close();
  } finally {
    await b.stop();
  }
}

/** Some traffic first, so the heap has grown to its working size before the base RSS. */
async function warm(b: Running): Promise<number> {
  return oneToOne(b, 'bench.warm');
}

async function subscribers(): Promise<void> {
  const b = await startFluctuat({ storage: 'file', extra: LIMITS });
  const subs: Conn[] = [];
  try {
    await warm(b);
    const base = { count: 0, rss: await settle(b.pid!) };
    const topic = 'bench.fan';
    const pub = await Conn.open(b.endpoint, topic);
    const payload = Buffer.alloc(16, 0x66);
    const { frame } = fluctuat.publish(topic, payload, 'f');
    for (const n of steps(MAX_SUBS, [1, 10, 100, 1000])) {
      const more = await openMany(b.endpoint, n - subs.length, topic);
      for (let i = 0; i < more.length; i += 500) await Promise.all(more.slice(i, i + 500).map((c) => c.subscribe('new', 30_000)));
      subs.push(...more);
      const rss = await settle(b.pid!);
      // K messages to all n subscribers: ~300,000 deliveries, at least 20 messages.
      const K = Math.min(50_000, Math.max(20, Math.floor(300_000 / n)));
      const before = subs.reduce((a, c) => a + c.reader.messages, 0);
      const base0 = subs.map((c) => c.reader.messages);
      const t = process.hrtime.bigint();
      let sent = 0;
      const deadline = Date.now() + 120_000;
      while (Date.now() < deadline) {
        const got = subs.reduce((a, c) => a + c.reader.messages, 0) - before;
        if (got >= K * n) break;
        // Publish ahead of the slowest subscriber by at most 1,024 messages (bounded memory).
        let slowest = Infinity;
        for (let i = 0; i < subs.length; i++) slowest = Math.min(slowest, subs[i]!.reader.messages - base0[i]!);
        const ahead = sent - slowest;
        if (sent < K && ahead < 1024) {
          const k = Math.min(256, K - sent, 1024 - ahead);
          pub.write(Buffer.concat(Array.from({ length: k }, () => frame)));
          sent += k;
        }
        await new Promise((r) => setImmediate(r));
      }
      const got = subs.reduce((a, c) => a + c.reader.messages, 0) - before;
      const rate = got / (Number(process.hrtime.bigint() - t) / 1e9);
      const drops = subs.reduce((a, c) => a + c.reader.drops, 0);
      if (got < K * n) console.log(`  subscribers ${n}: ${K * n - got} deliveries missing after 120 s (drops reported: ${drops})`);
      record({ dimension: 'subscribers on one channel', count: n, rssMiB: rss / 2 ** 20, rate, rateOf: 'deliveries/s' }, base, rss);
    }
    pub.close();
  } finally {
    for (const c of subs) c.close();
    await b.stop();
  }
}

async function patterns(): Promise<void> {
  const b = await startFluctuat({ storage: 'file', extra: LIMITS });
  try {
    await warm(b);
    const base = { count: 0, rss: await settle(b.pid!) };
    const holder = await Conn.open(b.endpoint, 'bench.none');
    record({ dimension: 'wildcard patterns', count: 0, rssMiB: base.rss / 2 ** 20, rate: await oneToOne(b, 'bench.w.x'), rateOf: 'msgs/s 1→1' }, base, base.rss);
    let have = 0;
    for (const n of steps(MAX_PATTERNS, [10, 100])) {
      const lines: string[] = [];
      for (let i = have; i < n; i++) lines.push(`SUB p${i} bench.*.p${i}\n`);
      const okAll = new Promise<void>((resolve) => {
        let left = n - have;
        holder.reader.onEvent = (e) => {
          if (e === 'subscribed' && --left === 0) resolve();
        };
      });
      holder.write(Buffer.from(lines.join('')));
      await Promise.race([okAll, sleep(30_000)]);
      if (holder.reader.errors) throw new Error(`subscribing patterns: ${holder.reader.lastError}`);
      have = n;
      const rss = await settle(b.pid!);
      record({ dimension: 'wildcard patterns', count: n, rssMiB: rss / 2 ** 20, rate: await oneToOne(b, 'bench.w.x'), rateOf: 'msgs/s 1→1' }, base, rss);
    }
    holder.close();
  } finally {
    await b.stop();
  }
}

async function plot(file: string): Promise<void> {
  const { writePlot } = await import('../src/plot/render.js');
  const data = points.map((p) => ({ ...p, count: Math.max(1, p.count) }));
  const facet = (field: string, title: string): Record<string, unknown> => ({
    data: { values: data.filter((d) => (d as Record<string, unknown>)[field] !== null) },
    facet: { column: { field: 'dimension', type: 'nominal', title: null } },
    spec: {
      width: 170,
      height: 140,
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'count', type: 'quantitative', scale: { type: 'log' }, title: 'count (log)' },
        y: { field, type: 'quantitative', title },
      },
    },
    resolve: { scale: { x: 'independent', y: 'independent' } },
  });
  await writePlot({ title: `fluctuat scale costs (${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores)`, vconcat: [facet('rssMiB', 'broker RSS, MiB'), facet('rate', 'msgs/s (deliveries/s)')] }, file);
}

async function main(): Promise<void> {
  process.on('SIGINT', () => process.exit(130));
  const need = MAX_CONNS + MAX_SUBS + 200;
  const nofile = Number(spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim());
  if (Number.isFinite(nofile) && nofile < Math.max(MAX_CONNS, MAX_SUBS) + 200) {
    throw new Error(`ulimit -n is ${nofile}; this needs about ${need} descriptors (run: ulimit -n ${need}, or lower --max-connections/--max-subscribers)`);
  }
  const started = new Date();
  const envs = Object.entries(process.env).filter(([k]) => k.startsWith('BENCH_')).map(([k, v]) => `${k}=${v}`);
  const command = [...envs, process.env.npm_lifecycle_event === 'bench:scale' ? 'npm run bench:scale' : `node ${path.relative(process.cwd(), process.argv[1]!)}`, ...process.argv.slice(2)].join(' ');
  console.log(`fluctuat scale benchmark — ${started.toISOString()}`);
  console.log(`command: ${command}`);
  console.log(`machine: ${os.cpus().length} cores, node ${process.version}, load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; broker RSS = the serve process and its children`);
  await idleConnections();
  await channels('file');
  await channels('memory');
  await subscribers();
  await patterns();
  fs.mkdirSync(OUT, { recursive: true });
  const result = { date: started.toISOString(), command, machine: { cores: os.cpus().length, node: process.version, loadavg: os.loadavg() }, points, failures };
  const stamp = started.toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z');
  fs.writeFileSync(path.join(OUT, `scale-${stamp}.json`), JSON.stringify(result, null, 1) + '\n');
  fs.writeFileSync(path.join(OUT, 'scale-latest.json'), JSON.stringify(result, null, 1) + '\n');
  const md = ['| dimension | count | broker RSS MiB | bytes per item | rate |', '|---|---:|---:|---:|---|'];
  for (const p of points) md.push(`| ${p.dimension} | ${p.count.toLocaleString('en-US')} | ${p.rssMiB.toFixed(1)} | ${p.bytesPerItem === null ? '' : Math.round(p.bytesPerItem).toLocaleString('en-US')} | ${p.rate === null ? '' : `${si(p.rate)} ${p.rateOf}`} |`);
  for (const f of failures) md.push('', `${f.dimension}: stopped at ${f.at.toLocaleString('en-US')}: \`${f.error}\``);
  fs.writeFileSync(path.join(OUT, 'scale-latest.md'), `Measured ${started.toISOString()} with \`${command}\`.\n\n${md.join('\n')}\n`);
  console.log('');
  console.log(md.join('\n'));
  if (PLOT !== 'none') {
    await plot(PLOT);
    console.log(`plot: ${path.relative(process.cwd(), PLOT)}`);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
