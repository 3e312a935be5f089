/**
 * Whether a small write goes to the file straight from the event loop (writevSync) rather than
 * through libuv's thread pool. On a quiet broker the pool costs two thread wake-ups per write
 * (~100 µs on a VM: the worker's, then the loop's) while appending to the page cache costs
 * ~10 µs, so a lone message reaches its subscribers sooner inline. But an inline write that
 * meets a slow disk (writeback of the page it appends to, dirty-page throttling) stalls every
 * connection, so each one is timed and slow ones send all writes back to the pool for
 * `backoffMs`, after which a write tries inline again.
 *
 * What counts as slow: one write over `stallMs`, or `strikes` writes over `slowMs` within
 * `strikeWindowMs`. A single write just over 1 ms is usually the loop being preempted (a VM's
 * steal time), not the disk: backing off for it sent a quiet broker's every write through the
 * pool for seconds, costing CPU and latency. A slow disk is slow again and again.
 */
export interface InlineWriteOptions {
  /** Largest batch written inline; bigger ones gain nothing and hold the loop longer. */
  readonly maxBytes: number;
  readonly slowMs: number;
  readonly strikes: number;
  readonly strikeWindowMs: number;
  readonly stallMs: number;
  readonly backoffMs: number;
}

export const defaultInlineWrites: InlineWriteOptions = Object.freeze({
  maxBytes: 64 * 1024,
  slowMs: 1,
  strikes: 3,
  strikeWindowMs: 1000,
  stallMs: 20,
  backoffMs: 5000,
});

export class InlineWrites {
  /** performance.now() before which every write goes to the pool. */
  private poolUntil = 0;
  /** When the last `strikes - 1` slow writes happened (a ring, oldest at `next`). */
  private readonly slowAt: number[];
  private next = 0;

  constructor(
    private readonly options: InlineWriteOptions = defaultInlineWrites,
    private readonly clock: () => number = () => performance.now(),
  ) {
    this.slowAt = new Array<number>(Math.max(0, options.strikes - 1)).fill(-Infinity);
  }

  allowed(bytes: number): boolean {
    return bytes <= this.options.maxBytes && (this.poolUntil === 0 || this.clock() >= this.poolUntil);
  }

  /** How long an inline write took, in ms. */
  took(ms: number): void {
    if (ms <= this.options.slowMs) return;
    const now = this.clock();
    let slowDisk = ms > this.options.stallMs || this.slowAt.length === 0;
    if (this.slowAt.length > 0) {
      // This write and the `strikes - 1` before it, all within the window?
      slowDisk ||= now - this.slowAt[this.next]! <= this.options.strikeWindowMs;
      this.slowAt[this.next] = now;
      this.next = (this.next + 1) % this.slowAt.length;
    }
    if (slowDisk) {
      this.poolUntil = now + this.options.backoffMs;
      this.slowAt.fill(-Infinity);
    }
  }
}
