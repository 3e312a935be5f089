/**
 * Who to tell about consecutive records, and what: the append callbacks, refs and payload sizes
 * of a staged batch, then of the writes one group fsync covers. Under load these wait for their
 * write and then for the fsync, through several young-generation GCs; as three arrays with a
 * slot per record they were most of what every scavenge had to copy (~1 MB and 1–3 ms each at
 * a million messages a second, against 0.2 ms on memory storage). So: callbacks as runs (a
 * connection's publishes share one), refs only once one is not empty (publishes without an ack
 * id have none), sizes in a typed array, whose bytes the GC does not copy once it is large.
 */
import type { AppendCallback } from '../engine.js';

/** Small enough that V8 keeps the typed array on the heap: no backing store for a lone message. */
const FIRST_CAPACITY = 16;

export class AckList {
  /** Records listed. */
  count = 0;
  /** Run r covers records [ends[r-1], ends[r]) (from 0 for the first) and tells fns[r]. */
  private readonly fns: (AppendCallback | undefined)[] = [];
  private readonly ends: number[] = [];
  /** Null while every ref is ''. */
  private refs: string[] | null = null;
  private sizes = new Int32Array(FIRST_CAPACITY);

  push(fn: AppendCallback | undefined, ref: string, bytes: number): void {
    const n = this.count;
    const last = this.fns.length - 1;
    if (last >= 0 && this.fns[last] === fn) this.ends[last] = n + 1;
    else {
      this.fns.push(fn);
      this.ends.push(n + 1);
    }
    if (this.refs !== null) this.refs.push(ref);
    else if (ref !== '') {
      this.refs = new Array<string>(n).fill('');
      this.refs.push(ref);
    }
    if (n === this.sizes.length) {
      const bigger = new Int32Array(n * 4);
      bigger.set(this.sizes);
      this.sizes = bigger;
    }
    this.sizes[n] = bytes;
    this.count = n + 1;
  }

  /** Lists `other`'s records after these (they follow them in the log). */
  concat(other: AckList): void {
    let i = 0;
    for (let r = 0; r < other.fns.length; r++) {
      const fn = other.fns[r];
      for (const end = other.ends[r]!; i < end; i++) this.push(fn, other.refs?.[i] ?? '', other.sizes[i]!);
    }
  }

  /**
   * Tells each callback the outcome of its record, the first at offset `first` (offset 0 with an
   * error). One that throws is passed to `threw` and does not keep the others from running.
   */
  call(first: number, channel: string, err: Error | null, threw: (err: unknown) => void): void {
    const { fns, ends, refs, sizes } = this;
    let i = 0;
    for (let r = 0; r < fns.length; r++) {
      const fn = fns[r];
      const end = ends[r]!;
      if (fn === undefined) {
        i = end;
        continue;
      }
      for (; i < end; i++) {
        try {
          fn(err, err ? 0 : first + i, refs === null ? '' : refs[i]!, channel, sizes[i]!);
        } catch (cbErr) {
          threw(cbErr);
        }
      }
    }
  }
}
