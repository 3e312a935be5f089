/** Reading committed records back from a segment: seek by the sparse index, then scan. */
import type { StoredMessage } from '../engine.js';
import { HEADER_BYTES, decodeRecord, headerProblem, recordLength, recordProblem, recordTimestamp } from './record.js';
import { INDEX_INTERVAL, type Segment } from './segment.js';
import { readAt } from './fsx.js';
import { FileWindow } from './window.js';

const MIN_READ = 256 * 1024;
const MAX_READ = 1024 * 1024;

/** Thrown when a record that recovery accepted no longer verifies: it is never served. */
export class CorruptRecordError extends Error {
  constructor(
    readonly channel: string,
    readonly segment: string,
    readonly position: number,
    readonly offset: number,
    problem: string,
  ) {
    super(`corrupt record in channel ${channel}, segment ${segment}, position ${position}, offset ${offset}: ${problem}`);
    this.name = 'CorruptRecordError';
  }
}

/** A read in progress across segments: where it must stop. */
export interface ReadBudget {
  /** Highest offset to return (the head when the read started). */
  readonly until: number;
  readonly maxMessages: number;
  readonly maxBytes: number;
  bytes: number;
}

/** Where a walk stopped: the next offset to visit, its file position, and the window around it. */
export interface WalkEnd {
  readonly offset: number;
  readonly position: number;
  readonly window: FileWindow;
}

/**
 * A sequential reader's place in a segment, kept between two reads so the second neither
 * seeks through the sparse index again (re-reading and re-verifying up to 64 KiB) nor waits
 * for the disk: the window the last read stopped in, and the next window, already being read
 * (`ahead`) while the broker sends what the last read returned.
 */
export interface ReadCursor {
  readonly seg: Segment;
  readonly offset: number;
  readonly position: number;
  readonly buf: Buffer;
  readonly start: number;
  readonly ahead: ReadAhead | null;
  /** performance.now() when it was saved: unused cursors are dropped after a while. */
  readonly savedAt: number;
}

interface ReadAhead {
  /** File position of the first byte: a record boundary. */
  readonly start: number;
  /** The bytes read (maybe fewer than `size`), or null if the read failed (the walk retries it). */
  readonly bytes: Promise<Buffer | null>;
}

/**
 * Visits the valid records of `seg` from offset `from` (checksums verified), up to `until` and
 * the segment's committed size, until `visit` returns false. Resumes at `cursor` when given
 * (it must be at `from`). Returns where it stopped.
 */
async function walk(
  seg: Segment,
  channel: string,
  from: number,
  until: number,
  chunk: number,
  visit: (buf: Buffer, at: number, length: number, offset: number) => boolean,
  cursor: ReadCursor | null = null,
): Promise<WalkEnd> {
  const end = seg.size;
  let { position, offset } = cursor ?? seg.locate(from);
  let ahead = cursor?.ahead ?? null;
  const fd = await seg.acquire();
  try {
    const w = new FileWindow(fd, end, chunk);
    if (cursor) {
      w.buf = cursor.buf;
      w.start = cursor.start;
    }
    const load = async (pos: number, n: number): Promise<boolean> => {
      if (ahead !== null && ahead.start === pos) {
        const bytes = await ahead.bytes;
        ahead = null;
        if (bytes !== null && bytes.length >= n) {
          w.buf = bytes;
          w.start = pos;
          return true;
        }
      }
      return w.load(pos, n);
    };
    while (position < end && offset <= until) {
      if (!w.covers(position, HEADER_BYTES) && !(await load(position, HEADER_BYTES))) {
        throw new CorruptRecordError(channel, seg.name, position, offset, 'the segment file is shorter than recorded');
      }
      let at = position - w.start;
      const problem = headerProblem(w.buf, at);
      if (problem) throw new CorruptRecordError(channel, seg.name, position, offset, problem);
      const length = recordLength(w.buf, at);
      if (!w.covers(position, length) && !(await load(position, length))) {
        throw new CorruptRecordError(channel, seg.name, position, offset, 'the segment file is shorter than recorded');
      }
      at = position - w.start;
      const bad = recordProblem(w.buf, at, length, offset);
      if (bad) throw new CorruptRecordError(channel, seg.name, position, offset, bad);
      if (offset >= from && !visit(w.buf, at, length, offset)) break;
      position += length;
      offset++;
    }
    return { offset, position, window: w };
  } finally {
    seg.release();
  }
}

/** Appends messages of `seg` from `from` to `out` within the budget; returns where it stopped. */
export function readSegment(
  seg: Segment,
  channel: string,
  from: number,
  budget: ReadBudget,
  out: StoredMessage[],
  cursor: ReadCursor | null = null,
): Promise<WalkEnd> {
  return walk(seg, channel, from, budget.until, readChunk(seg, budget, out), (buf, at, length) => {
    if (out.length >= budget.maxMessages || budget.bytes >= budget.maxBytes) return false;
    const m = decodeRecord(buf, at, length, channel);
    out.push(m);
    budget.bytes += m.end - m.start;
    return true;
  }, cursor);
}

/** Read about what the budget will take (plus the stretch before `from`), within 256 KiB..1 MiB. */
function readChunk(seg: Segment, budget: ReadBudget, out: StoredMessage[]): number {
  const average = seg.count > 0 ? seg.size / seg.count : 0;
  const wanted = Math.min(budget.maxBytes - budget.bytes, (budget.maxMessages - out.length) * average);
  return Math.min(MAX_READ, Math.max(MIN_READ, wanted + INDEX_INTERVAL));
}

/**
 * The cursor for resuming after `stop`, with the next window's read already started: from the
 * first record that is not whole in the window (found by hopping over record lengths, no
 * checksums), up to MAX_READ or the segment's committed end.
 */
export function cursorAt(seg: Segment, stop: WalkEnd): ReadCursor {
  const { buf, start } = stop.window;
  let p = stop.position;
  for (;;) {
    const at = p - start;
    if (at < 0 || at + HEADER_BYTES > buf.length) break;
    const length = recordLength(buf, at);
    if (length < HEADER_BYTES || at + length > buf.length) break;
    p += length;
  }
  const size = Math.min(MAX_READ, seg.size - p);
  const ahead = size > 0 ? { start: p, bytes: readAhead(seg, p, size) } : null;
  return { seg, offset: stop.offset, position: stop.position, buf, start, ahead, savedAt: performance.now() };
}

async function readAhead(seg: Segment, position: number, size: number): Promise<Buffer | null> {
  try {
    const fd = await seg.acquire();
    try {
      const buf = Buffer.allocUnsafeSlow(size);
      return buf.subarray(0, await readAt(fd, buf, size, position));
    } finally {
      seg.release();
    }
  } catch {
    return null; // deleted by retention, or an I/O error: the walk reads again and reports it
  }
}

/** Offset of the first record of `seg` stamped at or after `time`, or 0 if none. */
export async function findTime(seg: Segment, channel: string, time: number, until: number): Promise<number> {
  const from = seg.index.offsetAt(seg.index.beforeTime(time)) ?? seg.base;
  let found = 0;
  await walk(seg, channel, from, until, MIN_READ, (buf, at, _length, offset) => {
    if (recordTimestamp(buf, at) < time) return true;
    found = offset;
    return false;
  });
  return found;
}
