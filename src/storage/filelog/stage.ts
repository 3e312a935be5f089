/**
 * Records waiting for the next write. Appends encode straight into pooled chunks, so a batch
 * is a handful of iovecs and steady-state appending allocates nothing but the StoredMessage;
 * large payloads are not copied, they go out as their own iovec.
 */
import { copyAll } from '../../protocol/ascii.js';
import type { AppendCallback, StoredMessage } from '../engine.js';
import { HEADER_BYTES, MAX_NAME_BYTES, MAX_RECORD_BYTES, seal, writeHeader } from './record.js';

const CHUNK_BYTES = 16 * 1024;
/** Payloads up to this size are copied next to their header (one iovec for many records). */
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
    batch.chunks.length = 0;
  }

  /** Chunks waiting for reuse (for tests). */
  get idle(): readonly Buffer[] {
    return this.free;
  }
}

/** What one write puts on disk, and who to tell. Offsets are consecutive from `messages[0]`. */
export interface Batch {
  readonly messages: StoredMessage[];
  readonly callbacks: (AppendCallback | undefined)[];
  /** What each append asked to be handed back to its callback. */
  readonly refs: string[];
  readonly payloadBytes: number[];
  /** Record sizes, for the sparse index. */
  readonly sizes: number[];
  readonly iovecs: Buffer[];
  readonly chunks: Buffer[];
  readonly bytes: number;
}

export class Stage {
  /** Full batches waiting behind the one being filled. */
  private readonly ready: Batch[] = [];
  private messages: StoredMessage[] = [];
  private callbacks: (AppendCallback | undefined)[] = [];
  private refs: string[] = [];
  private payloadBytes: number[] = [];
  private sizes: number[] = [];
  private iovecs: Buffer[] = [];
  private chunks: Buffer[] = [];
  private bytes = 0;
  private chunk: Buffer | null = null;
  /** chunk[start..pos) is encoded but not yet an iovec. */
  private start = 0;
  private pos = 0;
  // The last publisher, encoded: publishers repeat, and encoding is a native call.
  private lastPublisher = '';
  private lastPublisherBytes = Buffer.alloc(0);

  constructor(private readonly pool: ChunkPool) {}

  get empty(): boolean {
    return this.ready.length === 0 && this.messages.length === 0;
  }

  /** Bytes of the next batch `take` hands out when it is the only one, or -1 when there are more. */
  get loneBatchBytes(): number {
    return this.ready.length === 0 ? this.bytes : -1;
  }

  /** Offset of the oldest staged record, or 0. */
  get firstOffset(): number {
    return (this.ready[0]?.messages ?? this.messages)[0]?.offset ?? 0;
  }

  /** Encodes a record; throws a RangeError (and stages nothing) when it cannot be stored. */
  add(m: StoredMessage, done: AppendCallback | undefined, ref = ''): void {
    const publisher = this.encodePublisher(m.publisher);
    const publisherBytes = publisher.length;
    const replyBytes = m.reply === '' ? 0 : Buffer.byteLength(m.reply);
    const headerEnd = HEADER_BYTES + publisherBytes + replyBytes;
    const payload = m.payload;
    const total = headerEnd + payload.length;
    if (publisherBytes > MAX_NAME_BYTES || replyBytes > MAX_NAME_BYTES || total > MAX_RECORD_BYTES) {
      throw new RangeError(`message too large to store (${total} bytes, publisher ${publisherBytes}, reply ${replyBytes})`);
    }
    const inline = payload.length <= INLINE_PAYLOAD;
    const buf = this.reserve(inline ? total : headerEnd);
    const at = this.pos;
    const end = writeHeader(buf, at, total, m.offset, m.timestamp, publisher, m.reply, replyBytes);
    if (inline) {
      this.pos = copyAll(buf, end, payload);
      seal(buf, at, this.pos, null);
    } else {
      seal(buf, at, end, payload);
      this.pos = end;
      this.cut();
      this.iovecs.push(payload);
    }
    this.bytes += total;
    this.messages.push(m);
    this.callbacks.push(done);
    this.refs.push(ref);
    this.payloadBytes.push(payload.length);
    this.sizes.push(total);
    if (this.bytes >= BATCH_BYTES) this.ready.push(this.seal());
  }

  /** Hands the oldest staged records over for writing. */
  take(): Batch {
    return this.ready.shift() ?? this.seal();
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
      messages: this.messages,
      callbacks: this.callbacks,
      refs: this.refs,
      payloadBytes: this.payloadBytes,
      sizes: this.sizes,
      iovecs: this.iovecs,
      chunks: this.chunks,
      bytes: this.bytes,
    };
    this.messages = [];
    this.callbacks = [];
    this.refs = [];
    this.payloadBytes = [];
    this.sizes = [];
    this.iovecs = [];
    this.chunks = [];
    this.bytes = 0;
    this.chunk = null;
    this.start = this.pos = 0;
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
    this.chunks.push(chunk);
    this.chunk = chunk;
    this.start = this.pos = 0;
    return chunk;
  }

  /** Turns the encoded, not yet listed part of the chunk into an iovec. */
  private cut(): void {
    if (this.chunk && this.pos > this.start) {
      this.iovecs.push(this.chunk.subarray(this.start, this.pos));
      this.start = this.pos;
    }
  }
}
