import { type AckRef, isAckIdByte, packAckId } from './ack-id.js';
import { nameProblem } from './names.js';

/**
 * The routine frame `PUB <channel> <ack-id|-> <reply|-> <size>`, parsed without arrays,
 * regular expressions or more strings than the fields themselves: this runs once per message.
 * Anything unusual returns false and the full parser (commands.ts) gives the precise error.
 */
export interface PubHeader {
  channel: string;
  /** '', the id, or a short id packed: no string is made for most (ack-id.ts). */
  ackId: AckRef;
  reply: string;
  size: number;
  /** The previous frame's channel bytes and name: a publisher repeats one channel, mostly. */
  readonly lastRaw: Buffer;
  lastRawLength: number;
  lastChannel: string;
}

export function pubHeader(): PubHeader {
  return { channel: '', ackId: '', reply: '', size: 0, lastRaw: Buffer.alloc(128), lastRawLength: -1, lastChannel: '' };
}

const SPACE = 0x20;
const DASH = 0x2d;

/** Channel names already validated (most publishers reuse a few); bounded. */
const valid = new Set<string>();
const MAX_VALID = 65_536;

function channelOk(name: string): boolean {
  if (valid.has(name)) return true;
  if (nameProblem(name, false) !== null) return false;
  if (valid.size >= MAX_VALID) valid.clear();
  valid.add(name);
  return true;
}

function sameBytes(a: Buffer, from: number, b: Buffer, len: number): boolean {
  for (let i = 0; i < len; i++) if (a[from + i] !== b[i]) return false;
  return true;
}

/** Parses `line[start, end)`; false means "not a routine PUB" (the full parser decides). */
export function parsePubFast(line: Buffer, start: number, end: number, out: PubHeader): boolean {
  const c0 = start + 4;
  if (end - start < 12 || line[start] !== 0x50 || line[start + 1] !== 0x55 || line[start + 2] !== 0x42 || line[start + 3] !== SPACE) return false;
  const s1 = indexOfSpace(line, c0, end);
  if (s1 <= c0) return false;
  const s2 = indexOfSpace(line, s1 + 1, end);
  if (s2 <= s1 + 1) return false;
  const s3 = indexOfSpace(line, s2 + 1, end);
  if (s3 <= s2 + 1 || s3 + 1 >= end) return false;
  let size = 0;
  for (let i = s3 + 1; i < end; i++) {
    const c = line[i]! - 0x30;
    if (c < 0 || c > 9 || i - s3 > 12) return false;
    size = size * 10 + c;
  }
  // A repeat of the last channel skips decoding and validation (a few byte compares).
  const len = s1 - c0;
  let channel: string;
  if (len === out.lastRawLength && sameBytes(line, c0, out.lastRaw, len)) channel = out.lastChannel;
  else {
    channel = line.latin1Slice(c0, s1);
    if (!channelOk(channel)) return false;
    if (len <= out.lastRaw.length) {
      line.copy(out.lastRaw, 0, c0, s1);
      out.lastRawLength = len;
      out.lastChannel = channel;
    }
  }
  let ackId: AckRef = '';
  if (!(s2 === s1 + 2 && line[s1 + 1] === DASH)) {
    ackId = packAckId(line, s1 + 1, s2);
    if (ackId < 0) {
      if (s2 - s1 - 1 > 32) return false;
      for (let i = s1 + 1; i < s2; i++) if (!isAckIdByte(line[i]!)) return false;
      ackId = line.latin1Slice(s1 + 1, s2);
    }
  }
  let reply = '';
  if (!(s3 === s2 + 2 && line[s2 + 1] === DASH)) {
    reply = line.latin1Slice(s2 + 1, s3);
    if (!channelOk(reply)) return false;
  }
  out.channel = channel;
  out.ackId = ackId;
  out.reply = reply;
  out.size = size;
  return true;
}

/**
 * A JS loop beats Buffer#indexOf's native call for the short fields of a PUB line. Not
 * ascii.ts indexOfByte: its cap and native fallback measured ~10% slower here, three times a line.
 */
function indexOfSpace(buf: Buffer, from: number, end: number): number {
  for (let i = from; i < end; i++) if (buf[i] === SPACE) return i;
  return -1;
}

declare module 'node:buffer' {
  interface Buffer {
    /** Node's internal fast latin1 decoder (public since forever, untyped). */
    latin1Slice(start: number, end: number): string;
  }
}
