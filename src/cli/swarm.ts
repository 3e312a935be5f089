import fs from 'node:fs';
import type { Command } from 'commander';
import { Option } from 'commander';
import cliProgress from 'cli-progress';
import { parsePRange, runPercolationSwarm, type PercolationResult } from '../percolation/experiment.js';
import { sigmoidSpec } from '../percolation/plot.js';
import { writePlot } from '../plot/render.js';
import { parseSelector, type Presence } from '../probes/protocol.js';
import { getKind, kindNames, loadKinds, paramsFromWords, ProbeError } from '../probes/registry.js';
import type { ConnectOptions } from '../client/index.js';
import { Swarm, type TaskSpec } from '../swarm/controller.js';
import { runPeriodic } from '../swarm/periodic.js';
import { PresenceTracker } from '../swarm/presence.js';
import { scheduleConfig } from '../swarm/schedule.js';
import { readStateLog, replayStateLog, StateLog } from '../swarm/statelog.js';
import { table } from '../swarm/stats.js';
import { formatSummary, summarize } from '../swarm/summary.js';
import { bytes, duration, integer } from './options.js';
import { guard } from './guard.js';
import { addConnectionOptions, withClientOptions, type ConnectionCliOptions } from './connection.js';

interface SwarmCliOptions extends ConnectionCliOptions {
  root: string;
  runs: number;
  select?: string;
  spread?: 'each' | 'queue';
  timeout: number;
  probeTimeout?: number;
  window?: number;
  discover: number;
  expect?: number;
  json: boolean;
  out?: string;
  progress?: boolean;
  kindModule: string[];
  every?: number;
  rounds?: number;
  stateLog?: string;
  stateLogMax: number;
  alpha: number;
  p: string;
  size: number;
  seed: string;
  plot: string[];
  retries: number;
}

/** `fluctuat swarm <kind> [params...]`: send tasks to the probes and summarise their answers. */
export function swarmCommand(program: Command, done: (p: Promise<number>) => void): void {
  addConnectionOptions(
    program
      .command('swarm')
      .description('send tasks to probes and gather the answers (kinds: clock, tcp, http, dns, percolation; also list, watch, replay)')
      .argument('<kind>', 'probe kind, or: list (who is there), watch (follow presence), replay <state-log>')
      .argument('[params...]', 'task parameters as key=value (or the kind\'s main one bare: tcp 127.0.0.1:80)'),
  )
    .option('--root <channel>', 'channel root of the probe channels', 'probes')
    .option('-r, --runs <n>', 'runs: per selected probe (spread each), in all (spread queue), per p (percolation)', integer('--runs', 1), 1)
    .option('-s, --select <labels>', 'only probes whose labels match: region=eu,zone=a|b,!canary')
    .addOption(new Option('--spread <how>', 'each: every selected probe runs every run; queue: runs are shared by the probes of the kind').choices(['each', 'queue']))
    .option('-t, --timeout <duration>', 'an answer later than this is late', duration, 10_000)
    .option('--probe-timeout <duration>', 'time budget given to the probe for one task (default: --timeout)', duration)
    .option('-w, --window <n>', 'tasks in flight at most', integer('--window', 1))
    .option('--discover <duration>', 'how long the roll call listens for probes', duration, 1000)
    .option('--expect <n>', 'stop the roll call once this many probes answered', integer('--expect', 1))
    .option('--json', 'print the summary as JSON', false)
    .option('-o, --out <file>', 'also write the summary (or result) as JSON to this file')
    .option('--progress', 'show a progress bar (default: when stderr is a terminal)')
    .option('--no-progress', 'no progress bar')
    .option('--kind-module <path>', 'import an extra module that registers kinds (repeatable)', (v: string, prev: string[]) => [...prev, v], [])
    .option('--every <duration>', 'periodic: run each target again after about this long', duration)
    .option('--rounds <n>', 'periodic: runs per target, then stop (default: until SIGINT)', integer('--rounds', 1))
    .option('--state-log <file>', 'periodic: append the scheduler\'s decisions here (JSON lines)')
    .option('--state-log-max <bytes>', 'periodic: rotate the state log past this size', bytes, 1024 * 1024)
    .option('--alpha <weight>', 'periodic: weight of the newest observation in the moving averages', Number, 0.3)
    .option('--p <range>', 'percolation: from:to:step or a list', '0.30:0.70:0.01')
    .option('--size <n>', 'percolation: grid side (cells)', integer('--size', 1), 64)
    .option('--seed <seed>', 'percolation: seed (any text)', '1')
    .option('--plot <file>', 'percolation: write the sigmoid plot (.svg or .png; repeatable)', (v: string, prev: string[]) => [...prev, v], [])
    .option('--retries <n>', 'percolation: times missing runs are sent again', integer('--retries'), 2)
    .action((kind: string, params: string[], o: SwarmCliOptions) => done(guard('swarm', () => withClientOptions('swarm', o, (client) => swarm(kind, params, o, client)))));
}

function err(text: string): void {
  process.stderr.write(`fluctuat swarm: ${text}\n`);
}

function progressBar(o: SwarmCliOptions, label: string): { update(done: number, total: number): void; stop(): void } {
  const enabled = o.progress ?? process.stderr.isTTY === true;
  if (!enabled) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: `${label} [{bar}] {percentage}% | {value}/{total} | {duration_formatted} | eta {eta_formatted}`, hideCursor: true, clearOnComplete: false, fps: 5, noTTYOutput: true, notTTYSchedule: 2000 },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(done, total) {
      if (!started) {
        bar.start(total, 0);
        started = true;
      }
      bar.update(done);
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

function writeOut(o: SwarmCliOptions, value: unknown): void {
  if (o.out) fs.writeFileSync(o.out, JSON.stringify(value, null, 1) + '\n');
}

async function swarm(kindName: string, words: string[], o: SwarmCliOptions, client: Omit<ConnectOptions, 'name'>): Promise<number> {
  if (kindName === 'replay') return replay(words);
  await loadKinds(o.kindModule);
  let select;
  try {
    select = parseSelector(o.select);
  } catch (e) {
    err((e as Error).message);
    return 2;
  }
  if (kindName !== 'list' && kindName !== 'watch' && !getKind(kindName)) {
    err(`unknown kind ${JSON.stringify(kindName)}; known: ${kindNames().join(', ')} (and list, watch, replay)`);
    return 2;
  }
  let controller: Swarm;
  try {
    controller = await Swarm.connect({ url: o.url, root: o.root, client: { ...client, reconnect: true } });
  } catch (e) {
    err((e as Error).message);
    return 1;
  }
  try {
    if (kindName === 'watch') return await watch(controller, o);
    const probes = await controller.rollcall({ select, waitMs: o.discover, ...(o.expect === undefined ? {} : { expect: o.expect }), ...(kindName === 'list' ? {} : { kind: kindName }) });
    if (kindName === 'list') return list(probes, o);
    if (probes.length === 0) {
      err(`no probe of kind ${kindName}${o.select ? ` matching ${o.select}` : ''} answered the roll call on ${o.root}.rollcall within ${o.discover} ms`);
      return 1;
    }
    if (kindName === 'percolation') return await percolation(controller, probes, o);
    const kind = getKind(kindName)!;
    let params: Record<string, unknown>;
    try {
      params = paramsFromWords(kind, words);
    } catch (e) {
      err(e instanceof ProbeError ? e.message : String(e));
      return 2;
    }
    if (o.every !== undefined) return await periodic(controller, kindName, params, probes, o);
    const spread = o.spread ?? 'each';
    const specs: TaskSpec[] =
      spread === 'each'
        ? probes.flatMap((p) => Array.from({ length: o.runs }, () => ({ kind: kindName, params, target: p.id })))
        : Array.from({ length: o.runs }, () => ({ kind: kindName, params }));
    if (spread === 'queue' && o.select) err('note: --spread queue ignores --select (any probe of the kind may take a run)');
    const bar = progressBar(o, kindName);
    const report = await controller.scatter(specs, {
      timeoutMs: o.timeout,
      ...(o.probeTimeout === undefined ? {} : { probeTimeoutMs: o.probeTimeout }),
      ...(o.window === undefined ? {} : { window: o.window }),
      onSettled: (d, n) => bar.update(d, n),
    });
    bar.stop();
    const summary = summarize(kindName, report);
    writeOut(o, summary);
    process.stdout.write((o.json ? JSON.stringify(summary, null, 1) : formatSummary(summary)) + '\n');
    return summary.ok === summary.tasks ? 0 : 1;
  } finally {
    await controller.close();
  }
}

function list(probes: readonly Presence[], o: SwarmCliOptions): number {
  if (o.json) process.stdout.write(JSON.stringify(probes, null, 1) + '\n');
  else {
    process.stdout.write(
      table([
        ['probe', 'host', 'pid', 'thread', 'mode', 'kinds', 'labels'],
        ...probes.map((p) => [p.id, p.host, String(p.pid), String(p.threadId), p.mode, p.kinds.join(','), Object.entries(p.labels).map(([k, v]) => `${k}=${v}`).join(',')]),
      ]) + `\n${probes.length} probes\n`,
    );
  }
  writeOut(o, probes);
  return 0;
}

/** Follow presence from the last few heartbeats on, and expire silent probes. */
async function watch(controller: Swarm, o: SwarmCliOptions): Promise<number> {
  const tracker = new PresenceTracker();
  const print = (what: string, p: Presence): void => {
    process.stdout.write(`${new Date().toISOString()} ${what.padEnd(7)} ${p.id}${p.reason ? ` (${p.reason})` : ''} [${tracker.probes.length} live]\n`);
  };
  const sub = controller.watchPresence((p) => {
    const change = tracker.update(p, Date.now());
    if (change === 'joined') print('joined', p);
    else if (change === 'left') print(p.event, p);
  }, `time:${Date.now() - 15_000}`);
  await sub.ready;
  const timer = setInterval(() => {
    for (const p of tracker.expire(Date.now())) print('expired', p);
  }, 1000);
  await new Promise<void>((resolve) => {
    const stopAt = o.rounds !== undefined ? setTimeout(resolve, o.rounds * 1000) : undefined;
    const stop = (): void => {
      if (stopAt) clearTimeout(stopAt);
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  clearInterval(timer);
  return 0;
}

async function periodic(controller: Swarm, kind: string, params: Record<string, unknown>, probes: readonly Presence[], o: SwarmCliOptions): Promise<number> {
  const config = scheduleConfig(o.every!, { alpha: o.alpha });
  const log = o.stateLog ? new StateLog(o.stateLog, config, o.stateLogMax) : undefined;
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const report = await runPeriodic(controller, {
      kind,
      params,
      targets: probes,
      config,
      timeoutMs: o.timeout,
      signal: ac.signal,
      ...(o.rounds === undefined ? {} : { rounds: o.rounds }),
      ...(log ? { stateLog: log } : {}),
      onRun: (target, outcome, d) => {
        const r = outcome.replies[0];
        const rtt = r && outcome.sent ? ((r.recv.monoUs - outcome.sent.monoUs) / 1000).toFixed(2) : '-';
        const line = { target, status: outcome.status, rttMs: rtt === '-' ? null : Number(rtt), reason: r?.result.error?.reason, nextMs: Math.round(d.delayMs), why: d.why };
        process.stdout.write((o.json ? JSON.stringify(line) : `${target} ${outcome.status} rtt ${rtt} ms, next in ${Math.round(d.delayMs)} ms (${d.why})`) + '\n');
      },
    });
    writeOut(o, report.states);
    return report.outcomes.every((x) => x.status === 'ok') ? 0 : 1;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    log?.close();
  }
}

function replay(words: string[]): number {
  const file = words[0];
  if (!file) {
    err('replay needs the state log file: fluctuat swarm replay <file>');
    return 2;
  }
  let report;
  try {
    report = replayStateLog(readStateLog(file));
  } catch (e) {
    err((e as Error).message);
    return 1;
  }
  for (const [target, last] of Object.entries(report.last)) {
    process.stdout.write(`${target}: last decision: next run in ${last.delayMs.toFixed(1)} ms (${last.why}) after ok=${last.obs.ok} latency=${last.obs.latencyMs?.toFixed(2) ?? '-'} ms; ewma interval ${last.state.ewmaIntervalMs?.toFixed(1) ?? '-'} ms, ewma latency ${last.state.ewmaLatencyMs?.toFixed(2) ?? '-'} ms\n`);
  }
  for (const m of report.mismatches) process.stdout.write(`MISMATCH line ${m.line} (${m.target}): logged ${m.logged} ms, replayed ${m.replayed} ms\n`);
  process.stdout.write(`${report.decisions} decisions replayed, ${report.mismatches.length} mismatches\n`);
  return report.mismatches.length === 0 ? 0 : 1;
}

async function percolation(controller: Swarm, probes: readonly Presence[], o: SwarmCliOptions): Promise<number> {
  let ps: number[];
  try {
    ps = parsePRange(o.p);
  } catch (e) {
    err((e as Error).message);
    return 2;
  }
  const spec = { ps, runs: o.runs, size: o.size, seed: o.seed };
  const bar = progressBar(o, 'percolation');
  const started = Date.now();
  const result = await runPercolationSwarm(controller, spec, { timeoutMs: o.timeout, retries: o.retries, onProgress: (d, n) => bar.update(d, n), ...(o.window === undefined ? {} : { window: o.window }) });
  bar.stop();
  const seconds = (Date.now() - started) / 1000;
  writeOut(o, result);
  for (const file of o.plot) await writePlot(sigmoidSpec(result), file);
  if (o.json) process.stdout.write(JSON.stringify(result, null, 1) + '\n');
  else process.stdout.write(formatPercolation(result, probes.length, seconds) + '\n');
  return result.missing === 0 && result.inconsistent === 0 ? 0 : 1;
}

export function formatPercolation(r: PercolationResult, probes: number, seconds: number): string {
  const lines = [`percolation on ${r.size}×${r.size} hexagonal cells, ${r.runs} runs per p, seed ${JSON.stringify(r.seed)}: ${r.points.length * r.runs} runs on ${probes} probes in ${seconds.toFixed(1)} s`];
  lines.push(table([['p', 'crossings', 'runs', 'P(cross)'], ...r.points.map((pt) => [pt.p.toFixed(4), String(pt.crossings), String(pt.runs), pt.probability.toFixed(4)])]));
  const t = r.threshold;
  lines.push(t ? `threshold: p = ${t.p.toFixed(4)}${Number.isFinite(t.stderr) ? ` ± ${t.stderr.toFixed(4)}` : ''} (${t.method}${Number.isFinite(t.width) ? `, width ${t.width.toFixed(4)}` : ''}); exact: 0.5` : 'threshold: no estimate (no point on each side of 1/2)');
  lines.push(`digest ${r.digest}${r.missing ? `; ${r.missing} runs MISSING` : ''}${r.inconsistent ? `; ${r.inconsistent} runs INCONSISTENT` : ''}`);
  return lines.join('\n');
}
