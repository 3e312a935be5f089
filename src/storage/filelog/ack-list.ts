/**
 * Who to tell about consecutive records, and what: the append callbacks, refs and payload sizes
 * of a staged batch, then of the writes one group fsync covers. Under load these wait for their
 * write and then for the fsync, through several young-generation GCs; as three arrays with a
 * slot per record they were most of what every scavenge had to copy (~1 MB and 1–3 ms each at
 * a million messages a second, against 0.2 ms on memory storage). So: callbacks as runs (a
 * connection's publishes share one), sizes in a typed array, whose bytes the GC does not copy
 * once it is large, and refs in typed arrays too: numbers (the server's short ack ids,
 * packed) as they are, strings as UTF-8 bytes made into strings again when their callback
 * runs. Each kind is kept only once a ref of that kind came.
 */
import type { AppendCallback, AppendRef } from '../engine.js';
import { Runs, grown } from './runs.js';

/**
 * Small enough that V8 keeps the typed array on the heap: no backing store for a lone message.
 * A list is made per batch, and at a probe's pace a batch is one record: 16 slots were 48 bytes
 * a message more than 4 (growth is fourfold, so a large batch grows once more).
 */
const FIRST_CAPACITY = 4;

export class AckList {
  /** Records listed. */
  count = 0;
  /** Waiting in an AckListPool (a second release must not list it twice). */
  pooled = false;
  /** Records whose publisher asked for an acknowledgement (a ref), and their payload bytes. */
  acked = 0;
  ackedBytes = 0;
  /** Whom each record's outcome is told (undefined: nobody). */
  private readonly fns = new Runs<AppendCallback | undefined>();
  private sizes = new Int32Array(FIRST_CAPACITY);
  /** The refs' bytes one after the other, and where each ends; null while every ref is ''. */
  private refBytes: Buffer | null = null;
  private refEnds: Int32Array | null = null;
  private refUsed = 0;
  /** Number refs by record, NaN where the ref is a string (or ''); null while none came. */
  private refNumbers: Float64Array | null = null;

  /** Empties the list for another batch, keeping its sizes array (refs start again from none). */
  reset(): void {
    this.count = this.acked = this.ackedBytes = this.refUsed = 0;
    this.fns.clear();
    this.refBytes = null;
    this.refEnds = null;
    this.refNumbers = null;
  }

  get capacity(): number {
    return this.sizes.length;
  }

  push(fn: AppendCallback | undefined, ref: AppendRef, bytes: number): void {
    const n = this.count;
    this.fns.push(n, fn);
    if (n === this.sizes.length) this.grow(n * 4);
    this.sizes[n] = bytes;
    if (ref !== '') {
      this.acked++;
      this.ackedBytes += bytes;
    }
    if (typeof ref === 'number') {
      (this.refNumbers ??= new Float64Array(this.sizes.length).fill(NaN))[n] = ref;
      if (this.refEnds !== null) this.refEnds[n] = this.refUsed;
    } else {
      if (this.refNumbers !== null) this.refNumbers[n] = NaN;
      if (ref !== '' || this.refEnds !== null) this.pushRef(n, ref);
    }
    this.count = n + 1;
  }

  /** Each record's payload size, by index (valid below `count`; a new array after growth). */
  payloadSizes(): Int32Array {
    return this.sizes;
  }

  /** The ref of record i. */
  ref(i: number): AppendRef {
    const numbers = this.refNumbers;
    if (numbers !== null && numbers[i] === numbers[i]) return numbers[i]!; // not NaN
    const ends = this.refEnds;
    if (ends === null) return '';
    const start = i === 0 ? 0 : ends[i - 1]!;
    const end = ends[i]!;
    return start === end ? '' : this.refBytes!.utf8Slice(start, end);
  }

  private pushRef(n: number, ref: string): void {
    // The first ref: the records before it had none (ends 0, zero-filled).
    this.refEnds ??= new Int32Array(this.sizes.length);
    let buf = this.refBytes;
    const need = this.refUsed + ref.length * 3;
    if (buf === null || need > buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(64, need * 2));
      if (buf !== null) buf.copy(bigger, 0, 0, this.refUsed);
      this.refBytes = buf = bigger;
    }
    // ASCII byte by byte (ack ids are short tokens; a native call costs more); else UTF-8.
    let at = this.refUsed;
    for (let k = 0; k < ref.length; k++) {
      const c = ref.charCodeAt(k);
      if (c >= 0x80) {
        at = this.refUsed + buf.utf8Write(ref, this.refUsed);
        break;
      }
      buf[at++] = c;
    }
    this.refUsed = at;
    this.refEnds[n] = at;
  }

  private grow(capacity: number): void {
    this.sizes = grown(this.sizes, capacity);
    if (this.refEnds !== null) this.refEnds = grown(this.refEnds, capacity);
    if (this.refNumbers !== null) this.refNumbers = grown(this.refNumbers, capacity);
  }

  /** Lists `other`'s records after these (they follow them in the log). */
  concat(other: AckList): void {
    const { values, ends, count: runs } = other.fns;
    let i = 0;
    for (let r = 0; r < runs; r++) {
      const fn = values[r];
      for (const end = ends[r]!; i < end; i++) this.push(fn, other.ref(i), other.sizes[i]!);
    }
  }

  /**
   * Tells each callback the outcome of its record, the first at offset `first` (offset 0 with an
   * error). One that throws is passed to `threw` and does not keep the others from running.
   */
  call(first: number, channel: string, err: Error | null, threw: (err: unknown) => void): void {
    const { values: fns, ends, count: runs } = this.fns;
    const sizes = this.sizes;
    let i = 0;
    for (let r = 0; r < runs; r++) {
      const fn = fns[r];
      const end = ends[r]!;
      if (fn === undefined) {
        i = end;
        continue;
      }
      for (; i < end; i++) {
        try {
          fn(err, err ? 0 : first + i, this.ref(i), channel, sizes[i]!);
        } catch (cbErr) {
          threw(cbErr);
        }
      }
    }
  }
}

/** Lists longer than this are not kept for reuse (a burst of tiny records). */
const MAX_KEPT_CAPACITY = 64 * 1024;

/**
 * Ack lists whose callbacks have all been told, emptied, for later batches of any channel of an
 * engine: a list is made per batch, and at a probe's pace a batch is one record (a new list
 * was ~120 bytes a message). A list goes back exactly once, after `call` or after it was
 * concatenated into another (channel-log.ts): a list handed back while still queued for an
 * fsync would tell a later batch's callbacks. Bounded like the record lists' pool.
 */
export class AckListPool {
  private readonly free: AckList[] = [];

  constructor(private readonly keep = 8) {}

  get(): AckList {
    const list = this.free.pop();
    if (list === undefined) return new AckList();
    list.pooled = false;
    return list;
  }

  /** Takes `list` back; a second release of it before it is handed out again changes nothing. */
  release(list: AckList): void {
    if (list.pooled || list.capacity > MAX_KEPT_CAPACITY || this.free.length >= this.keep) return;
    list.reset();
    list.pooled = true;
    this.free.push(list);
  }
}

declare module 'node:buffer' {
  interface Buffer {
    /** Node's internal UTF-8 encoder and decoder (untyped). */
    utf8Write(text: string, offset: number): number;
    utf8Slice(start: number, end: number): string;
  }
}
