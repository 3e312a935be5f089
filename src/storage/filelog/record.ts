/**
 * One record of a segment file, encoded and decoded without I/O.
 *
 * Byte layout (integers little-endian; docs/storage.md has the table):
 *
 *    0  u32  magic 0x01756c66: the bytes 'f' 'l' 'u' 0x01 (format version 1)
 *    4  u32  total record length in bytes, this header included
 *    8  u32  CRC-32 (zlib) of bytes 12 .. end of record
 *   12  u32  offset, low 32 bits
 *   16  u32  offset, high bits (offsets stay below 2^53)
 *   20  f64  timestamp, milliseconds since the epoch
 *   28  u16  publisher length P
 *   30  u16  reply length R
 *   32       P bytes publisher (UTF-8), R bytes reply (UTF-8), then the payload to the end
 */
import type { StoredMessage } from '../engine.js';
import { copyAll } from '../../protocol/ascii.js';
import { crc32 } from './crc.js';
import { recordCrcAddon } from '../../native/addon.js';

export const MAGIC = 0x01756c66;
export const MAGIC_BYTES = Buffer.from([0x66, 0x6c, 0x75, 0x01]);
export const HEADER_BYTES = 32;
/** Bound used to reject a corrupt length field before trusting it. */
export const MAX_RECORD_BYTES = 1 << 30;
export const MAX_NAME_BYTES = 0xffff;

const CRC_FROM = 12;
const TWO_32 = 2 ** 32;

/**
 * Writes the header, publisher (already UTF-8) and reply of a record at buf[at..]; returns
 * where the payload goes. The CRC is written by `seal` once the payload is known.
 */
export function writeHeader(
  buf: Buffer,
  at: number,
  total: number,
  offset: number,
  timestamp: number,
  publisher: Buffer,
  reply: string,
  replyBytes: number,
): number {
  // Byte stores, not Buffer#writeUInt32LE: this runs once per record and the calls showed up.
  u32(buf, at, MAGIC);
  u32(buf, at + 4, total);
  u32(buf, at + 12, offset >>> 0);
  u32(buf, at + 16, Math.floor(offset / TWO_32));
  buf.writeDoubleLE(timestamp, at + 20);
  u16(buf, at + 28, publisher.length);
  u16(buf, at + 30, replyBytes);
  let p = copyAll(buf, at + HEADER_BYTES, publisher);
  if (replyBytes) p += buf.write(reply, p, 'utf8');
  return p;
}

/**
 * Computes and stores the CRC of a record whose header is at buf[at..headerEnd) and whose
 * payload is a buffer of its own (a large one, written as its own iovec). Records laid whole
 * in a chunk are sealed a run at a time instead (`sealRecords`).
 */
export function sealApart(buf: Buffer, at: number, headerEnd: number, payload: Buffer): void {
  u32(buf, at + 8, crc32(payload, 0, payload.length, crc32(buf, at + CRC_FROM, headerEnd)));
}

/**
 * Computes and stores the CRC of every record laid end to end in buf[from..to), each whole
 * there (its payload too). The stage seals a chunk's records this way in one call when it
 * hands the run over for writing: with the native addon that is one call instead of one per
 * record (the largest single cost of a small durable publish, see native/record-crc.c).
 */
export const sealRecords: (buf: Buffer, from: number, to: number) => void = recordCrcAddon
  ? recordCrcAddon.seal
  : sealRecordsInJs;

/** `sealRecords` without the addon. */
export function sealRecordsInJs(buf: Buffer, from: number, to: number): void {
  for (let at = from; at < to; ) {
    const length = recordLength(buf, at);
    if (length < HEADER_BYTES || at + length > to) throw new RangeError("a record's length does not fit the run being sealed");
    u32(buf, at + 8, crc32(buf, at + CRC_FROM, at + length));
    at += length;
  }
}

function u32(buf: Buffer, at: number, v: number): void {
  buf[at] = v;
  buf[at + 1] = v >>> 8;
  buf[at + 2] = v >>> 16;
  buf[at + 3] = v >>> 24;
}

function u16(buf: Buffer, at: number, v: number): void {
  buf[at] = v;
  buf[at + 1] = v >>> 8;
}

export const recordLength = (buf: Buffer, at: number): number => buf.readUInt32LE(at + 4);
export const recordOffset = (buf: Buffer, at: number): number =>
  buf.readUInt32LE(at + 12) + buf.readUInt32LE(at + 16) * TWO_32;
export const recordTimestamp = (buf: Buffer, at: number): number => buf.readDoubleLE(at + 20);

/** Checks the fixed header at buf[at..at+HEADER_BYTES); null when it is plausible. */
export function headerProblem(buf: Buffer, at: number): string | null {
  const magic = buf.readUInt32LE(at);
  if (magic !== MAGIC) return `bad magic 0x${magic.toString(16).padStart(8, '0')}`;
  const length = recordLength(buf, at);
  if (length < HEADER_BYTES || length > MAX_RECORD_BYTES) return `bad record length ${length}`;
  return null;
}

/**
 * Checks a whole record at buf[at..at+length) whose header passed `headerProblem`: checksum,
 * name lengths and, when `expected` is not 0, the offset. Null when the record is good.
 */
export function recordProblem(buf: Buffer, at: number, length: number, expected: number): string | null {
  const stored = buf.readUInt32LE(at + 8);
  const actual = crc32(buf, at + CRC_FROM, at + length);
  if (stored !== actual) return `checksum mismatch (stored ${hex(stored)}, computed ${hex(actual)})`;
  const names = buf.readUInt16LE(at + 28) + buf.readUInt16LE(at + 30);
  if (HEADER_BYTES + names > length) return `name lengths ${names} overflow the record length ${length}`;
  const offset = recordOffset(buf, at);
  if (expected !== 0 && offset !== expected) return `offset ${offset} where ${expected} was expected`;
  if (!Number.isSafeInteger(offset) || offset < 1) return `bad offset ${offset}`;
  return null;
}

/** Decodes a checked record. The payload is a range of `buf`, not a copy. */
export function decodeRecord(buf: Buffer, at: number, length: number, channel: string): StoredMessage {
  const publisherBytes = buf.readUInt16LE(at + 28);
  const replyBytes = buf.readUInt16LE(at + 30);
  const p = at + HEADER_BYTES;
  const r = p + publisherBytes;
  const payloadAt = r + replyBytes;
  return {
    channel,
    offset: recordOffset(buf, at),
    timestamp: recordTimestamp(buf, at),
    publisher: publisherBytes ? buf.toString('utf8', p, r) : '',
    reply: replyBytes ? buf.toString('utf8', r, payloadAt) : '',
    data: buf,
    start: payloadAt,
    end: at + length,
  };
}

const hex = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;
