/**
 * Whether a small write goes to the file straight from the event loop (writevSync) rather than
 * through libuv's thread pool. On a quiet broker the pool costs two thread wake-ups per write
 * (~100 µs on a VM: the worker's, then the loop's) while appending to the page cache costs
 * ~10 µs, so a lone message reaches its subscribers sooner inline. But an inline write that
 * meets a slow disk (writeback of the page it appends to, dirty-page throttling) stalls every
 * connection: each one is timed, and one slower than `slowMs` sends all writes back to the
 * pool for `backoffMs`, after which a write tries inline again.
 */
export interface InlineWriteOptions {
  /** Largest batch written inline; bigger ones gain nothing and hold the loop longer. */
  readonly maxBytes: number;
  readonly slowMs: number;
  readonly backoffMs: number;
}

export const defaultInlineWrites: InlineWriteOptions = Object.freeze({ maxBytes: 64 * 1024, slowMs: 1, backoffMs: 5000 });

export class InlineWrites {
  /** performance.now() before which every write goes to the pool. */
  private poolUntil = 0;

  constructor(
    private readonly options: InlineWriteOptions = defaultInlineWrites,
    private readonly clock: () => number = () => performance.now(),
  ) {}

  allowed(bytes: number): boolean {
    return bytes <= this.options.maxBytes && (this.poolUntil === 0 || this.clock() >= this.poolUntil);
  }

  /** How long an inline write took, in ms. */
  took(ms: number): void {
    if (ms <= this.options.slowMs) return;
    this.poolUntil = this.clock() + this.options.backoffMs;
  }
}
