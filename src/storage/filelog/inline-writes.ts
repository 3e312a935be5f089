/**
 * Whether a small write goes to the file straight from the event loop (writevSync) rather than
 * through libuv's thread pool. On a quiet broker the pool costs two thread wake-ups per write
 * (~100 µs on a VM: the worker's, then the loop's) while appending to the page cache costs
 * ~10 µs, so a lone message reaches its subscribers sooner inline. But an inline write that
 * meets a slow disk (writeback of the page it appends to, dirty-page throttling) stalls every
 * connection, so each one is timed and slow ones send all writes back to the pool for
 * `backoffMs`, after which a write tries inline again.
 *
 * A batch of up to 1 MiB (stage.ts) goes inline too when the loop has nothing else to do:
 * appending 1 MiB to the page cache takes ~0.1–0.3 ms, and with the pool the loop would sit
 * idle meanwhile (at the end of a windowed 1→1 stream's cycle nothing else is there to do
 * until the batch is delivered), and on two cores the worker also waits for a CPU the load
 * already uses. Inline, file 1→1 256 B ran ~9% faster (docs/performance-history.md,
 * sixteenth round). The loop has other work while channels share the disk (the engine's `sharing`) or
 * connections wait for the next turn's read budget (loop/input-backlog.ts): then only small
 * writes go inline, and a large one overlaps that work from the pool. Writing a flood's
 * batches inline cost it ~11%. A group of several batches (a backlog) always goes to the pool.
 *
 * What counts as a slow disk: one write over `stallMs`, or `strikes` of the last `outOf`
 * writes over `slowMs` plus `slowMsPerMiB` for each MiB written (a large write is slower
 * without the disk being slow). A write just over 1 ms now and then is the loop being
 * preempted (a VM's scheduler), not the disk: counted, at 20,000 msgs/s, ~3 in a second
 * among ~4,000 writes. Backing off for those sent a quiet broker's writes through the pool
 * most of the time, at twice the CPU per message. A slow disk makes most writes slow.
 */
import { writeAllSync } from './fsx.js';

const MiB = 1024 * 1024;

export interface InlineWriteOptions {
  /** Largest write made inline: one staging batch (which ends past 1 MiB by its last record); a group of them holds the loop too long. */
  readonly maxBytes: number;
  /** Largest write made inline while the loop has other work (`busy`). */
  readonly sharedMaxBytes: number;
  readonly slowMs: number;
  readonly slowMsPerMiB: number;
  readonly strikes: number;
  readonly outOf: number;
  readonly stallMs: number;
  readonly backoffMs: number;
}

export const defaultInlineWrites: InlineWriteOptions = Object.freeze({
  maxBytes: 1024 * 1024 + 64 * 1024,
  sharedMaxBytes: 64 * 1024,
  slowMs: 1,
  slowMsPerMiB: 1,
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
    /** Whether the loop has other work to do during a write (the engine: channels share the disk, input waits). */
    private readonly busy: () => boolean = () => false,
  ) {
    this.recent = new Array<boolean>(Math.max(1, options.outOf)).fill(false);
  }

  /** Whether a write of `bytes` goes inline. */
  allowed(bytes: number): boolean {
    if (this.poolUntil !== 0 && this.clock() < this.poolUntil) return false;
    return bytes <= this.options.sharedMaxBytes || (bytes <= this.options.maxBytes && !this.busy());
  }

  /** A write went to the thread pool. */
  pooled(): void {
    this.counts.pool++;
  }

  /** Writes every buffer at `position` from the event loop (writevSync), timed. */
  write(fd: number, buffers: readonly Buffer[], bytes: number, position: number): void {
    const t0 = this.clock();
    writeAllSync(fd, buffers, bytes, position);
    this.took(this.clock() - t0, bytes);
  }

  /** How long an inline write of `bytes` took, in ms. */
  took(ms: number, bytes: number): void {
    this.counts.inline++;
    const slow = ms > this.options.slowMs + (bytes / MiB) * this.options.slowMsPerMiB;
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
