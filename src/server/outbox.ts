import type { Writable } from 'node:stream';
import '../protocol/fast-pub.js'; // Buffer#latin1Slice/latin1Write typings
import { type AckRef, PACKED_MAX, writePackedAckId } from '../protocol/ack-id.js';
import { copyAll, copyBytes, writeDecimal } from '../protocol/ascii.js';
import { deliveryEncoder, INLINE_DELIVERY } from '../protocol/encode.js';
import { payloadOf, type PayloadRange, type StoredMessage } from '../storage/engine.js';
import { atTurnEnd } from '../loop/turn-end.js';

const CHUNK = 64 * 1024;
/**
 * A connection that fills its chunk within a turn gets the next one twice as large, up to this:
 * fewer, larger socket writes for a subscriber taking a burst (fan-in: eight publishers' reads
 * delivered to one). Idle or light connections keep CHUNK; memory stays under the outbound bound.
 */
const MAX_CHUNK = 256 * 1024;
/** Payloads at least this big are handed to the socket as they are instead of copied. */
const DIRECT = 16 * 1024;
const SMALL = 4 * 1024;
const NL = Buffer.from('\n');
/** Free chunks kept per size (64, 128 and 256 KiB): at most 3.5 MiB idle in all. */
const FREE_PER_SIZE = 8;

/**
 * Chunks come back here once the socket has written them (the write's callback), and a
 * connection takes its next chunk from here: a busy subscriber cycles through a few chunks
 * instead of allocating a fresh 64–256 KiB for every flush. Why: every fresh chunk is memory
 * outside V8's heap, and V8 answers that much of it with garbage collections ("external memory
 * pressure"); under an 8→1 flood the subscriber's outbound bytes alone were ~350 MB/s of it.
 * One pool per process: one event loop serves every connection. It relies on the transport being
 * done with a chunk when it calls back: true of net and TLS sockets (the kernel, or TLS's own
 * buffers, have the bytes by then), not of a stream that hands the chunk on (a PassThrough).
 */
class ChunkPool {
  private readonly free = new Map<number, Buffer[]>();

  take(size: number): Buffer {
    return this.free.get(size)?.pop() ?? Buffer.allocUnsafeSlow(size);
  }

  give(chunk: Buffer): void {
    let list = this.free.get(chunk.length);
    if (list === undefined) this.free.set(chunk.length, (list = []));
    if (list.length < FREE_PER_SIZE) list.push(chunk);
  }
}

const chunks = new ChunkPool();

/**
 * Gathers a connection's outgoing bytes and writes them once per event-loop turn (or at once
 * past a chunk), so a burst of deliveries costs one socket write, not one each.
 */
export class Outbox {
  private buf = chunks.take(CHUNK);
  /** Chunks handed to the socket and not yet written, oldest first: a stream's write callbacks run in order. */
  private readonly unwritten: Buffer[] = [];
  private readonly written = (): void => {
    const chunk = this.unwritten.shift();
    if (chunk !== undefined) chunks.give(chunk);
  };
  private used = 0;
  /** Size of the next chunk: grows while chunks fill within a turn, back to CHUNK when one does not. */
  private chunkSize = CHUNK;
  private scheduled = false;
  /** The socket is corked around a large payload until the end of the turn. */
  private corked = false;
  private readonly flushNow = (): void => {
    this.scheduled = false;
    // The end of a turn: a chunk not filled in it means the burst is over.
    if (this.used < this.buf.length / 2) this.chunkSize = CHUNK;
    this.flush();
    if (this.corked) {
      this.corked = false;
      this.socket.uncork();
    }
  };

  /**
   * @param highWater queued bytes past which the connection counts as congested
   * @param onRoom called once room is back after congested() said true: on 'drain', or after a
   *   flush the socket took whole (a bound below the chunk size is reached without blocking)
   */
  constructor(
    private readonly socket: Writable,
    private readonly highWater: number,
    private readonly onRoom: () => void,
  ) {}

  /** The socket refused more (write() returned false) and has not drained yet. */
  private blocked = false;
  /** congested() said true and onRoom has not run since. */
  private owesRoom = false;

  congested(): boolean {
    if (this.queued <= this.highWater) return false;
    this.owesRoom = true;
    return true;
  }

  /** Bytes written but not yet accepted by the kernel. */
  get queued(): number {
    // Unless the socket is blocked, its own queue is under its high-water mark (16 KiB):
    // skip the stream getters on the hot path.
    return this.blocked ? this.used + this.socket.writableLength : this.used;
  }

  /** The socket drained: called from its 'drain' event. */
  drained(): void {
    this.blocked = false;
    this.roomBack();
  }

  private roomBack(): void {
    if (!this.owesRoom || this.queued > this.highWater) return;
    this.owesRoom = false;
    this.onRoom();
  }

  /**
   * A delivery: the subscription's prefix (`MSG <sid>`), then the message's shared bytes
   * (machineDelivery), then, for a payload too large to be inlined there, the payload and its
   * newline. Short copies are JS loops: for a few dozen bytes TypedArray#set's call costs more.
   */
  writeFrame(prefix: Buffer, shared: Buffer, payload: PayloadRange): void {
    if (payload.end - payload.start > INLINE_DELIVERY) {
      this.write(prefix);
      this.write(shared);
      this.write(payloadOf(payload));
      this.write(NL);
      return;
    }
    if (this.used + prefix.length + shared.length > this.buf.length) this.flush();
    const buf = this.buf;
    this.used = copyAll(buf, copyAll(buf, this.used, prefix), shared);
    this.schedule();
  }

  /** A delivery for one subscriber: encoded straight into the buffer, no shared copy made. */
  writeDelivery(prefix: Buffer, msg: StoredMessage): void {
    const enc = deliveryEncoder;
    const total = prefix.length + enc.prepare(msg);
    if (this.used + total > this.buf.length) this.flush();
    const buf = this.buf;
    this.used = enc.write(buf, copyAll(buf, this.used, prefix));
    if (!enc.inline) {
      this.write(payloadOf(msg));
      this.write(NL);
    }
    this.schedule();
  }

  /** `ACK <id> <offset>\n`, written in place: one per acknowledged publish. */
  writeAck(ackId: AckRef, offset: number): void {
    const packed = typeof ackId === 'number';
    if (this.used + (packed ? PACKED_MAX : ackId.length) + 24 > this.buf.length) this.flush();
    const buf = this.buf;
    let at = this.used;
    buf[at++] = 0x41; // A
    buf[at++] = 0x43; // C
    buf[at++] = 0x4b; // K
    buf[at++] = 0x20;
    if (packed) at = writePackedAckId(buf, at, ackId);
    else at += buf.latin1Write(ackId, at);
    buf[at++] = 0x20;
    at = writeDecimal(buf, at, offset);
    buf[at++] = 0x0a;
    this.used = at;
    this.schedule();
  }

  /** ASCII text (acks, control lines): latin1 is the cheapest encoding to write. */
  writeAscii(text: string): void {
    if (this.used + text.length > this.buf.length) {
      this.flush();
      if (text.length > this.buf.length) {
        this.write(Buffer.from(text, 'latin1'));
        return;
      }
    }
    this.used += this.buf.latin1Write(text, this.used);
    this.schedule();
  }

  write(bytes: Buffer): void {
    if (bytes.length >= DIRECT) {
      // Handed over as it is, corked with what comes before and after it in this turn: the
      // socket gathers them into one writev instead of a write per piece.
      if (!this.corked) {
        this.socket.cork();
        this.corked = true;
      }
      this.flush();
      if (!this.socket.write(bytes)) this.blocked = true;
      this.schedule();
      return;
    }
    if (this.used + bytes.length > this.buf.length) this.flush();
    this.buf.set(bytes, this.used);
    this.used += bytes.length;
    this.schedule();
  }

  writeString(text: string): void {
    const max = text.length * 3;
    if (max >= DIRECT) {
      this.write(Buffer.from(text));
      return;
    }
    if (this.used + max > this.buf.length) this.flush();
    this.used += this.buf.write(text, this.used);
    this.schedule();
  }

  flush(): void {
    if (this.used === 0 || this.socket.destroyed) return;
    // The socket keeps a reference until written: a small batch is copied out (cheap, pooled),
    // a large one is handed over and the next bytes go to a fresh chunk.
    let accepted: boolean;
    if (this.used <= SMALL) {
      // Not Buffer.from(subarray): that is two Buffer objects, and a quiet subscriber's flush
      // (one delivery of a few dozen bytes, copied in a loop) needs one.
      const copy = Buffer.allocUnsafe(this.used);
      copyBytes(copy, 0, this.buf, 0, this.used);
      // A burst's large chunk is not kept by a connection gone quiet.
      if (this.buf.length > this.chunkSize) {
        chunks.give(this.buf);
        this.buf = chunks.take(this.chunkSize);
      }
      this.used = 0;
      accepted = this.socket.write(copy);
    } else {
      const chunk = this.buf;
      const bytes = chunk.subarray(0, this.used);
      // Flushed before the end of the turn, past half full: it filled in this turn.
      if (this.scheduled && this.used >= chunk.length / 2) this.chunkSize = Math.min(MAX_CHUNK, chunk.length * 2);
      this.buf = chunks.take(this.chunkSize);
      this.used = 0;
      this.unwritten.push(chunk);
      accepted = this.socket.write(bytes, this.written);
    }
    if (!accepted) this.blocked = true;
    else if (this.owesRoom) setImmediate(() => this.roomBack()); // not from inside a write
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    atTurnEnd(this.flushNow);
  }
}

declare module 'node:buffer' {
  interface Buffer {
    /** Node's internal fast latin1 encoder (untyped). */
    latin1Write(text: string, offset: number): number;
  }
}
