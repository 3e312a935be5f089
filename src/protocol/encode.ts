// Types only: the client library shares this module and must not load the server's storage.
import type { StoredMessage } from '../storage/engine.js';
import { copyAll, copyBytes, decimalLength, writeDecimal } from './ascii.js';
import { displayName } from './names.js';

/**
 * Server-side encodings of deliveries and answers. Pure: bytes in, bytes out.
 * A delivery is encoded once per message and the bytes are shared by every subscriber; only
 * the machine-mode `MSG <sid> ` prefix differs per subscription.
 */

/**
 * Printable rendering of a payload, so one message is always one line and cannot drive a
 * terminal: `\\`, `\n`, `\r`, `\t`, and `\xNN` for other control bytes (C0, DEL, the C1
 * range encoded in UTF-8) and for bytes that are not valid UTF-8. Valid text passes unchanged.
 */
export function escapeText(payload: Uint8Array): string {
  const bytes = Buffer.from(payload.buffer, payload.byteOffset, payload.length);
  let plain = true;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b < 0x20 || b === 0x5c || b >= 0x7f) {
      plain = false;
      break;
    }
  }
  if (plain) return bytes.toString('latin1');
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    if (b < 0x80) {
      if (b === 0x5c) out += '\\\\';
      else if (b === 0x0a) out += '\\n';
      else if (b === 0x0d) out += '\\r';
      else if (b === 0x09) out += '\\t';
      else if (b < 0x20 || b === 0x7f) out += hex(b);
      else out += String.fromCharCode(b);
      i++;
      continue;
    }
    const len = utf8Length(bytes, i);
    if (len === 0 || (b === 0xc2 && bytes[i + 1]! < 0xa0)) {
      out += hex(b); // invalid UTF-8, or a C1 control (U+0080..U+009F)
      i++;
      continue;
    }
    out += bytes.toString('utf8', i, i + len);
    i += len;
  }
  return out;
}

function hex(b: number): string {
  return '\\x' + b.toString(16).padStart(2, '0');
}

/** Length of the valid UTF-8 sequence starting at i, or 0 (overlongs and surrogates rejected). */
function utf8Length(bytes: Buffer, i: number): number {
  const b = bytes[i]!;
  const cont = (k: number): boolean => i + k < bytes.length && (bytes[i + k]! & 0xc0) === 0x80;
  if (b >= 0xc2 && b <= 0xdf) return cont(1) ? 2 : 0;
  if (b >= 0xe0 && b <= 0xef) {
    const b1 = bytes[i + 1] ?? 0;
    if ((b === 0xe0 && b1 < 0xa0) || (b === 0xed && b1 >= 0xa0)) return 0;
    return cont(1) && cont(2) ? 3 : 0;
  }
  if (b >= 0xf0 && b <= 0xf4) {
    const b1 = bytes[i + 1] ?? 0;
    if ((b === 0xf0 && b1 < 0x90) || (b === 0xf4 && b1 >= 0x90)) return 0;
    return cont(1) && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

let clockSecond = -1;
let clockText = '';

/** HH:MM:SS in local time, like the original's `date +%T`; cached per second. */
export function clock(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== clockSecond) {
    const d = new Date(ms);
    clockSecond = second;
    clockText = `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  }
  return clockText;
}

function pad2(n: number): string {
  return n < 10 ? '0' + n : String(n);
}

/** `pubsub on <channel> at HH:MM:SS: <text>\n` */
export function humanDelivery(msg: StoredMessage): Buffer {
  const reply = msg.reply ? ` (reply to ${displayName(msg.reply)})` : '';
  return Buffer.from(`pubsub on ${displayName(msg.channel)} at ${clock(msg.timestamp)}${reply}: ${escapeText(msg.data.subarray(msg.start, msg.end))}\n`);
}

export function micros(ms: number): number {
  return Math.round(ms * 1000);
}

/** Names as bytes, cached: a few channels and publishers carry most of the traffic. Bounded. */
const MAX_CACHED_NAMES = 65_536;
const DASH: Buffer = Buffer.from('-');

class NameBytes {
  private readonly map = new Map<string, Buffer>();
  // The last name asked for: consecutive messages mostly share it (a pointer compare).
  private lastName = '';
  private lastBytes = DASH;

  constructor(private readonly display: boolean) {}

  get(name: string): Buffer {
    if (name === this.lastName) return this.lastBytes;
    let b = this.map.get(name);
    if (b === undefined) {
      if (this.map.size >= MAX_CACHED_NAMES) this.map.clear();
      b = Buffer.from(this.display ? displayName(name) : name, 'latin1');
      this.map.set(name, b);
    }
    this.lastName = name;
    this.lastBytes = b;
    return b;
  }
}

const channelNames = new NameBytes(true);
const replyNames = new NameBytes(true);
const publisherNames = new NameBytes(false);

/** Room for DeliveryEncoder's middle part with usual names (it grows for long ones). */
const MIDDLE_BYTES = 256;

/** Payloads up to this size travel inside the delivery bytes (one copy per subscriber). */
export const INLINE_DELIVERY = 2048;

/**
 * Encodes the part of `MSG <sid> <channel> <offset> <time-µs> <publisher> <reply|-> <size>\n
 * <payload>\n` after the sid: `prepare` sizes it, `write` puts it at buf[at..]. A payload over
 * INLINE_DELIVERY is left out (the caller writes it as it is). Two steps, so that one
 * subscriber's copy is written straight into its outbox and a fan-out's is encoded once.
 * Single-threaded use only: `prepare` keeps the message for the following `write`.
 */
export class DeliveryEncoder {
  private msg: StoredMessage | null = null;
  private channel = DASH;
  /**
   * ` <time-µs> <publisher> <reply|-> `, kept while consecutive messages share all three (a
   * burst is stamped once per turn and a publisher repeats itself): one copy per message
   * instead of three copies and four separators.
   */
  private scratch = Buffer.allocUnsafeSlow(MIDDLE_BYTES);
  /** A view of `scratch`, rewritten in place: a new one only when the length changes. */
  private middle = this.scratch.subarray(0, 0);
  private stamp = -1;
  private publisher = '';
  private reply = '';
  /** Whether the payload is included. */
  inline = false;

  /** Bytes `write` will produce for `msg`. */
  prepare(msg: StoredMessage): number {
    this.msg = msg;
    this.channel = channelNames.get(msg.channel);
    if (msg.timestamp !== this.stamp || msg.publisher !== this.publisher || msg.reply !== this.reply) this.remember(msg);
    const size = msg.end - msg.start;
    this.inline = size <= INLINE_DELIVERY;
    const header = 3 + this.channel.length + decimalLength(msg.offset) + this.middle.length + decimalLength(size);
    return this.inline ? header + size + 1 : header;
  }

  /** Writes the prepared message; returns the index after it. */
  write(out: Buffer, at: number): number {
    const msg = this.msg!;
    const size = msg.end - msg.start;
    out[at++] = SPACE;
    at = copyAll(out, at, this.channel);
    out[at++] = SPACE;
    at = writeDecimal(out, at, msg.offset);
    at = copyAll(out, at, this.middle);
    at = writeDecimal(out, at, size);
    out[at++] = NEWLINE;
    if (this.inline) {
      at = copyBytes(out, at, msg.data, msg.start, msg.end);
      out[at++] = NEWLINE;
    }
    this.msg = null;
    return at;
  }

  private remember(msg: StoredMessage): void {
    this.stamp = msg.timestamp;
    this.publisher = msg.publisher;
    this.reply = msg.reply;
    const publisher = publisherNames.get(msg.publisher);
    const reply = msg.reply ? replyNames.get(msg.reply) : DASH;
    // Messages from publishers that take turns rewrite it each time: no allocation then.
    const most = 20 + publisher.length + reply.length;
    if (most > this.scratch.length) {
      this.scratch = Buffer.allocUnsafeSlow(most);
      this.middle = this.scratch.subarray(0, 0);
    }
    const m = this.scratch;
    let at = 0;
    m[at++] = SPACE;
    at = writeDecimal(m, at, micros(msg.timestamp));
    m[at++] = SPACE;
    at = copyAll(m, at, publisher);
    m[at++] = SPACE;
    at = copyAll(m, at, reply);
    m[at++] = SPACE;
    // A view of exactly its size, so that it is copied whole (TypedArray#set, one call).
    if (at !== this.middle.length) this.middle = m.subarray(0, at);
  }
}

export const deliveryEncoder = new DeliveryEncoder();

/** The delivery bytes of `msg` after the sid, encoded once and shared by its subscribers. */
export function machineDelivery(msg: StoredMessage): Buffer {
  const out = Buffer.allocUnsafe(deliveryEncoder.prepare(msg));
  deliveryEncoder.write(out, 0);
  return out;
}

/**
 * Where blocks are encoded before being copied out at their size (one copy per batch, cheaper
 * than a sizing pass that prepares every message twice); kept while small.
 */
let blockScratch = Buffer.allocUnsafeSlow(64 * 1024);
const KEEP_SCRATCH = 4 * 1024 * 1024;

/**
 * Every delivery of `batch` for a subscription whose prefix is `prefix` (`MSG <sid>`), payloads
 * included, in one buffer: the bytes any machine-mode subscription with that sid is sent, so a
 * batch fanned out to many such subscribers is encoded once (core/fan-out-plan.ts).
 */
export function machineBlock(prefix: Buffer, batch: readonly StoredMessage[]): Buffer {
  const enc = deliveryEncoder;
  let out = blockScratch;
  let at = 0;
  for (let i = 0; i < batch.length; i++) {
    const msg = batch[i]!;
    const head = prefix.length + enc.prepare(msg);
    const need = at + head + (enc.inline ? 0 : msg.end - msg.start + 1);
    if (need > out.length) {
      const bigger = Buffer.allocUnsafeSlow(Math.max(need, out.length * 2));
      bigger.set(out.subarray(0, at));
      out = bigger;
    }
    at = enc.write(out, copyAll(out, at, prefix));
    if (!enc.inline) {
      at = copyBytes(out, at, msg.data, msg.start, msg.end);
      out[at++] = NEWLINE;
    }
  }
  if (out.length <= KEEP_SCRATCH) blockScratch = out;
  const block = Buffer.allocUnsafe(at);
  block.set(out.subarray(0, at));
  return block;
}

const NEWLINE = 0x0a;
const SPACE = 0x20;

export function info(text: string): string {
  return `# [I] ${text}\n`;
}

export function debug(text: string, ms = Date.now()): string {
  return `# [D]:${clock(ms)}: ${text}\n`;
}

export function warning(text: string): string {
  return `# [W] ${text}\n`;
}

export function humanError(code: string, message: string): string {
  return `-ERR ${code} ${oneLine(message)}\n`;
}

export function machineError(ref: string, code: string, message: string): string {
  return `ERR ${ref || '-'} ${code} ${oneLine(message)}\n`;
}

function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, ' ');
}
