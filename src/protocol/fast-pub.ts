import { nameProblem } from './names.js';

/**
 * The routine frame `PUB <channel> <ack-id|-> <reply|-> <size>`, parsed without arrays,
 * regular expressions or more strings than the fields themselves: this runs once per message.
 * Anything unusual returns false and the full parser (commands.ts) gives the precise error.
 */
export interface PubHeader {
  channel: string;
  ackId: string;
  reply: string;
  size: number;
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

function isIdByte(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x5f || c === DASH;
}

export function parsePubFast(line: Buffer, out: PubHeader): boolean {
  const n = line.length;
  if (n < 12 || line[0] !== 0x50 || line[1] !== 0x55 || line[2] !== 0x42 || line[3] !== SPACE) return false;
  const s1 = line.indexOf(SPACE, 4);
  if (s1 <= 4) return false;
  const s2 = line.indexOf(SPACE, s1 + 1);
  if (s2 <= s1 + 1) return false;
  const s3 = line.indexOf(SPACE, s2 + 1);
  if (s3 <= s2 + 1 || s3 + 1 >= n) return false;
  let size = 0;
  for (let i = s3 + 1; i < n; i++) {
    const c = line[i]! - 0x30;
    if (c < 0 || c > 9 || i - s3 > 12) return false;
    size = size * 10 + c;
  }
  const channel = line.latin1Slice(4, s1);
  if (!channelOk(channel)) return false;
  let ackId = '';
  if (!(s2 === s1 + 2 && line[s1 + 1] === DASH)) {
    if (s2 - s1 - 1 > 32) return false;
    for (let i = s1 + 1; i < s2; i++) if (!isIdByte(line[i]!)) return false;
    ackId = line.latin1Slice(s1 + 1, s2);
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

declare module 'node:buffer' {
  interface Buffer {
    /** Node's internal fast latin1 decoder (public since forever, untyped). */
    latin1Slice(start: number, end: number): string;
  }
}
