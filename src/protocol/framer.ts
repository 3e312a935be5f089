import { indexOfByte } from './ascii.js';
import { ErrorCode, snippet } from './errors.js';

/**
 * Splits a byte stream into lines and sized payloads. Pure: no I/O, no sockets.
 *
 * A byte-level state machine: lines are handed out as offsets into the incoming chunk and are
 * copied only when they straddle two chunks. A payload whose size is known is jumped over, not
 * scanned. The line limit holds across split reads: an overlong line is reported as soon as it
 * passes the limit and the rest of it is discarded without being buffered.
 */
export interface FrameHandler {
  /**
   * A complete line, `buf[start, end)`, without its `\n` (and `\r`). Offsets, not a view: a
   * routine frame costs no allocation. The bytes are valid only during the call.
   */
  onLine(buf: Buffer, start: number, end: number): void;
  /**
   * The payload announced with expectPayload(), `buf[start, end)`. Valid only during the call,
   * unless `lasting`: then the bytes are never written again and a view may be kept instead of
   * a copy. They are then in the pushed chunk itself (push() takes ownership of its chunks; a
   * socket read is exactly its own size, at most 64 KiB, and a view keeps all of it alive) or
   * in a buffer of this payload's own.
   */
  onPayload(buf: Buffer, start: number, end: number, lasting: boolean): void;
  /** A framing problem. The framer has already resynchronised on the next line. */
  onError(code: ErrorCode, message: string): void;
}

export interface FramerOptions {
  readonly maxLine: number;
  readonly maxPayload: number;
}

const State = { LINE: 0, DISCARD_LINE: 1, PAYLOAD: 2, SKIP_PAYLOAD: 3, PAYLOAD_END: 4 } as const;
type State = (typeof State)[keyof typeof State];

const LF = 0x0a;
const CR = 0x0d;
const EMPTY = Buffer.alloc(0);

/**
 * A payload split over reads is gathered in the carry-over buffer, which is reused, so it is
 * not `lasting`; from this size on it gets a buffer of its own instead: copied once, handed
 * out lasting, and the carry-over buffer stays small.
 */
export const LASTING_PAYLOAD = 16 * 1024;

export class Framer {
  private state: State = State.LINE;
  /** Partial line or payload carried over from the previous chunk. */
  private pending: Buffer = EMPTY;
  private pendingLength = 0;
  /** Payload bytes still expected (PAYLOAD / SKIP_PAYLOAD). */
  private remaining = 0;
  private payloadSize = 0;
  /** Set by expectPayload() while inside onLine(). */
  private nextPayload = -1;
  private skipNext = false;
  /** The current payload is being skipped, not delivered. */
  private skipping = false;
  /** `pending` is a buffer of the current payload's own (LASTING_PAYLOAD and up). */
  private ownPending = false;

  constructor(
    private readonly handler: FrameHandler,
    private readonly options: FramerOptions,
  ) {}

  /**
   * Called from inside onLine(): the next `size` bytes and a newline are a payload. With
   * `skip`, they are discarded (an oversize or refused frame) and onPayload is not called.
   */
  expectPayload(size: number, skip = false): void {
    this.nextPayload = size;
    this.skipNext = skip;
  }

  /** Bytes received while suspended, to be parsed on resume(). */
  private held: Buffer[] = [];
  private suspended = false;

  /**
   * Stop handing out frames after the current one (e.g. while a login is verified, so the
   * commands behind it are judged by its outcome). Input is kept, not parsed.
   */
  suspend(): void {
    this.suspended = true;
  }

  resume(): void {
    if (!this.suspended) return;
    this.suspended = false;
    const held = this.held;
    this.held = [];
    for (let k = 0; k < held.length; k++) {
      if (this.suspended) {
        this.held.push(...held.slice(k));
        return;
      }
      this.push(held[k]!);
    }
  }

  push(chunk: Buffer): void {
    if (this.suspended) {
      this.held.push(chunk);
      return;
    }
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (this.suspended) {
        // The socket reuses nothing, but a view keeps the whole chunk: copy just the rest.
        this.held.push(Buffer.from(chunk.subarray(i)));
        return;
      }
      switch (this.state) {
        case State.LINE: {
          const nl = indexOfByte(chunk, LF, i, n);
          let start = 0;
          let end: number;
          if (nl === -1) {
            this.carry(chunk, i, n);
            if (this.pendingLength > this.options.maxLine) this.overlong();
            return;
          }
          let line: Buffer;
          if (this.pendingLength > 0) {
            this.carry(chunk, i, nl);
            line = this.pending;
            end = this.pendingLength;
            this.pendingLength = 0;
          } else {
            line = chunk;
            start = i;
            end = nl;
          }
          i = nl + 1;
          if (end > start && line[end - 1] === CR) end--;
          if (end - start > this.options.maxLine) {
            this.handler.onError(ErrorCode.LINE_TOO_LONG, `line of ${end - start} bytes exceeds max-line ${this.options.maxLine}`);
            continue;
          }
          this.nextPayload = -1;
          this.handler.onLine(line, start, end);
          if (this.nextPayload >= 0) this.beginPayload();
          break;
        }
        case State.DISCARD_LINE: {
          const nl = chunk.indexOf(LF, i);
          if (nl === -1) return;
          i = nl + 1;
          this.state = State.LINE;
          break;
        }
        case State.PAYLOAD: {
          const take = Math.min(this.remaining, n - i);
          if (this.pendingLength === 0 && take === this.payloadSize) {
            // Whole payload and its newline inside this chunk: hand out a view, no copy.
            const end = i + take;
            const nl = chunk[end] === LF ? end : chunk[end] === CR && chunk[end + 1] === LF ? end + 1 : -1;
            if (nl !== -1) {
              i = nl + 1;
              this.state = State.LINE;
              this.handler.onPayload(chunk, end - take, end, true);
              break;
            }
          }
          if (this.pendingLength === 0 && this.payloadSize >= LASTING_PAYLOAD) {
            this.pending = Buffer.allocUnsafe(this.payloadSize);
            this.ownPending = true;
          }
          this.carry(chunk, i, i + take);
          this.remaining -= take;
          i += take;
          if (this.remaining === 0) this.state = State.PAYLOAD_END;
          break;
        }
        case State.SKIP_PAYLOAD: {
          const take = Math.min(this.remaining, n - i);
          this.remaining -= take;
          i += take;
          if (this.remaining === 0) this.state = State.PAYLOAD_END;
          break;
        }
        case State.PAYLOAD_END: {
          // The payload is only delivered once its newline proves the frame whole.
          const b = chunk[i]!;
          if (b === CR) {
            i++;
            break;
          }
          const payloadLength = this.pendingLength;
          this.pendingLength = 0;
          const skipped = this.skipping;
          this.skipping = false;
          const own = this.ownPending;
          const payload = this.pending;
          if (own) {
            // Handed over (or dropped): the next line starts a fresh carry-over buffer.
            this.pending = EMPTY;
            this.ownPending = false;
          }
          if (b === LF) {
            i++;
            this.state = State.LINE;
            if (!skipped) this.handler.onPayload(payload, 0, payloadLength, own);
          } else {
            this.state = State.DISCARD_LINE;
            this.handler.onError(ErrorCode.BAD_FRAME, `payload of ${this.payloadSize} bytes not followed by a newline (found ${snippet(chunk.subarray(i, i + 16))}); frame discarded`);
          }
          break;
        }
      }
    }
  }

  private beginPayload(): void {
    this.payloadSize = this.remaining = this.nextPayload;
    this.nextPayload = -1;
    this.skipping = this.skipNext;
    this.skipNext = false;
    this.state = this.skipping ? State.SKIP_PAYLOAD : State.PAYLOAD;
  }

  private overlong(): void {
    this.handler.onError(ErrorCode.LINE_TOO_LONG, `line exceeds max-line ${this.options.maxLine} bytes (starts ${snippet(this.pending.subarray(0, 24))})`);
    this.pendingLength = 0;
    this.state = State.DISCARD_LINE;
    if (this.pending.length > 64 * 1024) this.pending = EMPTY;
  }

  /** Append chunk[from, to) to the carry-over buffer, growing it geometrically. */
  private carry(chunk: Buffer, from: number, to: number): void {
    const len = to - from;
    if (len === 0) return;
    const need = this.pendingLength + len;
    if (need > this.pending.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, this.pending.length * 2, 256));
      this.pending.copy(grown, 0, 0, this.pendingLength);
      this.pending = grown;
    }
    chunk.copy(this.pending, this.pendingLength, from, to);
    this.pendingLength = need;
  }
}
