/**
 * What the commit of a staged batch needs to know of each record besides its bytes and its
 * payload size (the batch's ack list has that): length, timestamp, publisher and reply.
 * Numbers go in typed arrays and names in runs (a connection's publishes share a publisher,
 * and most have no reply), so a batch that waits
 * for its write puts almost nothing in the GC's way, and the commit reads no record header
 * back (that decoding was ~13% of a busy fan-in broker's time).
 */

import { Runs, grown } from './runs.js';

/** Small enough that V8 keeps the typed arrays on the heap: no backing store for a lone message. */
const FIRST_CAPACITY = 8;

export class RecordList {
  count = 0;
  lengths = new Int32Array(FIRST_CAPACITY);
  timestamps = new Float64Array(FIRST_CAPACITY);
  readonly publishers = new Runs<string>();
  /** Null while every reply is ''. */
  replies: string[] | null = null;

  push(length: number, timestamp: number, publisher: string, reply: string): void {
    const n = this.count;
    if (n === this.lengths.length) {
      this.lengths = grown(this.lengths, n * 4);
      this.timestamps = grown(this.timestamps, n * 4);
    }
    this.lengths[n] = length;
    this.timestamps[n] = timestamp;
    this.publishers.push(n, publisher);
    if (this.replies !== null) this.replies.push(reply);
    else if (reply !== '') {
      this.replies = new Array<string>(n).fill('');
      this.replies.push(reply);
    }
    this.count = n + 1;
  }

  /** Empties the list, keeping its arrays for another batch. */
  reset(): void {
    this.count = 0;
    this.publishers.clear();
    this.replies = null;
  }

  get capacity(): number {
    return this.lengths.length;
  }
}

/** Lists longer than this are not kept for reuse (a burst of tiny records). */
const MAX_KEPT_CAPACITY = 64 * 1024;

/**
 * Committed batches' record lists, emptied, for later batches of any channel of an engine:
 * growing a list's typed arrays for every batch showed at 2% of a busy broker. Shared and
 * bounded (at most `keep` lists of at most 64 Ki records, 768 KiB each), so a thousand channels
 * that once had a burst do not each hold a large list.
 */
export class RecordListPool {
  private readonly free: RecordList[] = [];

  constructor(private readonly keep = 8) {}

  get(): RecordList {
    return this.free.pop() ?? new RecordList();
  }

  release(list: RecordList): void {
    if (list.capacity > MAX_KEPT_CAPACITY || this.free.length >= this.keep) return;
    list.reset();
    this.free.push(list);
  }
}
