/**
 * Whether a small write goes to the file straight from the event loop (writevSync) rather than
 * through libuv's thread pool. On a quiet broker the pool costs two thread wake-ups per write
 * (~100 µs on a VM: the worker's, then the loop's) while appending to the page cache costs
 * ~10 µs, so a lone message reaches its subscribers sooner inline. But an inline write that
 * meets a slow disk (writeback of the page it appends to, dirty-page throttling) stalls every
 * connection, so each one is timed and slow ones send all writes back to the pool for
 * `backoffMs`, after which a write tries inline again.
 *
 * What counts as a slow disk: one write over `stallMs`, or `strikes` of the last `outOf`
 * writes over `slowMs`. A write just over 1 ms now and then is the loop being preempted (a
 * VM's scheduler), not the disk: counted, at 20,000 msgs/s, ~3 in a second among ~4,000
 * writes. Backing off for those sent a quiet broker's writes through the pool most of the
 * time, at twice the CPU per message. A slow disk makes most writes slow.
 */
import { writeAllSync } from './fsx.js';

export interface InlineWriteOptions {
  /** Largest batch written inline; bigger ones gain nothing and hold the loop longer. */
  readonly maxBytes: number;
  readonly slowMs: number;
  readonly strikes: number;
  readonly outOf: number;
  readonly stallMs: number;
  readonly backoffMs: number;
}

export const defaultInlineWrites: InlineWriteOptions = Object.freeze({
  maxBytes: 64 * 1024,
  slowMs: 1,
  strikes: 3,
  outOf: 16,
  stallMs: 20,
  backoffMs: 5000,
});

export class InlineWrites {
  /** performance.now() before which every write goes to the pool. */
  private poolUntil = 0;
  /** Whether each of the last `outOf` inline writes was slow (a ring), and how many were. */
  private readonly recent: boolean[];
  private next = 0;
  private slow = 0;
  /** Writes made inline and on the pool, and back-offs, since start (for `stats`). */
  readonly counts = { inline: 0, pool: 0, backoffs: 0 };

  constructor(
    private readonly options: InlineWriteOptions = defaultInlineWrites,
    private readonly clock: () => number = () => performance.now(),
  ) {
    this.recent = new Array<boolean>(Math.max(1, options.outOf)).fill(false);
  }

  allowed(bytes: number): boolean {
    return bytes <= this.options.maxBytes && (this.poolUntil === 0 || this.clock() >= this.poolUntil);
  }

  /** A write went to the thread pool. */
  pooled(): void {
    this.counts.pool++;
  }

  /** Writes every buffer at `position` from the event loop (writevSync), timed. */
  write(fd: number, buffers: readonly Buffer[], bytes: number, position: number): void {
    const t0 = this.clock();
    writeAllSync(fd, buffers, bytes, position);
    this.took(this.clock() - t0);
  }

  /** How long an inline write took, in ms. */
  took(ms: number): void {
    this.counts.inline++;
    const slow = ms > this.options.slowMs;
    if (this.recent[this.next]) this.slow--;
    this.recent[this.next] = slow;
    this.next = (this.next + 1) % this.recent.length;
    if (!slow) return;
    this.slow++;
    if (ms > this.options.stallMs || this.slow >= this.options.strikes) {
      this.counts.backoffs++;
      this.poolUntil = this.clock() + this.options.backoffMs;
      this.recent.fill(false);
      this.slow = 0;
    }
  }
}
