import type { Duplex } from 'node:stream';
import { type Command, HUMAN_HELP, parseHuman, parseMachine } from '../protocol/commands.js';
import { type AckRef, ackIdText } from '../protocol/ack-id.js';
import { copyBytes } from '../protocol/ascii.js';
import { debug, humanDelivery, humanError, info, machineBlock, machineDelivery, machineError, micros, warning } from '../protocol/encode.js';
import { ErrorCode, ProtocolError } from '../protocol/errors.js';
import { Framer, type FrameHandler } from '../protocol/framer.js';
import { parsePubFast, pubHeader } from '../protocol/fast-pub.js';
import type { Broker } from '../core/broker.js';
import type { Consumer, FeedEvent, SharedEncodings, Subscription } from '../core/subscription.js';
import type { Pushback, Waiter } from '../core/pushback.js';
import { QuotaError } from '../core/quotas.js';
import type { AppendRef, Log, StartPosition, StoredMessage } from '../storage/engine.js';
import { ClockEstimator } from './clock.js';
import { Outbox } from './outbox.js';
import { displayName, isReserved, tenantPrefix } from '../protocol/names.js';
import type { Identity, Operation } from '../security/access.js';
import { Guard, OPEN_IDENTITY, type TransportInfo } from '../security/guard.js';
import { nullAudit } from '../security/audit.js';
import { defaultSecurityOptions } from '../security/options.js';
import { TokenBucket } from '../security/token-bucket.js';
import { readBudget, type ReadBudget } from './read-budget.js';
import { VERSION } from '../version.js';

export interface SessionOptions {
  /** Longest command line, in bytes. */
  readonly maxLine: number;
  /** Largest payload, in bytes. */
  readonly maxPayload: number;
  /** Human `sub` without from=: replay at most this many past messages per channel. */
  readonly historyMax: number;
  /** Outbound bytes past which the connection counts as congested. */
  readonly outboundHighWater: number;
  readonly maxSubscriptions: number;
  /**
   * Publishes not yet acknowledged (durability policy not yet met), in messages and in payload
   * bytes, past which the session stops reading from the socket until half are acknowledged.
   */
  readonly maxInflight: number;
  readonly maxInflightBytes: number;
  readonly requestTimeoutMs: number;
  /** How often the broker probes a machine-mode client's round-trip time and clock offset. */
  readonly clockIntervalMs: number;
  /** After `quit`, how long the connection waits for its publishes' acknowledgements. */
  readonly quitGraceMs: number;
  /** Bytes all connections together read in one event-loop turn before those still reading wait for the next (read-budget.ts). */
  readonly turnReadBytes: number;
}

export const defaultSessionOptions: SessionOptions = Object.freeze({
  maxLine: 4096,
  maxPayload: 1024 * 1024,
  historyMax: 1000,
  outboundHighWater: 1024 * 1024,
  maxSubscriptions: 1000,
  // A group commit every 10 ms must not stall a fast publisher: at 2 M msgs/s one interval
  // and its fdatasync hold ~40,000 publishes. The bytes bound caps what large ones pin.
  maxInflight: 100_000,
  maxInflightBytes: 32 * 1024 * 1024,
  requestTimeoutMs: 5000,
  clockIntervalMs: 10_000,
  quitGraceMs: 10_000,
  // 256 KiB: a quarter of the 1 MiB of earlier builds halved what a quiet client waits during a
  // flood, at no throughput cost measured (docs/performance.md, "Overload"); 128 KiB cost some.
  turnReadBytes: 256 * 1024,
});


/** What `clients` shows of a connection. */
export interface ClientInfo {
  id: number;
  name: string;
  remote: string;
  mode: 'human' | 'machine';
  subscriptions: number;
  messagesIn: number;
  messagesOut: number;
  user: string | null;
  tenant: string | null;
  connectedAt: string;
  /** Round-trip time and clock offset (client minus broker), µs; null before the first answer. */
  rttUs: number | null;
  offsetUs: number | null;
  /** `slow-consumer block`: held channels this connection published into and waits for. */
  waitingFor: string[];
  /** `slow-consumer block`: channels this connection's subscriptions hold (it is past its outbound bound on them). */
  holding: string[];
}

/** The server's set of sessions, as a session may see it (a Set<Session> is one). */
export interface SessionDirectory {
  readonly size: number;
  values(): Iterable<Session>;
}

/** What an unauthenticated connection may do. */
const PRE_LOGIN = new Set<Command['verb']>(['login', 'token', 'help', 'ping', 'pong', 'quit', 'mode', 'empty']);

let sharedOpenGuard: Guard | null = null;

/** The guard of an open server (no users): sessions made without one get it. */
function openGuard(log: Log): Guard {
  return (sharedOpenGuard ??= new Guard(defaultSecurityOptions, null, nullAudit, log));
}

function nowMicros(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

type Mode = 'human' | 'machine';

/**
 * A payload the framer will write over (split over reads) is copied for the stored message.
 * Small payloads are copied by a JS loop: cheaper than the native call, and the allocation
 * comes from Node's shared pool. A lasting one is passed as a range of the read: storage
 * copies what it keeps (memory slabs, file staging chunks) and the broker copies what it holds
 * on to (Broker.kept).
 */
function ownCopy(buf: Buffer, start: number, end: number): Buffer {
  const n = end - start;
  const out = Buffer.allocUnsafe(n);
  copyBytes(out, 0, buf, start, end);
  return out;
}

const NEW: StartPosition = Object.freeze({ kind: 'new' });

/**
 * One client connection, over any duplex stream: parse commands, run them against the broker,
 * write answers and deliveries. TCP, TLS and WebSocket transports only move bytes into it.
 */
export class Session implements Consumer, FrameHandler, Waiter {
  private mode: Mode = 'human';
  private readonly framer: Framer;
  private readonly out: Outbox;
  private readonly subs = new Map<string, Subscription>();
  /** The PUB header whose payload comes next (machine mode); reused, never reallocated. */
  private readonly pub = pubHeader();
  /** The last published channel as the client named it and as the broker knows it (checked). */
  private lastPubName = '';
  private lastPubChannel = '';
  private pubPending = false;
  private inflight = 0;
  private inflightBytes = 0;
  private paused = false;
  /** `slow-consumer block`: held channels this connection published into; it is not read until they are free. */
  private readonly waitingOn = new Set<string>();
  /** Paused until the next turn: this turn's read budget is spent (read-budget.ts). */
  private yielded = false;
  private readonly budget: ReadBudget;
  private readonly afterYield = (): void => {
    this.yielded = false;
    if (!this.paused && !this.closed) this.socket.resume();
  };
  private inputEnded = false;
  /** `quit` was read: later input is ignored, the connection closes once acks are out. */
  private quitting = false;
  private closed = false;
  private requests = 0;
  private readonly clock = new ClockEstimator();
  /** Who this connection is; null until it logs in (never null on an open server). */
  private identity: Identity | null = null;
  /** The tenant prefix every name gets before the broker sees it. */
  private ns = '';
  private bucket: TokenBucket | null = null;
  private timers: NodeJS.Timeout[] = [];
  private lastActive = Date.now();
  private bytesIn = 0;
  private closeReason = 'client closed the connection';
  private finished = false;
  name: string;
  readonly startedAt = Date.now();
  messagesIn = 0;
  messagesOut = 0;

  constructor(
    readonly id: number,
    private readonly socket: Duplex,
    private readonly broker: Broker,
    private readonly options: SessionOptions,
    private readonly log: Log,
    readonly remote: string,
    /** The server's connections (for `stats` and `clients`). */
    private readonly peers: SessionDirectory = { size: 1, values: () => [this] },
    private readonly guard: Guard = openGuard(log),
    readonly transport: TransportInfo = { address: '127.0.0.1', port: 0, secure: false },
  ) {
    this.name = `c${id}`;
    if (guard.open) this.identity = OPEN_IDENTITY;
    else this.startLoginTimer();
    if (guard.options.publishRate > 0) this.bucket = new TokenBucket(guard.options.publishRate, guard.options.publishBurst || guard.options.publishRate);
    if (guard.options.idleTimeoutMs > 0) this.startIdleTimer();
    this.framer = new Framer(this, { maxLine: options.maxLine, maxPayload: options.maxPayload });
    this.out = new Outbox(socket, options.outboundHighWater, () => this.onRoom());
    this.budget = readBudget(options.turnReadBytes);
    socket.on('data', (chunk: Buffer) => {
      this.bytesIn += chunk.length;
      this.lastActive = Date.now();
      this.framer.push(chunk);
      if (!this.budget.spend(chunk.length) && !this.yielded) {
        this.yielded = true;
        this.socket.pause();
        this.budget.wait(this.afterYield);
      }
    });
    socket.on('drain', () => this.onDrain());
    socket.on('error', (err) => this.log.debug({ conn: this.id, err: err.message }, 'socket error'));
    socket.on('close', () => this.cleanup());
    socket.on('end', () => this.end());
  }

  // --- FrameHandler ----------------------------------------------------------------------------

  onLine(buf: Buffer, start: number, end: number): void {
    if (this.closed || this.quitting) return;
    if (this.mode === 'machine' && this.identity && parsePubFast(buf, start, end, this.pub)) {
      this.expectPub();
      return;
    }
    const line = buf.subarray(start, end);
    let cmd: Command;
    try {
      cmd = this.mode === 'human' ? parseHuman(line) : parseMachine(line);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.refused(line, err);
      return;
    }
    try {
      this.run(cmd);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.error(err.code, err.message, 'sid' in cmd ? cmd.sid : 'ackId' in cmd ? cmd.ackId : '');
    }
  }

  onPayload(buf: Buffer, start: number, end: number, lasting: boolean): void {
    if (!this.pubPending) return;
    this.pubPending = false;
    if (lasting) this.publish(this.pub.channel, buf, start, end, this.pub.reply, this.pub.ackId);
    else this.publish(this.pub.channel, ownCopy(buf, start, end), 0, end - start, this.pub.reply, this.pub.ackId);
  }

  /** A PUB header was read: its payload comes next, unless it is too large. */
  private expectPub(): void {
    const pub = this.pub;
    const size = pub.size;
    let refusal: ProtocolError | null = null;
    if (size > this.options.maxPayload) {
      refusal = new ProtocolError(ErrorCode.PAYLOAD_TOO_LARGE, `payload of ${size} bytes exceeds max-payload ${this.options.maxPayload}; skipped`);
    } else {
      try {
        if (pub.reply) {
          pub.channel = this.inbound(pub.channel, 'request');
          pub.reply = this.inbound(pub.reply, null);
        } else if (pub.channel === this.lastPubName) {
          pub.channel = this.lastPubChannel; // same name, same identity: same answer (rules are static)
        } else {
          const name = pub.channel;
          pub.channel = this.inbound(name, 'pub'); // throws when refused: nothing cached
          this.lastPubName = name;
          this.lastPubChannel = pub.channel;
        }
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        refusal = err;
      }
    }
    if (refusal) {
      this.framer.expectPayload(size, true);
      this.error(refusal.code, refusal.message, pub.ackId);
      return;
    }
    this.pubPending = true;
    this.framer.expectPayload(size);
  }

  /**
   * A name from the client: refuse the reserved tenant prefix, check the access rules for
   * `op` (none for a reply channel), and put it in this connection's tenant namespace.
   */
  private inbound(name: string, op: Operation | null): string {
    if (isReserved(name)) throw new ProtocolError(ErrorCode.BAD_CHANNEL, `bad name ${JSON.stringify(name)}: the prefix "_T" is reserved`);
    if (op && !this.guard.open && !this.guard.check(this.identity!, op, name)) {
      this.guard.counters.denied++;
      this.guard.audit.record('denied', { user: this.identity!.user, tenant: this.identity!.tenant, op, channel: name, address: this.transport.address, port: this.transport.port });
      throw new ProtocolError(ErrorCode.FORBIDDEN, `${this.identity!.user} may not ${op} on ${name}`);
    }
    return this.ns + name;
  }

  onError(code: ErrorCode, message: string): void {
    this.error(code, message, '');
  }

  // --- Consumer --------------------------------------------------------------------------------

  congested(): boolean {
    return this.out.congested();
  }

  deliver(sub: Subscription, msg: StoredMessage, shared: SharedEncodings | null): void {
    this.messagesOut++;
    if (this.mode === 'human') {
      this.out.write(shared === null ? humanDelivery(msg) : (shared.human ??= humanDelivery(msg)));
    } else {
      const prefix = machinePrefix(sub);
      if (shared === null) this.out.writeDelivery(prefix, msg);
      else this.out.writeFrame(prefix, (shared.machine ??= machineDelivery(msg)), msg);
    }
    if (sub.remaining > 0 && --sub.remaining === 0) this.dropSubscription(sub);
  }

  /** In machine mode a delivery depends on the sid and the message only; a counted one ends the sub. */
  blockKey(sub: Subscription): string | null {
    return this.mode === 'machine' && sub.remaining === 0 ? sub.sid : null;
  }

  encodeBlock(sub: Subscription, batch: readonly StoredMessage[]): Buffer {
    return machineBlock(machinePrefix(sub), batch);
  }

  deliverBlock(_sub: Subscription, block: Buffer, count: number): void {
    this.messagesOut += count;
    this.out.write(block);
  }

  notify(sub: Subscription, event: FeedEvent): void {
    if (this.mode === 'machine') {
      if (event.kind === 'live') this.out.writeString(`LIVE ${sub.sid} ${event.channel} ${event.offset}\n`);
      else if (event.kind === 'drop') this.out.writeString(`DROP ${sub.sid} ${event.channel} ${event.count}\n`);
      else this.out.writeString(`GAP ${sub.sid} ${event.channel} ${event.from} ${event.to}\n`);
      return;
    }
    if (event.kind === 'drop') this.out.writeString(warning(`dropped ${event.count} messages on ${event.channel} (slow consumer)`));
    else if (event.kind === 'gap') this.out.writeString(warning(`messages #${event.from} to #${event.to} on ${event.channel} were removed by retention before delivery`));
  }

  disconnect(code: string, reason: string): void {
    if (this.closed) return;
    this.closeReason = `${code}: ${reason}`;
    this.log.info({ conn: this.id, code, reason }, 'disconnecting client');
    this.error(code, reason, '');
    this.out.flush();
    this.closed = true;
    this.socket.end();
    this.cleanup();
  }

  /** Cuts the connection now, whatever is still queued for it (a shutdown's last resort). */
  destroy(): void {
    this.socket.destroy();
    this.cleanup();
  }

  // --- commands --------------------------------------------------------------------------------

  private run(cmd: Command): void {
    if (!this.identity && !PRE_LOGIN.has(cmd.verb)) {
      if (cmd.verb === 'pub') this.framer.expectPayload(cmd.size, true);
      throw new ProtocolError(ErrorCode.AUTH_REQUIRED, 'log in first: login <user> <password> or token <token>');
    }
    switch (cmd.verb) {
      case 'pub':
        this.pub.channel = cmd.channel;
        this.pub.ackId = cmd.ackId;
        this.pub.reply = cmd.reply;
        this.pub.size = cmd.size;
        this.expectPub();
        return;
      case 'pubtext':
        if (cmd.text.length > this.options.maxPayload) {
          throw new ProtocolError(ErrorCode.PAYLOAD_TOO_LARGE, `payload of ${cmd.text.length} bytes exceeds max-payload ${this.options.maxPayload}`);
        }
        const text = Buffer.from(cmd.text);
        this.publish(this.inbound(cmd.channel, 'pub'), text, 0, text.length, '', '');
        return;
      case 'req':
        this.humanRequest(this.inbound(cmd.channel, 'request'), Buffer.from(cmd.text));
        return;
      case 'sub':
        this.subscribe(cmd.sid, this.inbound(cmd.pattern, 'sub'), cmd.from, cmd.queue);
        return;
      case 'login':
        this.login(cmd.user, () => this.guard.authenticator!.password(cmd.user, cmd.password), 'password');
        return;
      case 'token':
        this.login('', () => this.guard.authenticator!.token(cmd.token), 'token');
        return;
      case 'kill': {
        this.requireAdmin('kill');
        const target = [...this.peers.values()].find((p) => p.id === cmd.client);
        if (!target) throw new ProtocolError(ErrorCode.NO_SUCH_CLIENT, `no client ${cmd.client} (see clients)`);
        target.disconnect(ErrorCode.KILLED, `disconnected by ${this.identity!.user}`);
        if (target !== this) this.out.writeString(this.mode === 'machine' ? `OK ${cmd.client}\n` : info(`client ${cmd.client} disconnected`));
        return;
      }
      case 'unsub': {
        const sub = this.subs.get(cmd.sid);
        if (!sub) throw new ProtocolError(ErrorCode.NOT_SUBSCRIBED, `no subscription ${JSON.stringify(cmd.sid)} on this connection`);
        this.dropSubscription(sub);
        if (this.mode === 'machine') this.out.writeString(`OK ${cmd.sid}\n`);
        else this.out.writeString(debug(`unsubscribing ${displayName(sub.pattern)}`));
        return;
      }
      case 'ping': {
        const t = micros(performance.timeOrigin + performance.now());
        if (this.mode === 'machine') this.out.writeString(`PONG ${cmd.token} ${cmd.clientTime} ${t}\n`);
        else this.out.writeString(`pong ${new Date(t / 1000).toISOString()}\n`);
        return;
      }
      case 'name':
        this.name = this.guard.open ? cmd.name : `${this.identity!.user}/${cmd.name}`;
        if (this.mode === 'machine') this.out.writeString(`OK ${cmd.name}\n`);
        else this.out.writeString(info(`you are ${cmd.name}`));
        return;
      case 'channels':
        this.listChannels(this.inbound(cmd.pattern, null));
        return;
      case 'stats': {
        this.requireAdmin('stats');
        const stats = { ...this.broker.stats(this.peers.size), ...this.guard.counters };
        if (this.mode === 'machine') this.out.writeString(`STATS ${JSON.stringify(stats)}\n`);
        else this.out.writeString(`stats ${Object.entries(stats).map(([k, v]) => `${k}=${v}`).join(' ')}\n`);
        return;
      }
      case 'clients':
        this.requireAdmin('clients');
        this.listClients();
        return;
      case 'pong':
        this.clock.answer(cmd.token, cmd.t1, cmd.t2, nowMicros());
        return;
      case 'mode':
        this.switchMode(cmd.mode);
        return;
      case 'help':
        this.help(cmd.topic);
        return;
      case 'quit':
        this.quitting = true;
        this.maybeFinish();
        if (!this.closed) this.startQuitTimer();
        return;
      case 'empty':
        return;
    }
  }

  /** Publishes data[start, end) (a range, not a view: engine.ts, NewMessage). */
  private publish(channel: string, data: Buffer, start: number, end: number, reply: string, ackId: AckRef): void {
    if (this.bucket || this.guard.options.userPublishRate > 0) {
      const wait = Math.max(this.bucket?.take() ?? 0, this.guard.userBucket(this.identity!.user)?.take() ?? 0);
      if (wait > 0) {
        this.guard.counters.rateLimited++;
        this.guard.audit.record('limit', { kind: 'publish-rate', user: this.identity!.user, address: this.transport.address, channel: displayName(channel) });
        const o = this.guard.options;
        this.error(ErrorCode.RATE_LIMITED, `publish rate limit (${o.publishRate || o.userPublishRate} msgs/s) reached; retry in ${wait} ms; not stored`, ackId);
        return;
      }
    }
    this.messagesIn++;
    this.inflight++;
    this.inflightBytes += end - start;
    if (this.inflight >= this.options.maxInflight || this.inflightBytes >= this.options.maxInflightBytes) this.pauseInput();
    const created = this.broker.publish(channel, data, start, end, reply, this.name, this.stored, ackId);
    const pushback = this.broker.pushback;
    if (pushback !== null && pushback.isHeld(channel)) this.waitFor(pushback, channel);
    if (created && this.mode === 'human') this.out.writeString(info(`creating ${displayName(channel)}`));
  }

  /** Every publish's outcome, once its durability policy holds: one function, no closure each. */
  private readonly stored = (err: Error | null, offset: number, ackId: AppendRef, channel: string, bytes: number): void => {
    this.inflight--;
    this.inflightBytes -= bytes;
    if (this.closed) return;
    if (err) {
      const code = err instanceof ProtocolError ? err.code : ErrorCode.STORAGE_FAILED;
      if (err instanceof QuotaError) this.auditQuota(err, channel);
      this.error(code, `publish to ${displayName(channel)} not stored: ${err.message}`, ackId);
    } else if (this.mode === 'human') {
      this.out.writeString(debug(`published ${displayName(channel)} #${offset}`));
    } else if (ackId !== '') {
      this.out.writeAck(ackId, offset);
    }
    this.maybeResumeInput();
    this.maybeFinish();
  };

  private auditQuota(err: QuotaError, channel: string): void {
    const { kind, tenant, limit, used } = err;
    this.guard.audit.record('limit', { kind, user: this.identity?.user ?? null, tenant, address: this.transport.address, channel: displayName(channel), limit, used });
  }

  private subscribe(sid: string, pattern: string, from: StartPosition | undefined, queue: string): Subscription {
    if (this.subs.has(sid)) {
      throw new ProtocolError(ErrorCode.DUPLICATE_SID, this.mode === 'human' ? `already subscribed to ${sid}` : `sid ${sid} is already in use on this connection`);
    }
    if (this.subs.size >= this.options.maxSubscriptions) {
      throw new ProtocolError(ErrorCode.TOO_MANY_SUBSCRIPTIONS, `this connection has ${this.subs.size} subscriptions, the limit (max-subscriptions)`);
    }
    const start = from ?? (this.mode === 'human' && !queue ? { kind: 'last', count: this.options.historyMax } : NEW);
    // Acknowledge before any replayed message so the client knows the sid is live.
    if (this.mode === 'machine') this.out.writeString(`OK ${sid}\n`);
    else this.out.writeString(debug(`subscribing ${displayName(pattern)}${queue ? ` in queue ${queue}` : ''}`));
    const sub = this.broker.subscribe(this, sid, pattern, start, queue);
    this.subs.set(sid, sub);
    return sub;
  }

  private dropSubscription(sub: Subscription): void {
    this.broker.unsubscribe(sub);
    if (this.subs.get(sub.sid) === sub) this.subs.delete(sub.sid);
    this.maybeFinish();
  }

  /** Human `req`: a one-shot inbox, the publish, then the first reply or a timeout. */
  private humanRequest(channel: string, payload: Buffer): void {
    const inbox = `${this.ns}_INBOX.h${this.id}.${++this.requests}`;
    const sub = this.subscribe(displayName(inbox), inbox, NEW, '');
    sub.remaining = 1;
    this.publish(channel, payload, 0, payload.length, inbox, '');
    const timer = setTimeout(() => {
      if (sub.closed || this.closed) return;
      this.dropSubscription(sub);
      this.error(ErrorCode.TIMEOUT, `no reply on ${displayName(channel)} within ${this.options.requestTimeoutMs} ms`, '');
    }, this.options.requestTimeoutMs);
    timer.unref();
  }

  private listChannels(pattern: string): void {
    const list = this.broker.channelList(pattern);
    if (this.mode === 'machine') {
      for (const c of list) this.out.writeString(`CHANNEL ${displayName(c.channel)} ${c.first} ${c.head} ${c.messages} ${c.bytes}\n`);
      this.out.writeString('END CHANNELS\n');
      return;
    }
    for (const c of list) this.out.writeString(`channel ${displayName(c.channel)} messages=${c.messages} first=${c.first} last=${c.head} bytes=${c.bytes}\n`);
    this.out.writeString(info(`${list.length} channel${list.length === 1 ? '' : 's'}`));
  }

  /**
   * Verify credentials without reading further commands meanwhile: the framer is suspended
   * until the answer, so what follows a login is judged by its outcome.
   */
  private login(user: string, verify: () => Promise<Identity | null>, method: 'password' | 'token'): void {
    const t = this.transport;
    if (this.guard.open) throw new ProtocolError(ErrorCode.BAD_ARGUMENTS, 'this server has no users: nothing to log in to');
    if (this.identity) throw new ProtocolError(ErrorCode.BAD_ARGUMENTS, `already logged in as ${this.identity.user}`);
    if (method === 'password' && !this.guard.passwordAllowed(t)) {
      this.guard.audit.record('login-failed', { user, method, address: t.address, port: t.port, reason: 'plaintext' });
      throw new ProtocolError(ErrorCode.PLAINTEXT_REFUSED, 'passwords are refused on this plaintext listener: use TLS (or a token)');
    }
    const wait = this.guard.loginWait(user, t.address);
    if (wait > 0) {
      this.guard.audit.record('login-failed', { user, method, address: t.address, port: t.port, reason: 'backoff', retryMs: wait });
      throw new ProtocolError(ErrorCode.AUTH_BACKOFF, `too many failed logins; retry in ${wait} ms`);
    }
    this.framer.suspend();
    verify().then(
      (identity) => {
        if (this.closed) return;
        if (!identity) {
          const { delay, failures } = this.guard.loginFailed(user, t.address);
          this.guard.audit.record('login-failed', { user, method, address: t.address, port: t.port, reason: 'bad credentials', failures, nextRetryMs: delay });
          this.error(ErrorCode.AUTH_FAILED, `login failed; next attempt allowed in ${delay} ms`, '');
        } else {
          this.loggedIn(identity, method);
        }
        this.framer.resume();
      },
      (err: unknown) => {
        this.log.error({ err, conn: this.id }, 'credential check failed');
        this.error(ErrorCode.AUTH_FAILED, 'credential check failed on the server', '');
        this.framer.resume();
      },
    );
  }

  /** Credentials verified: take the identity, unless the user is at its connection limit. */
  private loggedIn(identity: Identity, method: Identity['method'], detail: Record<string, unknown> = {}): void {
    const t = this.transport;
    if (!this.guard.loginAllowed(identity)) {
      this.guard.audit.record('limit', { kind: 'connections-per-user', user: identity.user, address: t.address, port: t.port });
      this.error(ErrorCode.TOO_MANY_CONNECTIONS, `${identity.user} has too many connections (max-connections-per-user)`, '');
      return;
    }
    this.guard.loginSucceeded(identity.user, t.address);
    this.identity = identity;
    this.ns = tenantPrefix(identity.tenant);
    this.name = identity.user;
    this.guard.audit.record('login', { user: identity.user, tenant: identity.tenant, method, ...detail, address: t.address, port: t.port, tls: t.secure });
    const how = method === 'certificate' ? ' by client certificate' : '';
    this.out.writeString(this.mode === 'machine' ? `OK ${identity.user}\n` : info(`logged in as ${identity.user}${how} (tenant ${identity.tenant})`));
  }

  /**
   * A verified client certificate (TLS, with a users file) logs the connection in as the user
   * `certificate subject ... user` maps its common name to, else as the common name; input
   * waits for the outcome. A user the users file does not know gets CERT_USER_UNKNOWN and
   * the connection stays, not logged in: the certificate is genuine, it just names nobody
   * here, and the client may still `login` or `token` (it is no guess, so no backoff).
   */
  loginByCertificate(subject: string): void {
    if (this.guard.open || this.identity) return;
    const t = this.transport;
    const user = this.guard.certificateUser(subject);
    this.framer.suspend();
    this.guard.authenticator!.certificate(user).then(
      (identity) => {
        if (this.closed) return;
        if (identity) this.loggedIn(identity, 'certificate', { subject });
        else {
          this.guard.audit.record('login-failed', { user, method: 'certificate', subject, address: t.address, port: t.port, reason: 'unknown user' });
          const mapped = user === subject ? `names user ${JSON.stringify(user)}` : `maps to user ${JSON.stringify(user)}`;
          this.error(ErrorCode.CERT_USER_UNKNOWN, `client certificate ${JSON.stringify(subject)} ${mapped}, who is not in the users file; log in with login or token`, '');
        }
        this.framer.resume();
      },
      (err: unknown) => {
        this.log.error({ err, conn: this.id }, 'certificate check failed');
        this.error(ErrorCode.AUTH_FAILED, 'credential check failed on the server', '');
        this.framer.resume();
      },
    );
  }

  private requireAdmin(what: string): void {
    if (!this.identity?.admin) throw new ProtocolError(ErrorCode.FORBIDDEN, `${what} is for members of the admin group`);
  }

  private startLoginTimer(): void {
    const ms = this.guard.options.loginTimeoutMs;
    const timer = setTimeout(() => {
      if (this.identity || this.closed) return;
      this.guard.counters.timeouts++;
      this.disconnect(ErrorCode.LOGIN_TIMEOUT, `no login within ${ms} ms`);
    }, ms);
    timer.unref();
    this.timers.push(timer);
  }

  /** Storage that never answers (a hung disk) must not keep a quitting connection open. */
  private startQuitTimer(): void {
    const ms = this.options.quitGraceMs;
    const timer = setTimeout(() => {
      if (this.closed) return;
      if (this.mode === 'human') this.out.writeString(warning(`${this.inflight} publishes still unacknowledged after ${ms} ms; closing anyway`));
      this.maybeFinish(true);
    }, ms);
    timer.unref();
    this.timers.push(timer);
  }

  /** One timer, re-armed for the rest of the idle period: input does not touch timers. */
  private startIdleTimer(): void {
    const ms = this.guard.options.idleTimeoutMs;
    const timer = setTimeout(() => {
      if (this.closed) return;
      const idle = Date.now() - this.lastActive;
      if (idle >= ms) {
        this.guard.counters.timeouts++;
        this.disconnect(ErrorCode.IDLE_TIMEOUT, `idle for ${idle} ms (idle-timeout ${ms} ms)`);
      } else timer.refresh();
    }, ms);
    timer.unref();
    this.timers.push(timer);
  }

  /** One line per connection: who, how much, and how far its clock is from ours. */
  private listClients(): void {
    const rows = [...this.peers.values()].map((p) => p.info());
    if (this.mode === 'machine') {
      for (const r of rows) this.out.writeString(`CLIENT ${JSON.stringify(r)}\n`);
      this.out.writeString('END CLIENTS\n');
      return;
    }
    for (const r of rows) {
      const clock = r.rttUs === null ? 'clock=unknown' : `rtt=${r.rttUs}us offset=${r.offsetUs}us`;
      const block = `${r.waitingFor.length ? ` waiting-for=${r.waitingFor.join(',')}` : ''}${r.holding.length ? ` holding=${r.holding.join(',')}` : ''}`;
      this.out.writeString(`client ${r.id} name=${r.name} remote=${r.remote} mode=${r.mode} subs=${r.subscriptions} in=${r.messagesIn} out=${r.messagesOut} ${clock}${block}\n`);
    }
    this.out.writeString(info(`${rows.length} client${rows.length === 1 ? '' : 's'}`));
  }

  info(): ClientInfo {
    const clock = this.clock.best();
    return {
      id: this.id,
      name: this.name,
      remote: this.remote,
      mode: this.mode,
      subscriptions: this.subs.size,
      messagesIn: this.messagesIn,
      messagesOut: this.messagesOut,
      user: this.identity?.user ?? null,
      tenant: this.identity?.tenant ?? null,
      connectedAt: new Date(this.startedAt).toISOString(),
      rttUs: clock ? Math.round(clock.rttUs) : null,
      offsetUs: clock ? Math.round(clock.offsetUs) : null,
      waitingFor: [...this.waitingOn].map(displayName),
      holding: this.holding().map(displayName),
    };
  }

  private holding(): string[] {
    const pushback = this.broker.pushback;
    if (pushback === null) return [];
    const channels = new Set<string>();
    for (const sub of this.subs.values()) for (const c of pushback.heldBy(sub)) channels.add(c);
    return [...channels];
  }

  /** Send a clock probe (machine mode only: a person at nc cannot answer). */
  probeClock(): void {
    if (this.mode !== 'machine' || this.closed) return;
    const { token, t1 } = this.clock.probe(nowMicros());
    this.out.writeAscii(`PING ${token} ${t1}\n`);
  }

  private switchMode(mode: Mode): void {
    this.mode = mode;
    if (mode === 'human') {
      this.out.writeString(info('human mode'));
      return;
    }
    const hello = {
      server: 'fluctuat',
      version: VERSION,
      conn: this.id,
      name: this.name,
      maxLine: this.options.maxLine,
      maxPayload: this.options.maxPayload,
      historyMax: this.options.historyMax,
      time: micros(performance.timeOrigin + performance.now()),
    };
    this.out.writeString(`INFO ${JSON.stringify(hello)}\n`);
    this.probeClock();
  }

  private help(topic: string): void {
    if (topic) {
      const text = HUMAN_HELP[topic];
      if (!text) throw new ProtocolError(ErrorCode.BAD_ARGUMENTS, `no help for ${JSON.stringify(topic)}; topics: ${Object.keys(HUMAN_HELP).join(', ')}`);
      this.out.writeString(`# ${text}\n`);
      return;
    }
    this.out.writeString(`# fluctuat ${VERSION}: commands\n`);
    for (const text of Object.values(HUMAN_HELP)) this.out.writeString(`#   ${text}\n`);
  }

  // --- errors, flow control, teardown ------------------------------------------------------------

  /**
   * A line that did not parse. A PUB shaped like a frame (five words, a size last) still has
   * its payload skipped, and the error names the ack-id or sid when one can be read.
   */
  private refused(line: Buffer, err: ProtocolError): void {
    let ref = '';
    if (this.mode === 'machine') {
      const words = line.toString('latin1').trim().split(/\s+/);
      const id = (w: string | undefined): string => (w && /^[A-Za-z0-9_-]{1,32}$/.test(w) ? w : '');
      if (words[0] === 'PUB' && words.length === 5) {
        ref = id(words[2]);
        if (/^\d{1,12}$/.test(words[4]!)) this.framer.expectPayload(Number(words[4]), true);
      } else if (words[0] === 'SUB' || words[0] === 'UNSUB') ref = id(words[1]);
    }
    this.error(err.code, err.message, ref);
  }

  private error(code: string, message: string, ref: AckRef): void {
    if (this.closed) return;
    this.out.writeString(this.mode === 'human' ? humanError(code, message) : machineError(ackIdText(ref), code, message));
  }

  /** A subscriber of `channel` is over its bound: stop reading this publisher until it drains. */
  private waitFor(pushback: Pick<Pushback<unknown>, 'wait'>, channel: string): void {
    if (this.waitingOn.has(channel)) return;
    this.waitingOn.add(channel);
    pushback.wait(channel, this);
    this.pauseInput();
  }

  released(channel: string): void {
    this.waitingOn.delete(channel);
    if (this.closed) return;
    if (this.waitingOn.size === 0) this.maybeResumeInput();
  }

  private pauseInput(): void {
    if (this.paused) return;
    this.paused = true;
    this.socket.pause();
  }

  private maybeResumeInput(): void {
    const o = this.options;
    if (this.paused && this.inflight < o.maxInflight / 2 && this.inflightBytes < o.maxInflightBytes / 2 && this.waitingOn.size === 0 && !this.congested()) {
      this.paused = false;
      if (!this.yielded) this.socket.resume();
    }
  }

  private onDrain(): void {
    this.out.drained();
    this.maybeResumeInput();
  }

  /** The outbound queue is under its bound again: resume what waited for room. */
  private onRoom(): void {
    for (const sub of this.subs.values()) this.broker.drained(sub);
    this.maybeResumeInput();
  }

  /**
   * The client closed its sending side (`echo sub this | nc ...`). Finish what it asked for:
   * wait for pending acknowledgements, keep streaming while it has subscriptions.
   */
  private end(): void {
    this.inputEnded = true;
    this.maybeFinish();
  }

  /**
   * Closes once what was asked is done: after `quit`, when every publish is acknowledged
   * (`pub x hi` then `quit` still prints the ack); after the input ended, also only once
   * no subscription is left to stream.
   */
  private maybeFinish(despiteInflight = false): void {
    if (this.closed || (this.inflight > 0 && !despiteInflight)) return;
    if (this.quitting) {
      if (this.mode === 'human') this.out.writeString(info('bye'));
    } else if (!this.inputEnded || this.subs.size > 0) return;
    this.out.flush();
    this.closed = true;
    this.socket.end();
  }

  private cleanup(): void {
    if (this.finished) return;
    this.finished = true;
    for (const t of this.timers) clearTimeout(t);
    const t = this.transport;
    const seconds = (Date.now() - this.startedAt) / 1000;
    const bytesOut = (this.socket as { bytesWritten?: number }).bytesWritten ?? 0;
    if (this.identity && !this.guard.open) {
      this.guard.audit.record('logout', { user: this.identity.user, tenant: this.identity.tenant, address: t.address, port: t.port, seconds, messagesIn: this.messagesIn, messagesOut: this.messagesOut, bytesIn: this.bytesIn, bytesOut });
    }
    this.guard.audit.record('disconnect', { conn: this.id, user: this.identity?.user ?? null, address: t.address, port: t.port, reason: this.closeReason, seconds });
    this.guard.released(t, this.guard.open ? null : this.identity);
    this.closed = true;
    for (const sub of this.subs.values()) this.broker.unsubscribe(sub);
    this.subs.clear();
    if (this.waitingOn.size !== 0) this.broker.pushback?.cancel(this, this.waitingOn);
  }

  get subscriptionCount(): number {
    return this.subs.size;
  }
}

/** `MSG <sid>`, what every machine-mode delivery of `sub` starts with. */
function machinePrefix(sub: Subscription): Buffer {
  return (sub.prefix ??= Buffer.from(`MSG ${sub.sid}`, 'latin1'));
}
