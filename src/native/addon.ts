/**
 * The optional native addon (native/record-crc.c, built by `npm ci` through native/build.mjs):
 * seals a run of staged records in one call, and makes many small copies in one call
 * (copy-list.ts: payloads into the file log's stage). Absent, or turned off with
 * FLUCTUAT_NATIVE=0, the file log computes the same checksums in JavaScript
 * (storage/filelog/crc.ts) and copies payloads one by one. It also tunes the C library's heap
 * for a broker's reads (`padHeap`), and restarts a broker in place with the Node flags it needs
 * from its first instruction (`exec`, server/start-flags.ts).
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
  /** Sets glibc's M_TOP_PAD (bytes kept free at the top of the heap); false where there is no glibc. */
  heapPad(bytes: number): boolean;
  /**
   * Replaces this process with `file` (execve), `argv` and `env` ("NAME=value"), keeping its
   * PID and stdio (src/server/start-flags.ts); returns only by throwing the system's reason.
   */
  exec(file: string, argv: readonly string[], env: readonly string[]): never;
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

/** Why the addon is not loaded ('' when it is): "turned off (…)" or "not built (…); npm ci builds it". */
export const nativeAddonProblem = (): string => loaded.problem;

/** Which checksum code runs, for the file engine's startup line. */
export const checksumImplementation = (): string =>
  loaded.addon ? `native, ${loaded.addon.implementation}` : `JavaScript: the native addon is ${loaded.problem}`;

/** Free heap a broker process keeps at the top of glibc's heap by default (FLUCTUAT_HEAP_PAD). */
export const DEFAULT_HEAP_PAD = 16 * 1024 * 1024;

/**
 * Makes glibc keep `FLUCTUAT_HEAP_PAD` bytes (default 16 MiB; 0 leaves glibc's own setting)
 * free at the top of the heap instead of handing it back to the kernel after every garbage
 * collection, and says what it did (for the broker's startup line). Why: each socket read is
 * a fresh 64 KiB buffer, freed by V8 later, and with glibc's 128 KiB pad the heap shrank and
 * grew again under a stream of reads, the kernel zeroing and mapping its pages every time:
 * relaying 1 GB through one process cost ~1.2 s of CPU, ~0.95 s with 16 MiB (`npm run
 * bench:relay`, docs/performance-history.md, eighteenth round). At most that much more resident memory.
 * Throws a RangeError for a value that is not a number of bytes.
 */
export function padHeap(env: NodeJS.ProcessEnv = process.env): string {
  const text = env.FLUCTUAT_HEAP_PAD;
  const bytes = text === undefined || text === '' ? DEFAULT_HEAP_PAD : Number(text);
  if (!Number.isInteger(bytes) || bytes < 0 || bytes > 1024 * 1024 * 1024) throw new RangeError(`FLUCTUAT_HEAP_PAD=${text}: expected a whole number of bytes from 0 to 1073741824 (0: glibc's own setting)`);
  if (bytes === 0) return "glibc's own (FLUCTUAT_HEAP_PAD=0)";
  if (loaded.addon === null) return `glibc's own: the native addon is ${loaded.problem}`;
  return loaded.addon.heapPad(bytes) ? `${bytes} bytes kept free at the top of the heap` : "the C library's own (not glibc)";
}
