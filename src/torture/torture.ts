/**
 * The torture test: "be the hammer that burns the CPU and measure that it behaves well".
 *
 * For each mode (worker threads, child processes) it launches probes in waves (128, 256, ...
 * up to the maximum), and in each wave sends every probe `tasksPerProbe` clock tasks, paced
 * evenly over the wave's duration on one durable task channel (the probes share it as a queue
 * group). Every task carries its send time; each answer brings back the broker's receive time,
 * the probe's receive and answer times, and the controller notes when the answer came: on the
 * host's monotonic clock and on the wall clocks. Only the public client library is used; the
 * broker is a child process (`fluctuat serve`) unless a URL is given.
 */
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { Fleet } from '../probes/fleet.js';
import type { ProbeMode } from '../probes/protocol.js';
import { monoUs } from '../probes/time.js';
import { Swarm } from '../swarm/controller.js';
import { analyzeWave, violations, type MessageRecord, type WaveStats } from './analyze.js';
import { startChildBroker } from './broker.js';

export interface TortureOptions {
  /** Use this broker; otherwise start one as a child process. */
  url?: string;
  /** Extra `fluctuat serve` arguments for the broker started here. */
  brokerArgs?: readonly string[];
  /** Probes added per wave (default 128). */
  wave?: number;
  /** Probes in the last wave (default 1024). */
  max?: number;
  modes?: readonly ('thread' | 'process')[];
  /** Probes per worker thread or child process (default 1). */
  perWorker?: number;
  /** Tasks each probe gets per wave (default 10). */
  tasksPerProbe?: number;
  /** How long a wave sends tasks, ms (default 5000). */
  waveDurationMs?: number;
  /** An answer later than this after its task was sent is late, ms (default 10000). */
  timeoutMs?: number;
  /** How long to wait for late answers before counting a task lost, ms (default 5000). */
  graceMs?: number;
  /** Called with a line of progress text. */
  log?: (line: string) => void;
  /** Called as tasks settle, for a progress bar. */
  onProgress?: (done: number, total: number, label: string) => void;
}

export interface TortureReport {
  readonly startedAt: string;
  readonly durationS: number;
  readonly machine: { readonly cpus: number; readonly cpuModel: string; readonly memoryGiB: number; readonly node: string; readonly platform: string; readonly loadAverageBefore: readonly number[]; readonly loadAverageAfter: readonly number[] };
  readonly options: Required<Omit<TortureOptions, 'url' | 'brokerArgs' | 'log' | 'onProgress'>> & { readonly url: string | null };
  readonly waves: readonly WaveStats[];
  /** Every answered task, per mode, for plots. */
  readonly messages: Readonly<Record<string, readonly (MessageRecord & { wave: number; probes: number })[]>>;
  /** Zero lost, zero duplicated, no clock violation. */
  readonly ok: boolean;
}

export async function runTorture(o: TortureOptions = {}): Promise<TortureReport> {
  const opts = {
    wave: o.wave ?? 128,
    max: o.max ?? 1024,
    modes: o.modes ?? (['thread', 'process'] as const),
    perWorker: o.perWorker ?? 1,
    tasksPerProbe: o.tasksPerProbe ?? 10,
    waveDurationMs: o.waveDurationMs ?? 5000,
    timeoutMs: o.timeoutMs ?? 10_000,
    graceMs: o.graceMs ?? 5000,
  };
  if (!(opts.wave >= 1 && opts.max >= opts.wave)) throw new RangeError(`waves need 1 <= wave (${opts.wave}) <= max (${opts.max})`);
  const log = o.log ?? (() => {});
  const started = Date.now();
  const loadAverageBefore = os.loadavg().map((x) => Math.round(x * 100) / 100);
  // Every probe is a connection from 127.0.0.1: lift the broker's per-address limit for the run.
  const broker = o.url === undefined ? await startChildBroker({ args: ['--max-connections-per-address', String(opts.max + 64), ...(o.brokerArgs ?? [])] }) : undefined;
  const url = o.url ?? broker!.url;
  if (broker) log(`broker: pid ${broker.pid} on ${broker.url}, data in ${broker.dataDir}`);
  const waves: WaveStats[] = [];
  const messages: Record<string, (MessageRecord & { wave: number; probes: number })[]> = {};
  try {
    for (const mode of opts.modes) {
      messages[mode] = await runMode(url, mode, opts, waves, log, o.onProgress);
    }
  } finally {
    await broker?.stop();
  }
  const ok = waves.every((w) => w.lost === 0 && w.duplicated === 0 && violations(w.monotonicity) === 0);
  return {
    startedAt: new Date(started).toISOString(),
    durationS: (Date.now() - started) / 1000,
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? '?', memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, platform: `${os.platform()} ${os.release()}`, loadAverageBefore, loadAverageAfter: os.loadavg().map((x) => Math.round(x * 100) / 100) },
    options: { ...opts, modes: [...opts.modes], url: o.url ?? null },
    waves,
    messages,
    ok,
  };
}

async function runMode(
  url: string,
  mode: ProbeMode & ('thread' | 'process'),
  opts: { wave: number; max: number; perWorker: number; tasksPerProbe: number; waveDurationMs: number; timeoutMs: number; graceMs: number },
  waves: WaveStats[],
  log: (line: string) => void,
  onProgress: TortureOptions['onProgress'],
): Promise<(MessageRecord & { wave: number; probes: number })[]> {
  // A fresh channel root per mode: its own task channel and queue group.
  const root = `torture.${mode}${randomBytes(4).toString('hex')}`;
  const fleet = new Fleet({ url, mode, root, kinds: ['clock'], perWorker: opts.perWorker, heartbeatMs: 0 });
  const swarm = await Swarm.connect({ url, root, name: `torture-${mode}` });
  const messages: (MessageRecord & { wave: number; probes: number })[] = [];
  let origin = 0;
  try {
    for (let wave = 1, probes = Math.min(opts.wave, opts.max); ; wave++, probes = Math.min(probes + opts.wave, opts.max)) {
      const t0 = Date.now();
      const have = fleet.probes.length;
      if (probes > have) await fleet.add(probes - have);
      const found = await swarm.rollcall({ expect: probes, waitMs: 30_000 });
      if (found.length !== probes) throw new Error(`${mode} wave ${wave}: ${found.length} of ${probes} probes answered the roll call`);
      log(`${mode} wave ${wave}: ${probes} probes in ${fleet.workers} ${mode === 'thread' ? 'threads' : 'processes'} up (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      await swarm.syncClock(8);
      const total = probes * opts.tasksPerProbe;
      const spacingMs = opts.waveDurationMs / total;
      const specs = Array.from({ length: total }, () => ({ kind: 'clock', params: {} }));
      const waveStart = monoUs();
      if (wave === 1) origin = waveStart;
      const report = await swarm.scatter(specs, {
        timeoutMs: opts.timeoutMs,
        graceMs: opts.graceMs,
        sendAtMs: (i) => i * spacingMs,
        onSettled: (done, n) => onProgress?.(done, n, `${mode} ${probes}`),
      });
      const records: MessageRecord[] = [];
      const stats = analyzeWave(mode, wave, probes, fleet.workers, report, origin, records);
      for (const r of records) messages.push({ ...r, wave, probes });
      waves.push(stats);
      log(
        `${mode} wave ${wave}: ${stats.replies}/${stats.tasks} replies, ${stats.throughput.toFixed(0)}/s, rtt p50 ${stats.rttMs?.p50.toFixed(2)} p99 ${stats.rttMs?.p99.toFixed(2)} max ${stats.rttMs?.max.toFixed(2)} ms, lost ${stats.lost}, dup ${stats.duplicated}, clock violations ${violations(stats.monotonicity)}`,
      );
      if (probes >= opts.max) break;
    }
  } finally {
    await swarm.close().catch(() => {});
    await fleet.stop('torture-done');
  }
  return messages;
}
