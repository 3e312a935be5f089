/**
 * The optional native addon (native/record-crc.c, built by `npm ci` through native/build.mjs):
 * seals a run of staged records in one call, and makes many small copies in one call
 * (copy-list.ts: payloads into the file log's stage). Absent, or turned off with
 * FLUCTUAT_NATIVE=0, the file log computes the same checksums in JavaScript
 * (storage/filelog/crc.ts) and copies payloads one by one.
 */
import { createRequire } from 'node:module';

export interface RecordCrcAddon {
  /** Writes the CRC of every record laid end to end in buf[from..to); returns how many. */
  seal(buf: Buffer, from: number, to: number): number;
  /** How it computes a CRC: 'carry-less multiplication' (x86-64 with PCLMUL) or 'tables'. */
  readonly implementation: string;
  /** CRC-32 (zlib) of buf[from..to), continuing from `crc` (the CRC of the bytes before). */
  crc32(buf: Buffer, from: number, to: number, crc?: number): number;
  /**
   * Makes `count` copies into `dst`: ops[4i..4i+3] = (index in `sources`, source start,
   * destination start, length). Throws a RangeError, having copied nothing, if any range is out
   * of bounds.
   */
  copy(dst: Buffer, sources: readonly Buffer[], ops: Int32Array, count: number): void;
}

// From dist/src/native/ back to the package root.
const ADDON = '../../../native/build/Release/record_crc.node';

function load(): { addon: RecordCrcAddon | null; problem: string } {
  if (process.env.FLUCTUAT_NATIVE === '0') return { addon: null, problem: 'turned off (FLUCTUAT_NATIVE=0)' };
  try {
    return { addon: createRequire(import.meta.url)(ADDON) as RecordCrcAddon, problem: '' };
  } catch (err) {
    return { addon: null, problem: `not built (${(err as Error).message.split('\n')[0]}); npm ci builds it` };
  }
}

const loaded = load();

/** The addon, or null when the JavaScript checksums are in use. */
export const recordCrcAddon: RecordCrcAddon | null = loaded.addon;

/** Which checksum code runs, for the file engine's startup line. */
export const checksumImplementation = (): string =>
  loaded.addon ? `native, ${loaded.addon.implementation}` : `JavaScript: the native addon is ${loaded.problem}`;
