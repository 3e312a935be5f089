/** Sequential validation of a whole segment file: shared by recovery and `check`. */
import { closeFile, fstat, openFile } from './fsx.js';
import {
  HEADER_BYTES,
  MAGIC_BYTES,
  headerProblem,
  recordLength,
  recordOffset,
  recordProblem,
  recordTimestamp,
} from './record.js';
import type { Segment } from './segment.js';
import { FileWindow } from './window.js';

const SCAN_CHUNK = 1024 * 1024;

export interface ScanProblem {
  readonly position: number;
  /** The offset the record claims when its header is readable, else the one expected there. */
  readonly offset: number;
  readonly problem: string;
  /** True when the file simply ends inside a record: a torn write. */
  readonly torn: boolean;
}

export interface ScanResult {
  readonly fileBytes: number;
  /** The first bad record; the segment's valid records are those before it. */
  readonly problem: ScanProblem | null;
  /**
   * The highest offset of a well-formed record found after the problem (0 if none): proof that
   * the damage is not a torn tail, and a floor for offsets that must not be reused.
   */
  readonly laterOffset: number;
}

/** Reads the segment's file, recording each valid record in `seg` (count, size, index). */
export async function scanSegment(seg: Segment): Promise<ScanResult> {
  const fd = await openFile(seg.path, 'r');
  try {
    const { size: fileBytes } = await fstat(fd);
    const w = new FileWindow(fd, fileBytes, SCAN_CHUNK, true);
    const problem = await scanRecords(w, seg);
    const laterOffset = problem ? await findLaterRecords(w, problem.position + 1, seg.last + 1) : 0;
    return { fileBytes, problem, laterOffset };
  } finally {
    await closeFile(fd);
  }
}

async function scanRecords(w: FileWindow, seg: Segment): Promise<ScanProblem | null> {
  let pos = 0;
  let expected = seg.base;
  while (pos < w.end) {
    if (!w.covers(pos, HEADER_BYTES) && !(await w.load(pos, HEADER_BYTES))) {
      return problemAt(w, pos, expected, `torn record: the file ends ${w.end - pos} bytes into a ${HEADER_BYTES}-byte header`, true);
    }
    const hp = headerProblem(w.buf, pos - w.start);
    if (hp) return problemAt(w, pos, expected, hp, false);
    const length = recordLength(w.buf, pos - w.start);
    if (pos + length > w.end) {
      return problemAt(w, pos, expected, `torn record: the file ends ${w.end - pos} bytes into a ${length}-byte record`, true, true);
    }
    if (!w.covers(pos, length) && !(await w.load(pos, length))) {
      return problemAt(w, pos, expected, 'the file shrank while being read', true);
    }
    const at = pos - w.start;
    const rp = recordProblem(w.buf, at, length, expected);
    if (rp) return problemAt(w, pos, expected, rp, false, true);
    seg.noteRecord(expected, pos, recordTimestamp(w.buf, at), length);
    pos += length;
    expected++;
  }
  return null;
}

function problemAt(w: FileWindow, pos: number, expected: number, problem: string, torn: boolean, claimed = false): ScanProblem {
  return { position: pos, offset: claimed ? recordOffset(w.buf, pos - w.start) : expected, problem, torn };
}

/** Looks for well-formed records after damage (by magic, then checksum); returns the highest offset. */
async function findLaterRecords(w: FileWindow, from: number, minOffset: number): Promise<number> {
  let highest = 0;
  let pos = from;
  while (pos + HEADER_BYTES <= w.end) {
    if (!w.covers(pos, HEADER_BYTES) && !(await w.load(pos, HEADER_BYTES))) break;
    const i = w.buf.indexOf(MAGIC_BYTES, pos - w.start);
    if (i < 0 || w.start + i + HEADER_BYTES > w.end) {
      // No magic in this window; one may straddle its end.
      pos = Math.max(pos + 1, w.start + w.buf.length - (MAGIC_BYTES.length - 1));
      continue;
    }
    const at = w.start + i;
    if (!w.covers(at, HEADER_BYTES) && !(await w.load(at, HEADER_BYTES))) break;
    const length = recordLength(w.buf, at - w.start);
    if (
      headerProblem(w.buf, at - w.start) === null &&
      at + length <= w.end &&
      (w.covers(at, length) || (await w.load(at, length))) &&
      recordProblem(w.buf, at - w.start, length, 0) === null
    ) {
      const offset = recordOffset(w.buf, at - w.start);
      if (offset >= minOffset && offset > highest) highest = offset;
      pos = at + length;
    } else {
      pos = at + 1;
    }
  }
  return highest;
}
