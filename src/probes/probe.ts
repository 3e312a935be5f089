/**
 * One probe: a bus connection that announces itself, joins the queue group of each of its
 * kinds' task channels, listens on its own direct channel and to roll calls, runs tasks and
 * publishes their results on each task's reply channel. The same code runs in the main thread,
 * in a worker thread or in a child process (see host.ts).
 */
import os from 'node:os';
import { threadId } from 'node:worker_threads';
import { connect, type Client, type ConnectOptions, type Message, type Subscription } from '../client/index.js';
import {
  channels,
  checkRoot,
  DEFAULT_ROOT,
  hostToken,
  parseTask,
  probeId,
  PROTOCOL_VERSION,
  type Presence,
  type PresenceEvent,
  type ProbeMode,
  type Task,
  type TaskResult,
} from './protocol.js';
import { getKind, kindNames, ProbeError, type ProbeContext } from './registry.js';
import { estimateClock, stamp, type Stamp } from './time.js';

export interface ProbeOptions {
  url: string;
  /** Channel root (default `probes`). */
  root?: string;
  /** Kinds this probe runs (default: every registered kind). */
  kinds?: readonly string[];
  labels?: Readonly<Record<string, string>>;
  mode?: ProbeMode;
  /** Heartbeat period, ms (default 5000; 0: none). */
  heartbeatMs?: number;
  /** Tasks run at once (default 64). */
  concurrency?: number;
  /** Tasks waiting past `concurrency` before new ones are refused as `overloaded` (default 10000). */
  maxQueued?: number;
  /** Probe number within its thread or process (part of the id). */
  index?: number;
  id?: string;
  /** Environment for kinds (secrets such as FLUCTUAT_DNS_KEY). Default: process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Extra client options. */
  client?: Omit<ConnectOptions, 'name'>;
}

export interface ProbeStats {
  tasks: number;
  ok: number;
  failed: number;
  overloaded: number;
  /** Results that could not be published (connection closed while answering). */
  unanswered: number;
}

interface Job {
  readonly task: Task;
  readonly msg: Message;
  readonly recv: Stamp;
}

export class Probe {
  readonly stats: ProbeStats = { tasks: 0, ok: 0, failed: 0, overloaded: 0, unanswered: 0 };
  private readonly subs: Subscription[] = [];
  private heartbeat: NodeJS.Timeout | null = null;
  private readonly waiting: Job[] = [];
  private running = 0;
  private idleWaiters: (() => void)[] = [];
  private readonly aborts = new Set<AbortController>();
  private stopping: Promise<void> | null = null;
  /** Recent (round trip, offset) samples; the offset used is the one with the smallest round trip (NTP's clock filter). */
  private readonly clockSamples: { rttMs: number; offsetMs: number }[] = [];

  private constructor(
    readonly id: string,
    readonly client: Client,
    readonly root: string,
    readonly kinds: readonly string[],
    readonly labels: Readonly<Record<string, string>>,
    readonly mode: ProbeMode,
    readonly heartbeatMs: number,
    private readonly concurrency: number,
    private readonly maxQueued: number,
    private readonly env: Readonly<Record<string, string | undefined>>,
  ) {}

  /** Connect, subscribe, and announce `up` once every subscription is confirmed. */
  static async start(o: ProbeOptions): Promise<Probe> {
    const root = checkRoot(o.root ?? DEFAULT_ROOT);
    const kinds = [...(o.kinds ?? kindNames())];
    for (const k of kinds) if (!getKind(k)) throw new ProbeError('bad-params', `unknown probe kind ${JSON.stringify(k)}; known: ${kindNames().join(', ')}`);
    const id = o.id ?? probeId(process.pid, threadId, o.index ?? 0);
    const client = await connect(o.url, { ...o.client, name: id });
    const probe = new Probe(id, client, root, kinds, { ...o.labels }, o.mode ?? 'inline', o.heartbeatMs ?? 5000, Math.max(1, o.concurrency ?? 64), o.maxQueued ?? 10_000, o.env ?? process.env);
    client.on('error', () => {}); // refused frames are answered per call; nothing to print from a probe
    client.on('reconnect', () => void probe.announce('up', 'reconnected'));
    try {
      await probe.subscribeAll();
      for (const sample of (await estimateClock(client, 4)).samples) probe.addClockSample(sample);
      await probe.announce('up');
    } catch (err) {
      await client.close();
      throw err;
    }
    if (probe.heartbeatMs > 0) {
      probe.heartbeat = setInterval(() => {
        client.ping().then((rttMs) => probe.addClockSample({ rttMs, offsetMs: client.clockOffsetMs }), () => {});
        void probe.announce('alive');
      }, probe.heartbeatMs);
    }
    return probe;
  }

  private async subscribeAll(): Promise<void> {
    const onTask = (msg: Message): void => this.onTask(msg);
    for (const kind of this.kinds) this.subs.push(this.client.subscribe(channels.task(this.root, kind), onTask, { queue: kind }));
    this.subs.push(this.client.subscribe(channels.direct(this.root, this.id), onTask));
    this.subs.push(
      this.client.subscribe(channels.rollcall(this.root), (msg) => {
        if (msg.reply !== undefined) msg.respond(JSON.stringify(this.presence('here'))).catch(() => {});
      }),
    );
    await Promise.all(this.subs.map((s) => s.ready));
  }

  private addClockSample(sample: { rttMs: number; offsetMs: number }): void {
    this.clockSamples.push(sample);
    if (this.clockSamples.length > 8) this.clockSamples.shift();
  }

  /** Broker clock minus this probe's wall clock, ms: the sample with the smallest round trip. */
  get offsetMs(): number {
    let best: { rttMs: number; offsetMs: number } | undefined;
    for (const s of this.clockSamples) if (!best || s.rttMs < best.rttMs) best = s;
    return best?.offsetMs ?? this.client.clockOffsetMs;
  }

  presence(event: PresenceEvent, reason?: string): Presence {
    return {
      v: PROTOCOL_VERSION,
      event,
      id: this.id,
      host: hostToken(os.hostname()),
      pid: process.pid,
      threadId,
      mode: this.mode,
      kinds: this.kinds,
      labels: this.labels,
      wallMs: Date.now(),
      heartbeatMs: this.heartbeatMs,
      ...(reason === undefined ? {} : { reason }),
    };
  }

  private async announce(event: PresenceEvent, reason?: string): Promise<void> {
    try {
      await this.client.publish(channels.presence(this.root), JSON.stringify(this.presence(event, reason)));
    } catch {
      // closed or refused: presence is best effort, expiry by last-seen covers it
    }
  }

  private onTask(msg: Message): void {
    const recv = stamp();
    const task = parseTask(msg.text);
    if (typeof task === 'string') {
      if (msg.reply !== undefined) {
        this.reply(msg, { v: PROTOCOL_VERSION, task: '?', probe: this.id, kind: '?', ok: false, error: { reason: 'bad-task', message: task }, t: { brokerUs: msg.time, recv, done: stamp() }, offsetMs: this.offsetMs });
      }
      return;
    }
    this.stats.tasks++;
    const job: Job = { task, msg, recv };
    if (this.stopping || (this.running >= this.concurrency && this.waiting.length >= this.maxQueued)) {
      this.stats.overloaded++;
      this.finish(job, undefined, new ProbeError('overloaded', this.stopping ? `probe ${this.id} is stopping` : `probe ${this.id} has ${this.waiting.length} tasks waiting`));
      return;
    }
    if (this.running < this.concurrency) void this.run(job);
    else this.waiting.push(job);
  }

  private async run(job: Job): Promise<void> {
    this.running++;
    const { task } = job;
    const ac = new AbortController();
    this.aborts.add(ac);
    const timer = setTimeout(() => ac.abort(), task.timeoutMs);
    try {
      const kind = this.kinds.includes(task.kind) ? getKind(task.kind) : undefined;
      if (!kind) throw new ProbeError('unknown-kind', `probe ${this.id} does not run ${JSON.stringify(task.kind)} (it runs ${this.kinds.join(', ')})`);
      const params = kind.parse(task.params as Record<string, unknown>);
      const ctx: ProbeContext = { probeId: this.id, client: this.client, offsetMs: this.offsetMs, signal: ac.signal, timeoutMs: task.timeoutMs, env: this.env };
      const value = await kind.run(params, ctx);
      this.finish(job, value, undefined);
    } catch (err) {
      this.finish(job, undefined, err);
    } finally {
      clearTimeout(timer);
      this.aborts.delete(ac);
      this.running--;
      const next = this.waiting.shift();
      if (next) void this.run(next);
      else if (this.running === 0) for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private finish(job: Job, value: unknown, err: unknown): void {
    const { task, msg, recv } = job;
    const t = { brokerUs: msg.time, recv, done: stamp() };
    let result: TaskResult;
    if (err === undefined) {
      this.stats.ok++;
      result = { v: PROTOCOL_VERSION, task: task.id, probe: this.id, kind: task.kind, ok: true, value, t, offsetMs: this.offsetMs };
    } else {
      this.stats.failed++;
      const e = err instanceof ProbeError ? err : new ProbeError('error', err instanceof Error ? err.message : String(err));
      result = {
        v: PROTOCOL_VERSION,
        task: task.id,
        probe: this.id,
        kind: task.kind,
        ok: false,
        ...(e.value === undefined ? {} : { value: e.value }),
        error: { reason: e.reason, message: e.message },
        t,
        offsetMs: this.offsetMs,
      };
    }
    if (msg.reply !== undefined) this.reply(msg, result);
  }

  private reply(msg: Message, result: TaskResult): void {
    msg.respond(JSON.stringify(result)).catch(() => {
      this.stats.unanswered++;
    });
  }

  /**
   * Leave cleanly: stop taking tasks, let running ones finish (at most `graceMs`), say `down`
   * on the presence channel, close the connection.
   */
  stop(reason = 'stopped', graceMs = 5000): Promise<void> {
    this.stopping ??= (async () => {
      if (this.heartbeat) clearInterval(this.heartbeat);
      this.heartbeat = null;
      await Promise.all(this.subs.map((s) => s.unsubscribe().catch(() => {})));
      for (const job of this.waiting.splice(0)) this.finish(job, undefined, new ProbeError('overloaded', `probe ${this.id} is stopping`));
      if (this.running > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            for (const ac of this.aborts) ac.abort();
            resolve();
          }, graceMs);
          this.idleWaiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      await this.announce('down', reason);
      await this.client.close();
    })();
    return this.stopping;
  }
}
