/**
 * The swarm controller: finds probes (roll call), sends them tasks and gathers the answers
 * (scatter-gather with a deadline). It uses only the public client library.
 *
 * Every task carries its own reply channel `_INBOX.<controller>.<task number>`, so an answer
 * names its task by the channel it arrives on: the controller knows how many answers it
 * expects, which are late (after the deadline), missing or duplicated, and from which probe.
 */
import { randomBytes } from 'node:crypto';
import { connect, type Client, type ConnectOptions, type Message, type Subscription } from '../client/index.js';
import { channels, checkRoot, DEFAULT_ROOT, parsePresence, parseResult, PROTOCOL_VERSION, type Presence, type Selector, type Task, type TaskResult } from '../probes/protocol.js';
import { estimateClock, monoUs, stamp, type ClockEstimate, type Stamp } from '../probes/time.js';

export interface SwarmOptions {
  url: string;
  root?: string;
  /** Client identity (default `swarm-<pid>`). */
  name?: string;
  client?: Omit<ConnectOptions, 'name'>;
}

export interface TaskSpec {
  readonly kind: string;
  readonly params: Readonly<Record<string, unknown>>;
  /** A probe id: the task goes to that probe's direct channel. Without it, to the kind's queue group. */
  readonly target?: string;
}

export interface ScatterOptions {
  /** How long after sending a task its answer is on time, ms (default 10000). */
  timeoutMs?: number;
  /** Time budget given to the probe for the task, ms (default: timeoutMs). */
  probeTimeoutMs?: number;
  /** After the last deadline, how long to keep listening for late answers, ms (default 0). */
  graceMs?: number;
  /** Tasks in flight at most (default: all at once). */
  window?: number;
  /** Paced sending: task i is sent `sendAtMs(i)` ms after the start (non-decreasing). */
  sendAtMs?: (index: number) => number;
  /** Called for every answer (on time, late or duplicate). */
  onReply?: (outcome: Outcome, reply: Reply) => void;
  /** Called when a task is settled (answered or past its deadline). */
  onSettled?: (settled: number, total: number) => void;
  signal?: AbortSignal;
}

export interface Reply {
  readonly result: TaskResult;
  /** Controller clocks when the answer arrived. */
  readonly recv: Stamp;
  /** Broker receive time of the answer, µs on the broker's clock. */
  readonly brokerUs: number;
  readonly late: boolean;
}

export type OutcomeStatus = 'pending' | 'ok' | 'failed' | 'missing' | 'late';

export interface Outcome {
  readonly index: number;
  readonly id: string;
  readonly spec: TaskSpec;
  sent: Stamp | undefined;
  deadlineMonoUs: number;
  /** Every answer, in arrival order; more than one is a duplicate. */
  readonly replies: Reply[];
  status: OutcomeStatus;
  /** Why a task could not even be sent (`publish-failed: CODE`). */
  sendError?: string;
}

export interface ScatterReport {
  readonly startedMonoUs: number;
  readonly endedMonoUs: number;
  readonly outcomes: readonly Outcome[];
  readonly counts: { tasks: number; answered: number; ok: number; failed: number; late: number; missing: number; duplicates: number; unsent: number };
  /** The controller's estimate of the broker clock minus its own, ms, at the end. */
  readonly offsetMs: number;
}

export interface RollcallOptions {
  select?: Selector;
  /** Only probes that run this kind. */
  kind?: string;
  /** How long to listen for answers, ms (default 1000). */
  waitMs?: number;
  /** Stop listening as soon as this many probes answered. */
  expect?: number;
}

export class Swarm {
  private readonly prefix: string;
  private inbox: Subscription | undefined;
  private readonly routes = new Map<string, (msg: Message) => void>();
  private nextRun = 0;
  /** The last estimate from syncClock(). */
  clock: ClockEstimate | undefined;

  private constructor(
    readonly client: Client,
    readonly root: string,
  ) {
    this.prefix = `_INBOX.sw${randomBytes(6).toString('hex')}`;
  }

  static async connect(o: SwarmOptions): Promise<Swarm> {
    const root = checkRoot(o.root ?? DEFAULT_ROOT);
    const client = await connect(o.url, { ...o.client, name: o.name ?? `swarm-${process.pid.toString(36)}` });
    client.on('error', () => {});
    return new Swarm(client, root);
  }

  /** Estimate the broker's clock against ours (NTP-style, best of `samples` pings). */
  async syncClock(samples = 5): Promise<ClockEstimate> {
    this.clock = await estimateClock(this.client, samples);
    return this.clock;
  }

  /** Broker clock minus ours, ms: from syncClock() when it ran, else the client's last ping. */
  get offsetMs(): number {
    return this.clock?.offsetMs ?? this.client.clockOffsetMs;
  }

  /** One subscription to `_INBOX.<me>.>`; answers are routed by the token after the prefix. */
  private async ensureInbox(): Promise<void> {
    if (!this.inbox) {
      const skip = this.prefix.length + 1;
      this.inbox = this.client.subscribe(`${this.prefix}.>`, (msg) => {
        const token = msg.channel.slice(skip);
        const dot = token.indexOf('.');
        this.routes.get(dot < 0 ? token : token.slice(0, dot))?.(msg);
      });
    }
    await this.inbox.ready;
  }

  private route(): { token: string; channel: (suffix: string) => string; done: () => void; on: (fn: (msg: Message) => void) => void } {
    const token = `r${(this.nextRun++).toString(36)}`;
    return {
      token,
      channel: (suffix) => `${this.prefix}.${token}.${suffix}`,
      done: () => this.routes.delete(token),
      on: (fn) => this.routes.set(token, fn),
    };
  }

  /** Ask every probe who it is; resolves with those that answered (and match the selection). */
  async rollcall(o: RollcallOptions = {}): Promise<Presence[]> {
    await this.ensureInbox();
    const route = this.route();
    const found = new Map<string, Presence>();
    const waitMs = o.waitMs ?? 1000;
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, waitMs);
        route.on((msg) => {
          const p = parsePresence(msg.text);
          if (!p || found.has(p.id)) return;
          if (o.kind !== undefined && !p.kinds.includes(o.kind)) return;
          if (o.select && !o.select(p.labels)) return;
          found.set(p.id, p);
          if (o.expect !== undefined && found.size >= o.expect) {
            clearTimeout(timer);
            resolve();
          }
        });
        this.client.publish(channels.rollcall(this.root), JSON.stringify({ v: PROTOCOL_VERSION, wallMs: Date.now() }), { reply: route.channel('0') }).catch((err: unknown) => {
          clearTimeout(timer);
          reject(err instanceof Error ? err : new Error(String(err)));
        });
      });
    } finally {
      route.done();
    }
    return [...found.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** Send the tasks and gather one answer for each, within the deadline. */
  async scatter(specs: readonly TaskSpec[], o: ScatterOptions = {}): Promise<ScatterReport> {
    await this.ensureInbox();
    const timeoutMs = o.timeoutMs ?? 10_000;
    const probeTimeoutMs = o.probeTimeoutMs ?? timeoutMs;
    const graceMs = o.graceMs ?? 0;
    const window = Math.max(1, o.window ?? Number.POSITIVE_INFINITY);
    const route = this.route();
    const outcomes: Outcome[] = specs.map((spec, index) => ({ index, id: `${route.token}-${index.toString(36)}`, spec, sent: undefined, deadlineMonoUs: Infinity, replies: [], status: 'pending' }));
    const counts = { tasks: specs.length, answered: 0, ok: 0, failed: 0, late: 0, missing: 0, duplicates: 0, unsent: 0 };
    const startedMonoUs = monoUs();
    let settled = 0;
    let inFlight = 0;
    let nextSend = 0;
    /** Sent outcomes in send order: deadlines are in the same order. */
    const sentOrder: Outcome[] = [];
    let nextExpiry = 0;
    let sendTimer: NodeJS.Timeout | null = null;
    let expiryTimer: NodeJS.Timeout | null = null;
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => (finish = resolve));
    let ended = false;

    const settle = (outcome: Outcome, status: OutcomeStatus): void => {
      outcome.status = status;
      settled++;
      inFlight--;
      o.onSettled?.(settled, specs.length);
      pump();
    };

    route.on((msg) => {
      const recv = stamp();
      const index = parseInt(msg.channel.slice(msg.channel.lastIndexOf('.') + 1), 36);
      const outcome = outcomes[index];
      const result = parseResult(msg.text);
      if (!outcome || !result || result.task !== outcome.id) return;
      const late = outcome.status === 'missing' || outcome.status === 'late' || recv.monoUs > outcome.deadlineMonoUs;
      const reply: Reply = { result, recv, brokerUs: msg.time, late };
      outcome.replies.push(reply);
      if (outcome.replies.length > 1) {
        counts.duplicates++;
      } else if (outcome.status === 'missing') {
        outcome.status = 'late';
        counts.missing--;
        counts.late++;
      } else if (late) {
        counts.late++;
        settle(outcome, 'late');
      } else {
        counts.answered++;
        if (result.ok) counts.ok++;
        else counts.failed++;
        settle(outcome, result.ok ? 'ok' : 'failed');
      }
      o.onReply?.(outcome, reply);
    });

    const send = (outcome: Outcome): void => {
      inFlight++;
      const sent = stamp();
      outcome.sent = sent;
      outcome.deadlineMonoUs = sent.monoUs + timeoutMs * 1000;
      sentOrder.push(outcome);
      const task: Task = { v: PROTOCOL_VERSION, id: outcome.id, kind: outcome.spec.kind, params: outcome.spec.params, sent, timeoutMs: probeTimeoutMs };
      const channel = outcome.spec.target === undefined ? channels.task(this.root, outcome.spec.kind) : channels.direct(this.root, outcome.spec.target);
      this.client.publish(channel, JSON.stringify(task), { reply: route.channel(outcome.index.toString(36)) }).catch((err: unknown) => {
        if (outcome.status !== 'pending') return;
        outcome.sendError = `publish-failed: ${(err as { code?: string }).code ?? (err as Error).message}`;
        counts.unsent++;
        settle(outcome, 'missing');
      });
      armExpiry();
    };

    const armExpiry = (): void => {
      if (expiryTimer || nextExpiry >= sentOrder.length) return;
      const delayMs = Math.max(0, (sentOrder[nextExpiry]!.deadlineMonoUs - monoUs()) / 1000);
      expiryTimer = setTimeout(() => {
        expiryTimer = null;
        const now = monoUs();
        while (nextExpiry < sentOrder.length && sentOrder[nextExpiry]!.deadlineMonoUs <= now) {
          const outcome = sentOrder[nextExpiry++]!;
          if (outcome.status === 'pending') {
            counts.missing++;
            settle(outcome, 'missing');
          }
        }
        armExpiry();
      }, Math.ceil(delayMs) + 1);
    };

    const pump = (): void => {
      if (ended) return;
      if (o.signal?.aborted) {
        for (; nextSend < outcomes.length; nextSend++) {
          outcomes[nextSend]!.status = 'missing';
          outcomes[nextSend]!.sendError = 'aborted';
          counts.unsent++;
          settled++;
        }
      }
      while (nextSend < outcomes.length && inFlight < window) {
        if (o.sendAtMs) {
          const dueUs = startedMonoUs + o.sendAtMs(nextSend) * 1000;
          const waitUs = dueUs - monoUs();
          if (waitUs > 500) {
            if (!sendTimer) {
              sendTimer = setTimeout(() => {
                sendTimer = null;
                pump();
              }, Math.floor(waitUs / 1000));
            }
            return;
          }
        }
        send(outcomes[nextSend++]!);
      }
      if (settled >= outcomes.length) {
        ended = true;
        finish();
      }
    };

    const onAbort = (): void => pump();
    o.signal?.addEventListener('abort', onAbort, { once: true });
    pump();
    await finished;
    o.signal?.removeEventListener('abort', onAbort);
    if (expiryTimer) clearTimeout(expiryTimer);
    if (sendTimer) clearTimeout(sendTimer);
    if (graceMs > 0 && counts.missing > 0) await new Promise((r) => setTimeout(r, graceMs));
    route.done();
    return { startedMonoUs, endedMonoUs: monoUs(), outcomes, counts, offsetMs: this.offsetMs };
  }

  /** Follow `<root>.presence` from `from` (default: new events only). */
  watchPresence(onEvent: (p: Presence, msg: Message) => void, from: string = 'new'): Subscription {
    return this.client.subscribe(
      channels.presence(this.root),
      (msg) => {
        const p = parsePresence(msg.text);
        if (p) onEvent(p, msg);
      },
      { from },
    );
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}
