import type { Writable } from 'node:stream';

const CHUNK = 64 * 1024;
/** Payloads at least this big are handed to the socket as they are instead of copied. */
const DIRECT = 16 * 1024;
const SMALL = 4 * 1024;

/**
 * Gathers a connection's outgoing bytes and writes them once per event-loop turn (or at once
 * past a chunk), so a burst of deliveries costs one socket write, not one each.
 */
export class Outbox {
  private buf = Buffer.allocUnsafe(CHUNK);
  private used = 0;
  private scheduled = false;
  private readonly flushNow = (): void => {
    this.scheduled = false;
    this.flush();
  };

  constructor(private readonly socket: Writable) {}

  /** Bytes written but not yet accepted by the kernel. */
  get queued(): number {
    return this.used + this.socket.writableLength;
  }

  write(bytes: Buffer): void {
    if (bytes.length >= DIRECT) {
      this.flush();
      this.socket.write(bytes);
      return;
    }
    if (this.used + bytes.length > this.buf.length) this.flush();
    bytes.copy(this.buf, this.used);
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
    let chunk: Buffer;
    if (this.used <= SMALL) chunk = Buffer.from(this.buf.subarray(0, this.used));
    else {
      chunk = this.buf.subarray(0, this.used);
      this.buf = Buffer.allocUnsafe(CHUNK);
    }
    this.used = 0;
    this.socket.write(chunk);
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.flushNow);
  }
}
