/**
 * Ack ids of up to 8 characters, packed into a number.
 *
 * Why: an ack id goes through the broker and comes back in the publisher's `ACK` line. As a
 * string it cost a string on the way in (parsing), its UTF-8 bytes while the file log held
 * it, a second string when its callback ran, and an encoding into the outbox. On the file
 * path with acks that was ~10% of the CPU per message (docs/performance-history.md,
 * seventeenth round). The id alphabet `[A-Za-z0-9_-]` has exactly 64 characters, so 8 of them take 48
 * bits; with 3 more for the length the packed id is an integer below 2^51, which a double
 * holds exactly. Longer ids (up to 32 characters) stay strings.
 *
 * A ref (`AckRef`) is therefore a string ('' for none, or an id too long to pack) or the packed
 * number of a short id. Storage keeps either as it came and gives it back to the callback.
 */

import type { AppendRef } from '../storage/engine.js';

/**
 * An ack id as the broker carries it: '' (none), the id, or a short id packed (`packAckId`);
 * storage hands it back as it was given (its `AppendRef`).
 */
export type AckRef = AppendRef;

/** Longest id that packs. */
export const PACKED_MAX = 8;

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-';

/** Byte → its 6-bit code, or -1 for a byte no ack id holds. */
const CODE = new Int8Array(256).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) CODE[ALPHABET.charCodeAt(i)] = i;
const BYTE = Uint8Array.from(ALPHABET, (c) => c.charCodeAt(0));

/** Whether byte `c` may appear in an ack id (`[A-Za-z0-9_-]`). */
export function isAckIdByte(c: number): boolean {
  return CODE[c]! >= 0;
}

/** 2^27: the packed id is `high * LOW + low`, each part a small integer (see packAckId). */
const LOW = 134_217_728;

/**
 * The id in buf[start, end) packed, or -1 when it does not pack (empty, longer than
 * PACKED_MAX, or a byte outside the id alphabet). Layout: `low` holds the length - 1 (3 bits)
 * and characters 1–4 (6 bits each), `high` characters 5–8; both are int32 arithmetic, and
 * the number is only assembled (and split again when written) with one multiplication.
 */
export function packAckId(buf: Uint8Array, start: number, end: number): number {
  const len = end - start;
  if (len < 1 || len > PACKED_MAX) return -1;
  let low = len - 1;
  let high = 0;
  for (let k = 0; k < len; k++) {
    const c = CODE[buf[start + k]!]!;
    if (c < 0) return -1;
    if (k < 4) low |= c << (3 + 6 * k);
    else high |= c << (6 * (k - 4));
  }
  return high * LOW + low;
}

/** Writes a packed id's characters to out at `at`; returns the index after them. */
export function writePackedAckId(out: Uint8Array, at: number, packed: number): number {
  const high = Math.floor(packed / LOW);
  const low = packed - high * LOW;
  const len = (low & 7) + 1;
  for (let k = 0; k < len; k++) {
    out[at + k] = BYTE[k < 4 ? (low >>> (3 + 6 * k)) & 63 : (high >>> (6 * (k - 4))) & 63]!;
  }
  return at + len;
}

/** The id a ref stands for, as text ('' for none). */
export function ackIdText(ref: AckRef): string {
  if (typeof ref === 'string') return ref;
  const text = Buffer.allocUnsafe(PACKED_MAX);
  return text.toString('latin1', 0, writePackedAckId(text, 0, ref));
}
