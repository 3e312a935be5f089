/**
 * The brokers under test. fluctuat and Aedes are child processes this benchmark starts on free
 * loopback ports (and stops); NATS, Redis and Mosquitto are used only if they already answer on
 * their usual local ports, and are never started, configured or stopped from here. The durable
 * peer Redis AOF is a `redis-server` of our own (when one is installed), started per run with
 * an append-only file in a temporary directory, since the local Redis's persistence is not ours
 * to change.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Conn, type Endpoint } from './conn.js';
import { pidListeningOn } from './proc.js';
import { onBrokerCpus } from './pin.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/**
 * fluctuat-block: memory storage with `--slow-consumer block`, in the overload scenarios only.
 * fluctuat-file-block: file storage with the throughput broker's retention and `--slow-consumer
 * block` (publishers held before retention overtakes a subscriber), in the overload scenarios only.
 * baseline, baseline-mem: another build of fluctuat (`--baseline DIR`), file and memory storage,
 * run next to this tree's in every pass so that each pass's ratio compares the two builds.
 * redis-aof: Redis with an append-only file and a stream (XADD, XREAD), in the throughput, latency
 * and durable scenarios.
 * node-floor: the least a Node.js broker of fluctuat's protocol can do (bench/peers/node-floor.ts),
 * in the latency scenarios: how much of a latency is Node's.
 */
export type TargetName = 'fluctuat' | 'fluctuat-mem' | 'fluctuat-block' | 'fluctuat-file-block' | 'baseline' | 'baseline-mem' | 'nats' | 'redis' | 'redis-aof' | 'mosquitto' | 'aedes' | 'node-floor';
export const ALL_TARGETS: readonly TargetName[] = ['fluctuat', 'fluctuat-mem', 'fluctuat-block', 'fluctuat-file-block', 'nats', 'redis', 'redis-aof', 'mosquitto', 'aedes', 'node-floor'];
export const LABELS: Record<TargetName, string> = {
  fluctuat: 'fluctuat',
  'fluctuat-mem': 'fluctuat mem',
  'fluctuat-block': 'fluctuat block',
  'fluctuat-file-block': 'file block',
  baseline: 'baseline',
  'baseline-mem': 'baseline mem',
  nats: 'NATS',
  redis: 'Redis',
  'redis-aof': 'Redis AOF',
  mosquitto: 'Mosquitto',
  aedes: 'Aedes',
  'node-floor': 'Node floor',
};

/** This tree's targets and the baseline build's twin of each. */
export const BASELINE_TWIN: Partial<Record<TargetName, TargetName>> = { fluctuat: 'baseline', 'fluctuat-mem': 'baseline-mem' };

/** `targets` with each target's baseline twin right after it. */
export function withBaseline(targets: readonly TargetName[]): TargetName[] {
  return targets.flatMap((t) => (BASELINE_TWIN[t] ? [t, BASELINE_TWIN[t]!] : [t]));
}

export interface Running {
  name: string;
  endpoint: Endpoint;
  pid: number | null;
  /** Stop it if we started it (no-op for peers). */
  stop(): Promise<void>;
  /** fluctuat: its data directory. */
  dataDir?: string;
  /** What the broker printed on stderr (fluctuat, Aedes): kept for the report if it fails. */
  stderr?: () => string;
}

export interface FluctuatOptions {
  storage: 'file' | 'memory';
  fsync?: 'always' | 'interval' | 'never';
  dataDir?: string;
  /** Extra `serve` arguments (retention, limits, TLS listeners). */
  extra?: string[];
  /** Write a V8 CPU profile of the broker into this directory. */
  profileDir?: string | undefined;
  tls?: Endpoint['tls'];
  /** The checkout whose bin/fluctuat.js runs (default: this tree; `--baseline` gives another). */
  root?: string | undefined;
}

/** Every child this benchmark started: killed if the benchmark itself dies. */
const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();
process.once('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
});

function track(proc: ChildProcess): ChildProcess {
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
  return proc;
}

function capture(proc: ChildProcess): () => string {
  let text = '';
  proc.stderr?.on('data', (d: Buffer) => {
    text = (text + d.toString()).slice(-4000);
  });
  return () => text;
}

async function stopChild(proc: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    proc.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    proc.kill(signal);
  });
}

/** Start `fluctuat serve` on a free loopback port; resolves once it is listening. */
export async function startFluctuat(o: FluctuatOptions): Promise<Running> {
  const own = o.dataDir === undefined;
  const dir = o.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'fluctuat-bench-'));
  if (own) tempDirs.add(dir);
  const listen = o.extra?.includes('--listen') || o.extra?.includes('--config') ? [] : ['--listen', '127.0.0.1:0'];
  const args = [
    ...(o.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${o.profileDir}`] : []),
    // Ad-hoc experiments: Node flags for every fluctuat (and, through fork, its broker child).
    ...(process.env.BENCH_FLUCTUAT_NODE_ARGS?.split(/\s+/).filter(Boolean) ?? []),
    path.join(o.root ?? ROOT, 'bin/fluctuat.js'),
    'serve',
    ...listen,
    '--data',
    dir,
    '--storage',
    o.storage,
    '--fsync',
    o.fsync ?? 'interval',
    '--max-payload',
    '1m',
    ...(o.extra ?? []),
    // Ad-hoc experiments: extra serve flags for every fluctuat this benchmark starts.
    ...(process.env.BENCH_FLUCTUAT_ARGS?.split(/\s+/).filter(Boolean) ?? []),
  ];
  // `serve` forks its network-facing broker as an unprivileged child, which inherits the
  // --cpu-prof flags (fork passes execArgv on): the directory must be writable by its user.
  if (o.profileDir) {
    fs.mkdirSync(o.profileDir, { recursive: true });
    fs.chmodSync(o.profileDir, 0o777);
  }
  const proc = track(spawn(...onBrokerCpus(process.execPath, args), { stdio: ['ignore', 'pipe', 'pipe'] }));
  const stderr = capture(proc);
  const port = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`fluctuat did not start in 20 s: ${stderr()}`)), 20_000);
    proc.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`fluctuat exited with ${code}: ${stderr()}`));
    });
    readline.createInterface({ input: proc.stdout! }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; port?: number };
        if (entry.msg === 'listening') {
          clearTimeout(t);
          resolve(entry.port!);
        }
      } catch {
        // Not a log entry: what a Node flag printed (--trace-gc), kept on request.
        if (process.env.BENCH_FLUCTUAT_OUTPUT) fs.appendFileSync(process.env.BENCH_FLUCTUAT_OUTPUT, line + '\n');
      }
    });
  });
  proc.removeAllListeners('exit');
  return {
    name: 'fluctuat',
    endpoint: { proto: 'fluctuat', host: '127.0.0.1', port, ...(o.tls ? { tls: o.tls } : {}) },
    pid: proc.pid ?? null,
    dataDir: dir,
    stderr,
    stop: async () => {
      await stopChild(proc);
      if (own) {
        fs.rmSync(dir, { recursive: true, force: true });
        tempDirs.delete(dir);
      }
    },
  };
}

/** Start Aedes (the Node.js MQTT broker) in a child process on a free port. */
export function startAedes(): Promise<Running> {
  return startNodePeer('aedes', 'mqtt');
}

/** Start the Node floor (bench/peers/node-floor.ts) in a child process on a free port. */
export function startNodeFloor(): Promise<Running> {
  return startNodePeer('node-floor', 'fluctuat');
}

/** A peer of ours written for Node (dist/bench/peers/<name>.js), which prints {"port":N} once it listens. */
async function startNodePeer(name: string, proto: Endpoint['proto']): Promise<Running> {
  const proc = track(spawn(...onBrokerCpus(process.execPath, [path.join(ROOT, `dist/bench/peers/${name}.js`)]), { stdio: ['ignore', 'pipe', 'pipe'] }));
  const stderr = capture(proc);
  const port = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${name} did not start: ${stderr()}`)), 20_000);
    proc.once('exit', (code) => reject(new Error(`${name} exited with ${code}: ${stderr()}`)));
    readline.createInterface({ input: proc.stdout! }).once('line', (line) => {
      clearTimeout(t);
      resolve((JSON.parse(line) as { port: number }).port);
    });
  });
  proc.removeAllListeners('exit');
  return { name, endpoint: { proto, host: '127.0.0.1', port }, pid: proc.pid ?? null, stderr, stop: () => stopChild(proc) };
}

/** fluctuat's `--fsync` policies and the `appendfsync` setting that promises the same. */
export const APPENDFSYNC = { always: 'always', interval: 'everysec', never: 'no' } as const;

/** The installed `redis-server`'s version, or why there is none (the Redis AOF peer is then left out). */
export function redisServerVersion(): { version: string } | { down: string } {
  try {
    const out = execFileSync('redis-server', ['--version'], { encoding: 'utf8', timeout: 5000 });
    return { version: /v=(\S+)/.exec(out)?.[1] ?? '?' };
  } catch (err) {
    return { down: `redis-server cannot be run here (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` };
  }
}

/** A loopback port nothing listens on now (redis-server needs a number; port 0 turns TCP off). */
async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve, reject) => srv.once('error', reject).listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/**
 * A `redis-server` of our own with an append-only file under `appendfsync` in a fresh temporary
 * directory, no snapshots: an XADD's reply then means what an ACK under the matching `--fsync`
 * policy means (written for `everysec` and `no`, on disk for `always`).
 */
export async function startRedisAof(fsync: keyof typeof APPENDFSYNC): Promise<Running> {
  // The free port is free when asked, not necessarily when redis-server binds it: another go.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startRedisAofOnce(fsync);
    } catch (err) {
      if (attempt === 3 || !/Address already in use/.test((err as Error).message)) throw err;
    }
  }
}

async function startRedisAofOnce(fsync: keyof typeof APPENDFSYNC): Promise<Running> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fluctuat-bench-redis-'));
  tempDirs.add(dir);
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes', '--appendfsync', APPENDFSYNC[fsync], '--protected-mode', 'yes', '--daemonize', 'no'];
  const proc = track(spawn(...onBrokerCpus('redis-server', args), { stdio: ['ignore', 'pipe', 'pipe'] }));
  let output = '';
  for (const s of [proc.stdout!, proc.stderr!]) s.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
  const endpoint: Endpoint = { proto: 'redis', host: '127.0.0.1', port, stream: true };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc.exitCode !== null) {
      fs.rmSync(dir, { recursive: true, force: true });
      tempDirs.delete(dir);
      throw new Error(`redis-server exited with ${proc.exitCode}: ${output}`);
    }
    try {
      (await Conn.open(endpoint, 'bench.probe', 1000)).close();
      break;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`redis-server did not answer on ${port} in 20 s: ${(err as Error).message} ${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    name: 'redis-aof',
    endpoint,
    pid: proc.pid ?? null,
    dataDir: dir,
    stderr: () => output,
    stop: async () => {
      await stopChild(proc);
      fs.rmSync(dir, { recursive: true, force: true });
      tempDirs.delete(dir);
    },
  };
}

const PEER_PORTS = { nats: 4222, redis: 6379, mosquitto: 1883 } as const;
export type RunningPeer = keyof typeof PEER_PORTS;

/** Whether `t` is a peer already running on its usual port (probed, never started here). */
export function isRunningPeer(t: TargetName): t is RunningPeer {
  return t in PEER_PORTS;
}

/** A peer already running on its usual port, if it answers its own protocol's handshake. */
export async function probePeer(name: RunningPeer): Promise<Running | { name: string; down: string }> {
  const endpoint: Endpoint = { proto: name === 'mosquitto' ? 'mqtt' : name, host: '127.0.0.1', port: PEER_PORTS[name] };
  const reachable = await new Promise<boolean>((resolve) => {
    const s = net.connect(endpoint.port, endpoint.host);
    s.setTimeout(1000, () => (s.destroy(), resolve(false)));
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
  if (!reachable) return { name, down: `nothing answers on 127.0.0.1:${endpoint.port}` };
  try {
    const c = await Conn.open(endpoint, 'bench.probe', 3000);
    c.close();
  } catch (err) {
    return { name, down: `127.0.0.1:${endpoint.port} does not speak ${endpoint.proto}: ${(err as Error).message}` };
  }
  return { name, endpoint, pid: pidListeningOn(endpoint.port), stop: async () => {} };
}

/** The version a peer reports, for the record. */
export async function peerVersion(name: string, ep: Endpoint): Promise<string> {
  const ask = (payload: string, until: (s: string) => boolean): Promise<string> =>
    new Promise((resolve) => {
      let text = '';
      const s = net.connect(ep.port, ep.host, () => s.write(payload));
      s.setTimeout(2000, () => (s.destroy(), resolve(text)));
      s.on('data', (d) => {
        text += d.toString('latin1');
        if (until(text)) (s.destroy(), resolve(text));
      });
      s.on('error', () => resolve(text));
    });
  if (name === 'nats') {
    const t = await ask('', (s) => s.includes('\r\n'));
    return /"version":"([^"]+)"/.exec(t)?.[1] ?? '?';
  }
  if (name === 'redis') {
    const t = await ask('*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n', (s) => s.includes('redis_version') && s.includes('\r\n', s.indexOf('redis_version')));
    return /redis_version:([^\r\n]+)/.exec(t)?.[1] ?? '?';
  }
  if (name === 'aedes') {
    try {
      return (JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules/aedes/package.json'), 'utf8')) as { version: string }).version;
    } catch {
      return '?';
    }
  }
  if (name === 'mosquitto') {
    // $SYS/broker/version, if the broker publishes $SYS topics.
    try {
      const c = await Conn.open(ep, '$SYS/broker/version', 2000);
      let v = '?';
      c.reader.onPayload = (buf, start, len) => {
        v = buf.toString('utf8', start, start + len);
      };
      await c.subscribe();
      await new Promise((r) => setTimeout(r, 300));
      c.close();
      return v.replace(/^mosquitto version /, '');
    } catch {
      return '?';
    }
  }
  return '?';
}
