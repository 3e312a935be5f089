/**
 * `slow-consumer block`: a slow subscriber of a memory channel slows the publishers that feed
 * it instead of losing messages. A reader handed a message past its outbound bound *holds*
 * that channel; a publisher that publishes into a held channel stops being read (TCP then
 * slows the client down) until every holder of the channel has drained. What goes past the
 * bound meanwhile is bounded by what the publishers had already read when the hold began
 * (at most a turn's read budget, `limit read-per-turn`), so memory stays bounded and nothing
 * is dropped. A holder that keeps publishers waiting longer than the timeout is handed to
 * `overdue` (the broker disconnects it): one stuck client cannot stop a channel for ever.
 */

/** A publisher that waits for held channels (a session: it stops reading its socket). */
export interface Waiter {
  /** `channel` is no longer held; called once per wait(). */
  released(channel: string): void;
}

interface Holding {
  /** Date.now() when the holder began holding without draining (or making progress) since. */
  since: number;
  readonly channels: Set<string>;
}

export interface PushbackCounters {
  /** Times a publisher was made to wait for a held channel. */
  publisherWaits: number;
  /** Times a reader began holding channels (it went past its bound under `block`). */
  holds: number;
}

export class Pushback<Holder> {
  readonly counters: PushbackCounters = { publisherWaits: 0, holds: 0 };
  /** channel → readers holding it. Empty in the steady state, so isHeld costs one size check. */
  private readonly held = new Map<string, Set<Holder>>();
  private readonly holding = new Map<Holder, Holding>();
  private readonly waiting = new Map<string, Set<Waiter>>();
  private sweeper: NodeJS.Timeout | null = null;

  /**
   * @param timeoutMs how long a holder may keep publishers waiting without draining once
   * @param overdue called for a holder past the timeout, with one channel it holds; the holder
   *   is released first
   */
  constructor(
    readonly timeoutMs: number,
    private readonly overdue: (holder: Holder, channel: string, waitedMs: number) => void,
  ) {}

  isHeld(channel: string): boolean {
    return this.held.size !== 0 && this.held.has(channel);
  }

  /** `holder` took a message on `channel` past its bound. */
  hold(holder: Holder, channel: string): void {
    let h = this.holding.get(holder);
    if (h === undefined) {
      h = { since: Date.now(), channels: new Set() };
      this.holding.set(holder, h);
      this.counters.holds++;
      this.startSweeper();
    }
    if (h.channels.has(channel)) return;
    h.channels.add(channel);
    let holders = this.held.get(channel);
    if (holders === undefined) this.held.set(channel, (holders = new Set()));
    holders.add(holder);
  }

  /** `holder` drained (or is gone): the channels it held are free unless another holds them. */
  release(holder: Holder): void {
    const h = this.holding.get(holder);
    if (h === undefined) return;
    this.holding.delete(holder);
    for (const channel of h.channels) {
      const holders = this.held.get(channel)!;
      holders.delete(holder);
      if (holders.size === 0) {
        this.held.delete(channel);
        this.wake(channel);
      }
    }
    if (this.holding.size === 0) this.stopSweeper();
  }

  /**
   * `holder` drained but goes on holding (it is still too far behind on a log, not over its
   * bound): the timeout counts from now, as it would from a release.
   */
  progressed(holder: Holder): void {
    const h = this.holding.get(holder);
    if (h !== undefined) h.since = Date.now();
  }

  /** `waiter` published into a held channel: it is told when the channel is free. */
  wait(channel: string, waiter: Waiter): void {
    let waiters = this.waiting.get(channel);
    if (waiters === undefined) this.waiting.set(channel, (waiters = new Set()));
    if (waiters.has(waiter)) return;
    waiters.add(waiter);
    this.counters.publisherWaits++;
  }

  /** `waiter` is gone: forget its waits. */
  cancel(waiter: Waiter, channels: Iterable<string>): void {
    for (const channel of channels) {
      const waiters = this.waiting.get(channel);
      if (waiters === undefined) continue;
      waiters.delete(waiter);
      if (waiters.size === 0) this.waiting.delete(channel);
    }
  }

  /** The channels `holder` holds now (for `clients`). */
  heldBy(holder: Holder): string[] {
    const h = this.holding.get(holder);
    return h === undefined ? [] : [...h.channels];
  }

  /** For `stats`: channels held and publishers waiting now. */
  figures(): { heldChannels: number; waitingPublishers: number } {
    let waitingPublishers = 0;
    for (const w of this.waiting.values()) waitingPublishers += w.size;
    return { heldChannels: this.held.size, waitingPublishers };
  }

  private wake(channel: string): void {
    const waiters = this.waiting.get(channel);
    if (waiters === undefined) return;
    this.waiting.delete(channel);
    for (const w of waiters) w.released(channel);
  }

  private startSweeper(): void {
    if (this.sweeper !== null) return;
    // One timer for all holders, not one set and cleared per hold: under a flood a subscriber
    // holds and drains thousands of times a second.
    const every = Math.max(10, Math.min(1000, this.timeoutMs / 4));
    this.sweeper = setInterval(() => this.sweep(), every);
    this.sweeper.unref();
  }

  private stopSweeper(): void {
    if (this.sweeper === null) return;
    clearInterval(this.sweeper);
    this.sweeper = null;
  }

  private sweep(): void {
    const now = Date.now();
    for (const [holder, h] of [...this.holding]) {
      const waited = now - h.since;
      if (waited < this.timeoutMs) continue;
      const channel = h.channels.values().next().value as string;
      this.release(holder);
      this.overdue(holder, channel, waited);
    }
  }
}
