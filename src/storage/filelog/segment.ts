import { stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Log } from '../engine.js';
import { closeFile, openFile } from './fsx.js';
import type { SegmentRecord } from './clean-shutdown.js';
import type { FdPool, PooledFile } from './fd-pool.js';
import { segmentFileName } from './layout.js';

/** One sparse index entry per this many bytes of segment: a read seeks, then scans at most this. */
export const INDEX_INTERVAL = 64 * 1024;

/** Offset → file position (and timestamp) of every record that starts a new 64 KiB stretch. */
export class SparseIndex {
  private readonly offsets: number[] = [];
  private readonly positions: number[] = [];
  private readonly timestamps: number[] = [];
  private lastPosition = -Infinity;

  note(offset: number, position: number, timestamp: number): void {
    if (position - this.lastPosition < INDEX_INTERVAL) return;
    this.offsets.push(offset);
    this.positions.push(position);
    this.timestamps.push(timestamp);
    this.lastPosition = position;
  }

  /** The entry to start scanning from for `offset`: the last one at or before it. */
  floor(offset: number): number {
    let lo = 0;
    let hi = this.offsets.length - 1;
    let found = 0;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.offsets[mid]! <= offset) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found;
  }

  /** The entry to start scanning from for the first record at or after `time`. */
  beforeTime(time: number): number {
    const i = this.timestamps.findIndex((t) => t >= time);
    return i < 0 ? Math.max(0, this.timestamps.length - 1) : Math.max(0, i - 1);
  }

  offsetAt(entry: number): number | undefined {
    return this.offsets[entry];
  }

  positionAt(entry: number): number {
    return this.positions[entry] ?? 0;
  }

  /** Offsets, positions and timestamps of the entries (for the clean-shutdown record). */
  entries(): [number[], number[], number[]] {
    return [this.offsets.slice(), this.positions.slice(), this.timestamps.slice()];
  }

  /** Takes the entries of a recorded index (the index must be empty). */
  restore([offsets, positions, timestamps]: readonly [readonly number[], readonly number[], readonly number[]]): void {
    // A loop, not push(...): a segment of many GB has more entries than a call takes arguments.
    for (let i = 0; i < offsets.length; i++) {
      this.offsets.push(offsets[i]!);
      this.positions.push(positions[i]!);
      this.timestamps.push(timestamps[i]!);
    }
    this.lastPosition = positions.length ? positions[positions.length - 1]! : -Infinity;
  }
}

/**
 * A segment file and what is known of its valid records. The descriptor is opened on demand,
 * shared by every reader and the writer, and closed when idle, when the engine's descriptor
 * pool needs the slot (fd-pool.ts), or once the segment is deleted and its last user is done.
 */
export class Segment implements PooledFile {
  readonly name: string;
  readonly path: string;
  /** Bytes of valid, written records (the file may be longer when damaged). */
  size = 0;
  count = 0;
  firstTimestamp = NaN;
  maxTimestamp = -Infinity;
  readonly index = new SparseIndex();
  /** Removed by retention: no new reader may start on it. */
  deleted = false;

  private fd = -1;
  private opening: Promise<number> | null = null;
  private users = 0;
  private usedSinceIdleCheck = false;
  /** Writes that must be fsynced before the descriptor may close, and how many were. */
  private writes = 0;
  private synced = 0;

  /** `pool` null: descriptors are not counted (offline tools such as `fluctuat check`). */
  constructor(
    dir: string,
    readonly base: number,
    private readonly pool: FdPool | null = null,
  ) {
    this.name = segmentFileName(base);
    this.path = path.join(dir, this.name);
  }

  /** Creates the file of a new, empty segment; fails if it exists. */
  static async create(dir: string, base: number, pool: FdPool | null = null): Promise<Segment> {
    const seg = new Segment(dir, base, pool);
    await seg.open('wx+');
    return seg;
  }

  /** Last valid offset (base - 1 when empty). */
  get last(): number {
    return this.base + this.count - 1;
  }

  get evictable(): boolean {
    return this.users === 0 && this.fd >= 0 && this.synced === this.writes;
  }

  noteRecord(offset: number, position: number, timestamp: number, length: number): void {
    this.index.note(offset, position, timestamp);
    if (this.count === 0) this.firstTimestamp = timestamp;
    if (timestamp > this.maxTimestamp) this.maxTimestamp = timestamp;
    this.count++;
    this.size = position + length;
  }

  /** What recovery would find in this segment, for the clean-shutdown record. */
  async record(): Promise<SegmentRecord> {
    const finite = (v: number): number | null => (Number.isFinite(v) ? v : null);
    const { mtimeMs } = await stat(this.path);
    return {
      base: this.base,
      size: this.size,
      mtimeMs,
      count: this.count,
      firstTimestamp: finite(this.firstTimestamp),
      maxTimestamp: finite(this.maxTimestamp),
      index: this.index.entries(),
    };
  }

  /** Takes what a clean-shutdown record says, instead of scanning the file (which must be new). */
  restore(r: SegmentRecord): void {
    this.size = r.size;
    this.count = r.count;
    this.firstTimestamp = r.firstTimestamp ?? NaN;
    this.maxTimestamp = r.maxTimestamp ?? -Infinity;
    this.index.restore(r.index);
  }

  /** A write that an acknowledgement waits to see fsynced: the descriptor stays open until then. */
  noteUnsyncedWrite(): number {
    return ++this.writes;
  }

  /** Writes up to `mark` (a value of noteUnsyncedWrite) are fsynced, or can never be. */
  noteSynced(mark: number): void {
    if (mark <= this.synced) return;
    this.synced = mark;
    if (this.evictable) this.pool?.available();
  }

  /** The current write mark, to pass to noteSynced once an fsync started now completes. */
  get writeMark(): number {
    return this.writes;
  }

  /** Start position and offset of the scan that finds `offset`. */
  locate(offset: number): { position: number; offset: number } {
    const entry = this.index.floor(offset);
    return { position: this.index.positionAt(entry), offset: this.index.offsetAt(entry) ?? this.base };
  }

  /** The descriptor now, if it is open (then `release` it like `acquire`'s), or -1 without waiting. */
  acquireOpen(): number {
    if (this.fd < 0) return -1;
    this.use();
    this.pool?.touch(this);
    return this.fd;
  }

  async acquire(): Promise<number> {
    if (this.deleted && this.fd < 0) throw Object.assign(new Error(`segment ${this.path} was deleted`), { code: 'ENOENT' });
    const open = this.acquireOpen();
    if (open >= 0) return open;
    this.use();
    try {
      this.opening ??= this.open('r+');
      return await this.opening;
    } catch (err) {
      this.users--;
      this.opening = null;
      throw err;
    }
  }

  private use(): void {
    this.users++;
    this.usedSinceIdleCheck = true;
  }

  release(): void {
    this.users--;
    if (this.deleted) this.closeIfUnused();
    else if (this.evictable) this.pool?.available();
  }

  /** Called periodically: closes the descriptor if nobody used it since the last call. */
  closeIfIdle(): void {
    if (!this.usedSinceIdleCheck) this.closeIfUnused();
    this.usedSinceIdleCheck = false;
  }

  /** Retention: forget the segment and unlink its file; readers holding the fd finish first. */
  remove(log: Log): Promise<void> {
    this.deleted = true;
    this.closeIfUnused();
    return unlink(this.path).catch((err: unknown) => log.error({ err, segment: this.path }, 'storage: cannot delete segment'));
  }

  async close(): Promise<void> {
    const fd = this.fd;
    this.fd = -1;
    this.opening = null;
    if (fd < 0) return;
    this.pool?.closing(this);
    try {
      await closeFile(fd);
    } finally {
      this.pool?.closed();
    }
  }

  /** Opens within the pool's bound (waiting for a slot if needed). */
  private async open(flags: string): Promise<number> {
    await this.pool?.reserve();
    let fd: number;
    try {
      fd = await openFile(this.path, flags);
    } catch (err) {
      this.pool?.failed();
      throw err;
    }
    this.fd = fd;
    this.pool?.opened(this);
    return fd;
  }

  private closeIfUnused(): void {
    // An fd with unsynced writes stays open: its group fsync is at most an interval away.
    if (this.users > 0 || this.fd < 0 || (this.synced !== this.writes && !this.deleted)) return;
    void this.close().catch(() => {});
  }
}
