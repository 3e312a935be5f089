/**
 * The clean-shutdown record: what recovery would learn by reading every segment (record
 * count, valid size, timestamps, sparse index), written by a clean close once every channel
 * is fsynced, so that the next start skips the scan of each segment whose file still has the
 * recorded size. Recovery otherwise reads and verifies every record: ~2 s per GB.
 *
 * Safety: the next start deletes the record (and fsyncs the directory) before it writes
 * anything, and trusts it only if that deletion succeeded, so a crash at any later point
 * leads to a full scan. A segment whose file changed since (another size or modification
 * time: appended to, repaired, restored from a backup, written by anything) is scanned as
 * usual. What is left unseen at start is damage that touches neither, bit rot on the disk
 * itself: checksums are verified on every read, so such a record is refused, never served.
 */
import { open, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Log } from '../engine.js';
import { fsyncDir } from './fsx.js';

export const CLEAN_FILE = '.clean-shutdown.json';
const VERSION = 1;

/** One segment as recovery would have found it. Timestamps: null for NaN/-Infinity (empty). */
export interface SegmentRecord {
  readonly base: number;
  readonly size: number;
  /** The file's modification time (stat mtimeMs) when the record was written. */
  readonly mtimeMs: number;
  readonly count: number;
  readonly firstTimestamp: number | null;
  readonly maxTimestamp: number | null;
  /** The sparse index: offsets, positions and timestamps of its entries. */
  readonly index: readonly [readonly number[], readonly number[], readonly number[]];
}

/** Channel name → base offset → what its segment held at the clean shutdown. */
export type CleanRecord = ReadonlyMap<string, ReadonlyMap<number, SegmentRecord>>;

/** Written whole, fsynced, then renamed into place: a torn record is never read. */
export async function writeCleanRecord(root: string, channels: ReadonlyMap<string, readonly SegmentRecord[]>): Promise<void> {
  const tmp = path.join(root, `${CLEAN_FILE}.tmp`);
  const body = JSON.stringify({ version: VERSION, channels: Object.fromEntries(channels) });
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(body);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path.join(root, CLEAN_FILE));
  await fsyncDir(root);
}

/**
 * Reads and deletes the record. Null when there is none, when it cannot be deleted (then it
 * could outlive a crash), or when it cannot be read (with a warning).
 */
export async function takeCleanRecord(root: string, log: Log): Promise<CleanRecord | null> {
  const file = path.join(root, CLEAN_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn({ err, file }, 'storage: cannot read the clean-shutdown record; verifying every segment');
    return null;
  }
  try {
    await unlink(file);
    await fsyncDir(root);
  } catch (err) {
    log.warn({ err, file }, 'storage: cannot delete the clean-shutdown record; verifying every segment');
    return null;
  }
  try {
    const parsed = JSON.parse(text) as { version: unknown; channels: Record<string, SegmentRecord[]> };
    if (parsed.version !== VERSION || typeof parsed.channels !== 'object' || parsed.channels === null) throw new Error(`unknown version ${String(parsed.version)}`);
    const out = new Map<string, Map<number, SegmentRecord>>();
    for (const [channel, segments] of Object.entries(parsed.channels)) {
      if (!Array.isArray(segments)) throw new Error(`channel ${channel}: not a list`);
      out.set(channel, new Map(segments.map((s) => [valid(s).base, s])));
    }
    return out;
  } catch (err) {
    log.warn({ err, file }, 'storage: unreadable clean-shutdown record; verifying every segment');
    return null;
  }
}

function valid(s: SegmentRecord): SegmentRecord {
  const n = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;
  if (typeof s !== 'object' || s === null) throw new Error(`malformed segment entry ${JSON.stringify(s)}`);
  const [offsets, positions, timestamps] = Array.isArray(s.index) ? s.index : [];
  if (
    !n(s.base) || !n(s.size) || !n(s.count) || typeof s.mtimeMs !== 'number' ||
    !Array.isArray(offsets) || !Array.isArray(positions) || !Array.isArray(timestamps) ||
    offsets.length !== positions.length || offsets.length !== timestamps.length ||
    !offsets.every(n) || !positions.every(n)
  ) {
    throw new Error(`malformed segment entry ${JSON.stringify(s).slice(0, 200)}`);
  }
  return s;
}
