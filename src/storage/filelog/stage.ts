/**
 * Records waiting for the next write. Appends encode straight into pooled chunks, so a batch
 * is a handful of iovecs and steady-state appending allocates nothing; large payloads are not
 * copied, they go out as their own iovec.
 *
 * A staged record is kept as its bytes, its acknowledgement (ack-list.ts) and a few numbers
 * (record-list.ts), not as a message object: under load a batch waits for its write through
 * young-generation GCs, and a message object (with the view of its payload) and five array
 * slots per record made every scavenge copy ~1.5 MB (1–3 ms each, a fifth of a busy broker's
 * time). The messages the broker fans out are made once the batch is written, their payloads
 * ranges of the chunks (channel-log.ts, `commit`), and die young.
 */
import { copyBytes } from '../../protocol/ascii.js';
import { type AppendCallback, type AppendRef, type NewMessage, payloadOf } from '../engine.js';
import { AckList, AckListPool } from './ack-list.js';
import { CopyList, DEFER_OVER } from '../../native/copy-list.js';
import { RecordList, RecordListPool } from './record-list.js';
import { noItems, pushed } from './runs.js';
import { HEADER_BYTES, MAX_NAME_BYTES, MAX_RECORD_BYTES, sealApart, sealRecords, writeHeader } from './record.js';

const CHUNK_BYTES = 16 * 1024;
/** Shared by every stage before its first record (never written). */
const NO_BYTES = Buffer.alloc(0);
/**
 * Payloads up to this size are copied next to their header (one iovec for many records). The
 * broker is handed them as ranges of the chunks, which are reused after the commit: a consumer
 * copies what it keeps (`kept`, core/broker.ts; an outbox copies anything under 16 KiB).
 */
const INLINE_PAYLOAD = 2048;
/** A burst is cut into writes of about this size: acks flow sooner and segments roll on time. */
const BATCH_BYTES = 1024 * 1024;

/** Recycles staging chunks once their batch is written. Shared by every channel of an engine. */
export class ChunkPool {
  private readonly free: Buffer[] = [];

  constructor(private readonly keep = 256) {}

  get(min: number): Buffer {
    if (min > CHUNK_BYTES) return Buffer.allocUnsafeSlow(min);
    return this.free.pop() ?? Buffer.allocUnsafeSlow(CHUNK_BYTES);
  }

  /**
   * Takes back a batch's chunks once it is written or refused. The batch lets go of them, so a
   * second call for it (a failed write is refused after its write gave up) adds nothing: a
   * chunk listed twice would be handed to two batches at once.
   */
  release(batch: Batch): void {
    for (const c of batch.chunks) if (c.length === CHUNK_BYTES && this.free.length < this.keep) this.free.push(c);
    if (batch.chunks.length !== 0) batch.chunks.length = 0; // (an empty batch's is the shared, frozen empty list)
  }

  /** Chunks waiting for reuse (for tests). */
  get idle(): readonly Buffer[] {
    return this.free;
  }
}

/** What one write puts on disk, and who to tell. Offsets are consecutive from `first`. */
export interface Batch {
  /** Offset of the first record (0 in an empty batch). */
  readonly first: number;
  /** Who to tell, with what each append asked to be handed back to its callback. */
  readonly acks: AckList;
  /** What the commit needs of each record besides its bytes. */
  readonly records: RecordList;
  /**
   * The records, in order: an inline record lies whole within one iovec; a payload that was not
   * copied is the iovec after its header, which ends its own.
   */
  readonly iovecs: Buffer[];
  readonly chunks: Buffer[];
  readonly bytes: number;
}

export class Stage {
  /** Full batches waiting behind the one being filled. */
  private readonly ready: Batch[] = [];
  private first = 0;
  // Made by the first add of a batch: an idle channel holds neither (100,000 channels).
  private acks: AckList | null = null;
  private records: RecordList | null = null;
  private iovecs: Buffer[] = noItems();
  private chunks: Buffer[] = noItems();
  private bytes = 0;
  private chunk: Buffer | null = null;
  /** chunk[start..pos) is encoded but not yet an iovec. */
  private start = 0;
  private pos = 0;
  /**
   * chunk[sealed..pos) holds whole inline records whose CRCs are not written yet: they are
   * written for the whole run at once when it becomes an iovec (`cut`), one call for a few
   * dozen to hundreds of records (record.ts, `sealRecords`).
   */
  private sealed = 0;
  /**
   * Payload copies into `chunk` not made yet, made in one native call when the run is sealed:
   * nothing reads a chunk's bytes before `sealUpTo` (native/copy-list.ts says why and when
   * this is safe). Made by the first deferred copy: an idle channel holds none.
   */
  private copies: CopyList | null = null;
  // The last publisher, encoded: publishers repeat, and encoding is a native call.
  private lastPublisher = '';
  private lastPublisherBytes = NO_BYTES;

  constructor(
    private readonly pool: ChunkPool,
    private readonly lists = new RecordListPool(),
    private readonly ackLists = new AckListPool(),
  ) {}

  get empty(): boolean {
    return this.ready.length === 0 && this.records === null;
  }

  /** Bytes of the next batch `take` hands out when it is the only one, or -1 when there are more. */
  get loneBatchBytes(): number {
    return this.ready.length === 0 ? this.bytes : -1;
  }

  /** Offset of the oldest staged record, or 0. */
  get firstOffset(): number {
    return this.ready[0]?.first ?? this.first;
  }

  /**
   * Encodes a record at `offset` (the one after the last staged, or any offset when nothing is
   * staged); throws a RangeError (and stages nothing) when it cannot be stored.
   */
  add(m: NewMessage, offset: number, done: AppendCallback | undefined, ref: AppendRef = ''): void {
    const publisher = this.encodePublisher(m.publisher);
    const publisherBytes = publisher.length;
    const replyBytes = m.reply === '' ? 0 : Buffer.byteLength(m.reply);
    const headerEnd = HEADER_BYTES + publisherBytes + replyBytes;
    const { data, start } = m;
    const size = m.end - start;
    const total = headerEnd + size;
    if (publisherBytes > MAX_NAME_BYTES || replyBytes > MAX_NAME_BYTES || total > MAX_RECORD_BYTES) {
      throw new RangeError(`message too large to store (${total} bytes, publisher ${publisherBytes}, reply ${replyBytes})`);
    }
    const inline = size <= INLINE_PAYLOAD;
    const buf = this.reserve(inline ? total : headerEnd);
    const at = this.pos;
    const end = writeHeader(buf, at, total, offset, m.timestamp, publisher, m.reply, replyBytes);
    if (inline) {
      this.pos = size <= DEFER_OVER || !CopyList.native ? copyBytes(buf, end, data, start, m.end) : (this.copies ??= new CopyList()).note(buf, end, data, start, m.end);
    } else {
      // The run before this header is sealed first: a run holds whole records only.
      this.sealUpTo(at);
      const payload = payloadOf(m);
      sealApart(buf, at, end, payload);
      this.pos = this.sealed = end;
      this.cut();
      this.iovecs = pushed(this.iovecs, payload);
    }
    this.bytes += total;
    if (this.records === null) this.first = offset;
    (this.acks ??= this.ackLists.get()).push(done, ref, size);
    (this.records ??= this.lists.get()).push(total, m.timestamp, m.publisher, m.reply);
    if (this.bytes >= BATCH_BYTES) this.ready.push(this.seal());
  }

  /** Hands the oldest staged records over for writing. */
  take(): Batch {
    return this.ready.shift() ?? this.seal();
  }

  /**
   * The oldest staged batch and those after it while they fit in `maxBytes` together: one
   * write for a backlog. Batches queue up when the event loop's turns are long (a flood of
   * publishers: each write waits for a turn to be taken up again), and one write a turn of
   * BATCH_BYTES then held the channel to ~1 MiB a turn while what waited grew to the
   * in-flight bounds of every publisher (docs/performance.md, "Overload").
   */
  takeGroup(maxBytes: number): Batch[] {
    const group = [this.take()];
    let bytes = group[0]!.bytes;
    while (this.ready.length > 0 && bytes + this.ready[0]!.bytes <= maxBytes) {
      const next = this.ready.shift()!;
      group.push(next);
      bytes += next.bytes;
    }
    if (this.ready.length === 0 && this.records !== null && bytes + this.bytes <= maxBytes) group.push(this.seal());
    return group;
  }

  /** Every staged record, for refusing them all at once. */
  takeAll(): Batch[] {
    const all = this.ready.splice(0);
    all.push(this.seal());
    return all;
  }

  /** Closes the batch being filled and starts a new one. */
  private seal(): Batch {
    this.cut();
    const batch: Batch = {
      first: this.first,
      // Lists of their own for an empty batch (refused with the others, never committed).
      acks: this.acks ?? new AckList(),
      records: this.records ?? new RecordList(),
      iovecs: this.iovecs,
      chunks: this.chunks,
      bytes: this.bytes,
    };
    this.first = 0;
    this.acks = null;
    this.records = null;
    this.iovecs = noItems();
    this.chunks = noItems();
    this.bytes = 0;
    this.chunk = null;
    this.start = this.pos = this.sealed = 0;
    return batch;
  }

  private encodePublisher(publisher: string): Buffer {
    if (publisher !== this.lastPublisher) {
      this.lastPublisher = publisher;
      this.lastPublisherBytes = Buffer.from(publisher, 'utf8');
    }
    return this.lastPublisherBytes;
  }

  /** A chunk with room for n more bytes at `pos`. */
  private reserve(n: number): Buffer {
    if (this.chunk && this.pos + n <= this.chunk.length) return this.chunk;
    this.cut();
    const chunk = this.pool.get(n);
    this.chunks = pushed(this.chunks, chunk);
    this.chunk = chunk;
    this.start = this.pos = this.sealed = 0;
    return chunk;
  }

  /** Writes the CRCs of the records in chunk[sealed..to), after their payloads are copied in. */
  private sealUpTo(to: number): void {
    this.copies?.make();
    if (to > this.sealed) {
      sealRecords(this.chunk!, this.sealed, to);
      this.sealed = to;
    }
  }

  /** Turns the encoded, not yet listed part of the chunk into an iovec. */
  private cut(): void {
    this.sealUpTo(this.pos);
    if (this.chunk && this.pos > this.start) {
      this.iovecs = pushed(this.iovecs, this.chunk.subarray(this.start, this.pos));
      this.start = this.pos;
    }
  }
}
