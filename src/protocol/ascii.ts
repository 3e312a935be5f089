/**
 * Decimal numbers written straight into byte buffers. The delivery header and the ACK are
 * written once per message; building them as strings first (template, flatten, encode) cost
 * more than the rest of the frame. Numbers below 2^31 take the small-integer path; larger
 * ones (µs timestamps) are split at 10^8 so each half stays a small integer.
 */

const E8 = 100_000_000;

/** Digits of a non-negative integer below 2^53. */
export function decimalLength(n: number): number {
  if (n >= E8) return 8 + decimalLength(Math.floor(n / E8));
  if (n < 10_000) return n < 10 ? 1 : n < 100 ? 2 : n < 1000 ? 3 : 4;
  return n < 100_000 ? 5 : n < 1_000_000 ? 6 : n < 10_000_000 ? 7 : 8;
}

/** Writes `n` (non-negative integer below 2^53) at `at`; returns the index after it. */
export function writeDecimal(buf: Uint8Array, at: number, n: number): number {
  if (n >= E8) {
    const high = Math.floor(n / E8);
    at = writeDecimal(buf, at, high);
    return writeDigits(buf, at, n - high * E8, 8);
  }
  return writeDigits(buf, at, n, decimalLength(n));
}

/** `n` (< 10^8) as exactly `len` digits, zero-padded. */
function writeDigits(buf: Uint8Array, at: number, n: number, len: number): number {
  let v = n | 0;
  for (let i = at + len - 1; i >= at; i--) {
    const q = (v / 10) | 0;
    buf[i] = 0x30 + v - q * 10;
    v = q;
  }
  return at + len;
}

/**
 * Short byte work by JS loops. Names, headers and small payloads are a few dozen bytes, where a
 * native call (Buffer#copy, Buffer#indexOf) costs more than the loop; past SHORT bytes the
 * native call wins.
 */
const SHORT = 64;
/**
 * Whole-buffer copies go through TypedArray#set past this: it costs ~13 ns at any small size on
 * this machine, the loop ~1 ns a byte (Buffer#copy adds a view allocation to set).
 */
const TINY = 12;

/** Copies src[from, to) to out at `at`; returns the index after it. */
export function copyBytes(out: Buffer, at: number, src: Buffer, from: number, to: number): number {
  const n = to - from;
  if (n > SHORT) src.copy(out, at, from, to);
  else for (let i = 0; i < n; i++) out[at + i] = src[from + i]!;
  return at + n;
}

/** All of src to out at `at`; returns the index after it. */
export function copyAll(out: Buffer, at: number, src: Buffer): number {
  const n = src.length;
  if (n > TINY) out.set(src, at);
  else for (let i = 0; i < n; i++) out[at + i] = src[i]!;
  return at + n;
}

/** Index of `byte` in buf[from, end), or -1: scans at most SHORT bytes in JS, then natively. */
export function indexOfByte(buf: Buffer, byte: number, from: number, end: number): number {
  const near = Math.min(end, from + SHORT);
  for (let i = from; i < near; i++) if (buf[i] === byte) return i;
  if (near >= end) return -1;
  const i = buf.indexOf(byte, near);
  return i >= end ? -1 : i;
}
