/**
 * A fleet of probes started by this process, in worker threads or in child processes (the
 * mode is a flag: the same host-entry.js runs either way), or inline in this thread.
 * `add(n)` grows it (the torture test's waves), `stop()` makes every probe leave cleanly.
 * A worker that dies without saying `stopped` has its probes announced `gone` on the
 * presence channel by the fleet's own connection.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { connect, type Client, type ConnectOptions } from '../client/index.js';
import { startProbeGroup, type FromHost, type HostConfig, type ProbeGroup, type ToHost } from './host.js';
import { channels, checkRoot, DEFAULT_ROOT, PROTOCOL_VERSION, type Presence, type ProbeMode } from './protocol.js';

export interface FleetOptions {
  url: string;
  /** Client options of every probe and of the fleet's own connection (TLS, for one). */
  client?: Omit<ConnectOptions, 'name'>;
  mode: ProbeMode;
  root?: string;
  kinds?: readonly string[];
  labels?: Readonly<Record<string, string>>;
  heartbeatMs?: number;
  concurrency?: number;
  kindModules?: readonly string[];
  /** Probes per worker thread or child process (default 1). */
  perWorker?: number;
  /** Workers started at the same time (default 2 × CPUs). */
  startConcurrency?: number;
  /** How long a worker may take to start its probes (default 60 s). */
  startTimeoutMs?: number;
}

export interface WorkerExit {
  readonly worker: number;
  /** Exit code, or the signal that ended a child process. */
  readonly code: number | string | null;
  readonly expected: boolean;
  readonly probes: readonly Presence[];
}

interface FleetEvents {
  exit: [WorkerExit];
  gone: [probes: readonly Presence[], reason: string];
}

/** What the fleet needs from a worker thread, a child process or an inline group. */
interface Handle {
  readonly n: number;
  probes: Presence[];
  stopping: boolean;
  stoppedCleanly: boolean;
  onMessage: (msg: FromHost) => void;
  send(msg: ToHost): void;
  kill(): void;
  readonly exited: Promise<number | string | null>;
}

const HOST_ENTRY = fileURLToPath(new URL('./host-entry.js', import.meta.url));

export class Fleet extends EventEmitter<FleetEvents> {
  private readonly handles = new Map<number, Handle>();
  private nextWorker = 0;
  private nextIndex = 0;
  private notifier: Promise<Client> | undefined;
  private readonly root: string;

  constructor(private readonly o: FleetOptions) {
    super();
    this.root = checkRoot(o.root ?? DEFAULT_ROOT);
  }

  /** Every probe up now. */
  get probes(): Presence[] {
    return [...this.handles.values()].flatMap((h) => h.probes);
  }

  get workers(): number {
    return this.handles.size;
  }

  /** Start `count` more probes; resolves with their presence once every one is subscribed. */
  async add(count: number): Promise<Presence[]> {
    const per = Math.max(1, this.o.perWorker ?? 1);
    const sizes: number[] = [];
    for (let left = count; left > 0; left -= per) sizes.push(Math.min(per, left));
    const started: Presence[] = [];
    const limit = Math.max(1, this.o.startConcurrency ?? 2 * os.cpus().length);
    let next = 0;
    let failure: Error | undefined;
    const lane = async (): Promise<void> => {
      while (next < sizes.length && !failure) {
        const size = sizes[next++]!;
        try {
          started.push(...(await this.startWorker(size)));
        } catch (err) {
          failure ??= err as Error;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(limit, sizes.length) }, lane));
    if (failure) throw failure;
    return started;
  }

  private async startWorker(count: number): Promise<Presence[]> {
    const n = this.nextWorker++;
    const config: HostConfig = {
      url: this.o.url,
      ...(this.o.client === undefined ? {} : { client: this.o.client }),
      root: this.root,
      mode: this.o.mode,
      count,
      firstIndex: this.nextIndex,
      ...(this.o.kinds === undefined ? {} : { kinds: this.o.kinds }),
      ...(this.o.labels === undefined ? {} : { labels: this.o.labels }),
      ...(this.o.heartbeatMs === undefined ? {} : { heartbeatMs: this.o.heartbeatMs }),
      ...(this.o.concurrency === undefined ? {} : { concurrency: this.o.concurrency }),
      ...(this.o.kindModules === undefined ? {} : { kindModules: this.o.kindModules }),
    };
    this.nextIndex += count;
    const handle = this.o.mode === 'inline' ? inlineHandle(n, config) : spawnHandle(n, this.o.mode, config);
    this.handles.set(n, handle);
    const timeoutMs = this.o.startTimeoutMs ?? 60_000;
    const ready = await new Promise<Presence[] | Error>((resolve) => {
      const timer = setTimeout(() => resolve(new Error(`probe worker ${n} did not start within ${timeoutMs} ms`)), timeoutMs);
      handle.onMessage = (msg) => {
        if (msg.type === 'ready') {
          clearTimeout(timer);
          resolve(msg.probes);
        } else if (msg.type === 'failed') {
          clearTimeout(timer);
          resolve(new Error(`probe worker ${n} failed to start: ${msg.message}`));
        } else if (msg.type === 'stopped') {
          handle.stoppedCleanly = true;
        }
      };
      void handle.exited.then((code) => {
        clearTimeout(timer);
        resolve(new Error(`probe worker ${n} exited with ${code} before its probes were up`));
      });
    });
    void handle.exited.then((code) => this.onExit(handle, code));
    if (ready instanceof Error) {
      handle.stopping = true;
      handle.kill();
      await handle.exited;
      throw ready;
    }
    handle.probes = ready;
    return ready;
  }

  private onExit(handle: Handle, code: number | string | null): void {
    this.handles.delete(handle.n);
    const expected = handle.stopping && handle.stoppedCleanly;
    this.emit('exit', { worker: handle.n, code, expected, probes: handle.probes });
    if (!expected && handle.probes.length > 0) {
      const reason = handle.stopping ? 'killed after stop timeout' : typeof code === 'string' ? `worker killed by ${code}` : `worker exited with ${code}`;
      this.emit('gone', handle.probes, reason);
      void this.announceGone(handle.probes, reason);
    }
  }

  /** Say `gone` on the presence channel for probes whose worker died. */
  private async announceGone(probes: readonly Presence[], reason: string): Promise<void> {
    try {
      this.notifier ??= connect(this.o.url, { ...this.o.client, name: `fleet-${process.pid.toString(36)}`, reconnect: false });
      const client = await this.notifier;
      await Promise.all(probes.map((p) => client.publish(channels.presence(this.root), JSON.stringify({ ...p, v: PROTOCOL_VERSION, event: 'gone', wallMs: Date.now(), reason }))));
    } catch {
      // the broker is away: expiry by last-seen marks them gone
    }
  }

  /** Ask every worker to stop its probes; kill those that do not within `timeoutMs`. */
  async stop(reason = 'stopped', timeoutMs = 15_000): Promise<void> {
    const handles = [...this.handles.values()];
    for (const h of handles) {
      h.stopping = true;
      h.send({ type: 'stop', reason });
    }
    await Promise.all(
      handles.map(async (h) => {
        const timer = setTimeout(() => h.kill(), timeoutMs);
        await h.exited;
        clearTimeout(timer);
      }),
    );
    if (this.notifier) {
      const n = this.notifier;
      this.notifier = undefined;
      await n.then((c) => c.close()).catch(() => {});
    }
  }

  /** Kill one worker without warning (tests of the `gone` path). */
  killWorker(n: number): boolean {
    const h = this.handles.get(n);
    if (!h) return false;
    h.kill();
    return true;
  }
}

function spawnHandle(n: number, mode: 'thread' | 'process', config: HostConfig): Handle {
  let exit!: (code: number | string | null) => void;
  const exited = new Promise<number | string | null>((resolve) => (exit = resolve));
  const handle: Handle = {
    n,
    probes: [],
    stopping: false,
    stoppedCleanly: false,
    onMessage: () => {},
    send: () => {},
    kill: () => {},
    exited,
  };
  if (mode === 'thread') {
    const worker = new Worker(HOST_ENTRY);
    worker.on('message', (msg: FromHost) => handle.onMessage(msg));
    worker.on('error', () => {}); // its exit follows
    worker.once('exit', (code) => exit(code));
    handle.send = (msg) => worker.postMessage(msg);
    handle.kill = () => void worker.terminate();
  } else {
    const child: ChildProcess = fork(HOST_ENTRY, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'json' });
    child.on('message', (msg) => handle.onMessage(msg as FromHost));
    child.on('error', () => {});
    child.once('exit', (code, signal) => exit(code ?? signal));
    handle.send = (msg) => {
      if (child.connected) child.send(msg);
    };
    handle.kill = () => void child.kill('SIGKILL');
  }
  handle.send({ type: 'start', config });
  return handle;
}

function inlineHandle(n: number, config: HostConfig): Handle {
  let exit!: (code: number | string | null) => void;
  const exited = new Promise<number | string | null>((resolve) => (exit = resolve));
  let group: ProbeGroup | undefined;
  const handle: Handle = {
    n,
    probes: [],
    stopping: false,
    stoppedCleanly: false,
    onMessage: () => {},
    send: (msg) => {
      if (msg.type !== 'stop') return;
      const g = group;
      if (!g) return;
      group = undefined;
      void g.stop(msg.reason).then((stats) => {
        handle.onMessage({ type: 'stopped', stats });
        exit(0);
      });
    },
    kill: () => {
      const g = group;
      group = undefined;
      void g?.stop('killed');
      exit(null);
    },
    exited,
  };
  startProbeGroup(config).then(
    (g) => {
      group = g;
      handle.onMessage({ type: 'ready', probes: g.probes.map((p) => p.presence('up')) });
    },
    (err: unknown) => {
      handle.onMessage({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
      exit(1);
    },
  );
  return handle;
}
