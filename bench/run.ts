/**
 * `npm run bench`: fluctuat side by side with NATS, Redis and Mosquitto (when they answer on
 * their usual loopback ports) and Aedes (started here), one load generator speaking each
 * protocol directly from worker threads. Prints one table with ratios fluctuat ÷ peer and the
 * number of runs behind each median, and writes bench/results/<date>.json and latest.json.
 *
 * Every option is a flag or a BENCH_* environment variable (flags win): `npm run bench -- --help`
 * lists them, and docs/performance.md ("Running it") explains them.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { flameGraphs } from './lib/flame.js';
import type { Outcome } from './lib/gen.js';
import { hasJetStream } from './lib/jetstream.js';
import { pinGenerator, pinPeer, restoreAll, type Pinning } from './lib/pin.js';
import { summariseProfiles } from './lib/profile.js';
import { tables, summarise, type Cell } from './lib/report.js';
import { fillReplay, selectScenarios, type BenchOptions, type RunContext, type TlsSetup } from './lib/scenarios.js';
import { ALL_TARGETS, BASELINE_TWIN, LABELS, ROOT, isRunningPeer, peerVersion, probePeer, redisServerVersion, startAedes, startNodeFloor, startRedisAof, startFluctuat, withBaseline, type Running, type TargetName } from './lib/targets.js';
import { detectTls } from './lib/tls.js';

const SCENARIO_HELP = 'scenario ids, id prefixes or groups: throughput, latency, durable, tls, replay, overload, tput-1x1, lat-20k … (default: all)';

/** A non-negative number (seconds, MiB, bytes). */
function number(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError('a non-negative number');
  return n;
}

/** A whole number of at least `min`. */
const whole = (min: number) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`a whole number of at least ${min}`);
  return n;
};

function list(v: string): string[] {
  return v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * The targets with each baseline twin before its original: odd passes use this order, so that
 * neither build always runs right after the other (a file-storage run leaves the kernel
 * writing its pages back while the next one runs).
 */
function twinsSwapped(targets: readonly TargetName[]): TargetName[] {
  const out = [...targets];
  for (let i = 0; i + 1 < out.length; i++) {
    if (out[i + 1] === BASELINE_TWIN[out[i]!]) {
      [out[i], out[i + 1]] = [out[i + 1]!, out[i]!];
      i++;
    }
  }
  return out;
}

/** A built fluctuat checkout, as an absolute path. */
function checkout(v: string): string {
  const dir = path.resolve(v);
  for (const f of ['bin/fluctuat.js', 'dist/src/cli/main.js']) {
    if (!fs.existsSync(path.join(dir, f))) throw new InvalidArgumentError(`${dir} has no ${f}: a fluctuat checkout after npm ci and npm run build`);
  }
  return dir;
}

/** The baseline's commit and whether its tree differs from it, for the report. */
function describeCheckout(dir: string): string {
  const git = (...args: string[]): string | null => {
    const r = spawnSync('git', ['-C', dir, ...args], { encoding: 'utf8' });
    return r.status === 0 ? r.stdout.trim() : null;
  };
  const rev = git('rev-parse', '--short', 'HEAD');
  if (rev === null) return dir;
  return `${dir} at ${rev}${git('status', '--porcelain', '--untracked-files=no') ? ' (modified)' : ''}`;
}

function targetList(v: string): TargetName[] {
  const targets = list(v);
  for (const t of targets) if (!ALL_TARGETS.includes(t as TargetName)) throw new InvalidArgumentError(`unknown target ${t}; expected some of ${ALL_TARGETS.join(', ')}`);
  return targets as TargetName[];
}

/** Every option is a flag or a BENCH_* variable; flags win. */
function options(argv: string[]): BenchOptions & { pin: boolean; doc: boolean; render?: string } {
  const program = new Command('bench')
    .description(
      'fluctuat side by side with NATS, Redis and Mosquitto (when they answer on their usual loopback ports) and Aedes (started here): ' +
        'one table of medians and ratios fluctuat ÷ peer, written as JSON and Markdown. docs/performance.md explains every scenario.',
    )
    .addOption(new Option('--runs <n>', 'runs per scenario and broker; medians are taken').env('BENCH_RUNS').argParser(whole(1)).default(3))
    .addOption(new Option('--seconds <s>', 'measured window of a run').env('BENCH_SECONDS').argParser(number).default(2))
    .addOption(new Option('--latency-seconds <s>', 'measured window of a latency run').env('BENCH_LATENCY_SECONDS').argParser(number).default(5))
    .addOption(new Option('--warmup <s>', 'warm-up before the window').env('BENCH_WARMUP').argParser(number).default(0.5))
    .addOption(new Option('--targets <list>', `brokers, some of ${ALL_TARGETS.join(',')} (default: all)`).env('BENCH_TARGETS').argParser(targetList))
    .addOption(new Option('--scenarios <list>', SCENARIO_HELP).env('BENCH_SCENARIOS').argParser(list))
    .addOption(new Option('--replay-mb <n>', 'size of the replayed channel, MiB').env('BENCH_REPLAY_MB').argParser(number).default(1024))
    .addOption(new Option('--replay-size <bytes>', 'message size in the replayed channel').env('BENCH_REPLAY_SIZE').argParser(whole(8)).default(1024))
    .addOption(new Option('--window-bytes <bytes>', 'end-to-end bytes in flight in a throughput run').env('BENCH_WINDOW').argParser(number).default(1 << 20))
    .addOption(new Option('--ack-window <n>', 'unacknowledged durable publishes in flight').env('BENCH_ACK_WINDOW').argParser(whole(1)).default(4096))
    .addOption(new Option('--out <dir>', 'where <date>.json, latest.json and latest.md go').env('BENCH_OUT').default(path.join(ROOT, 'bench', 'results'), 'bench/results'))
    .addOption(
      new Option('--baseline <dir>', 'another fluctuat checkout, built (npm ci, npm run build): run beside this tree, file and memory storage, in every pass, with a ratio column ÷ baseline')
        .env('BENCH_BASELINE')
        .argParser(checkout),
    )
    .addOption(new Option('--profile <dir>', 'run every fluctuat broker under --cpu-prof into <dir>, print the top self-time functions and draw a flame graph of each').env('BENCH_PROFILE'))
    .addOption(
      new Option('--pin', 'brokers on every CPU but the last, the load generator on the last (taskset; running peers are moved and put back) (env: BENCH_PIN=1)'),
    )
    // Not .env(): commander turns a boolean on whenever its variable is set, BENCH_DOC=0 too.
    .addOption(new Option('--doc', 'also rewrite the results section of docs/performance.md (env: BENCH_DOC=1)'))
    .addOption(new Option('--render <json>', 'measure nothing: print the tables of a saved run (bench/results/<date>.json), and with --doc write them into docs/performance.md'))
    .addHelpText(
      'after',
      '\nExperiments: BENCH_FLUCTUAT_ARGS (extra serve flags), BENCH_FLUCTUAT_NODE_ARGS (Node flags), BENCH_FLUCTUAT_OUTPUT (a file for the brokers\' output).\n' +
        'Examples:\n  npm run bench -- --scenarios tput-1x1,lat-20k --targets fluctuat,nats\n  npm run bench -- --runs 5 --doc',
    )
    .showHelpAfterError('(npm run bench -- --help for every option)')
    .parse(argv, { from: 'user' });
  const o = program.opts<{
    runs: number;
    seconds: number;
    latencySeconds: number;
    warmup: number;
    targets?: TargetName[];
    scenarios?: string[];
    replayMb: number;
    replaySize: number;
    windowBytes: number;
    ackWindow: number;
    out: string;
    profile?: string;
    baseline?: string;
    pin?: boolean;
    doc?: boolean;
    render?: string;
  }>();
  return {
    runs: o.runs,
    seconds: o.seconds,
    latencySeconds: o.latencySeconds,
    warmup: o.warmup,
    // With a baseline, each fluctuat target is followed by its twin: the two builds alternate.
    targets: ((t: TargetName[]) => (o.baseline ? withBaseline(t) : t))(o.targets?.length ? o.targets : [...ALL_TARGETS]),
    scenarios: o.scenarios ?? [],
    replayMb: o.replayMb,
    replaySize: o.replaySize,
    windowBytes: o.windowBytes,
    ackWindow: o.ackWindow,
    out: path.resolve(o.out),
    profileDir: o.profile ? path.resolve(o.profile) : undefined,
    baseline: o.baseline,
    pin: o.pin === true || process.env.BENCH_PIN === '1',
    doc: o.doc === true || process.env.BENCH_DOC === '1',
    ...(o.render !== undefined ? { render: path.resolve(o.render) } : {}),
  };
}

/** What a run writes to <date>.json, as far as the tables and their header need it. */
interface SavedRun {
  date: string;
  command: string;
  machine: { cores: number; cpu: string; node: string; loadavgStart: number[]; loadavgEnd: number[] };
  brokers: Record<string, { label: string; version: string }>;
  leftOut: Record<string, string>;
  pinning: string;
  scenarios: { id: string }[];
  cells: Cell[];
}

/** The lines above the Markdown tables, in latest.md and docs/performance.md. */
function resultHeader(run: SavedRun): string {
  const m = run.machine;
  // A version is known for peers only (fluctuat is 'this tree', an unknown peer '?').
  const named = Object.values(run.brokers).map((b) => (b.version === 'this tree' || b.version === '?' ? b.label : `${b.label} ${b.version}`));
  const down = Object.entries(run.leftOut);
  return [
    `Measured ${run.date} with \`${run.command}\` on ${m.cores} cores (${m.cpu}), node ${m.node}; load average ${m.loadavgStart.join(' ')} at the start, ${m.loadavgEnd.join(' ')} at the end.`,
    `Brokers: ${named.join(', ')}.${down.length ? ` Left out: ${down.map(([t, w]) => `${t} (${w})`).join(', ')}.` : ''} Pinning: ${run.pinning}.`,
    `Latency cells are p50/p99/p99.9 in µs. Each figure is the median of the runs in the last column.`,
    '',
  ].join('\n');
}

/** Replaces the section between docs/performance.md's bench:results markers. */
function rewriteDoc(header: string, markdown: string): void {
  const doc = path.join(ROOT, 'docs', 'performance.md');
  const text = fs.readFileSync(doc, 'utf8');
  const a = text.indexOf('<!-- bench:results:start -->');
  const b = text.indexOf('<!-- bench:results:end -->');
  if (a < 0 || b < a) {
    console.log('docs/performance.md has no bench:results markers; not rewritten');
    return;
  }
  fs.writeFileSync(doc, text.slice(0, a) + '<!-- bench:results:start -->\n' + header + '\n' + markdown + '\n' + text.slice(b));
  console.log('docs/performance.md: results section rewritten');
}

/** `--render`: the tables of a saved run, without measuring anything. */
function renderSaved(file: string, doc: boolean): void {
  const run = JSON.parse(fs.readFileSync(file, 'utf8')) as SavedRun;
  if (!Array.isArray(run.cells) || !Array.isArray(run.scenarios) || typeof run.brokers !== 'object') throw new Error(`${file} is not a saved benchmark run`);
  const ids = run.scenarios.map((s) => s.id);
  const known = selectScenarios(ids);
  const unknown = ids.filter((id) => !known.some((s) => s.id === id));
  if (unknown.length) throw new Error(`${file} has scenarios this tree does not know: ${unknown.join(', ')}`);
  const targets = Object.keys(run.brokers) as TargetName[];
  const { text, markdown } = tables(known, run.cells, targets);
  const header = resultHeader(run);
  console.log(header);
  console.log(text);
  if (doc) rewriteDoc(header, markdown);
}

/** The exact command, as typed: BENCH_* variables, then npm or node with the arguments. */
function commandLine(): string {
  const envs = Object.entries(process.env)
    .filter(([k]) => k.startsWith('BENCH_'))
    .map(([k, v]) => `${k}=${v}`);
  const args = process.argv.slice(2);
  const viaNpm = process.env.npm_lifecycle_event === 'bench';
  const cmd = viaNpm ? ['npm', 'run', 'bench', ...(args.length ? ['--', ...args] : [])] : ['node', path.relative(process.cwd(), process.argv[1]!), ...args];
  return [...envs, ...cmd].join(' ');
}

interface Machine {
  cores: number;
  cpu: string;
  memGiB: number;
  node: string;
  os: string;
  loadavg: number[];
}

function machine(): Machine {
  const cpus = os.cpus();
  return {
    cores: cpus.length,
    cpu: cpus[0]?.model ?? '?',
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    os: `${os.type()} ${os.release()}`,
    loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

async function main(): Promise<void> {
  const opts = options(process.argv.slice(2));
  if (opts.render) {
    renderSaved(opts.render, opts.doc);
    return;
  }
  process.on('SIGINT', () => process.exit(130));
  process.on('SIGTERM', () => process.exit(143));
  const scenarios = selectScenarios(opts.scenarios);
  if (scenarios.length === 0) throw new Error(`no scenario matches ${opts.scenarios.join(',')}`);
  const started = new Date();
  const command = commandLine();
  const m0 = machine();
  console.log(`fluctuat comparative benchmark — ${started.toISOString()}`);
  console.log(`command: ${command}`);
  console.log(`machine: ${m0.cores} cores (${m0.cpu}), ${m0.memGiB} GiB, node ${m0.node}, load average ${m0.loadavg.join(' ')}`);
  console.log(`runs: ${opts.runs} per scenario and broker; ${opts.warmup} s warm-up + ${opts.seconds} s measured; loopback only`);
  // Before any worker thread or broker exists: they inherit this process's CPUs.
  let pinned: Pinning | null = null;
  let pinNote = 'off (the scheduler places brokers and generator threads; --pin to separate them)';
  if (opts.pin) {
    const p = pinGenerator();
    if ('skip' in p) pinNote = `off: --pin was asked for but ${p.skip}`;
    else {
      pinned = p;
      pinNote = `brokers on CPU ${p.brokers}, load generator on CPU ${p.generator}`;
    }
  }

  // Which brokers: peers only if they answer; fluctuat and Aedes are started per run.
  const wanted = opts.targets.filter((t) => scenarios.some((s) => s.targets.includes(t)));
  const peers = new Map<TargetName, Running>();
  const versions: Record<string, string> = {};
  const down: Record<string, string> = {};
  for (const t of wanted) {
    if (isRunningPeer(t)) {
      const p = await probePeer(t);
      if ('down' in p) down[t] = p.down;
      else {
        peers.set(t, p);
        versions[t] = await peerVersion(t, p.endpoint);
      }
    }
  }
  if (wanted.includes('redis-aof')) {
    const v = redisServerVersion();
    if ('down' in v) down['redis-aof'] = v.down;
    else versions['redis-aof'] = v.version;
  }
  if (opts.baseline) versions.baseline = versions['baseline-mem'] = describeCheckout(opts.baseline);
  if (wanted.includes('node-floor')) versions['node-floor'] = process.version;
  if (wanted.includes('aedes')) versions.aedes = await peerVersion('aedes', { proto: 'mqtt', host: '127.0.0.1', port: 0 });
  const targets = wanted.filter((t) => !down[t]);
  for (const [t, why] of Object.entries(down)) console.log(`peer ${LABELS[t as TargetName]} left out: ${why}`);
  if (pinned) {
    for (const [t, p] of peers) {
      const failed = p.pid === null ? 'its process was not found' : pinPeer(p.pid);
      if (failed) pinNote += `; ${LABELS[t]} NOT pinned (${failed})`;
    }
  }
  console.log(`pinning: ${pinNote}`);
  console.log(`brokers: ${targets.map((t) => `${LABELS[t]}${versions[t] ? ' ' + versions[t] : ''}`).join(', ')}`);

  const jetstream = peers.has('nats') ? await hasJetStream(peers.get('nats')!.endpoint.port) : false;
  let tls: TlsSetup | { skip: string } = { skip: 'not needed' };
  if (scenarios.some((s) => s.group === 'tls')) {
    tls = await detectTls();
    if ('skip' in tls) console.log(`TLS scenarios skipped: ${tls.skip}`);
  }
  if (opts.profileDir) {
    fs.mkdirSync(opts.profileDir, { recursive: true });
    // Profiles of this run only, and no flame graph of an earlier run's profile.
    const old = fs.readdirSync(opts.profileDir).filter((f) => f.endsWith('.cpuprofile'));
    const stems = new Set(old.map((f) => f.slice(0, -'.cpuprofile'.length)));
    for (const f of fs.readdirSync(opts.profileDir)) {
      if (f.endsWith('.cpuprofile') || (/\.(svg|png)$/.test(f) && stems.has(f.slice(0, -4)))) fs.rmSync(path.join(opts.profileDir, f));
    }
  }

  let replay = null;
  let replayDir: string | null = null;
  if (scenarios.some((s) => s.group === 'replay') && targets.includes('fluctuat')) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fluctuat-bench-replay-'));
    replayDir = dir;
    process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
    process.stdout.write(`writing the replay channel: ${opts.replayMb} MiB of ${opts.replaySize} B messages… `);
    replay = await fillReplay(replayDir, opts);
    console.log(`${replay.messages.toLocaleString('en-US')} messages in ${replay.fillSeconds.toFixed(1)} s (${Math.round(replay.fillRate).toLocaleString('en-US')} acked msgs/s)`);
  }

  const outcomes = new Map<string, Outcome[]>();
  const failures = new Map<string, string[]>();
  const skipped = new Map<string, string>();
  const key = (s: string, t: string): string => `${s}\u0000${t}`;
  try {
    for (let r = 0; r < opts.runs; r++) {
      // Fresh brokers of our own for every run; the peers are what they are.
      const brokers = new Map<TargetName, Running>(peers);
      const own: Running[] = [];
      const needs = (t: TargetName): boolean => targets.includes(t) && scenarios.some((s) => (s.group === 'throughput' || s.group === 'latency' || s.group === 'overload') && s.targets.includes(t));
      try {
        // Bounded disk for the throughput broker: 16 MiB segments, 64 MiB kept per channel.
        const retention = ['--segment-size', '16m', '--retain-bytes', '64m'];
        const start = (t: TargetName): Promise<Running> => {
          const root = t === 'baseline' || t === 'baseline-mem' ? opts.baseline : undefined;
          if (t === 'aedes') return startAedes();
          if (t === 'redis-aof') return startRedisAof('interval');
          if (t === 'node-floor') return startNodeFloor();
          if (t === 'fluctuat' || t === 'baseline') return startFluctuat({ storage: 'file', extra: retention, profileDir: opts.profileDir, root });
          if (t === 'fluctuat-block') return startFluctuat({ storage: 'memory', extra: ['--slow-consumer', 'block'], profileDir: opts.profileDir });
          if (t === 'fluctuat-file-block') return startFluctuat({ storage: 'file', extra: [...retention, '--slow-consumer', 'block'], profileDir: opts.profileDir });
          return startFluctuat({ storage: 'memory', profileDir: opts.profileDir, root });
        };
        for (const t of targets) {
          if (!isRunningPeer(t) && needs(t)) own.push(brokers.set(t, await start(t)).get(t)!);
        }
        const ctx: RunContext = { opts, run: r, brokers, tls, replay, jetstream };
        for (const s of scenarios) {
          for (const t of r % 2 === 1 ? twinsSwapped(targets) : targets) {
            if (!s.targets.includes(t)) continue;
            const k = key(s.id, t);
            const why = s.skip?.(t, ctx) ?? null;
            if (why) {
              skipped.set(k, why);
              continue;
            }
            process.stdout.write(`run ${r + 1}/${opts.runs}  ${s.id.padEnd(16)} ${LABELS[t].padEnd(13)} `);
            try {
              const o: Outcome = { ...(await s.measure(t, ctx)), pass: r };
              (outcomes.get(k) ?? outcomes.set(k, []).get(k)!).push(o);
              const fig = o.latency ? `p50 ${o.latency.p50} µs, p99 ${o.latency.p99} µs, p99.9 ${o.latency.p999} µs (${Math.round(o.rate)} msgs/s)` : `${Math.round(o.rate).toLocaleString('en-US')} ${s.unit}`;
              const extra = [o.lost ? `lost ${o.lost}` : '', o.drops ? `drops ${o.drops}` : '', o.errors ? `errors ${o.errors}: ${o.errorSamples[0]}` : ''].filter(Boolean).join(', ');
              console.log(`${fig}  gen ${Math.round(o.generatorCpu * 100)}% broker ${o.brokerCpu === null ? '?' : Math.round(o.brokerCpu * 100) + '%'}${extra ? '  ' + extra : ''}`);
            } catch (err) {
              const msg = (err as Error).message.split('\n')[0]!;
              (failures.get(k) ?? failures.set(k, []).get(k)!).push(msg);
              console.log(`FAILED: ${msg}`);
              const b = brokers.get(t);
              // A broker of ours that died is restarted, so one failure does not void the rest.
              if (b && own.includes(b) && b.pid !== null && !isAlive(b.pid)) {
                console.log(`  ${LABELS[t]} died; stderr: ${b.stderr?.().slice(-500)}`);
                const fresh = await start(t);
                own.push(fresh);
                brokers.set(t, fresh);
              }
            }
          }
        }
      } finally {
        for (const b of own) await b.stop();
      }
    }
  } finally {
    if (replayDir) fs.rmSync(replayDir, { recursive: true, force: true });
    restoreAll();
  }

  const cells: Cell[] = [];
  for (const s of scenarios) {
    for (const t of targets) {
      if (!s.targets.includes(t)) continue;
      const k = key(s.id, t);
      cells.push(summarise(s, t, outcomes.get(k) ?? [], failures.get(k) ?? [], skipped.get(k)));
    }
  }
  const finished = new Date();
  const { text, markdown } = tables(scenarios, cells, targets);
  console.log('');
  console.log(text);
  const m1 = machine();
  console.log('');
  console.log(`done in ${((finished.getTime() - started.getTime()) / 60000).toFixed(1)} min; load average at the end ${m1.loadavg.join(' ')}`);

  const result = {
    date: started.toISOString(),
    finished: finished.toISOString(),
    command,
    machine: { ...m0, loadavgStart: m0.loadavg, loadavgEnd: m1.loadavg },
    options: { ...opts, out: path.relative(ROOT, opts.out) },
    brokers: Object.fromEntries(targets.map((t) => [t, { label: LABELS[t], version: versions[t] ?? (t.startsWith('fluctuat') ? 'this tree' : '?') }])),
    leftOut: down,
    pinning: pinNote,
    tls: 'skip' in tls ? { skipped: tls.skip } : { enabled: true },
    replay: replay ? { messages: replay.messages, bytes: replay.bytes, messageSize: opts.replaySize, fillSeconds: replay.fillSeconds, fillRate: replay.fillRate } : null,
    scenarios: scenarios.map((s) => ({ id: s.id, group: s.group, title: s.title, unit: s.unit, better: s.better })),
    cells,
  };
  fs.mkdirSync(opts.out, { recursive: true });
  const stamp = started.toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z');
  const json = JSON.stringify(result, null, 1) + '\n';
  fs.writeFileSync(path.join(opts.out, `${stamp}.json`), json);
  fs.writeFileSync(path.join(opts.out, 'latest.json'), json);
  const header = resultHeader(result);
  fs.writeFileSync(path.join(opts.out, 'latest.md'), header + '\n' + markdown + '\n');
  console.log(`results: ${path.relative(process.cwd(), path.join(opts.out, `${stamp}.json`))}, latest.json, latest.md`);
  if (opts.doc) rewriteDoc(header, markdown);
  if (opts.profileDir) {
    console.log('');
    const summary = summariseProfiles(opts.profileDir, 25);
    console.log(summary);
    const flames = await flameGraphs(opts.profileDir);
    const listed = flames.length ? `flame graphs:\n${flames.map((f) => `  ${shortPath(f)}`).join('\n')}` : 'flame graphs: none (no profile served connections)';
    console.log(listed);
    fs.writeFileSync(path.join(opts.out, 'profile-summary.txt'), `${command}\n${started.toISOString()}\n\n${summary}\n\n${listed}\n`);
  }
}

/** Relative to the working directory if under it, else absolute. */
function shortPath(f: string): string {
  const rel = path.relative(process.cwd(), f);
  return rel.startsWith('..') || path.isAbsolute(rel) ? path.resolve(f) : rel;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
