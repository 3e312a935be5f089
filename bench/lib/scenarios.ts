/**
 * The comparative scenarios of issue 5 and how each is measured on each broker.
 *
 *  - throughput: 1→1, fan-out 1→8, fan-in 8→1 for 16 B, 256 B and 16 KiB: deliveries per
 *    second summed over subscribers, with an end-to-end window (see worker.ts); Redis twice,
 *    pub/sub and a stream with an append-only file;
 *  - latency: one publisher at a fixed rate (20,000 and 100,000 msgs/s), 16 B, each payload
 *    carrying its send time; p50 / p99 / p99.9 of receive − send, µs, after a warm-up; Redis
 *    twice, as in throughput, and the Node floor (bench/peers/node-floor.ts);
 *  - durable: publishes acknowledged once durable, fluctuat under each --fsync policy against
 *    NATS JetStream (file storage, async publish with a window of outstanding acks) and Redis
 *    with an append-only file under the matching `appendfsync` (XADD, the same window);
 *  - tls: fluctuat's 1→1 and latency over its TLS listener (when the broker has one);
 *  - replay: a channel of --replay-mb written once, then read from the beginning by a new
 *    subscriber after a broker restart, with the files' page cache dropped first;
 *  - overload: 8→1 with no window, publishers as fast as their sockets take it: what each broker
 *    delivers, what it loses or cuts off, and how much memory it grows to (issue 5: Redis cut
 *    its subscriber off at 32 MB of backlog, Aedes grew to 200 MiB).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { topicFor, type Endpoint } from './conn.js';
import { run, type Outcome, type Plan } from './gen.js';
import { createStream } from './jetstream.js';
import { startFluctuat, startRedisAof, withBaseline, type Running, type TargetName } from './targets.js';

export interface BenchOptions {
  runs: number;
  seconds: number;
  /** Latency runs: a p99 needs more samples than a rate does. */
  latencySeconds: number;
  warmup: number;
  targets: TargetName[];
  scenarios: string[];
  replayMb: number;
  replaySize: number;
  windowBytes: number;
  ackWindow: number;
  out: string;
  profileDir: string | undefined;
  /** Another fluctuat checkout, built, measured beside this tree (targets baseline, baseline-mem). */
  baseline?: string | undefined;
}

export type Group = 'throughput' | 'latency' | 'durable' | 'tls' | 'replay' | 'overload';

export interface RunContext {
  opts: BenchOptions;
  run: number;
  brokers: Map<TargetName, Running>;
  tls: TlsSetup | { skip: string };
  replay: ReplayData | null;
  jetstream: boolean;
}

export interface TlsSetup {
  /** `serve` arguments for a TLS listener on a free port, and how a client trusts it. */
  serveArgs: string[];
  client: NonNullable<Endpoint['tls']>;
}

export interface ReplayData {
  dir: string;
  messages: number;
  bytes: number;
  fillRate: number;
  fillSeconds: number;
}

export interface Scenario {
  id: string;
  group: Group;
  title: string;
  unit: string;
  better: 'higher' | 'lower';
  targets: readonly TargetName[];
  /** Why a target this scenario lists was not measured, or null to measure it. */
  skip?(target: TargetName, ctx: RunContext): string | null;
  measure(target: TargetName, ctx: RunContext): Promise<Outcome>;
}

/**
 * Throughput and latency run the pub/sub brokers and Redis AOF, a stream appended to and read
 * (XADD, XREAD) with `appendfsync everysec`: a durable log like fluctuat's file storage under
 * `--fsync interval`, where Redis pub/sub keeps nothing.
 */
const PUBSUB: readonly TargetName[] = withBaseline(['fluctuat', 'fluctuat-mem', 'nats', 'redis', 'redis-aof', 'mosquitto', 'aedes']);
/** Latency also runs the Node floor: the part of a latency that is Node's, not fluctuat's. */
const LATENCY: readonly TargetName[] = [...PUBSUB, 'node-floor'];
/**
 * Overload also runs `--slow-consumer block`, memory and file storage: publishers slowed
 * instead of messages dropped (memory) or removed by retention before a subscriber read them (file).
 */
const OVERLOAD: readonly TargetName[] = withBaseline(['fluctuat', 'fluctuat-mem', 'fluctuat-block', 'fluctuat-file-block', 'nats', 'redis', 'mosquitto', 'aedes']);
export const SIZES = [16, 256, 16384] as const;
export const sizeLabel = (n: number): string => (n >= 1024 ? `${n / 1024} KiB` : `${n} B`);
const sizeId = (n: number): string => (n >= 1024 ? `${n / 1024}k` : String(n));

let uniq = 0;
const id = (s: string): string => `${s}${process.pid}x${++uniq}`;

function windowFor(size: number, opts: BenchOptions): number {
  // Per message on the wire: payload plus at most ~64 bytes of framing in any protocol. Never
  // more than the window's bytes (16 KiB: 63 messages, under a 1 MiB outbound bound).
  return Math.max(1, Math.floor(opts.windowBytes / (size + 64)));
}

function broker(ctx: RunContext, t: TargetName): Running {
  const b = ctx.brokers.get(t);
  if (!b) throw new Error(`${t} is not running`);
  return b;
}

function throughput(topo: string, pubs: number, subs: number, size: number): Scenario {
  const arrow = `${pubs}→${subs}${subs > 1 ? ' fan-out' : pubs > 1 ? ' fan-in' : ''}`;
  return {
    id: `tput-${topo}-${sizeId(size)}`,
    group: 'throughput',
    title: `${arrow}, ${sizeLabel(size)}`,
    unit: subs > 1 ? 'deliveries/s' : 'msgs/s',
    better: 'higher',
    targets: PUBSUB,
    measure: (t, ctx) => {
      const b = broker(ctx, t);
      return run({
        endpoint: b.endpoint,
        mode: 'throughput',
        topic: topicFor(b.endpoint.proto, id(`t${topo}`)),
        pubs,
        subs,
        size,
        window: windowFor(size, ctx.opts),
        warmupMs: ctx.opts.warmup * 1000,
        durationMs: ctx.opts.seconds * 1000,
        brokerPid: b.pid,
      });
    },
  };
}

/**
 * Unthrottled fan-in: no end-to-end window, so eight publishers write as fast as the broker
 * reads their sockets. The figure is what reaches the subscriber; `lost` (after the usual
 * bounded drain), the broker's peak RSS and whether it disconnected the subscriber say how it
 * coped. A broker that reads its publishers only as fast as it can deliver stays bounded
 * without losing anything; one that reads on regardless must queue, drop or disconnect.
 */
function flood(size: number): Scenario {
  return {
    id: `flood-8x1-${sizeId(size)}`,
    group: 'overload',
    title: `unthrottled 8→1 fan-in, ${sizeLabel(size)}`,
    unit: 'msgs/s',
    better: 'higher',
    targets: OVERLOAD,
    measure: (t, ctx) => run(floodPlan(broker(ctx, t), size, ctx.opts.warmup * 1000, ctx.opts.seconds * 1000)),
  };
}

function floodPlan(b: Running, size: number, warmupMs: number, durationMs: number): Plan {
  return { endpoint: b.endpoint, mode: 'throughput', topic: topicFor(b.endpoint.proto, id('flood')), pubs: 8, subs: 1, size, window: Infinity, warmupMs, durationMs, brokerPid: b.pid };
}

/**
 * A quiet client during the flood: one publisher at 1,000 msgs/s of 16 B on a channel of its
 * own, measured like lat-20k, while eight others flood another channel with 256 B messages
 * (flood-8x1-256). What a probe's answer waits on a congested bus. `lost`, the peak RSS and
 * disconnects are the two runs' together; the CPU is the flood's.
 */
function floodLatency(): Scenario {
  return {
    id: 'flood-lat-1k',
    group: 'overload',
    title: 'a quiet client @1k msgs/s during an 8→1 flood (p50/p99/p99.9)',
    unit: 'µs',
    better: 'lower',
    targets: OVERLOAD,
    measure: async (t, ctx) => {
      const b = broker(ctx, t);
      const warmupMs = ctx.opts.warmup * 1000;
      const durationMs = ctx.opts.latencySeconds * 1000;
      const [quiet, flooded] = await Promise.all([
        // Measured from half a second into the flood to its end.
        run({ endpoint: b.endpoint, mode: 'latency', topic: topicFor(b.endpoint.proto, id('quiet')), pubs: 1, subs: 1, size: 16, rate: 1000, window: 0, warmupMs: warmupMs + 500, durationMs: durationMs - 500, brokerPid: null }),
        run(floodPlan(b, 256, warmupMs, durationMs)),
      ]);
      const peaks = [quiet.brokerRssPeak, flooded.brokerRssPeak].filter((x): x is number => x !== null);
      return {
        ...quiet,
        lost: quiet.lost + flooded.lost,
        drops: quiet.drops + flooded.drops,
        errors: quiet.errors + flooded.errors,
        errorSamples: [...quiet.errorSamples, ...flooded.errorSamples].slice(0, 3),
        brokerCpu: flooded.brokerCpu,
        brokerRssStart: flooded.brokerRssStart,
        brokerRssPeak: peaks.length ? Math.max(...peaks) : null,
        disconnects: quiet.disconnects + flooded.disconnects,
      };
    },
  };
}

function latency(rate: number, endpointOf?: (ctx: RunContext) => Promise<{ endpoint: Endpoint; pid: number | null; stop(): Promise<void> }>): Scenario {
  const k = `${rate / 1000}k`;
  return {
    id: endpointOf ? `tls-lat-${k}` : `lat-${k}`,
    group: endpointOf ? 'tls' : 'latency',
    title: `${endpointOf ? 'TLS ' : ''}latency @${rate / 1000}k msgs/s, 16 B (p50/p99/p99.9)`,
    unit: 'µs',
    better: 'lower',
    targets: endpointOf ? ['fluctuat'] : LATENCY,
    ...(endpointOf ? { skip: (_t: TargetName, ctx: RunContext) => ('skip' in ctx.tls ? ctx.tls.skip : null) } : {}),
    measure: async (t, ctx) => {
      const b = endpointOf ? await endpointOf(ctx) : broker(ctx, t);
      try {
        return await run({
          endpoint: b.endpoint,
          mode: 'latency',
          topic: topicFor(b.endpoint.proto, id('lat')),
          pubs: 1,
          subs: 1,
          size: 16,
          rate,
          window: 0,
          warmupMs: ctx.opts.warmup * 1000,
          durationMs: ctx.opts.latencySeconds * 1000,
          brokerPid: b.pid,
        });
      } finally {
        if (endpointOf) await b.stop();
      }
    },
  };
}

function durable(policy: 'always' | 'interval' | 'never'): Scenario {
  return {
    id: `durable-${policy}`,
    group: 'durable',
    // The peers' matching settings (JetStream's file storage, Redis's appendfsync) are in
    // performance.md's scenario table: a title fits one column of the text table.
    title: `durable pub+ack 16 B: --fsync ${policy}`,
    unit: 'acks/s',
    better: 'higher',
    targets: withBaseline(['fluctuat', 'nats', 'redis-aof']),
    skip: (t, ctx) => (t === 'nats' && !ctx.jetstream ? 'JetStream is not enabled on the NATS server' : null),
    measure: async (t, ctx) => {
      const plan = {
        mode: 'durable' as const,
        pubs: 1,
        subs: 0,
        size: 16,
        window: ctx.opts.ackWindow,
        warmupMs: ctx.opts.warmup * 1000,
        durationMs: ctx.opts.seconds * 1000,
      };
      if (t === 'nats') {
        const ep = broker(ctx, 'nats');
        const stream = await createStream(ep.endpoint.port, id('d'), 1 << 30);
        try {
          return await run({ ...plan, endpoint: ep.endpoint, topic: stream.subject, jetstreamReply: `_INBOX.fluctuatbench.${id('r')}`, brokerPid: ep.pid });
        } finally {
          await stream.remove();
        }
      }
      if (t === 'redis-aof') {
        const r = await startRedisAof(policy);
        try {
          return await run({ ...plan, endpoint: r.endpoint, topic: topicFor('redis', id('d')), brokerPid: r.pid });
        } finally {
          await r.stop();
        }
      }
      const b = await startFluctuat({ storage: 'file', fsync: policy, profileDir: ctx.opts.profileDir, root: t === 'baseline' ? ctx.opts.baseline : undefined });
      try {
        return await run({ ...plan, endpoint: b.endpoint, topic: topicFor('fluctuat', id('d')), brokerPid: b.pid });
      } finally {
        await b.stop();
      }
    },
  };
}

/** A fluctuat broker with a TLS listener, for one measurement. */
async function tlsBroker(ctx: RunContext): Promise<Running> {
  if ('skip' in ctx.tls) throw new Error(ctx.tls.skip);
  const b = await startFluctuat({ storage: 'file', extra: ctx.tls.serveArgs, tls: ctx.tls.client, profileDir: ctx.opts.profileDir });
  return b;
}

function tlsThroughput(size: number): Scenario {
  return {
    id: `tls-1x1-${sizeId(size)}`,
    group: 'tls',
    title: `TLS 1→1, ${sizeLabel(size)}`,
    unit: 'msgs/s',
    better: 'higher',
    targets: ['fluctuat'],
    skip: (_t, ctx) => ('skip' in ctx.tls ? ctx.tls.skip : null),
    measure: async (_t, ctx) => {
      const b = await tlsBroker(ctx);
      try {
        return await run({
          endpoint: b.endpoint,
          mode: 'throughput',
          topic: topicFor('fluctuat', id('tls')),
          pubs: 1,
          subs: 1,
          size,
          window: windowFor(size, ctx.opts),
          warmupMs: ctx.opts.warmup * 1000,
          durationMs: ctx.opts.seconds * 1000,
          brokerPid: b.pid,
        });
      } finally {
        await b.stop();
      }
    },
  };
}

const REPLAY_TOPIC = 'bench.replay';

/** Drop the page cache of every file under `dir` (posix_fadvise DONTNEED through dd). */
export function dropCache(dir: string): boolean {
  let ok = true;
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        try {
          execFileSync('dd', [`if=${p}`, 'iflag=nocache', 'count=0', 'status=none']);
        } catch {
          ok = false;
        }
      }
    }
  };
  walk(dir);
  return ok;
}

/** Write the replay channel once: `mb` MiB of `size`-byte messages, published with acks. */
export async function fillReplay(dir: string, opts: BenchOptions): Promise<ReplayData> {
  const messages = Math.max(1, Math.floor((opts.replayMb * 1024 * 1024) / opts.replaySize));
  const b = await startFluctuat({ storage: 'file', fsync: 'interval', dataDir: dir });
  try {
    const t = process.hrtime.bigint();
    const o = await run({
      endpoint: b.endpoint,
      mode: 'durable',
      topic: REPLAY_TOPIC,
      pubs: 1,
      subs: 0,
      size: opts.replaySize,
      window: opts.ackWindow,
      count: messages,
      warmupMs: 0,
      durationMs: 600_000,
      brokerPid: b.pid,
    });
    if (o.errors > 0) throw new Error(`filling the replay channel failed: ${o.errorSamples.join('; ')}`);
    const seconds = Number(process.hrtime.bigint() - t) / 1e9;
    return { dir, messages, bytes: messages * opts.replaySize, fillRate: messages / seconds, fillSeconds: seconds };
  } finally {
    await b.stop();
  }
}

function replay(): Scenario {
  return {
    id: 'replay',
    group: 'replay',
    title: 'replay a channel from disk, cold cache',
    unit: 'MB/s',
    better: 'higher',
    targets: ['fluctuat'],
    skip: (_t, ctx) => (ctx.replay ? null : 'the replay channel was not written'),
    measure: async (_t, ctx) => {
      const data = ctx.replay!;
      dropCache(data.dir);
      const b = await startFluctuat({ storage: 'file', dataDir: data.dir, profileDir: ctx.opts.profileDir });
      try {
        const o = await run({
          endpoint: b.endpoint,
          mode: 'replay',
          topic: REPLAY_TOPIC,
          pubs: 0,
          subs: 1,
          size: ctx.opts.replaySize,
          window: 0,
          expect: data.messages,
          warmupMs: 0,
          durationMs: 0,
          brokerPid: b.pid,
        });
        // The primary figure is MB/s; msgs/s stays in the record.
        return { ...o, msgsPerSec: o.rate, rate: (o.delivered * ctx.opts.replaySize) / 1e6 / ((o.replayMs ?? 1) / 1000) } as Outcome;
      } finally {
        await b.stop();
      }
    },
  };
}

export function allScenarios(): Scenario[] {
  const list: Scenario[] = [];
  for (const [topo, pubs, subs] of [
    ['1x1', 1, 1],
    ['1x8', 1, 8],
    ['8x1', 8, 1],
  ] as const) {
    for (const size of SIZES) list.push(throughput(topo, pubs, subs, size));
  }
  list.push(latency(20_000), latency(100_000));
  list.push(durable('always'), durable('interval'), durable('never'));
  list.push(tlsThroughput(16), tlsThroughput(16384), latency(20_000, (ctx) => tlsBroker(ctx)));
  list.push(replay());
  // Last in a pass: a broker that queued without bound is restarted (ours) or left to recover (peers) before the next pass.
  list.push(flood(16), flood(256), floodLatency());
  return list;
}

/** Scenarios whose id or group matches one of the filters (a prefix), or all when none. */
export function selectScenarios(filters: readonly string[]): Scenario[] {
  const all = allScenarios();
  if (filters.length === 0) return all;
  return all.filter((s) => filters.some((f) => s.id === f || s.group === f || s.id.startsWith(f + '-')));
}
