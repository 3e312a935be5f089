/**
 * The fluctuat client: one machine-mode connection (docs/protocol.md), reconnected and resumed
 * after a loss. Imports nothing from the server side.
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { performance } from 'node:perf_hooks';
import { Framer, LASTING_PAYLOAD, type FrameHandler } from '../protocol/framer.js';
import { ErrorCode } from '../protocol/errors.js';
import { ClientErrorCode, FluctuatError } from './errors.js';
import { HUMAN_HELP, parseHumanCommand, toPosition } from './human.js';
import { Message, type Payload } from './message.js';
import { checkChannel, checkId, checkPattern, formatPosition, INBOX_PREFIX, parsePosition, type Position, type PositionInput } from './names.js';
import { backoffDelay, resolveOptions, type ConnectOptions, type ResolvedOptions, type TlsOptions } from './options.js';
import { isInfoLine, renderDebug, renderDelivery, renderError, renderInfo, renderWarning } from './render.js';
import { Subscription, type MessageHandler, type SubscriptionOwner } from './subscription.js';

export interface SubscribeOptions {
  /** Where to start: `beginning`, `new` (default), `offset:N`, `after:N`, `last:N`, `time:T`, or an object such as `{ after: 41 }`. */
  from?: PositionInput;
  /** Queue group: each message goes to one member of the group. */
  queue?: string;
}

export interface PublishOptions {
  /** Reply channel carried with the message. */
  reply?: string;
}

export interface RequestOptions {
  /** Milliseconds to wait for the first reply (default 5000). */
  timeout?: number;
}

export interface HandleOptions {
  queue?: string;
  from?: PositionInput;
}

export interface ChannelInfo {
  readonly channel: string;
  readonly first: number;
  readonly head: number;
  readonly messages: number;
  readonly bytes: number;
}

export interface DropInfo {
  /** `slow-consumer`: the broker dropped messages (memory channel); `queue-overflow`: an iterated subscription's queue overflowed; `collect-overflow`: collect() lines were dropped. */
  readonly reason: 'slow-consumer' | 'queue-overflow' | 'collect-overflow';
  readonly count: number;
  readonly channel?: string;
  readonly subscription?: Subscription;
}

export interface GapInfo {
  readonly subscription: Subscription;
  readonly channel: string;
  readonly from: number;
  readonly to: number;
}

export interface ClientEvents {
  error: [err: FluctuatError];
  disconnect: [err: Error | undefined];
  reconnect: [info: { attempts: number }];
  drop: [info: DropInfo];
  gap: [info: GapInfo];
  close: [];
}

type State = 'connecting' | 'open' | 'reconnecting' | 'closing' | 'closed';

interface PendingPublish {
  readonly id: string;
  readonly channel: string;
  readonly reply: string | undefined;
  readonly data: Buffer;
  readonly resolve: (ack: { offset: number }) => void;
  readonly reject: (err: Error) => void;
}

interface PendingPing {
  readonly start: number;
  readonly sentUs: number;
  readonly resolve: (pong: { rttMs: number; serverUs: number }) => void;
  readonly reject: (err: Error) => void;
}

interface PendingChannels {
  readonly rows: ChannelInfo[];
  readonly resolve: (rows: ChannelInfo[]) => void;
  readonly reject: (err: Error) => void;
}

interface PendingRequest {
  readonly resolve: (msg: Message) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** Header of the MSG frame whose payload is expected next. */
interface MsgHeader {
  sub: Subscription | undefined;
  channel: string;
  offset: number;
  time: number;
  publisher: string;
  reply: string | undefined;
}

const FLUSH_BYTES = 64 * 1024;
const SMALL_FRAME = 16 * 1024;
const NL = Buffer.from('\n');
const DEFAULT_HISTORY = 1000;

function nowUs(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

function toBuffer(data: Payload): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (data instanceof Uint8Array) return Buffer.from(data); // a private copy: the caller may reuse its buffer
  throw new FluctuatError(ErrorCode.BAD_ARGUMENTS, `payload must be a string or a Uint8Array, got ${typeof data}`);
}

function int(text: string | undefined): number {
  return text !== undefined && /^\d{1,16}$/.test(text) ? Number(text) : NaN;
}

/** The decimal number in bytes [from, to), NaN when empty, too long or not all digits. */
function digits(buf: Buffer, from: number, to: number): number {
  if (to <= from || to - from > 16) return NaN;
  let n = 0;
  for (let i = from; i < to; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) return NaN;
    n = n * 10 + d;
  }
  return n;
}

const SP = 0x20;
/** `MSG ` and `ACK ` as 32-bit big-endian words, to recognise the hot frames without decoding. */
const MSG_WORD = 0x4d534720;
const ACK_WORD = 0x41434b20;

/** PONG samples the clock offset is chosen from. */
const CLOCK_SAMPLES = 8;

export class Client extends EventEmitter<ClientEvents> implements SubscriptionOwner {
  /** The broker's INFO object from the current (or last) connection. */
  info: Record<string, unknown> = {};
  /**
   * Estimated broker clock minus local clock, in ms: from the PONG with the shortest round trip
   * among the last CLOCK_SAMPLES (a slow answer's midpoint is a worse guess), like NTP.
   */
  clockOffsetMs = 0;
  private clockSamples: { rttMs: number; offsetMs: number }[] = [];

  private readonly options: ResolvedOptions;
  private state: State = 'connecting';
  private name: string | undefined;
  private socket: net.Socket | null = null;
  private framer: Framer | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private reconnectAttempts = 0;
  private everConnected = false;
  /** The error behind the coming 'close' of the current socket, if any. */
  private lastSocketError: Error | undefined;

  // outgoing batch
  private out: (Buffer | string)[] = [];
  private outBytes = 0;
  private flushScheduled = false;
  private blocked = false;

  private nextId = 0;
  /** Subscriptions made so far: the k-th is `s<k>` (base 36) on every connection. */
  private nextSid = 0;
  private readonly pubs = new Map<string, PendingPublish>();
  private pubBytes = 0;
  private readonly subs = new Set<Subscription>();
  private readonly bySid = new Map<string, Subscription>();
  private readonly unsubs = new Map<string, () => void>();
  private readonly pings = new Map<string, PendingPing>();
  /**
   * Identities sent with NAME whose `OK <identity>` may still come: the broker answers NAME with
   * OK although docs/protocol.md lists OK for SUB and UNSUB only. Bounded; not relied upon.
   */
  private pendingNames: string[] = [];
  private channelsQueue: PendingChannels[] = [];
  private drainWaiters: (() => void)[] = [];

  private inboxPrefix: string | undefined;
  private inboxSub: Subscription | undefined;
  private readonly requests = new Map<string, PendingRequest>();

  private collectLines: string[] = [];
  private collectDropped = 0;

  private msg: MsgHeader | null = null;
  private closePromise: Promise<void> | null = null;

  /** Use connect() instead. */
  constructor(url: string, options: ConnectOptions = {}) {
    super();
    this.options = resolveOptions(url, options);
    this.name = this.options.name;
  }

  /** `open` while connected; `reconnecting` while it waits for the broker; `closed` at the end. */
  get status(): State {
    return this.state;
  }

  // ---------------------------------------------------------------- connection

  /** @internal first connection: rejects instead of retrying. */
  async start(): Promise<void> {
    try {
      await this.open();
    } catch (err) {
      this.state = 'closed';
      throw err;
    }
  }

  /** One connection attempt: TCP connect, `mode machine`, INFO. Resolves when the session is up. */
  private open(): Promise<void> {
    const { host, port, connectTimeoutMs } = this.options;
    let tlsOptions: tls.ConnectionOptions | undefined;
    try {
      tlsOptions = this.options.tls && tlsConnectOptions(host, this.options.tls);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<void>((resolve, reject) => {
      const socket = tlsOptions ? tls.connect({ host, port, ...tlsOptions }) : net.connect({ host, port });
      socket.setNoDelay(true);
      let handshaking = true;
      /** INFO came and a LOGIN/TOKEN went out: the session is up at its OK. */
      let loggingIn = false;
      const credentials = this.options.credentials;
      /** TLS: the handshake finished, so a close before INFO may be the broker refusing our certificate. */
      let secured = false;
      const hint = (): string => (secured ? ' (over TLS: a broker that requires a client certificate closes the connection when it refuses or misses one; its log says why)' : '');
      const fail = (err: Error): void => {
        if (!handshaking) return;
        handshaking = false;
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      const timer = setTimeout(() => {
        fail(new FluctuatError(ClientErrorCode.CONNECTION_FAILED, `no INFO from ${host}:${port} within ${connectTimeoutMs} ms`));
      }, connectTimeoutMs);
      const handshake: FrameHandler = {
        onLine: (buf, start, end) => {
          const line = buf.subarray(start, end);
          if (!handshaking) {
            this.onLine(line);
            return;
          }
          const text = line.toString('utf8');
          if (loggingIn) {
            if (text.startsWith('OK ')) {
              handshaking = false;
              clearTimeout(timer);
              this.attach(socket, framer);
              resolve();
            } else if (text.startsWith('ERR ')) {
              // ERR - <code> <message>: the broker's code (AUTH_FAILED, AUTH_BACKOFF, PLAINTEXT_REFUSED...)
              const [, , code, ...rest] = text.split(' ');
              fail(new FluctuatError(code ?? ClientErrorCode.CONNECTION_FAILED, `login to ${host}:${port} refused: ${rest.join(' ')}`));
            }
            return; // a clock PING before the login's answer: the broker does not need every answer
          }
          if (text.startsWith('INFO ')) {
            let info: unknown;
            try {
              info = JSON.parse(text.slice(5));
            } catch (cause) {
              fail(new FluctuatError(ClientErrorCode.PROTOCOL, `INFO frame is not JSON: ${text.slice(0, 80)}`, { cause }));
              return;
            }
            this.info = info !== null && typeof info === 'object' ? (info as Record<string, unknown>) : {};
            // A first clock estimate; the ping sent by attach() refines it.
            if (typeof this.info.time === 'number') this.clockOffsetMs = this.info.time / 1000 - Date.now();
            if (credentials) {
              // Still handshaking, under the same connect timeout, until the login's answer.
              loggingIn = true;
              socket.write('token' in credentials ? `TOKEN ${credentials.token}\n` : `LOGIN ${credentials.user} ${credentials.password}\n`);
              return;
            }
            handshaking = false;
            clearTimeout(timer);
            this.attach(socket, framer);
            resolve();
          } else if (text.startsWith('-ERR ') || text.startsWith('ERR ')) {
            const parts = text.split(' ');
            const code = parts[0] === 'ERR' ? parts[2] : parts[1];
            fail(new FluctuatError(ClientErrorCode.CONNECTION_FAILED, `broker refused the session: ${text}`, { cause: new FluctuatError(code ?? 'UNKNOWN', text) }));
          }
          // Anything else before INFO is a human-mode greeting: ignored.
        },
        onPayload: (buf, start, end, lasting) => this.onPayload(buf.subarray(start, end), lasting),
        onError: (code, message) => this.onFramingError(code, message),
      };
      const framer = new Framer(handshake, { maxLine: 1024 * 1024, maxPayload: Number.MAX_SAFE_INTEGER });
      socket.on('data', (chunk: Buffer) => framer.push(chunk));
      socket.once(tlsOptions ? 'secureConnect' : 'connect', () => {
        secured = tlsOptions !== undefined;
        socket.write('mode machine\n');
      });
      socket.on('error', (err) => {
        if (handshaking) fail(new FluctuatError(ClientErrorCode.CONNECTION_FAILED, `cannot connect to ${host}:${port}${tlsOptions ? ' over TLS' : ''}: ${err.message}${hint()}`, { cause: err }));
        else this.lastSocketError = err;
      });
      socket.on('close', () => {
        if (handshaking) fail(new FluctuatError(ClientErrorCode.CONNECTION_FAILED, `${host}:${port} closed the connection before INFO${hint()}`));
        else if (this.socket === socket) this.onSocketLost();
      });
    });
  }

  /** The session is up: replay state onto the new connection. */
  private attach(socket: net.Socket, framer: Framer): void {
    const reconnected = this.everConnected;
    this.socket = socket;
    this.framer = framer;
    this.everConnected = true;
    this.lastSocketError = undefined;
    this.blocked = false;
    this.out = [];
    this.outBytes = 0;
    this.msg = null;
    const attempts = this.reconnectAttempts;
    this.reconnectAttempts = 0;
    if (this.state !== 'closing') this.state = 'open';
    if (this.name !== undefined) this.sendName(this.name);
    // A ping on every connection estimates the broker's clock (used to resume `new` subscriptions).
    this.ping().catch(() => {});
    for (const sub of this.subs) {
      if (!sub.closed && !sub.suspended) this.sendSub(sub);
    }
    for (const pub of this.pubs.values()) this.sendPub(pub);
    this.flush();
    if (reconnected) this.emit('reconnect', { attempts });
  }

  private onSocketLost(): void {
    const err = this.lastSocketError;
    this.socket = null;
    this.framer = null;
    this.out = [];
    this.outBytes = 0;
    this.blocked = false;
    this.msg = null;
    this.bySid.clear();
    for (const sub of this.subs) sub.sid = undefined;
    for (const done of this.unsubs.values()) done();
    this.unsubs.clear();
    this.pendingNames = [];
    const lost = new FluctuatError(ClientErrorCode.DISCONNECTED, `connection to ${this.options.host}:${this.options.port} lost${err ? `: ${err.message}` : ''}`, { cause: err });
    for (const p of this.pings.values()) p.reject(lost);
    this.pings.clear();
    for (const c of this.channelsQueue) c.reject(lost);
    this.channelsQueue = [];
    this.emit('disconnect', err);
    if (this.state === 'closed') return;
    if (!this.options.reconnect || (this.state === 'closing' && this.pubs.size === 0)) {
      this.finish(lost);
      return;
    }
    this.state = this.state === 'closing' ? 'closing' : 'reconnecting';
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.reconnectTimer || this.state === 'closed') return;
    const delay = backoffDelay(this.reconnectAttempts, this.options.backoffInitialMs, this.options.backoffMaxMs);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.state === 'closed') return;
      this.reconnectAttempts++;
      this.open().catch((err: Error) => {
        if (this.state === 'closed') return;
        if (this.reconnectAttempts >= this.options.maxReconnectAttempts) {
          const gaveUp = new FluctuatError(ClientErrorCode.CLOSED, `gave up reconnecting to ${this.options.host}:${this.options.port} after ${this.reconnectAttempts} attempts`, { cause: err });
          this.report(gaveUp);
          this.finish(gaveUp);
          return;
        }
        this.scheduleReconnect();
      });
    }, delay);
  }

  /** Reject everything still pending and become closed. */
  private finish(reason: Error): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    const closed = reason instanceof FluctuatError ? reason : new FluctuatError(ClientErrorCode.CLOSED, reason.message, { cause: reason });
    for (const pub of this.pubs.values()) pub.reject(closed);
    this.pubs.clear();
    this.pubBytes = 0;
    for (const r of this.requests.values()) {
      clearTimeout(r.timer);
      r.reject(closed);
    }
    this.requests.clear();
    for (const p of this.pings.values()) p.reject(closed);
    this.pings.clear();
    for (const c of this.channelsQueue) c.reject(closed);
    this.channelsQueue = [];
    for (const sub of this.subs) sub.end(closed);
    this.subs.clear();
    this.bySid.clear();
    for (const done of this.unsubs.values()) done();
    this.unsubs.clear();
    for (const w of this.drainWaiters.splice(0)) w();
    if (this.socket) {
      this.socket.destroy();
      this.socket = null;
    }
    this.emit('close');
  }

  /**
   * Close the client: wait (at most drainTimeoutMs) for pending publishes to be acknowledged,
   * then say QUIT. Publishes still unacknowledged then are rejected with CLOSED.
   */
  close(): Promise<void> {
    if (this.closePromise) return this.closePromise;
    this.closePromise = (async () => {
      if (this.state === 'closed') return;
      this.state = 'closing';
      if (this.pubs.size > 0 && (this.socket || this.reconnectTimer)) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.options.drainTimeoutMs);
          this.drainWaiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
      const socket = this.socket;
      if (socket && !socket.destroyed) {
        this.enqueue('QUIT\n');
        this.flush();
        // Detached first: the coming 'close' is ours, not a loss to recover from.
        this.socket = null;
        this.framer = null;
        const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
        socket.end();
        const timer = setTimeout(() => socket.destroy(), Math.max(100, this.options.drainTimeoutMs));
        await closed;
        clearTimeout(timer);
      }
      this.finish(new FluctuatError(ClientErrorCode.CLOSED, 'client closed'));
    })();
    return this.closePromise;
  }

  // ---------------------------------------------------------------- writing

  private enqueue(frame: Buffer | string): void {
    this.out.push(frame);
    this.outBytes += frame.length;
    if (this.outBytes >= FLUSH_BYTES) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
  }

  /** Write the batch in one corked go; after write() === false, wait for 'drain'. */
  private flush(): void {
    const socket = this.socket;
    if (!socket || this.blocked || this.out.length === 0) return;
    const batch = this.out;
    this.out = [];
    this.outBytes = 0;
    socket.cork();
    let ok = true;
    for (const frame of batch) ok = socket.write(frame);
    socket.uncork();
    if (!ok) {
      this.blocked = true;
      socket.once('drain', () => {
        if (this.socket !== socket) return;
        this.blocked = false;
        this.flush();
      });
    }
  }

  private sendPub(pub: PendingPublish): void {
    const header = `PUB ${pub.channel} ${pub.id} ${pub.reply ?? '-'} ${pub.data.length}\n`;
    if (pub.data.length <= SMALL_FRAME) {
      const hlen = Buffer.byteLength(header);
      const frame = Buffer.allocUnsafe(hlen + pub.data.length + 1);
      frame.write(header, 0, 'utf8');
      pub.data.copy(frame, hlen);
      frame[frame.length - 1] = 0x0a;
      this.enqueue(frame);
    } else {
      this.enqueue(header);
      this.enqueue(pub.data);
      this.enqueue(NL);
    }
  }

  private sendSub(sub: Subscription): void {
    // Stable across reconnects and alike across clients that subscribe in the same order (a
    // swarm's probes): subscribers sharing a sid get a fan-out as one shared block (docs/protocol.md).
    const sid = (sub.wireSid ??= 's' + (++this.nextSid).toString(36));
    sub.sid = sid;
    this.bySid.set(sid, sub);
    const position = sub.resumePosition(this.options.resumeSlackMs);
    let frame = `SUB ${sid} ${sub.pattern}`;
    if (position.kind !== 'new') frame += ` from=${formatPosition(position)}`;
    if (sub.queueGroup !== undefined) frame += ` queue=${sub.queueGroup}`;
    this.enqueue(frame + '\n');
  }

  // ---------------------------------------------------------------- reading

  /** Positions of the spaces of the MSG line being parsed (reused, no allocation). */
  private readonly spaces = new Int32Array(8);

  private onLine(line: Buffer): void {
    // Hot path: MSG and ACK are parsed from the bytes; only the fields kept become strings.
    if (line.length > 4) {
      const word = line.readUInt32BE(0);
      if (word === MSG_WORD && this.onMsgBytes(line)) return;
      if (word === ACK_WORD && this.onAckBytes(line)) return;
    }
    const text = line.toString('utf8');
    const f = text.split(' ');
    switch (f[0]) {
      case 'MSG':
        return this.onMsg(f);
      case 'ACK': {
        const pub = f[1] === undefined ? undefined : this.pubs.get(f[1]);
        if (!pub) return;
        this.settlePub(pub);
        pub.resolve({ offset: int(f[2]) });
        return;
      }
      case 'OK': {
        const sid = f[1] ?? '';
        const unsub = this.unsubs.get(sid);
        if (unsub) {
          this.unsubs.delete(sid);
          unsub();
          return;
        }
        const sub = this.bySid.get(sid);
        if (!sub) {
          const named = this.pendingNames.indexOf(sid);
          if (named >= 0) this.pendingNames.splice(named, 1);
          return;
        }
        if (!sub.acked) sub.startTimeUs = nowUs() + this.clockOffsetMs * 1000;
        const first = !sub.acked;
        sub.onOk();
        if (first && sub.collect) this.pushCollect(renderDebug(`subscribing ${sub.pattern}${sub.queueGroup === undefined ? '' : ` in queue ${sub.queueGroup}`}`));
        return;
      }
      case 'LIVE': {
        const sub = this.bySid.get(f[1] ?? '');
        const offset = int(f[3]);
        if (sub && f[2] !== undefined && offset >= 0) sub.onLive(f[2], offset);
        return;
      }
      case 'DROP': {
        const sub = this.bySid.get(f[1] ?? '');
        const count = int(f[3]);
        if (!sub || f[2] === undefined) return;
        if (sub.collect) this.pushCollect(renderWarning(`dropped ${count} messages on ${f[2]} (slow consumer)`));
        this.emit('drop', { reason: 'slow-consumer', count, channel: f[2], subscription: sub });
        return;
      }
      case 'GAP': {
        const sub = this.bySid.get(f[1] ?? '');
        const from = int(f[3]);
        const to = int(f[4]);
        if (!sub || f[2] === undefined) return;
        sub.onGap(f[2], to);
        if (sub.collect) this.pushCollect(renderWarning(`messages #${from} to #${to} on ${f[2]} were removed by retention before delivery`));
        this.emit('gap', { subscription: sub, channel: f[2], from, to });
        return;
      }
      case 'PING':
        // The broker measures our round trip and clock offset: answer with our clock at once.
        this.enqueue(`PONG ${f[1] ?? '-'} ${f[2] ?? '0'} ${nowUs()}\n`);
        return;
      case 'PONG': {
        const ping = this.pings.get(f[1] ?? '');
        if (!ping) return;
        this.pings.delete(f[1]!);
        const rtt = performance.now() - ping.start;
        const serverUs = int(f[3]);
        if (serverUs > 0) this.clockSample(rtt, (serverUs - (ping.sentUs + (rtt * 1000) / 2)) / 1000);
        ping.resolve({ rttMs: rtt, serverUs });
        return;
      }
      case 'CHANNEL': {
        const pending = this.channelsQueue[0];
        if (pending && f[1] !== undefined) {
          pending.rows.push({ channel: f[1], first: int(f[2]), head: int(f[3]), messages: int(f[4]), bytes: int(f[5]) });
        }
        return;
      }
      case 'END': {
        if (f[1] === 'CHANNELS') {
          const pending = this.channelsQueue.shift();
          pending?.resolve(pending.rows);
        }
        return;
      }
      case 'ERR':
        return this.onErr(text, f);
      case 'INFO':
        try {
          this.info = JSON.parse(text.slice(5)) as Record<string, unknown>;
        } catch {
          // a later INFO that is not JSON changes nothing
        }
        return;
      default:
        this.report(new FluctuatError(ClientErrorCode.PROTOCOL, `unexpected frame from the broker: ${text.slice(0, 80)}`));
    }
  }

  /** `MSG <sid> <channel> <offset> <time-µs> <publisher> <reply|-> <size>`; false when malformed. */
  private onMsgBytes(line: Buffer): boolean {
    const sp = this.spaces;
    sp[0] = 3;
    for (let k = 1; k < 7; k++) {
      const i = line.indexOf(SP, sp[k - 1]! + 1);
      if (i < 0) return false;
      sp[k] = i;
    }
    if (line.indexOf(SP, sp[6]! + 1) >= 0) return false;
    const size = digits(line, sp[6]! + 1, line.length);
    if (Number.isNaN(size)) return false;
    const sub = this.bySid.get(line.toString('latin1', sp[0]! + 1, sp[1]!));
    if (!sub) {
      // Unsubscribed or suspended: skip the payload.
      this.framer?.expectPayload(size, true);
      return true;
    }
    const replyFrom = sp[5]! + 1;
    const noReply = sp[6]! - replyFrom === 1 && line[replyFrom] === 0x2d;
    this.msg = {
      sub,
      channel: line.toString('latin1', sp[1]! + 1, sp[2]!),
      offset: digits(line, sp[2]! + 1, sp[3]!),
      time: digits(line, sp[3]! + 1, sp[4]!),
      publisher: line.toString('utf8', sp[4]! + 1, sp[5]!),
      reply: noReply ? undefined : line.toString('latin1', replyFrom, sp[6]!),
    };
    this.framer?.expectPayload(size);
    return true;
  }

  /** `ACK <ack-id> <offset>`; false when malformed. */
  private onAckBytes(line: Buffer): boolean {
    const space = line.indexOf(SP, 4);
    if (space < 0) return false;
    const pub = this.pubs.get(line.toString('latin1', 4, space));
    if (!pub) return true;
    this.settlePub(pub);
    pub.resolve({ offset: digits(line, space + 1, line.length) });
    return true;
  }

  private onMsg(f: string[]): void {
    // MSG <sid> <channel> <offset> <time-µs> <publisher> <reply|-> <size>
    const size = int(f[7]);
    if (f.length !== 8 || !(size >= 0)) {
      this.report(new FluctuatError(ClientErrorCode.PROTOCOL, `malformed MSG frame: ${f.join(' ').slice(0, 80)}`));
      return;
    }
    const sub = this.bySid.get(f[1]!);
    if (!sub) {
      // Unsubscribed or suspended: skip the payload.
      this.framer?.expectPayload(size, true);
      return;
    }
    const reply = f[6]!;
    this.msg = { sub, channel: f[2]!, offset: int(f[3]), time: int(f[4]), publisher: f[5]!, reply: reply === '-' ? undefined : reply };
    this.framer?.expectPayload(size);
  }

  private onPayload(payload: Buffer, lasting: boolean): void {
    const h = this.msg;
    this.msg = null;
    if (!h || !h.sub) return;
    const sub = h.sub;
    if (sub.closed || sub.sid === undefined) return;
    if (!sub.accept(h.channel, h.offset, h.time)) return;
    if (sub.collect) {
      this.pushCollect(renderDelivery(h.channel, h.time, h.reply, payload));
      return;
    }
    // The application may keep the message as long as it likes: a small payload gets a copy,
    // not a view pinning its whole read (or a reused buffer when not lasting).
    const own = lasting && payload.length >= LASTING_PAYLOAD ? payload : Buffer.from(payload);
    const message = new Message(h.channel, h.offset, h.time, h.publisher, h.reply, own, this);
    try {
      const result = sub.dispatch(message);
      if (result instanceof Promise) result.catch((err: unknown) => this.handlerFailed(sub, message, err));
    } catch (err) {
      this.handlerFailed(sub, message, err);
    }
  }

  private handlerFailed(sub: Subscription, msg: Message, err: unknown): void {
    this.report(new FluctuatError(ClientErrorCode.HANDLER_FAILED, `handler of ${sub.pattern} failed on ${msg.channel} #${msg.offset}: ${err instanceof Error ? err.message : String(err)}`, { cause: err }));
  }

  private onErr(text: string, f: string[]): void {
    // ERR <ref|-> <CODE> <message>
    const ref = f[1] ?? '-';
    const code = f[2] ?? 'UNKNOWN';
    const message = f.slice(3).join(' ');
    const err = new FluctuatError(code, message === '' ? text : message, ref === '-' ? undefined : { ref });
    const pub = this.pubs.get(ref);
    if (pub) {
      this.settlePub(pub);
      pub.reject(err);
      return;
    }
    const unsub = this.unsubs.get(ref);
    if (unsub) {
      this.unsubs.delete(ref);
      unsub();
      return;
    }
    const sub = this.bySid.get(ref);
    if (sub) {
      this.bySid.delete(ref);
      sub.sid = undefined;
      this.subs.delete(sub);
      if (sub.collect) this.pushCollect(renderError(code, err.message));
      sub.fail(err);
      this.report(err);
      return;
    }
    const ping = this.pings.get(ref);
    if (ping) {
      this.pings.delete(ref);
      ping.reject(err);
      return;
    }
    if (ref === '-' && this.channelsQueue.length > 0 && (code === ErrorCode.BAD_PATTERN || code === ErrorCode.BAD_ARGUMENTS)) {
      this.channelsQueue.shift()!.reject(err);
      return;
    }
    this.report(err);
  }

  private onFramingError(code: string, message: string): void {
    this.report(new FluctuatError(ClientErrorCode.PROTOCOL, `framing error from the broker (${code}): ${message}`));
  }

  private settlePub(pub: PendingPublish): void {
    this.pubs.delete(pub.id);
    this.pubBytes -= pub.data.length;
    if (this.pubs.size === 0) for (const w of this.drainWaiters.splice(0)) w();
  }

  /** Emit 'error' when someone listens; otherwise a process warning (never an uncaught throw). */
  private report(err: FluctuatError): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else process.emitWarning(`fluctuat client: ${err.code}: ${err.message}`, { code: 'FLUCTUAT_CLIENT' });
  }

  // ---------------------------------------------------------------- public API

  /**
   * Publish `data` on `channel`. Resolves with the offset the broker assigned once the publish is
   * acknowledged (durable under the broker's policy); rejects with the broker's ERR code.
   * While disconnected the publish waits in a bounded buffer and is sent on reconnection.
   */
  publish(channel: string, data: Payload, options: PublishOptions = {}): Promise<{ offset: number }> {
    let buf: Buffer;
    try {
      checkChannel(channel);
      if (options.reply !== undefined) checkChannel(options.reply);
      buf = toBuffer(data);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.state === 'closed' || this.state === 'closing') {
      return Promise.reject(new FluctuatError(ClientErrorCode.CLOSED, `cannot publish on ${channel}: the client is ${this.state}`));
    }
    const maxPayload = this.info.maxPayload;
    if (typeof maxPayload === 'number' && buf.length > maxPayload) {
      // Refused here: the broker would skip it and answer with an ERR that names no ack-id.
      return Promise.reject(new FluctuatError(ErrorCode.PAYLOAD_TOO_LARGE, `payload of ${buf.length} bytes exceeds the broker's max-payload ${maxPayload}`));
    }
    if (this.state !== 'open') {
      if (this.pubs.size >= this.options.maxBuffered || this.pubBytes + buf.length > this.options.maxBufferedBytes) {
        return Promise.reject(
          new FluctuatError(
            ClientErrorCode.BUFFER_FULL,
            `cannot publish on ${channel}: disconnected and the offline buffer is full (${this.pubs.size} publishes, ${this.pubBytes} bytes; maxBuffered=${this.options.maxBuffered}, maxBufferedBytes=${this.options.maxBufferedBytes})`,
          ),
        );
      }
    }
    return new Promise((resolve, reject) => {
      const pub: PendingPublish = { id: 'p' + (++this.nextId).toString(36), channel, reply: options.reply, data: buf, resolve, reject };
      this.pubs.set(pub.id, pub);
      this.pubBytes += buf.length;
      if (this.socket) this.sendPub(pub);
    });
  }

  /**
   * Subscribe to a channel or pattern. Without a handler the subscription is an async iterable.
   * Deliveries resume after a reconnection without gap or duplicate (see docs/client.md).
   */
  subscribe(pattern: string, handler?: MessageHandler | SubscribeOptions, options: SubscribeOptions = {}): Subscription {
    if (handler !== undefined && typeof handler !== 'function') {
      options = handler;
      handler = undefined;
    }
    return this.subscribeInternal(pattern, handler, options.from === undefined ? { kind: 'new' } : parsePosition(options.from), options.queue, false);
  }

  private subscribeInternal(pattern: string, handler: MessageHandler | undefined, position: Position, queue: string | undefined, collect: boolean): Subscription {
    if (this.state === 'closed' || this.state === 'closing') throw new FluctuatError(ClientErrorCode.CLOSED, `cannot subscribe to ${pattern}: the client is ${this.state}`);
    checkPattern(pattern);
    if (queue !== undefined) {
      checkId(queue, 'queue group');
      if (position.kind !== 'new') throw new FluctuatError(ErrorCode.BAD_ARGUMENTS, `a queue subscription receives only new messages: drop from= or use from=new (queue ${queue} on ${pattern})`);
    }
    const sub = new Subscription(this, pattern, position, queue, handler, {
      collect,
      maxTrackedChannels: this.options.maxTrackedChannels,
      maxQueued: this.options.maxQueued,
    });
    this.subs.add(sub);
    if (this.socket) this.sendSub(sub);
    return sub;
  }

  /** @internal SubscriptionOwner */
  unsubscribe(sub: Subscription): Promise<void> {
    if (sub.closed) return Promise.resolve();
    this.subs.delete(sub);
    const sid = sub.sid;
    sub.end();
    if (sid === undefined) return Promise.resolve();
    this.bySid.delete(sid);
    sub.sid = undefined;
    if (!this.socket) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.unsubs.set(sid, resolve);
      this.enqueue(`UNSUB ${sid}\n`);
    });
  }

  /** @internal SubscriptionOwner: the iterator queue is full; the messages wait on the broker's log. */
  suspend(sub: Subscription): void {
    sub.suspended = true;
    const sid = sub.sid;
    if (sid === undefined) return;
    this.bySid.delete(sid);
    sub.sid = undefined;
    // Resumed on this connection under another sid: a late MSG of the old one is then skipped.
    sub.wireSid = 'r' + (++this.nextId).toString(36);
    if (this.socket) {
      this.unsubs.set(sid, () => {});
      this.enqueue(`UNSUB ${sid}\n`);
    }
  }

  /** @internal SubscriptionOwner */
  resume(sub: Subscription): void {
    if (!sub.suspended) return;
    sub.suspended = false;
    if (this.socket && !sub.closed) this.sendSub(sub);
  }

  /** @internal SubscriptionOwner */
  dropped(sub: Subscription, channel: string, count: number): void {
    this.emit('drop', { reason: 'queue-overflow', count, channel, subscription: sub });
  }

  /**
   * Publish on `channel` with a fresh reply channel and resolve with the first reply.
   * Rejects with code TIMEOUT after `timeout` ms (default 5000).
   */
  async request(channel: string, data: Payload, options: RequestOptions = {}): Promise<Message> {
    const timeout = options.timeout ?? 5000;
    if (!(typeof timeout === 'number' && timeout > 0)) throw new FluctuatError(ClientErrorCode.BAD_OPTION, `request: timeout must be a positive number of ms, got ${JSON.stringify(options.timeout)}`);
    checkChannel(channel);
    const inbox = this.ensureInbox();
    const token = (++this.nextId).toString(36);
    const reply = `${this.inboxPrefix}.${token}`;
    const answer = new Promise<Message>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.requests.delete(token);
        reject(new FluctuatError(ErrorCode.TIMEOUT, `no reply to a request on ${channel} within ${timeout} ms`));
      }, timeout);
      this.requests.set(token, { resolve, reject, timer });
    });
    const fail = (err: unknown): void => {
      const pending = this.requests.get(token);
      if (!pending) return;
      this.requests.delete(token);
      clearTimeout(pending.timer);
      pending.reject(err instanceof Error ? err : new Error(String(err)));
    };
    // The inbox must be subscribed before the request goes out, or a fast reply would be lost.
    inbox.ready.then(
      () => this.publish(channel, data, { reply }).catch(fail),
      fail,
    );
    return answer;
  }

  private ensureInbox(): Subscription {
    if (this.inboxSub && !this.inboxSub.closed) return this.inboxSub;
    this.inboxPrefix ??= INBOX_PREFIX + randomBytes(9).toString('base64url').replace(/[^A-Za-z0-9]/g, 'x');
    const prefixLength = this.inboxPrefix.length + 1;
    this.inboxSub = this.subscribeInternal(
      `${this.inboxPrefix}.>`,
      (msg) => {
        const token = msg.channel.slice(prefixLength);
        const pending = this.requests.get(token);
        if (!pending) return; // late or second reply
        this.requests.delete(token);
        clearTimeout(pending.timer);
        pending.resolve(msg);
      },
      { kind: 'new' },
      undefined,
      false,
    );
    return this.inboxSub;
  }

  /**
   * Answer requests on `channel`: `fn`'s result is published on each message's reply channel.
   * Messages without a reply channel are passed to `fn` and its result is dropped.
   */
  handle(channel: string, fn: (msg: Message) => Payload | void | Promise<Payload | void>, options: HandleOptions = {}): Subscription {
    const opts: SubscribeOptions = {};
    if (options.queue !== undefined) opts.queue = options.queue;
    if (options.from !== undefined) opts.from = options.from;
    return this.subscribe(
      channel,
      async (msg: Message) => {
        const result = await fn(msg);
        if (msg.reply === undefined) return;
        await msg.respond(result ?? '');
      },
      opts,
    );
  }

  private clockSample(rttMs: number, offsetMs: number): void {
    this.clockSamples.push({ rttMs, offsetMs });
    if (this.clockSamples.length > CLOCK_SAMPLES) this.clockSamples.shift();
    let best = this.clockSamples[0]!;
    for (const s of this.clockSamples) if (s.rttMs < best.rttMs) best = s;
    this.clockOffsetMs = best.offsetMs;
  }

  /** Round trip to the broker, in milliseconds. Also refreshes `clockOffsetMs`. */
  async ping(): Promise<number> {
    return (await this.pong()).rttMs;
  }

  private pong(): Promise<{ rttMs: number; serverUs: number }> {
    if (!this.socket) return Promise.reject(new FluctuatError(this.state === 'closed' ? ClientErrorCode.CLOSED : ClientErrorCode.DISCONNECTED, `cannot ping: the client is ${this.state}`));
    const token = 'k' + (++this.nextId).toString(36);
    const sentUs = nowUs();
    return new Promise((resolve, reject) => {
      this.pings.set(token, { start: performance.now(), sentUs, resolve, reject });
      this.enqueue(`PING ${token} ${sentUs}\n`);
    });
  }

  /** Channels with their offsets, counts and sizes (CHANNELS). */
  channels(pattern?: string): Promise<ChannelInfo[]> {
    try {
      if (pattern !== undefined) checkPattern(pattern);
    } catch (err) {
      return Promise.reject(err);
    }
    if (!this.socket) return Promise.reject(new FluctuatError(this.state === 'closed' ? ClientErrorCode.CLOSED : ClientErrorCode.DISCONNECTED, `cannot list channels: the client is ${this.state}`));
    return new Promise<ChannelInfo[]>((resolve, reject) => {
      this.channelsQueue.push({ rows: [], resolve, reject });
      this.enqueue(pattern === undefined ? 'CHANNELS\n' : `CHANNELS ${pattern}\n`);
    });
  }

  /** Change the publisher identity (sent now and on every reconnection). */
  setName(identity: string): void {
    checkId(identity, 'identity');
    this.name = identity;
    if (this.socket) this.sendName(identity);
  }

  private sendName(identity: string): void {
    this.pendingNames.push(identity);
    if (this.pendingNames.length > 16) this.pendingNames.shift();
    this.enqueue(`NAME ${identity}\n`);
  }

  // ---------------------------------------------------------------- the three-call API

  /**
   * Every line received since the last call, rendered like human mode. `# [I]`/`# [D]` lines
   * are included only with `info: true`; `# [W]` warnings and `-ERR` lines always are.
   */
  collect(options: { info?: boolean } = {}): string[] {
    let lines = this.collectLines;
    this.collectLines = [];
    if (this.collectDropped > 0) {
      lines.unshift(`# [W] collect buffer full: dropped ${this.collectDropped} lines`);
      this.collectDropped = 0;
    }
    if (!options.info) lines = lines.filter((l) => !isInfoLine(l));
    return lines;
  }

  private pushCollect(line: string): void {
    this.collectLines.push(line);
    if (this.collectLines.length > this.options.collectMax) {
      // Drop the oldest half-percent at once so that a flood does not shift the array per line.
      const n = Math.max(1, this.collectLines.length - this.options.collectMax);
      this.collectLines.splice(0, n);
      this.collectDropped += n;
      this.emit('drop', { reason: 'collect-overflow', count: n });
    }
  }

  private collectError(err: unknown): void {
    const e = err as Partial<FluctuatError>;
    this.pushCollect(renderError(typeof e.code === 'string' ? e.code : 'BAD_ARGUMENTS', e.message ?? String(err)));
  }

  /**
   * Human commands (several lines allowed), read by the broker's own parser and translated to
   * machine frames; their answers arrive in collect() as human mode prints them. The promise
   * resolves once every command was answered; it never rejects (errors are `-ERR` lines).
   */
  send(raw: string): Promise<void> {
    const done: Promise<unknown>[] = [];
    for (const line of String(raw).split('\n')) {
      const cmd = parseHumanCommand(line);
      try {
        const answered = this.runHuman(cmd);
        if (answered) done.push(answered.catch((err: unknown) => this.collectError(err)));
      } catch (err) {
        this.collectError(err);
      }
    }
    return Promise.all(done).then(() => undefined);
  }

  private runHuman(cmd: ReturnType<typeof parseHumanCommand>): Promise<unknown> | undefined {
    switch (cmd.verb) {
      case 'empty':
        return undefined;
      case 'error':
        this.pushCollect(renderError(cmd.code, cmd.message));
        return undefined;
      case 'sub': {
        if ([...this.subs].some((s) => s.collect && s.pattern === cmd.pattern)) {
          throw new FluctuatError(ErrorCode.DUPLICATE_SID, `already subscribed to ${cmd.pattern}`);
        }
        const queue = cmd.queue === '' ? undefined : cmd.queue;
        const position: Position = cmd.from ? toPosition(cmd.from) : queue ? { kind: 'new' } : { kind: 'last', count: this.historyMax() };
        // A refused SUB is already rendered as -ERR by onErr().
        return this.subscribeInternal(cmd.pattern, undefined, position, queue, true).ready.catch(() => {});
      }
      case 'unsub': {
        const mine = [...this.subs].filter((s) => s.collect && s.pattern === cmd.sid);
        if (mine.length === 0) throw new FluctuatError(ErrorCode.NOT_SUBSCRIBED, `no subscription ${JSON.stringify(cmd.sid)} on this connection`);
        return Promise.all(mine.map((s) => s.unsubscribe())).then(() => this.pushCollect(renderDebug(`unsubscribing ${cmd.sid}`)));
      }
      case 'pubtext':
        return this.publish(cmd.channel, cmd.text).then(({ offset }) => {
          // Offsets start at 1 and are never reused: offset 1 means this publish created the channel.
          if (offset === 1) this.pushCollect(renderInfo(`creating ${cmd.channel}`));
          this.pushCollect(renderDebug(`published ${cmd.channel} #${offset}`));
        });
      case 'req':
        return this.request(cmd.channel, cmd.text, { timeout: 5000 }).then(
          (msg) => this.pushCollect(renderDelivery(msg.channel, msg.time, msg.reply, msg.data)),
          (err: FluctuatError) => {
            if (err.code === ErrorCode.TIMEOUT) throw new FluctuatError(ErrorCode.TIMEOUT, `no reply on ${cmd.channel} within 5000 ms`);
            throw err;
          },
        );
      case 'channels':
        return this.channels(cmd.pattern).then((list) => {
          for (const c of list) this.pushCollect(`channel ${c.channel} messages=${c.messages} first=${c.first} last=${c.head} bytes=${c.bytes}`);
          this.pushCollect(renderInfo(`${list.length} channel${list.length === 1 ? '' : 's'}`));
        });
      case 'name': {
        this.setName(cmd.name);
        this.pushCollect(renderInfo(`you are ${cmd.name}`));
        return undefined;
      }
      case 'ping':
        return this.pong().then(({ serverUs }) => this.pushCollect(`pong ${new Date(serverUs / 1000).toISOString()}`));
      case 'help': {
        if (cmd.topic) {
          const text = HUMAN_HELP[cmd.topic];
          if (!text) throw new FluctuatError(ErrorCode.BAD_ARGUMENTS, `no help for ${JSON.stringify(cmd.topic)}; topics: ${Object.keys(HUMAN_HELP).join(', ')}`);
          this.pushCollect(`# ${text}`);
          return undefined;
        }
        this.pushCollect(`# fluctuat ${typeof this.info.version === 'string' ? this.info.version : ''}: commands`);
        for (const text of Object.values(HUMAN_HELP)) this.pushCollect(`#   ${text}`);
        return undefined;
      }
      case 'mode':
        if (cmd.mode === 'human') {
          this.pushCollect(renderInfo('human mode'));
          return undefined;
        }
        throw new FluctuatError(ErrorCode.BAD_ARGUMENTS, 'send() speaks human mode; use the Client methods (publish, subscribe, ...) for machine mode');
      case 'quit':
        this.pushCollect(renderInfo('bye'));
        return this.close();
      case 'pub': // machine-mode PUB: parseHuman never returns it
        return undefined;
    }
  }

  /** How many messages a human-mode `sub` replays: the broker's history-max when INFO tells it. */
  private historyMax(): number {
    for (const key of ['historyMax', 'history_max', 'history-max']) {
      const v = this.info[key];
      if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
    }
    const limits = this.info.limits;
    if (limits && typeof limits === 'object') {
      const v = (limits as Record<string, unknown>).historyMax ?? (limits as Record<string, unknown>)['history-max'];
      if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
    }
    return DEFAULT_HISTORY;
  }
}

/** Connect to a broker (`fluctuat://host:port`, `tcp://host:port`; port 2023 by default). */
export async function connect(url: string, options?: ConnectOptions): Promise<Client> {
  const client = new Client(url, options);
  await client.start();
  return client;
}

/** node:tls options for a connection; the *File options are read now, at each attempt, so renewed files are picked up. */
function tlsConnectOptions(host: string, t: Readonly<TlsOptions>): tls.ConnectionOptions {
  const file = (what: string, f: string): Buffer => {
    try {
      return readFileSync(f);
    } catch (cause) {
      throw new FluctuatError(ClientErrorCode.CONNECTION_FAILED, `cannot read the TLS ${what} ${f}: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`, { cause });
    }
  };
  const o: tls.ConnectionOptions = { rejectUnauthorized: t.rejectUnauthorized ?? true };
  const ca = t.ca ?? (t.caFile !== undefined ? file('CA file', t.caFile) : undefined);
  if (ca !== undefined) o.ca = ca;
  const cert = t.cert ?? (t.certFile !== undefined ? file('certificate', t.certFile) : undefined);
  if (cert !== undefined) o.cert = cert;
  const key = t.key ?? (t.keyFile !== undefined ? file('key', t.keyFile) : undefined);
  if (key !== undefined) o.key = key;
  if (t.passphrase !== undefined) o.passphrase = t.passphrase;
  // SNI carries DNS names only; an IP address is still checked against the certificate's IP SANs.
  const servername = t.servername ?? (net.isIP(host) ? undefined : host);
  if (servername !== undefined) o.servername = servername;
  return o;
}
