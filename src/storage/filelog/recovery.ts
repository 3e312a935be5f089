/**
 * Opening a channel's existing segments at start: every record is verified, and damage is
 * handled so that a corrupt record is never served and an offset is never handed out twice:
 *
 * - a torn tail (the last segment ends in a bad record and nothing valid follows it: an
 *   interrupted write) is truncated, with a warning;
 * - any other damage (a bad record followed by valid ones, or in an older segment) is left on
 *   disk for `fluctuat check` to examine: the segment is served up to the bad record, later
 *   segments are served as usual (readers see a gap), and new offsets start past every offset
 *   found in the file, so none is reused.
 */
import { readdir, stat } from 'node:fs/promises';
import type { Log } from '../engine.js';
import { truncateFile } from './fsx.js';
import type { RecoveredLog } from './channel-log.js';
import type { SegmentRecord } from './clean-shutdown.js';
import { segmentBase } from './layout.js';
import type { FdPool } from './fd-pool.js';
import { scanSegment } from './scan.js';
import { Segment } from './segment.js';

/**
 * `known`: the channel's segments as the clean-shutdown record has them; a segment whose file
 * still has the recorded size and modification time is taken from there instead of scanned.
 */
export async function recoverChannel(
  dir: string,
  channel: string,
  log: Log,
  files: FdPool | null = null,
  known: ReadonlyMap<number, SegmentRecord> | null = null,
): Promise<RecoveredLog & { readonly scanned: number }> {
  const bases: number[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const base = entry.isFile() ? segmentBase(entry.name) : 0;
    if (base) bases.push(base);
    else log.warn({ channel, file: entry.name }, 'storage: ignoring a file that is not a segment');
  }
  bases.sort((a, b) => a - b);

  const segments: Segment[] = [];
  let active: Segment | null = null;
  let next = 1;
  let scanned = 0;
  for (let i = 0; i < bases.length; i++) {
    const seg = new Segment(dir, bases[i]!, files);
    const isLast = i === bases.length - 1;
    const where = { channel, segment: seg.name };
    if (seg.base < next) {
      log.error({ ...where, expected: next }, 'storage: segment overlaps the previous one; ignored (see fluctuat check)');
      continue;
    }
    const recorded = known?.get(seg.base);
    if (recorded !== undefined && unchanged(await stat(seg.path), recorded)) {
      seg.restore(recorded);
      segments.push(seg);
      next = seg.last + 1;
      if (isLast) active = seg;
      continue;
    }
    scanned++;
    const scan = await scanSegment(seg);
    segments.push(seg);
    next = seg.last + 1;
    const p = scan.problem;
    if (p === null) {
      if (isLast) active = seg;
      continue;
    }
    const cut = scan.fileBytes - p.position;
    if (isLast && scan.laterOffset === 0) {
      await truncateFile(seg.path, p.position);
      log.warn({ ...where, position: p.position, offset: p.offset, bytes: cut, problem: p.problem }, 'storage: truncated a torn tail');
      active = seg;
    } else {
      next = Math.max(next, scan.laterOffset + 1);
      log.error(
        { ...where, position: p.position, offset: p.offset, bytes: cut, problem: p.problem, skippedUpTo: next - 1 },
        'storage: damaged segment served up to its first bad record (run fluctuat check)',
      );
    }
  }
  return { segments, active, next, scanned };
}

/** The file is as the clean-shutdown record saw it: same size, not modified since. */
function unchanged(st: { size: number; mtimeMs: number }, r: SegmentRecord): boolean {
  return st.size === r.size && st.mtimeMs === r.mtimeMs;
}
