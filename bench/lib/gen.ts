/**
 * Runs one measurement: starts the subscriber and publisher worker threads, gives them a common
 * start time, samples the shared counters and the CPU clocks (generator and broker) over the
 * measured window, lets the tail drain, and collects every worker's report.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import type { Endpoint } from './conn.js';
import { allowedCpus, pinning } from './pin.js';
import { busiestThread, processTree, rssBytes, selfCpuSeconds, selfThreadCpuSeconds, treeCpuSeconds as cpuSeconds, treeRssBytes } from './proc.js';
import { MAX_SUBS, Slot, type FromMain, type Mode, type WorkerResult, type WorkerSpec } from './worker.js';

export interface Plan {
  endpoint: Endpoint;
  mode: Mode;
  topic: string;
  pubs: number;
  subs: number;
  size: number;
  /** Throughput: messages between sent and delivered, at most; Infinity for unthrottled publishers. */
  window: number;
  /** Latency: total messages per second (split between publishers). */
  rate?: number;
  /** Durable: publish exactly this many. */
  count?: number;
  jetstreamReply?: string | null;
  /** Replay: messages in the channel. */
  expect?: number;
  warmupMs: number;
  durationMs: number;
  /** Broker process whose CPU share is reported, when known. */
  brokerPid: number | null;
}

export interface Outcome {
  /** Throughput: deliveries per second summed over subscribers; durable: acks per second;
   *  latency: deliveries per second achieved; replay: messages per second. */
  rate: number;
  sent: number;
  delivered: number;
  drops: number;
  /** Messages sent but neither delivered nor reported dropped, summed over subscribers. */
  lost: number;
  errors: number;
  errorSamples: string[];
  /** CPU used during the measured window, in cores (1 = one core busy all the time). */
  generatorCpu: number;
  /** CPU of the generator's busiest thread, in cores: at ~1 that thread was the limit. */
  generatorBusiest: number;
  /**
   * The generator, not the broker, may have set the rate: its busiest thread was ≥95% busy,
   * or the whole generator used ≥95% of the CPUs it may use (one, when pinned).
   */
  generatorBound: boolean;
  brokerCpu: number | null;
  /**
   * The broker's resident memory (its process tree), bytes: at the start, and the most seen by
   * a sample every RSS_SAMPLE_MS from the start to the end of the drain; null if unreadable.
   */
  brokerRssStart: number | null;
  brokerRssPeak: number | null;
  /** Subscribers whose connection the broker closed during the run (Redis's output buffer limit, NATS's slow consumer). */
  disconnects: number;
  latency?: { p50: number; p99: number; p999: number; max: number; count: number };
  replayMs?: number;
  backpressure: number;
  /** Which pass of the run measured it (0-based): every broker runs once per pass. */
  pass?: number;
}

const hr = (): number => Number(process.hrtime.bigint());

const BOUND = 0.95;
const RSS_SAMPLE_MS = 100;

/** Samples a process tree's RSS until stopped: what it started at and the most it reached. */
function rssSampler(pid: number | null): { stop(): { brokerRssStart: number | null; brokerRssPeak: number | null } } {
  const start = pid === null ? null : treeRssBytes(pid);
  // The tree once (finding children scans all of /proc, ~5 ms); then only its members' status.
  const tree = pid === null || start === null ? [] : processTree(pid);
  let peak = start;
  const sample = (): void => {
    let now: number | null = null;
    for (const p of tree) {
      const rss = rssBytes(p);
      if (rss !== null) now = (now ?? 0) + rss;
    }
    if (now !== null && (peak === null || now > peak)) peak = now;
  };
  const timer = pid === null ? null : setInterval(sample, RSS_SAMPLE_MS);
  return {
    stop: () => {
      if (timer) clearInterval(timer);
      sample();
      return { brokerRssStart: start, brokerRssPeak: peak };
    },
  };
}

/** What the generator's CPU says about who set the rate (see Outcome.generatorBound). */
function generatorLoad(total: number, busiest: number): Pick<Outcome, 'generatorCpu' | 'generatorBusiest' | 'generatorBound'> {
  const cpus = pinning()?.generatorCpus ?? Math.max(1, allowedCpus().length);
  return { generatorCpu: total, generatorBusiest: busiest, generatorBound: busiest >= BOUND || total >= BOUND * cpus };
}

interface Handle {
  worker: Worker;
  spec: WorkerSpec;
  ready: Promise<void>;
  result: Promise<WorkerResult>;
  exited: Promise<void>;
}

function spawn(spec: WorkerSpec, fail: (e: Error) => void): Handle {
  const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: spec });
  let onReady!: () => void;
  let onResult!: (r: WorkerResult) => void;
  const ready = new Promise<void>((r) => (onReady = r));
  const result = new Promise<WorkerResult>((r) => (onResult = r));
  const exited = new Promise<void>((r) => worker.once('exit', () => r()));
  worker.on('message', (m: { type: string; message?: string }) => {
    if (m.type === 'ready') onReady();
    else if (m.type === 'done') onResult(m as WorkerResult);
    else if (m.type === 'error') fail(new Error(`${spec.role} worker ${spec.index} (${spec.endpoint.proto}): ${m.message}`));
  });
  worker.on('error', (e) => fail(e));
  return { worker, spec, ready, result, exited };
}

export async function run(plan: Plan): Promise<Outcome> {
  if (plan.subs > MAX_SUBS) throw new Error(`at most ${MAX_SUBS} subscribers per run`);
  const sab = new SharedArrayBuffer(Slot.SIZE * 4);
  const ctl = new Int32Array(sab);
  let failure: Error | null = null;
  let abort!: (e: Error) => void;
  const failed = new Promise<never>((_, reject) => {
    abort = (e) => {
      failure ??= e;
      reject(e);
    };
  });
  failed.catch(() => {});
  const base = {
    endpoint: plan.endpoint,
    mode: plan.mode,
    topic: plan.topic,
    size: plan.size,
    nsubs: plan.subs,
    window: plan.window,
    rate: (plan.rate ?? 0) / Math.max(1, plan.pubs),
    count: plan.count ?? 0,
    jetstreamReply: plan.jetstreamReply ?? null,
    expect: plan.expect ?? 0,
    sab,
  };
  const handles: Handle[] = [];
  const stopAll = async (): Promise<void> => {
    Atomics.store(ctl, Slot.STOP, 1);
    for (const h of handles) h.worker.postMessage({ type: 'finish' } satisfies FromMain);
    await Promise.race([Promise.all(handles.map((h) => h.exited)), sleep(3000)]);
    await Promise.all(handles.map((h) => h.worker.terminate()));
  };
  try {
    // Subscribers first, each subscribed before any publisher exists.
    const subs: Handle[] = [];
    for (let i = 0; i < plan.subs; i++) subs.push(spawn({ ...base, role: 'sub', index: i }, abort));
    handles.push(...subs);
    await Promise.race([Promise.all(subs.map((h) => h.ready)), failed]);
    const pubs: Handle[] = [];
    for (let i = 0; i < plan.pubs; i++) pubs.push(spawn({ ...base, role: 'pub', index: i }, abort));
    handles.push(...pubs);
    await Promise.race([Promise.all(pubs.map((h) => h.ready)), failed]);

    const rss = rssSampler(plan.brokerPid);
    const t0 = hr() + 30e6;
    const go: FromMain = { type: 'go', t0, warmupMs: plan.warmupMs, durationMs: plan.durationMs };
    for (const h of handles) h.worker.postMessage(go);

    if (plan.mode === 'replay') {
      const cpu0 = selfCpuSeconds();
      const th0 = selfThreadCpuSeconds();
      const b0 = plan.brokerPid ? cpuSeconds(plan.brokerPid) : null;
      const r = await Promise.race([subs[0]!.result, failed]);
      const seconds = (r.replayMs ?? 0) / 1000;
      const b1 = plan.brokerPid ? cpuSeconds(plan.brokerPid) : null;
      const memory = rss.stop();
      await stopAll();
      return {
        rate: r.messages / seconds,
        sent: 0,
        delivered: r.messages,
        drops: r.drops,
        lost: Math.max(0, (plan.expect ?? 0) - r.messages - r.drops),
        errors: r.errors,
        errorSamples: r.lastError ? [r.lastError] : [],
        ...generatorLoad((selfCpuSeconds() - cpu0) / seconds, busiestThread(th0, selfThreadCpuSeconds(), seconds)),
        brokerCpu: b0 !== null && b1 !== null ? (b1 - b0) / seconds : null,
        ...memory,
        disconnects: r.disconnected ? 1 : 0,
        ...(r.replayMs !== undefined ? { replayMs: r.replayMs } : {}),
        backpressure: 0,
      };
    }

    const counted = (): number => {
      if (plan.mode === 'durable') return Atomics.load(ctl, Slot.ACKED);
      let n = 0;
      for (let i = 0; i < plan.subs; i++) n += Atomics.load(ctl, Slot.DELIVERED + i);
      return n;
    };
    await Promise.race([sleep(Math.max(0, (t0 - hr()) / 1e6 + plan.warmupMs)), failed]);
    const s0 = { t: hr(), n: counted(), cpu: selfCpuSeconds(), threads: selfThreadCpuSeconds(), broker: plan.brokerPid ? cpuSeconds(plan.brokerPid) : null };
    const pubsDone = Promise.all(pubs.map((h) => h.result));
    await Promise.race([sleep(plan.durationMs), pubsDone, failed]);
    const s1 = { t: hr(), n: counted(), cpu: selfCpuSeconds(), threads: selfThreadCpuSeconds(), broker: plan.brokerPid ? cpuSeconds(plan.brokerPid) : null };
    const seconds = (s1.t - s0.t) / 1e9;

    // Publishers stop at the deadline; then let the tail drain (bounded), so losses show.
    const pubResults = await Promise.race([pubsDone, failed]);
    if (plan.mode !== 'durable') {
      const sent = Atomics.load(ctl, Slot.SENT);
      let last = -1;
      let still = 0;
      for (let k = 0; k < 200; k++) {
        let done = true;
        for (let i = 0; i < plan.subs; i++) {
          if (Atomics.load(ctl, Slot.DELIVERED + i) + Atomics.load(ctl, Slot.DROPPED + i) < sent) done = false;
        }
        if (done) break;
        const now = counted();
        if (now === last && ++still > 40) break; // 2 s without progress
        if (now !== last) still = 0;
        last = now;
        await sleep(50);
      }
    }
    const memory = rss.stop();
    Atomics.store(ctl, Slot.STOP, 1);
    for (const h of handles) h.worker.postMessage({ type: 'finish' } satisfies FromMain);
    const subResults = await Promise.race([Promise.all(subs.map((h) => h.result)), failed]);
    await Promise.race([Promise.all(handles.map((h) => h.exited)), sleep(3000)]);
    await Promise.all(handles.map((h) => h.worker.terminate()));

    const sent = pubResults.reduce((a, r) => a + r.sent, 0);
    const all = [...pubResults, ...subResults];
    const lat = subResults.find((r) => r.latency)?.latency;
    return {
      rate: (s1.n - s0.n) / seconds,
      sent,
      delivered: subResults.reduce((a, r) => a + r.messages, 0),
      drops: subResults.reduce((a, r) => a + r.drops, 0),
      lost: plan.mode === 'durable' ? Math.max(0, sent - (pubResults[0]?.acks ?? 0)) : subResults.reduce((a, r) => a + Math.max(0, sent - r.messages - r.drops), 0),
      errors: all.reduce((a, r) => a + r.errors, 0),
      errorSamples: all.filter((r) => r.lastError).map((r) => r.lastError).slice(0, 3),
      ...generatorLoad((s1.cpu - s0.cpu) / seconds, busiestThread(s0.threads, s1.threads, seconds)),
      brokerCpu: s0.broker !== null && s1.broker !== null ? (s1.broker - s0.broker) / seconds : null,
      ...memory,
      disconnects: subResults.filter((r) => r.disconnected).length,
      ...(lat ? { latency: lat } : {}),
      backpressure: pubResults.reduce((a, r) => a + r.backpressure, 0),
    };
  } catch (err) {
    await stopAll().catch(() => {});
    throw failure ?? err;
  }
}
