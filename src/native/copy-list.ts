/**
 * Byte copies noted now and made later, all of a buffer's in one native call.
 *
 * Why: a JavaScript range copy (Buffer#copy) makes a view of its source, ~55 ns and ~95 bytes
 * of garbage a call, and the file log's stage and the memory log's ring would make one per
 * message (storage/filelog/stage.ts, storage/memory.ts); the addon's `copy` makes a few
 * hundred for the price of one call. Payloads of DEFER_OVER
 * bytes or less are still copied at once by a JavaScript loop: for them noting a copy costs
 * about what the loop does.
 *
 * The rule that makes it safe: nothing reads the destination's noted ranges before `make`, and
 * no source is written before `make` (a published payload's bytes are never written again:
 * Broker.publish).
 *
 * Tried and dropped: deferring each delivery's payload copy into the outboxes the same way.
 * Its sources include the file log's staging chunks, reused once their batch is committed, so
 * their pool had to make every outbox's pending copies first; in-process CPU fell by ~0.02 µs
 * a message at 256 B and end to end nothing changed (docs/performance-history.md, twelfth round).
 */
import { grown } from '../storage/filelog/runs.js';
import { recordCrcAddon } from './addon.js';

const nativeCopy = recordCrcAddon?.copy ?? null;

/** Copies of this many bytes or less are better made at once, by copyBytes' loop (see above). */
export const DEFER_OVER = 64;
/** Sources the native copy takes in one call (native/record-crc.c). */
const MAX_SOURCES = 512;

export class CopyList {
  /** Whether copies can be deferred at all (the addon is loaded). */
  static readonly native = nativeCopy !== null;

  /** The buffer the noted copies go to: all of a list's copies target one buffer until `make`. */
  private dst: Buffer | null = null;
  /** Four numbers a copy: source index, source start, destination start, length. */
  private ops: Int32Array | null = null;
  private readonly sources: Buffer[] = [];
  private count = 0;

  /** Copies noted and not yet made. */
  get pending(): number {
    return this.count;
  }

  /**
   * Notes a copy of src[from..to) to dst at `at` for `make`; returns the position after it.
   * A copy to another `dst` than the pending ones' makes those first.
   */
  note(dst: Buffer, at: number, src: Buffer, from: number, to: number): number {
    if (this.count !== 0 && dst !== this.dst) this.make();
    const sources = this.sources;
    let s = sources.length - 1;
    if (s < 0 || sources[s] !== src) {
      if (sources.length === MAX_SOURCES) this.make();
      s = sources.push(src) - 1;
    }
    if (this.count === 0) this.dst = dst;
    let ops = this.ops ?? (this.ops = new Int32Array(256));
    const k = this.count * 4;
    if (k === ops.length) this.ops = ops = grown(ops, ops.length * 2);
    ops[k] = s;
    ops[k + 1] = from;
    ops[k + 2] = at;
    ops[k + 3] = to - from;
    this.count++;
    return at + (to - from);
  }

  /** Makes the noted copies. */
  make(): void {
    if (this.count !== 0) nativeCopy!(this.dst!, this.sources, this.ops!, this.count);
    this.count = 0;
    this.sources.length = 0;
    this.dst = null;
  }
}
