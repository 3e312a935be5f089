/**
 * A subscription as the client keeps it across connections: what was asked, what was seen, and
 * where to resume. The Subscription object, its handler and its sid stay across reconnects.
 */
import { ClientErrorCode, FluctuatError } from './errors.js';
import type { Message } from './message.js';
import { isEphemeral, isPlainChannel, type Position } from './names.js';

export type MessageHandler = (msg: Message) => unknown;

/** What a subscription needs from its client. */
export interface SubscriptionOwner {
  unsubscribe(sub: Subscription): Promise<void>;
  /** The iterator queue passed its bound: stop the wire subscription (it resumes from the log). */
  suspend(sub: Subscription): void;
  /** The iterator queue drained: resubscribe from the last offset delivered. */
  resume(sub: Subscription): void;
  /** The iterator queue passed its bound on a subscription that cannot resume: count a drop. */
  dropped(sub: Subscription, channel: string, count: number): void;
}

interface Waiter {
  resolve(result: IteratorResult<Message>): void;
  reject(err: unknown): void;
}

export class Subscription implements AsyncIterable<Message> {
  /** Resolves once the broker accepted the subscription (`OK <sid>`); rejects on `ERR <sid>`. */
  readonly ready: Promise<void>;
  /** True for a subscription on exactly one channel (no wildcard). */
  readonly plain: boolean;
  readonly ephemeral: boolean;

  /** @internal current wire sid; undefined while not subscribed on the wire. */
  sid: string | undefined;
  /** @internal the sid this subscription uses on every connection, chosen at its first SUB. */
  wireSid: string | undefined;
  /** @internal the broker acknowledged this subscription at least once. */
  acked = false;
  /** @internal closed by unsubscribe(), by a refused SUB or by the client's close(). */
  closed = false;
  /** @internal made through send(): deliveries go to collect(). */
  readonly collect: boolean;
  /** @internal the broker's time when it acknowledged the first SUB (µs, estimated). */
  startTimeUs = 0;
  /** @internal plain channels: last offset delivered (or skipped by GAP). */
  lastOffset = 0;
  /** @internal plain channels: the offset at which replay reached the live stream (LIVE), -1 if unknown. */
  liveOffset = -1;
  /** @internal wildcards: time of the newest message delivered (µs). */
  lastTimeUs = 0;
  /** @internal wildcards: last offset delivered per channel, bounded, oldest-inserted evicted first. */
  readonly seen = new Map<string, number>();
  /** @internal the iterator queue is full and the wire subscription stopped. */
  suspended = false;

  private settle!: { resolve: () => void; reject: (err: Error) => void };
  private settled = false;
  private readonly queue: Message[] = [];
  private queueHead = 0;
  private readonly waiters: Waiter[] = [];
  private iterating = false;

  constructor(
    private readonly owner: SubscriptionOwner,
    readonly pattern: string,
    /** Where the subscription was asked to start. */
    readonly position: Position,
    readonly queueGroup: string | undefined,
    private readonly handler: MessageHandler | undefined,
    options: { collect: boolean; maxTrackedChannels: number; maxQueued: number },
  ) {
    this.plain = isPlainChannel(pattern);
    this.ephemeral = isEphemeral(pattern);
    this.collect = options.collect;
    this.maxTracked = options.maxTrackedChannels;
    this.maxQueued = options.maxQueued;
    this.ready = new Promise<void>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    // Nobody has to await ready: a refused subscription is also reported as an 'error' event.
    this.ready.catch(() => {});
  }
  private readonly maxTracked: number;
  private readonly maxQueued: number;

  /** Stop receiving. Resolves once the broker confirmed (or at once while disconnected). */
  unsubscribe(): Promise<void> {
    return this.owner.unsubscribe(this);
  }

  /** @internal */
  onOk(): void {
    this.acked = true;
    if (!this.settled) {
      this.settled = true;
      this.settle.resolve();
    }
  }

  /** @internal the broker refused the SUB, or the client closed. */
  fail(err: Error): void {
    if (!this.settled) {
      this.settled = true;
      this.settle.reject(err);
    }
    this.end(err);
  }

  /** @internal */
  end(err?: Error): void {
    this.closed = true;
    if (!this.settled) {
      this.settled = true;
      this.settle.reject(err ?? new FluctuatError(ClientErrorCode.CLOSED, `subscription ${this.pattern} closed before the broker confirmed it`));
    }
    for (const w of this.waiters.splice(0)) w.resolve({ value: undefined, done: true });
  }

  /**
   * @internal Duplicate check and bookkeeping for a delivery about to be made. Returns false for
   * a message already delivered (a resumed subscription's overlap).
   */
  accept(channel: string, offset: number, timeUs: number): boolean {
    if (offset === 0) return true; // ephemeral: no offsets, nothing to resume
    if (this.plain) {
      if (offset <= this.lastOffset) return false;
      this.lastOffset = offset;
      return true;
    }
    const last = this.seen.get(channel);
    if (last !== undefined && offset <= last) return false;
    if (last === undefined && this.seen.size >= this.maxTracked) {
      const oldest = this.seen.keys().next();
      if (!oldest.done) this.seen.delete(oldest.value);
    }
    this.seen.set(channel, offset);
    if (timeUs > this.lastTimeUs) this.lastTimeUs = timeUs;
    return true;
  }

  /** @internal LIVE: replay of channel reached the live stream at offset. */
  onLive(channel: string, offset: number): void {
    if (this.plain) {
      if (offset > this.liveOffset) this.liveOffset = offset;
    } else if (offset > 0 && !this.seen.has(channel) && this.seen.size < this.maxTracked) {
      this.seen.set(channel, offset);
    }
  }

  /** @internal GAP: offsets from..to were removed by retention; never ask for them again. */
  onGap(channel: string, to: number): void {
    if (this.plain) {
      if (to > this.lastOffset) this.lastOffset = to;
    } else {
      const last = this.seen.get(channel);
      if (last === undefined || to > last) this.seen.set(channel, to);
    }
  }

  /**
   * @internal Where to start the wire subscription on a (re)connection, so that the handler sees
   * neither a gap nor a duplicate it cannot detect. See docs/client.md, "Reconnect and resume".
   */
  resumePosition(slackMs: number): Position {
    const original = this.position;
    if (!this.acked && !this.suspended) return original;
    // Queue groups: messages published while away went to the other members; rejoin live.
    // Ephemeral channels keep no history.
    if (this.queueGroup !== undefined || this.ephemeral) return { kind: 'new' };
    if (this.plain) {
      if (this.lastOffset > 0) return { kind: 'after', offset: this.lastOffset };
      if (this.liveOffset >= 0) return { kind: 'after', offset: this.liveOffset };
      if (original.kind === 'new' && this.startTimeUs > 0) return { kind: 'time', ms: Math.max(0, Math.floor(this.startTimeUs / 1000 - slackMs)) };
      return original;
    }
    if (this.lastTimeUs > 0) return { kind: 'time', ms: Math.max(0, Math.floor(this.lastTimeUs / 1000 - slackMs)) };
    if (original.kind === 'new' && this.startTimeUs > 0) return { kind: 'time', ms: Math.max(0, Math.floor(this.startTimeUs / 1000 - slackMs)) };
    return original;
  }

  /** @internal hand a message to the handler or the iterator queue. Returns what the handler returned. */
  dispatch(msg: Message): unknown {
    if (this.handler) return this.handler(msg);
    const waiter = this.waiters.shift();
    if (waiter) {
      waiter.resolve({ value: msg, done: false });
      return undefined;
    }
    this.queue.push(msg);
    if (this.queue.length - this.queueHead > this.maxQueued) {
      const resumable = this.plain && !this.ephemeral && this.queueGroup === undefined;
      if (resumable) {
        if (!this.suspended) this.owner.suspend(this);
      } else {
        this.queueHead++;
        this.owner.dropped(this, msg.channel, 1);
      }
    }
    return undefined;
  }

  private take(): Message | undefined {
    if (this.queueHead >= this.queue.length) return undefined;
    const msg = this.queue[this.queueHead]!;
    this.queue[this.queueHead] = undefined as unknown as Message;
    this.queueHead++;
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
    if (this.suspended && !this.closed && this.queue.length - this.queueHead <= this.maxQueued / 2) this.owner.resume(this);
    return msg;
  }

  /** Messages of a subscription made without a handler, in order; ends when it is unsubscribed. */
  [Symbol.asyncIterator](): AsyncIterator<Message> {
    if (this.handler) throw new FluctuatError(ClientErrorCode.BAD_OPTION, `subscription ${this.pattern} has a handler; it cannot also be iterated`);
    if (this.iterating) throw new FluctuatError(ClientErrorCode.BAD_OPTION, `subscription ${this.pattern} is already being iterated`);
    this.iterating = true;
    return {
      next: (): Promise<IteratorResult<Message>> => {
        const msg = this.take();
        if (msg) return Promise.resolve({ value: msg, done: false });
        if (this.closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
      },
      return: async (): Promise<IteratorResult<Message>> => {
        if (!this.closed) await this.unsubscribe();
        return { value: undefined, done: true };
      },
    };
  }
}
