/**
 * `fluctuat check`: verifies every record of every segment under dataDir, offline.
 *
 * Repair truncates each damaged segment at its first bad record. Later segments of the channel
 * are kept: they are intact, they hold acknowledged messages, and removing them would let the
 * broker hand their offsets out again. When valid records followed the damage in the last
 * segment, an empty segment is created after the highest offset found, for the same reason.
 */
import { readdir, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { CheckProblem, CheckReport, StorageOptions } from '../engine.js';
import { CLEAN_FILE } from './clean-shutdown.js';
import { truncateFile } from './fsx.js';
import { isChannelName, segmentBase } from './layout.js';
import { scanSegment } from './scan.js';
import { Segment } from './segment.js';

interface Tally {
  segments: number;
  records: number;
  readonly problems: CheckProblem[];
  readonly orphans: string[];
  readonly repaired: string[];
}

export async function checkDataDir(options: StorageOptions, repair: boolean): Promise<CheckReport> {
  const root = options.dataDir;
  let entries;
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch (err) {
    throw new Error(`cannot read data directory ${root}: ${(err as Error).message}`, { cause: err });
  }
  const tally: Tally = { segments: 0, records: 0, problems: [], orphans: [], repaired: [] };
  let channels = 0;
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (entry.isDirectory() && isChannelName(entry.name)) {
      channels++;
      await checkChannel(path.join(root, entry.name), entry.name, repair, tally);
    } else if (!entry.name.startsWith(CLEAN_FILE)) {
      tally.orphans.push(entry.name);
    }
  }
  // A repaired channel is scanned at the next start, not taken from the clean-shutdown record.
  if (tally.repaired.length > 0) {
    await unlink(path.join(root, CLEAN_FILE)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }
  return { channels, ...tally };
}

async function checkChannel(dir: string, channel: string, repair: boolean, tally: Tally): Promise<void> {
  const bases: number[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const base = entry.isFile() ? segmentBase(entry.name) : 0;
    if (base) bases.push(base);
    else tally.orphans.push(`${channel}/${entry.name}`);
  }
  bases.sort((a, b) => a - b);

  let next = 1;
  for (let i = 0; i < bases.length; i++) {
    const seg = new Segment(dir, bases[i]!);
    const isLast = i === bases.length - 1;
    tally.segments++;
    if (seg.base < next) {
      tally.problems.push({
        channel,
        segment: seg.name,
        position: 0,
        offset: seg.base,
        problem: `segment starts at offset ${seg.base}, inside the previous segment which ends at ${next - 1} (not repaired: move one of them away by hand)`,
      });
      continue;
    }
    const scan = await scanSegment(seg);
    tally.records += seg.count;
    next = seg.last + 1;
    const p = scan.problem;
    if (p === null) continue;
    const later = scan.laterOffset ? `; valid records up to offset ${scan.laterOffset} follow it` : '';
    tally.problems.push({ channel, segment: seg.name, position: p.position, offset: p.offset, problem: p.problem + later });
    next = Math.max(next, scan.laterOffset + 1);
    if (!repair) continue;
    await truncateFile(seg.path, p.position);
    tally.repaired.push(
      `${channel}/${seg.name}: truncated at byte ${p.position} (offset ${p.offset}), ${scan.fileBytes - p.position} bytes removed`,
    );
    if (isLast && scan.laterOffset > 0) {
      const keep = new Segment(dir, scan.laterOffset + 1);
      await writeFile(keep.path, '', { flag: 'wx' });
      tally.repaired.push(`${channel}/${keep.name}: created empty so offsets up to ${scan.laterOffset} are never reused`);
    }
  }
}
