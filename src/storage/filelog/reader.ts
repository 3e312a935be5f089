/** Reading committed records back from a segment: seek by the sparse index, then scan. */
import type { StoredMessage } from '../engine.js';
import { HEADER_BYTES, decodeRecord, headerProblem, recordLength, recordProblem, recordTimestamp } from './record.js';
import { INDEX_INTERVAL, type Segment } from './segment.js';
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

/**
 * Visits the valid records of `seg` from offset `from` (checksums verified), up to `until` and
 * the segment's committed size, until `visit` returns false. Returns the next offset to visit.
 */
async function walk(
  seg: Segment,
  channel: string,
  from: number,
  until: number,
  chunk: number,
  visit: (buf: Buffer, at: number, length: number, offset: number) => boolean,
): Promise<number> {
  const end = seg.size;
  let { position, offset } = seg.locate(from);
  const fd = await seg.acquire();
  try {
    const w = new FileWindow(fd, end, chunk);
    while (position < end && offset <= until) {
      if (!w.covers(position, HEADER_BYTES) && !(await w.load(position, HEADER_BYTES))) {
        throw new CorruptRecordError(channel, seg.name, position, offset, 'the segment file is shorter than recorded');
      }
      let at = position - w.start;
      const problem = headerProblem(w.buf, at);
      if (problem) throw new CorruptRecordError(channel, seg.name, position, offset, problem);
      const length = recordLength(w.buf, at);
      if (!w.covers(position, length) && !(await w.load(position, length))) {
        throw new CorruptRecordError(channel, seg.name, position, offset, 'the segment file is shorter than recorded');
      }
      at = position - w.start;
      const bad = recordProblem(w.buf, at, length, offset);
      if (bad) throw new CorruptRecordError(channel, seg.name, position, offset, bad);
      if (offset >= from && !visit(w.buf, at, length, offset)) return offset;
      position += length;
      offset++;
    }
    return offset;
  } finally {
    seg.release();
  }
}

/** Appends messages of `seg` from `from` to `out` within the budget; returns the next offset. */
export function readSegment(
  seg: Segment,
  channel: string,
  from: number,
  budget: ReadBudget,
  out: StoredMessage[],
): Promise<number> {
  // Read about what the budget will take (plus the stretch before `from`), within 256 KiB..1 MiB.
  const average = seg.count > 0 ? seg.size / seg.count : 0;
  const wanted = Math.min(budget.maxBytes - budget.bytes, (budget.maxMessages - out.length) * average);
  const chunk = Math.min(MAX_READ, Math.max(MIN_READ, wanted + INDEX_INTERVAL));
  return walk(seg, channel, from, budget.until, chunk, (buf, at, length) => {
    if (out.length >= budget.maxMessages || budget.bytes >= budget.maxBytes) return false;
    const m = decodeRecord(buf, at, length, channel);
    out.push(m);
    budget.bytes += m.payload.length;
    return true;
  });
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
