/**
 * CRC-32 (the zlib polynomial, same values as `zlib.crc32`) over a byte range. The native
 * addon (native.ts) computes ranges from 64 bytes on; below that, or without it, small ranges
 * are computed here with slicing-by-8 tables: a call into zlib costs about 200–300 ns whatever
 * the size, five times the table loop on a 50-byte record.
 */
import { crc32 as zlibCrc32 } from 'node:zlib';
import { recordCrcAddon } from '../../native/addon.js';

/** Below this many bytes the table loop beats zlib (measured on Node 20). */
const NATIVE_FROM = 384;
/** From this many bytes on the addon beats the table loop (its call costs ~65 ns). */
const ADDON_FROM = 64;

const T = new Int32Array(256 * 8);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  T[n] = c;
}
for (let n = 0; n < 256; n++) {
  let c = T[n]!;
  for (let k = 1; k < 8; k++) {
    c = T[c & 0xff]! ^ (c >>> 8);
    T[k * 256 + n] = c;
  }
}

/** CRC-32 of buf[from..to), continuing from `crc` (the value of the bytes before). */
export function crc32(buf: Buffer, from: number, to: number, crc = 0): number {
  if (recordCrcAddon !== null && to - from >= ADDON_FROM) return recordCrcAddon.crc32(buf, from, to, crc);
  if (to - from >= NATIVE_FROM) return zlibCrc32(buf.subarray(from, to), crc);
  let c = ~crc;
  let i = from;
  for (; i + 8 <= to; i += 8) {
    const a = c ^ (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24));
    c =
      T[1792 + (a & 0xff)]! ^
      T[1536 + ((a >>> 8) & 0xff)]! ^
      T[1280 + ((a >>> 16) & 0xff)]! ^
      T[1024 + (a >>> 24)]! ^
      T[768 + buf[i + 4]!]! ^
      T[512 + buf[i + 5]!]! ^
      T[256 + buf[i + 6]!]! ^
      T[buf[i + 7]!]!;
  }
  for (; i < to; i++) c = T[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
