import { ErrorCode, ProtocolError } from '../protocol/errors.js';
import { displayName, isEphemeral, isWildcard, matches } from '../protocol/names.js';
import { payloadOf, type ChannelLog, type ChannelStats, type Log, type PayloadRange, type StartPosition, type StorageEngine, type StoredMessage, type AppendCallback, type AppendRef } from '../storage/engine.js';
import { NO_REFUSALS, noQuotas, TenantQuotas, type QuotaSettings } from './quotas.js';
import { SubjectIndex } from './subject-index.js';
import { planFanOut, type FanOutPlan, type Target } from './fan-out-plan.js';
import { QueueGroup, Subscription, type Consumer, type Feed, type FeedEvent, type SharedEncodings } from './subscription.js';
import { Pushback } from './pushback.js';
import { atTurnEnd } from '../loop/turn-end.js';

/** `slow-consumer block`: a subscriber reading a log this close to retention (room, 0–1) holds the channel. */
const HOLD_BELOW_ROOM = 0.5;

/**
 * Memory channels: a subscriber over its bound loses messages (with a notice), its connection,
 * or slows the publishers (pushback.ts). File channels: `block` also holds publishers before
 * a size or count retention overtakes a subscriber reading from behind (`holdAhead`).
 */
export const SLOW_CONSUMER_POLICIES = ['drop', 'disconnect', 'block'] as const;
export type SlowConsumerPolicy = (typeof SLOW_CONSUMER_POLICIES)[number];

export interface BrokerOptions {
  /** Memory channels: what to do with a subscriber over its outbound bound. */
  readonly slowConsumer: SlowConsumerPolicy;
  /** `block`: how long a subscriber may keep publishers waiting without draining before it is disconnected. */
  readonly blockTimeoutMs: number;
  /** Messages a queue group holds while all its members are congested. */
  readonly queueBacklog: number;
  /** Catch-up reads from storage: messages and bytes per read. */
  readonly readBatchMessages: number;
  readonly readBatchBytes: number;
  /** Channels and stored bytes per tenant (`limit channels|disk ... per tenant`, `tenant { }`). */
  readonly quotas: QuotaSettings;
}

export const defaultBrokerOptions: BrokerOptions = Object.freeze({
  slowConsumer: 'drop',
  blockTimeoutMs: 10_000,
  queueBacklog: 10_000,
  readBatchMessages: 1024,
  readBatchBytes: 1024 * 1024,
  quotas: noQuotas,
});

/** Everything the broker counts; exported as metrics. */
export interface BrokerCounters {
  published: number;
  delivered: number;
  /** Of those, deliveries sent inside a block shared by subscribers with the same sid. */
  blockDelivered: number;
  /** Live subscriber switched to reading from the log because it fell behind. */
  catchUps: number;
  /** Messages read from storage for replay or catch-up. */
  replayed: number;
  /** Memory channels: messages dropped for slow consumers. */
  dropped: number;
  slowDisconnects: number;
  queueDropped: number;
  channelsCreated: number;
}

const EMPTY = Buffer.alloc(0);
const TIME_ORIGIN = performance.timeOrigin; // a getter through the perf bindings: read once

/**
 * Monotonic wall-clock time in ms, quantised to whole microseconds: timestamps never go
 * backwards, and the µs a client sees compare exactly like the ms the log stores.
 */
export function now(): number {
  return Math.round((TIME_ORIGIN + performance.now()) * 1000) / 1000;
}

let turnStamp = 0;
const endTurn = (): void => {
  turnStamp = 0;
};

/**
 * now(), read once per event-loop turn. Everything handled in one turn was already received
 * when the loop woke up to read it, so this is its receive time too; and a burst of publishes
 * shares one clock read and one encoded timestamp instead of paying for each.
 */
export function turnNow(): number {
  if (turnStamp === 0) {
    turnStamp = now();
    atTurnEnd(endTurn);
  }
  return turnStamp;
}

/** What publish hands to `append`, reused: the log copies what it keeps (engine.ts). */
interface Outgoing {
  timestamp: number;
  publisher: string;
  reply: string;
  data: Buffer;
  start: number;
  end: number;
}

/** Whether a group member takes this batch as a block now; `offer`'s live case, for a batch. */
function blockReady(sub: Subscription, key: string, channel: string): boolean {
  return !sub.closed && (sub.feeds.size === 0 || !sub.feeds.has(channel)) && sub.consumer.blockKey(sub) === key && !sub.consumer.congested();
}

/**
 * A message held past its delivery (a queue group's backlog). A small payload in a larger read
 * chunk (a range of it, or a view) gets bytes of its own, so the backlog pins what it holds, not whole reads. (Node's
 * own pool slabs, 8 KiB, are small enough to share.)
 */
export function kept(msg: StoredMessage): StoredMessage {
  if (pinsLittle(msg)) return msg;
  const own = Buffer.from(payloadOf(msg));
  return { ...msg, data: own, start: 0, end: own.length };
}

/** Whether keeping the payload keeps little more memory alive than its own bytes. */
export function pinsLittle(payload: PayloadRange): boolean {
  const under = payload.data.buffer.byteLength;
  return under <= Buffer.poolSize || (payload.end - payload.start) * 4 >= under;
}

/**
 * The broker core: channels, wildcard subscriptions, queue groups, fan-out, replay and
 * catch-up. It knows no transport and no concrete storage driver.
 */
export class Broker {
  readonly counters: BrokerCounters = {
    published: 0, delivered: 0, blockDelivered: 0, catchUps: 0, replayed: 0, dropped: 0, slowDisconnects: 0, queueDropped: 0, channelsCreated: 0,
  };
  private readonly index = new SubjectIndex<Subscription | QueueGroup>();
  /** Per SubjectIndex result (a new array whenever subscriptions change): who shares blocks. */
  private readonly plans = new WeakMap<readonly Target[], FanOutPlan>();
  private readonly groups = new Map<string, QueueGroup>();
  private closing = false;
  private lastChannel = '';
  private lastLog: ChannelLog | null = null;
  private readonly outgoing: Outgoing = { timestamp: 0, publisher: '', reply: '', data: EMPTY, start: 0, end: 0 };
  /** Null when no quota is configured: then publishing does not pay for them. */
  readonly quotas: TenantQuotas | null;
  /** `slow-consumer block` only: which memory channels slow readers hold, and who waits for them. */
  readonly pushback: Pushback<Reader> | null;

  constructor(
    readonly engine: StorageEngine,
    readonly options: BrokerOptions,
    private readonly log: Log,
  ) {
    this.quotas = TenantQuotas.needed(options.quotas) ? new TenantQuotas(options.quotas, engine) : null;
    this.pushback = options.slowConsumer === 'block' ? new Pushback<Reader>(options.blockTimeoutMs, (r, c, ms) => this.overdue(r, c, ms)) : null;
  }

  /** Figures of the process around the broker for `stats` (server/loop-health.ts adds its event loop's). */
  private readonly gauges: (() => Readonly<Record<string, number>>)[] = [];

  addGauges(source: () => Readonly<Record<string, number>>): void {
    this.gauges.push(source);
  }

  /** A snapshot of the counters and gauges, for `stats` and metrics. */
  stats(connections: number): Record<string, number> {
    const stats: Record<string, number> = {
      ...this.counters,
      connections,
      subscriptions: this.index.size,
      queueGroups: this.groups.size,
      channels: this.engine.channels().length,
      ...(this.quotas?.counters ?? NO_REFUSALS),
      ...this.engine.counters?.(),
      ...(this.pushback ? { ...this.pushback.counters, ...this.pushback.figures() } : {}),
      rssBytes: process.memoryUsage.rss(),
      uptimeSeconds: Math.round(process.uptime()),
    };
    for (const g of this.gauges) Object.assign(stats, g());
    return stats;
  }

  async start(): Promise<void> {
    const quotas = this.quotas;
    await this.engine.start((channel, batch) => {
      quotas?.committed(channel);
      this.fanOut(channel, batch, this.engine.channel(channel));
    });
    quotas?.recount();
  }

  get subscriptionCount(): number {
    return this.index.size;
  }

  /**
   * Publish a message whose payload is `data[start, end)`. `data` must never be written again
   * (not a reused buffer); it is usually a socket read, so what outlives the delivery is copied
   * (`kept`), and the payload is passed as a range (engine.ts, NewMessage).
   * Returns true when the publish created the channel. `done` runs once the durability
   * policy holds, with the message's offset and `ref` (one callback serves many publishes).
   */
  publish(channel: string, data: Buffer, start: number, end: number, reply: string, publisher: string, done?: AppendCallback, ref: AppendRef = ''): boolean {
    const size = end - start;
    if (this.closing) {
      done?.(new ProtocolError(ErrorCode.SHUTTING_DOWN, 'the broker is shutting down; publish not accepted'), 0, ref, channel, size);
      return false;
    }
    this.counters.published++;
    const timestamp = turnNow();
    // The last channel published to is a stored one: a repeat skips the prefix checks.
    if (channel !== this.lastChannel && isEphemeral(channel)) {
      // Reply inboxes are never stored: offset 0, delivered at once.
      this.fanOut(channel, [{ channel, offset: 0, timestamp, publisher, reply, data, start, end }], null);
      done?.(null, 0, ref, channel, size);
      return false;
    }
    const refused = this.quotas?.admit(channel, size);
    if (refused) {
      done?.(refused, 0, ref, channel, size);
      return false;
    }
    // A publisher repeats its channel: the same name string skips both engine lookups.
    let log = this.lastLog;
    let created = false;
    if (channel !== this.lastChannel || log === null) {
      created = !this.engine.has(channel);
      if (created) this.counters.channelsCreated++;
      log = this.engine.channel(channel);
      this.lastChannel = channel;
      this.lastLog = log;
    }
    const m = this.outgoing;
    m.timestamp = timestamp;
    m.publisher = publisher;
    m.reply = reply;
    m.data = data;
    m.start = start;
    m.end = end;
    log.append(m, done, ref);
    m.data = EMPTY; // hold no payload past the call
    return created;
  }

  /** Start a subscription; replay per `from` runs in the background. */
  subscribe(consumer: Consumer, sid: string, pattern: string, from: StartPosition, queue = ''): Subscription {
    const sub = new Subscription(consumer, sid, pattern, queue, from);
    if (queue) {
      const key = `${queue}\u0000${pattern}`;
      let group = this.groups.get(key);
      if (!group) {
        group = new QueueGroup(key, queue, pattern);
        this.groups.set(key, group);
        this.index.add(pattern, group);
      }
      group.members.push(sub);
      this.feedGroup(group);
      return sub;
    }
    this.index.add(pattern, sub);
    if (from.kind !== 'new') {
      for (const channel of this.engine.channels()) {
        if (!matches(pattern, channel)) continue;
        const feed: Feed = { channel, next: -1, reading: true };
        this.follow(sub, feed, this.engine.channel(channel));
        void this.startFeed(sub, feed, from);
      }
    }
    // A single-channel subscription with nothing to replay is live at once: say so, with the
    // head, so a client that reconnects can resume by offset even if it saw no message.
    if (!isWildcard(pattern) && sub.feeds.size === 0) {
      const head = isEphemeral(pattern) || !this.engine.has(pattern) ? 0 : this.engine.channel(pattern).head;
      consumer.notify(sub, { kind: 'live', channel: pattern, offset: head });
    }
    return sub;
  }

  unsubscribe(sub: Subscription): void {
    if (sub.closed) return;
    sub.closed = true;
    for (const feed of sub.feeds.values()) this.unfollow(feed);
    sub.feeds.clear();
    this.pushback?.release(sub);
    if (!sub.queue) {
      this.index.remove(sub.pattern, sub);
      return;
    }
    const group = this.groups.get(`${sub.queue}\u0000${sub.pattern}`);
    if (!group) return;
    const i = group.members.indexOf(sub);
    if (i >= 0) group.members.splice(i, 1);
    if (group.members.length === 0) {
      group.closed = true;
      for (const feed of group.feeds.values()) this.unfollow(feed);
      group.feeds.clear();
      this.pushback?.release(group);
      this.index.remove(group.pattern, group);
      this.groups.delete(group.key);
      if (group.backlog.length) this.counters.queueDropped += group.backlog.length;
    }
  }

  /** The consumer has room again: resume its catch-up reads, send drop notices, feed queue groups. */
  drained(sub: Subscription): void {
    if (sub.closed) return;
    if (this.pushback !== null) {
      // Still too far behind on a log: its publishers keep waiting. Released on each drain,
      // they would publish a turn's reads every time and could outrun its catching up.
      if (this.behindOnLog(sub)) this.pushback.progressed(sub);
      else this.pushback.release(sub);
    }
    for (const [channel, count] of sub.drops) {
      sub.consumer.notify(sub, { kind: 'drop', channel, count });
    }
    sub.drops.clear();
    for (const feed of sub.feeds.values()) {
      if (!feed.reading) void this.pump(sub, feed);
    }
    if (sub.queue) {
      const group = this.groups.get(`${sub.queue}\u0000${sub.pattern}`);
      if (group) this.feedGroup(group);
    }
  }

  channelList(pattern = '>'): ChannelStats[] {
    return this.engine
      .channels()
      .filter((c) => matches(pattern, c))
      .sort()
      .map((c) => this.engine.channel(c).stats());
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.engine.close();
  }

  // --- fan-out -------------------------------------------------------------------------------

  private fanOut(channel: string, batch: readonly StoredMessage[], log: ChannelLog | null): void {
    const targets = this.index.match(channel);
    if (targets.length === 0) return;
    let each = targets;
    // A batch of one (a quiet channel) is cheaper shared per message than as a block.
    if (targets.length > 1 && batch.length > 1) {
      let plan = this.plans.get(targets);
      if (plan === undefined) this.plans.set(targets, (plan = planFanOut(targets)));
      if (plan.groups.length !== 0) each = this.deliverBlocks(plan, channel, batch);
    }
    for (let m = 0; m < batch.length; m++) {
      const msg = batch[m]!;
      // With one target nothing is worth caching: no object per message on the common path.
      const shared: SharedEncodings | null = each.length === 1 ? null : { human: undefined, machine: undefined };
      for (let t = 0; t < each.length; t++) {
        const target = each[t]!;
        if (target.closed) continue; // gone earlier in this batch (disconnected as a slow consumer)
        if (target instanceof Subscription) this.offer(target, msg, shared, log);
        else this.offerToGroup(target, msg, shared, log);
      }
    }
  }

  /**
   * Sends the batch as one block to each group's members that can take it now; returns the
   * targets that still get it message by message (the plan's singles, and members that are
   * congested or reading from the log: `offer` decides for them as for anyone).
   */
  private deliverBlocks(plan: FanOutPlan, channel: string, batch: readonly StoredMessage[]): readonly Target[] {
    let left: Target[] | null = null;
    for (let g = 0; g < plan.groups.length; g++) {
      const members = plan.groups[g]!;
      const key = plan.keys[g]!;
      // The first ready member waits for a second one: a block for one is not worth encoding.
      let first: Subscription | null = null;
      let block: Buffer | null = null;
      for (let i = 0; i < members.length; i++) {
        const sub = members[i]!;
        if (!blockReady(sub, key, channel)) {
          (left ??= plan.singles.slice()).push(sub);
        } else if (block === null && first === null) {
          first = sub;
        } else {
          if (block === null) {
            block = sub.consumer.encodeBlock(sub, batch);
            this.sendBlock(first!, block, batch.length);
          }
          this.sendBlock(sub, block, batch.length);
        }
      }
      if (block === null && first !== null) (left ??= plan.singles.slice()).push(first);
    }
    return left ?? plan.singles;
  }

  private sendBlock(sub: Subscription, block: Buffer, count: number): void {
    this.counters.delivered += count;
    this.counters.blockDelivered += count;
    sub.consumer.deliverBlock(sub, block, count);
  }

  private offer(sub: Subscription, msg: StoredMessage, shared: SharedEncodings | null, log: ChannelLog | null): void {
    const channel = msg.channel;
    if (sub.feeds.size !== 0 && sub.feeds.has(channel)) {
      // It reads this from the log. Stalled there (no read in progress to look), it may still
      // have to hold the channel before retention overtakes it; checked every 64th offset.
      if (this.pushback !== null && (msg.offset & 63) === 0 && log?.retentionRoom) {
        const feed = sub.feeds.get(channel)!;
        if (!feed.reading && feed.next >= 0) this.holdAhead(sub, channel, log.retentionRoom(feed.next));
      }
      return;
    }
    const consumer = sub.consumer;
    if (!consumer.congested()) {
      this.counters.delivered++;
      consumer.deliver(sub, msg, shared);
      return;
    }
    if (log?.replayable) {
      // Fall behind onto the log: nothing is buffered; the reader resumes when drained.
      this.counters.catchUps++;
      this.follow(sub, { channel, next: msg.offset, reading: false }, log);
      return;
    }
    if (this.pushback !== null) {
      // Past the bound, and the channel is held: its publishers wait until this reader drains.
      this.pushback.hold(sub, channel);
      this.counters.delivered++;
      consumer.deliver(sub, msg, shared);
      return;
    }
    if (this.options.slowConsumer === 'disconnect') {
      this.counters.slowDisconnects++;
      consumer.disconnect(ErrorCode.SLOW_CONSUMER, `slow consumer: outbound buffer full on memory channel ${displayName(channel)}`);
      return;
    }
    this.counters.dropped++;
    sub.drops.set(channel, (sub.drops.get(channel) ?? 0) + 1);
  }

  private offerToGroup(group: QueueGroup, msg: StoredMessage, shared: SharedEncodings | null, log: ChannelLog | null): void {
    const channel = msg.channel;
    if (group.feeds.size !== 0 && group.feeds.has(channel)) {
      // The group reads this from the log; stalled there, it may have to hold the channel (offer).
      if (this.pushback !== null && (msg.offset & 63) === 0 && log?.retentionRoom) {
        const feed = group.feeds.get(channel)!;
        if (!feed.reading && feed.next >= 0) this.holdAhead(group, channel, log.retentionRoom(feed.next));
      }
      return;
    }
    let member = group.nextFree();
    if (member !== null && group.backlog.length !== 0) {
      // A member has room but older tasks wait: they go first, so tasks go out in order.
      this.feedGroup(group);
      member = group.backlog.length === 0 ? group.nextFree() : null;
    }
    if (member) {
      this.counters.delivered++;
      member.consumer.deliver(member, msg, shared);
      return;
    }
    if (log?.replayable) {
      // Every member is congested: the group falls behind onto the log and nothing is held
      // (unless, under `block`, it falls so far behind that retention would overtake it).
      this.counters.catchUps++;
      this.follow(group, { channel, next: msg.offset, reading: false }, log);
      return;
    }
    if (group.backlog.length < this.options.queueBacklog) {
      group.backlog.push(kept(msg));
      return;
    }
    if (this.pushback !== null) {
      // The backlog is full: hold the channel until the members take it below its bound.
      this.pushback.hold(group, channel);
      group.backlog.push(kept(msg));
      return;
    }
    this.counters.queueDropped++;
    const notified = group.members[group.cursor % group.members.length]!;
    notified.drops.set(channel, (notified.drops.get(channel) ?? 0) + 1);
  }

  /** A member has room: send the backlog, resume the group's log reads. */
  private feedGroup(group: QueueGroup): void {
    let sent = 0;
    while (sent < group.backlog.length) {
      const member = group.nextFree();
      if (!member) break;
      this.counters.delivered++;
      member.consumer.deliver(member, group.backlog[sent++]!, null);
    }
    if (sent) group.backlog.splice(0, sent);
    if (this.pushback !== null && group.backlog.length < this.options.queueBacklog) {
      if (this.behindOnLog(group)) this.pushback.progressed(group);
      else this.pushback.release(group);
    }
    for (const feed of group.feeds.values()) {
      if (!feed.reading) void this.pump(group, feed);
    }
  }

  /** `block`: a reader kept publishers waiting past the timeout; what it holds is already released. */
  private overdue(reader: Reader, channel: string, waitedMs: number): void {
    const reason = `slow consumer: publishers on ${displayName(channel)} waited ${(waitedMs / 1000).toFixed(1)} s for this connection to read (slow-consumer block timeout ${this.options.blockTimeoutMs / 1000} s)`;
    // A queue group holds when every member is congested: each of them is that slow reader.
    const subs = reader instanceof Subscription ? [reader] : reader.members.filter((m) => m.consumer.congested());
    for (const sub of subs) {
      if (sub.closed) continue;
      this.counters.slowDisconnects++;
      sub.consumer.disconnect(ErrorCode.SLOW_CONSUMER, reason);
    }
  }

  // --- replay and catch-up -------------------------------------------------------------------

  private async startFeed(sub: Subscription, feed: Feed, from: StartPosition): Promise<void> {
    try {
      feed.next = await this.engine.channel(feed.channel).resolve(from);
    } catch (err) {
      this.storageFailed(sub, feed, err);
      return;
    }
    feed.reading = false;
    await this.pump(sub, feed);
  }

  /**
   * Read from the log and deliver until caught up (then go live) or congested (then wait for
   * drained()). The reader is a subscription, or a queue group that hands each message to
   * one free member.
   */
  private async pump(reader: Reader, feed: Feed): Promise<void> {
    if (feed.reading || reader.closed) return;
    feed.reading = true;
    const log = this.engine.channel(feed.channel);
    const current = (): boolean => !reader.closed && reader.feeds.get(feed.channel) === feed;
    try {
      while (current()) {
        if (feed.next > log.head) {
          reader.feeds.delete(feed.channel);
          log.unpin?.(feed);
          this.holdAhead(reader, feed.channel, 1); // live: nothing left for retention to overtake
          if (reader instanceof Subscription) reader.consumer.notify(reader, { kind: 'live', channel: feed.channel, offset: log.head });
          return;
        }
        if (log.retentionRoom) this.holdAhead(reader, feed.channel, log.retentionRoom(feed.next));
        if (!hasRoom(reader)) return;
        const batch = await log.read(feed.next, this.options.readBatchMessages, this.options.readBatchBytes);
        if (!current()) return;
        if (batch.length === 0) {
          // Nothing at `next` although head is past it: removed by retention.
          if (log.first > feed.next) {
            tell(reader, { kind: 'gap', channel: feed.channel, from: feed.next, to: log.first - 1 });
            feed.next = log.first;
            continue;
          }
          throw new Error(`storage returned nothing at offset ${feed.next} of ${feed.channel} (head ${log.head})`);
        }
        for (const msg of batch) {
          if (msg.offset < feed.next) continue;
          if (msg.offset > feed.next) tell(reader, { kind: 'gap', channel: feed.channel, from: feed.next, to: msg.offset - 1 });
          feed.next = msg.offset;
          const to = reader instanceof Subscription ? reader : reader.nextFree();
          if (to === null) return; // every member is congested: resume at msg.offset
          this.counters.replayed++;
          this.counters.delivered++;
          to.consumer.deliver(to, msg, null);
          feed.next = msg.offset + 1;
          if (reader.closed) return;
        }
      }
    } catch (err) {
      this.storageFailed(reader, feed, err);
    } finally {
      feed.reading = false;
    }
  }

  /**
   * `reader` (a subscription, or a queue group whose members are all congested) reads
   * `feed.channel` from the log. Under `block`, size and count retention keep what it has still
   * to read (ChannelLog.pin): the hold on publishers (holdAhead) is decided as
   * writes commit, and what was already staged then could otherwise carry retention past it.
   */
  private follow(reader: Reader, feed: Feed, log: ChannelLog): void {
    reader.feeds.set(feed.channel, feed);
    if (this.pushback !== null) log.pin?.(feed);
  }

  private unfollow(feed: Feed): void {
    if (this.pushback !== null && this.engine.has(feed.channel)) this.engine.channel(feed.channel).unpin?.(feed);
  }

  /**
   * `slow-consumer block` on a log with a size or count retention: a subscriber (or queue
   * group) catching up from so far behind that less than half of the bounds is left before retention removes
   * what it has still to read holds the channel, so its publishers wait (pushback.ts) instead
   * of retention overtaking it (a `GAP`). Half: what the publishers had sent when the hold
   * began still arrives (a turn's reads, the batches being written). The hold ends once it is
   * back within half on every log it reads, or live; a drain does not end it meanwhile
   * (`drained`, `feedGroup`), and the block timeout counts from the last drain. A queue group
   * whose memory backlog is full goes on holding for that.
   */
  private holdAhead(reader: Reader, channel: string, room: number): void {
    const pushback = this.pushback;
    if (pushback === null) return;
    if (room < HOLD_BELOW_ROOM) pushback.hold(reader, channel);
    else if (pushback.isHeld(channel) && !this.mustHold(reader)) pushback.release(reader);
  }

  /** Whether `reader` goes on holding what it holds: behind on a log, or (a queue group) its memory backlog full. */
  private mustHold(reader: Reader): boolean {
    return this.behindOnLog(reader) || (reader instanceof QueueGroup && reader.backlog.length >= this.options.queueBacklog);
  }

  /** Whether `reader` reads some log from so far behind that it must go on holding (holdAhead). */
  private behindOnLog(reader: Reader): boolean {
    if (reader.feeds.size === 0) return false;
    for (const feed of reader.feeds.values()) {
      if (feed.next < 0 || !this.engine.has(feed.channel)) continue;
      const log = this.engine.channel(feed.channel);
      if (log.retentionRoom && log.retentionRoom(feed.next) < HOLD_BELOW_ROOM) return true;
    }
    return false;
  }

  private storageFailed(reader: Reader, feed: Feed, err: unknown): void {
    const who = reader instanceof Subscription ? { sid: reader.sid } : { queue: reader.queue };
    this.log.error({ err, channel: feed.channel, offset: feed.next, ...who }, 'reading from storage failed');
    for (const sub of reader instanceof Subscription ? [reader] : [...reader.members]) {
      sub.consumer.disconnect(ErrorCode.STORAGE_FAILED, `reading ${feed.channel} from storage failed: ${(err as Error).message}`);
    }
  }
}

/** Something that reads a channel back from the log: a subscription, or a queue group. */
type Reader = Subscription | QueueGroup;

function hasRoom(reader: Reader): boolean {
  if (reader instanceof Subscription) return !reader.consumer.congested();
  return reader.members.some((m) => !m.consumer.congested());
}

/** Gaps are told to the subscriber, or to every member of a group. */
function tell(reader: Reader, event: FeedEvent): void {
  if (reader instanceof Subscription) reader.consumer.notify(reader, event);
  else for (const m of reader.members) m.consumer.notify(m, event);
}
