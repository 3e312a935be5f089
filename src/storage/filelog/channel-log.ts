/**
 * One channel's log: a list of segment files, the last one active.
 *
 * Writes: `append` encodes into the stage at once (the offset is assigned there); the engine
 * calls `flush` once per event-loop turn, and one write at a time per channel carries
 * everything staged so far. Once a write is done the records are committed: the segment
 * grows, `head` moves and the commit handler runs, in that order and in the same tick. The
 * append callbacks run then (fsync never), after an fsync of that write (always), or after
 * the engine's next group fsync (interval).
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type {
  AppendCallback,
  AppendRef,
  ChannelLog,
  ChannelStats,
  CommitHandler,
  Log,
  NewMessage,
  RetentionPin,
  StartPosition,
  StorageOptions,
  StoredMessage,
} from '../engine.js';
import type { SegmentRecord } from './clean-shutdown.js';
import { asError, fdatasync, fsyncDir, ftruncate, writeAll } from './fsx.js';
import type { InlineWrites } from './inline-writes.js';
import type { FdPool } from './fd-pool.js';
import { type ReadBudget, type ReadCursor, type WalkEnd, cursorAt, findTime, readSegment } from './reader.js';
import { Segment } from './segment.js';
import type { AckList, AckListPool } from './ack-list.js';
import type { RecordListPool } from './record-list.js';
import { type Batch, type ChunkPool, Stage } from './stage.js';

/** Readers whose places are kept per channel; beyond it the oldest place is forgotten. */
const MAX_CURSORS = 8;
const CURSOR_IDLE_MS = 10_000;

/** What a channel log needs from its engine. */
export interface LogContext {
  readonly options: StorageOptions;
  readonly log: Log;
  readonly pool: ChunkPool;
  /** Record lists of committed batches, for later ones (shared by the engine's channels). */
  readonly lists: RecordListPool;
  /** Ack lists whose callbacks were told, for later batches (shared likewise). */
  readonly ackLists: AckListPool;
  /** Whether a write may skip the thread pool (shared by the engine's channels). */
  readonly inline: InlineWrites;
  /** The engine's bound on open segment descriptors. */
  readonly files: FdPool;
  /** Set by the engine's `start`. */
  readonly onCommit: CommitHandler;
  /** Non-null once the engine is closing: appends are refused with it. */
  readonly closed: Error | null;
  /** Call `flush` on this log at the end of the current event-loop turn. */
  scheduleFlush(log: FileChannelLog): void;
  /** Whether other channels wrote in the same turns lately (not one channel alone). */
  sharing(): boolean;
  /**
   * Call `sync` on this log at the next group commit (policy interval); `acks` acknowledgements
   * of `bytes` payload bytes now wait for it, after a write of `written` bytes (its pace: engine.ts).
   */
  scheduleSync(log: FileChannelLog, acks: number, bytes: number, written: number): void;
}

/** What recovery found on disk for a channel. */
export interface RecoveredLog {
  readonly segments: Segment[];
  /** The segment to append to, or null when the next write must open a new one. */
  readonly active: Segment | null;
  /** Next offset to assign: past every offset a record on disk may have had. */
  readonly next: number;
}

/**
 * Acknowledgements waiting for an fsync of the active segment, for consecutive offsets from
 * `first`. A large batch's list is kept as it is; a small batch's is copied onto the last run.
 * Why not one object per batch: at a low rate every publish is a batch, and when the fsync was
 * slow (a busy disk) those objects outlived a young-generation GC, were promoted, and made every
 * scavenge copy them (2–8 ms pauses at 20,000 msgs/s, the p99).
 */
interface AckRun {
  readonly first: number;
  readonly acks: AckList;
}

/** Batches up to this many messages are copied onto the last run. */
const SMALL_BATCH = 32;
/**
 * Most bytes one write carries when batches have queued up (Stage.takeGroup): a backlog goes
 * out in a few large writes instead of one batch a turn, and a segment overshoots its size
 * by less than this. The smaller bound applies while other channels write too (LogContext
 * `sharing`): the commit of a group fans all of it out in one callback, and 4 MiB of it held
 * a quiet channel's messages behind a flooded one (docs/performance.md, "Overload").
 */
const GROUP_BYTES = 4 * 1024 * 1024;
const SHARED_GROUP_BYTES = 1024 * 1024;

export class FileChannelLog implements ChannelLog {
  readonly replayable = true;
  /** Set while a flush is scheduled with the engine. */
  flushScheduled = false;

  private readonly dir: string;
  private readonly segments: Segment[];
  private active: Segment | null;
  private nextOffset: number;
  private committed: number;
  private totalBytes = 0;
  private totalCount = 0;
  private readonly stage: Stage;
  private writing: Promise<void> | null = null;
  private rollRequested = false;
  private rollWaiters: (() => void)[] = [];
  private pending: AckRun[] = [];
  /** Bytes were written to the active segment since its last fsync. */
  private dirty = false;
  /**
   * Segments closed by a roll with writes no fsync has covered yet: the next sync covers them
   * before the active one. A roll does not wait for that fsync (on a busy channel, ~3 ms that
   * held every write behind it, many times a second).
   */
  private retired: Segment[] = [];
  /** A segment was created since the directory's last fsync: its name is durable only after one. */
  private dirUnsynced = false;
  private syncChain: Promise<void> = Promise.resolve();
  /** Set after an error that leaves the log in doubt: every later append fails with it. */
  private failure: Error | null = null;
  private dirReady: boolean;
  /** Readers whose unread records size and count retention keep (`pin`); null when none. */
  private pins: Set<RetentionPin> | null = null;
  /** Where sequential readers stopped, by the offset they will ask for next (reader.ts). */
  private cursors: Map<number, ReadCursor> | null = null;

  constructor(
    private readonly ctx: LogContext,
    readonly name: string,
    recovered: RecoveredLog | null,
  ) {
    this.dir = path.join(ctx.options.dataDir, name);
    this.dirReady = recovered !== null;
    this.segments = recovered?.segments ?? [];
    this.active = recovered?.active ?? null;
    this.nextOffset = recovered?.next ?? 1;
    // The last readable record: offsets after it may be skipped (damage), never re-served.
    const lastSegment = this.segments[this.segments.length - 1];
    this.committed = this.segments.reduce((h, s) => (s.count > 0 ? Math.max(h, s.last) : h), 0) || (lastSegment?.last ?? 0);
    for (const s of this.segments) {
      this.totalBytes += s.size;
      this.totalCount += s.count;
    }
    this.stage = new Stage(ctx.pool, ctx.lists, ctx.ackLists);
  }

  get head(): number {
    return this.committed;
  }

  get first(): number {
    for (const s of this.segments) if (s.count > 0) return s.base;
    return this.committed + 1;
  }

  /** See ChannelLog: retention removes whole segments, so what counts is what lies after `offset`'s. */
  retentionRoom(offset: number): number {
    const { retainBytes, retainMessages } = this.ctx.options;
    if (retainBytes <= 0 && retainMessages <= 0) return 1;
    let bytes = 0;
    let count = 0;
    for (let i = this.segments.length - 1; i >= 0; i--) {
      const seg = this.segments[i]!;
      if (seg.count > 0 && seg.base <= offset) break;
      bytes += seg.size;
      count += seg.count;
    }
    let room = 1;
    if (retainBytes > 0) room = Math.min(room, 1 - bytes / retainBytes);
    if (retainMessages > 0) room = Math.min(room, 1 - count / retainMessages);
    return Math.max(0, room);
  }

  stats(): ChannelStats {
    return { channel: this.name, first: this.first, head: this.committed, messages: this.totalCount, bytes: this.totalBytes };
  }

  // --- writing -------------------------------------------------------------------------------

  append(message: NewMessage, done?: AppendCallback, ref: AppendRef = ''): void {
    const refused = this.failure ?? this.ctx.closed;
    if (refused) {
      if (done) this.refuseLater(done, refused, ref, message.end - message.start);
      return;
    }
    try {
      this.stage.add(message, this.nextOffset, done, ref);
    } catch (err) {
      if (done) this.refuseLater(done, asError(err), ref, message.end - message.start);
      return;
    }
    this.nextOffset++;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      this.ctx.scheduleFlush(this);
    }
  }

  /**
   * Tells `done` of a refused append, after the caller's turn, as a write's outcome would be.
   * Its own method: a closure in `append` made V8 allocate a context on every call (~95 bytes
   * a message, the largest allocation of a publish), not only when one was refused.
   */
  private refuseLater(done: AppendCallback, err: Error, ref: AppendRef, bytes: number): void {
    queueMicrotask(() => done(err, 0, ref, this.name, bytes));
  }

  /** Starts writing what is staged, unless a write is already in flight (it will take it). */
  flush(): void {
    this.flushScheduled = false;
    if (this.writing || (this.stage.empty && !this.rollRequested)) return;
    if (!this.writeNow()) this.track(this.drain());
  }

  /** Resolves once no write is in flight and nothing is staged. */
  async settle(): Promise<void> {
    for (;;) {
      if (this.writing) await this.writing;
      else if (!this.stage.empty) this.flush();
      else return;
    }
  }

  private async drain(): Promise<void> {
    try {
      while (this.failure === null) {
        if (this.rollRequested || (!this.stage.empty && this.mustRoll())) await this.roll();
        if (this.stage.empty) return;
        const room = this.ctx.options.segmentBytes - this.active!.size;
        await this.write(this.stage.takeGroup(Math.min(this.ctx.sharing() ? SHARED_GROUP_BYTES : GROUP_BYTES, room)));
      }
      this.failStaged(this.failure);
    } catch (err) {
      // Not expected (write and roll handle their errors); keep the log usable anyway.
      this.ctx.log.error({ err, channel: this.name }, 'storage: write loop failed');
    } finally {
      this.wakeRollWaiters();
    }
  }

  /**
   * The steady case, written and committed before returning: a small batch to an open active
   * segment that needs no roll, under a policy that does not wait for the fsync before the
   * next write. A quiet channel does this once per message; the promises of `drain` cost it
   * more CPU and garbage than the write itself. False when the general path must run.
   */
  private writeNow(): boolean {
    const seg = this.active;
    const bytes = this.stage.loneBatchBytes;
    const policy = this.ctx.options.fsync;
    if (seg === null || bytes <= 0 || policy === 'always' || this.failure !== null || this.rollRequested || this.mustRoll()) return false;
    if (!this.ctx.inline.allowed(bytes)) return false;
    const fd = seg.acquireOpen();
    if (fd < 0) return false;
    const batch = this.stage.take();
    try {
      this.ctx.inline.write(fd, batch.iovecs, batch.bytes, seg.size);
      if (policy !== 'never') seg.noteUnsyncedWrite();
    } catch (err) {
      this.track(this.writeFailed(seg, [batch], asError(err)));
      return true;
    } finally {
      seg.release();
    }
    this.finishWrite(seg, batch, policy);
    return true;
  }

  /** `run` is the write in flight: flush waits for it, and it clears itself when done. */
  private track(run: Promise<void>): void {
    this.writing = run;
    void run.then(() => {
      if (this.writing === run) this.writing = null;
    });
  }

  private mustRoll(): boolean {
    const seg = this.active;
    if (seg === null) return true;
    if (seg.count === 0) return false;
    if (seg.size >= this.ctx.options.segmentBytes) return true;
    const maxAge = this.ctx.options.segmentAgeMs;
    return maxAge > 0 && Date.now() - seg.firstTimestamp >= maxAge;
  }

  /** Writes batches (consecutive, usually one) with one system call, then commits each in order. */
  private async write(group: Batch[]): Promise<void> {
    const seg = this.active!;
    const iovecs = group.length === 1 ? group[0]!.iovecs : group.flatMap((b) => b.iovecs);
    let bytes = 0;
    for (const b of group) bytes += b.bytes;
    try {
      const fd = await seg.acquire();
      try {
        if (this.ctx.inline.allowed(bytes)) {
          this.ctx.inline.write(fd, iovecs, bytes, seg.size);
        } else {
          this.ctx.inline.pooled();
          await writeAll(fd, iovecs, bytes, seg.size);
        }
        // Before release: the pool must not close this fd until an fsync has covered the write.
        if (this.ctx.options.fsync !== 'never') seg.noteUnsyncedWrite();
      } finally {
        seg.release();
      }
    } catch (err) {
      await this.writeFailed(seg, group, asError(err));
      return;
    }
    const policy = this.ctx.options.fsync;
    for (const batch of group) this.finishWrite(seg, batch, policy);
    if (policy === 'always') await this.sync();
  }

  /**
   * A batch is written: commit it, give its chunks back (the broker is done with the payload
   * ranges in them it was handed), then acknowledge it or queue it for the fsync.
   */
  private finishWrite(seg: Segment, batch: Batch, policy: StorageOptions['fsync']): void {
    this.commit(seg, batch);
    this.ctx.pool.release(batch);
    this.ctx.lists.release(batch.records);
    const { acks, first } = batch;
    if (policy === 'never') {
      this.ack(first, acks, null);
      this.ctx.ackLists.release(acks);
      return;
    }
    const last = this.pending[this.pending.length - 1];
    const queued = acks.count > SMALL_BATCH || last === undefined;
    if (queued) this.pending.push({ first, acks });
    else last.acks.concat(acks);
    if (policy === 'interval') this.ctx.scheduleSync(this, acks.acked, acks.ackedBytes, batch.bytes);
    // Concatenated into the run before, it is done with; a queued one goes back after its fsync.
    if (!queued) this.ctx.ackLists.release(acks);
  }

  /**
   * The batch is in the OS: make it readable, then hand it to the broker, in the same tick. The
   * messages are made now (stage.ts says why); small payloads are ranges of the batch's chunks,
   * which go back to the pool only after this (a consumer that keeps a message past its
   * delivery copies a payload that pins more than its own bytes: `kept`, core/broker.ts).
   */
  private commit(seg: Segment, batch: Batch): void {
    const { first, iovecs } = batch;
    const { count, lengths, timestamps, publishers, replies } = batch.records;
    const payloadBytes = batch.acks.payloadSizes();
    const { values: publisherRuns, ends: publisherEnds } = publishers;
    const messages = new Array<StoredMessage>(count);
    let position = seg.size;
    let v = 0;
    let iov = iovecs[0]!;
    let at = 0;
    let run = 0;
    let publisher = publisherRuns[0]!;
    for (let i = 0; i < count; i++) {
      if (i === publisherEnds[run]) publisher = publisherRuns[++run]!;
      if (at === iov.length) {
        iov = iovecs[++v]!;
        at = 0;
      }
      const length = lengths[i]!;
      const timestamp = timestamps[i]!;
      let data: Buffer;
      let start: number;
      let end: number;
      if (at + length <= iov.length) {
        data = iov;
        end = at + length;
        start = end - payloadBytes[i]!;
        at = end;
      } else {
        // Not copied: the header ends its iovec and the payload is the next one.
        data = iovecs[++v]!;
        start = 0;
        end = data.length;
        iov = iovecs[++v]!;
        at = 0;
      }
      seg.noteRecord(first + i, position, timestamp, length);
      position += length;
      messages[i] = { channel: this.name, offset: first + i, timestamp, publisher, reply: replies === null ? '' : replies[i]!, data, start, end };
    }
    this.totalBytes += batch.bytes;
    this.totalCount += count;
    this.committed = first + count - 1;
    this.dirty = true;
    try {
      this.ctx.onCommit(this.name, messages);
    } catch (err) {
      this.ctx.log.error({ err, channel: this.name }, 'storage: commit handler threw');
    }
  }

  /**
   * A write failed (disk full, I/O error): its records and those staged after it are refused
   * and their offsets given out again (nobody saw them). The segment is cut back to its last
   * good record; if even that fails, the log is in doubt and refuses everything from now on.
   */
  private async writeFailed(seg: Segment, group: Batch[], err: Error): Promise<void> {
    const first = group[0]!.first;
    this.ctx.log.error({ err, channel: this.name, segment: seg.name, offset: first }, 'storage: write failed');
    this.nextOffset = first;
    for (const batch of group) this.failBatch(batch, err);
    this.failStaged(err);
    try {
      const fd = await seg.acquire();
      try {
        await ftruncate(fd, seg.size);
      } finally {
        seg.release();
      }
    } catch (truncateErr) {
      this.ctx.log.error({ err: truncateErr, channel: this.name, segment: seg.name }, 'storage: cannot truncate after a failed write; channel disabled');
      this.failure = err;
    }
  }

  private failStaged(err: Error): void {
    for (const batch of this.stage.takeAll()) this.failBatch(batch, err);
  }

  private failBatch(batch: Batch, err: Error): void {
    this.ctx.pool.release(batch);
    if (batch.records.count !== 0) this.ack(batch.first, batch.acks, err);
    this.ctx.ackLists.release(batch.acks);
  }

  // --- durability ------------------------------------------------------------------------------

  /**
   * fsyncs what acknowledgements wait for: segments retired by a roll, then the active segment,
   * then the directory if it gained a segment; then acknowledges what that covered, in offset
   * order.
   */
  sync(): Promise<void> {
    const run = this.syncChain.then(() => this.syncOnce());
    this.syncChain = run;
    return run;
  }

  private async syncOnce(): Promise<void> {
    const active = this.dirty ? this.active : null;
    if (active === null && this.retired.length === 0 && !this.dirUnsynced) return;
    const segments = active === null ? this.retired : [...this.retired, active];
    const dir = this.dirUnsynced;
    const acks = this.pending;
    this.pending = [];
    this.retired = [];
    this.dirty = false;
    this.dirUnsynced = false;
    let error: Error | null = null;
    let failed = 0;
    try {
      for (; failed < segments.length; failed++) await this.syncSegment(segments[failed]!);
      // Last: it borrows a descriptor, which the segments just synced may now give up.
      if (dir) await this.ctx.files.borrow(() => fsyncDir(this.dir));
    } catch (err) {
      // After a failed fsync the kernel may have dropped the dirty pages: trust nothing more.
      error = asError(err);
      this.failure ??= error;
      const what = failed < segments.length ? segments[failed]!.name : this.dir;
      this.ctx.log.error({ err, channel: this.name, segment: what }, 'storage: fsync failed; channel disabled');
      // The channel is disabled and the acks fail: the fds need not stay open.
      for (const seg of segments) seg.noteSynced(seg.writeMark);
    }
    for (const run of acks) {
      this.ack(run.first, run.acks, error);
      this.ctx.ackLists.release(run.acks);
    }
  }

  /** fdatasync, then the descriptor may close (an open one is held: this needs no pool slot). */
  private async syncSegment(seg: Segment): Promise<void> {
    if (seg.deleted) return seg.noteSynced(seg.writeMark); // removed by retention: nothing left to keep
    const fd = await seg.acquire();
    const mark = seg.writeMark; // writes up to here are in the file the fdatasync covers
    try {
      await fdatasync(fd);
    } finally {
      seg.release();
    }
    seg.noteSynced(mark);
  }

  /** Calls each append callback; one that throws does not keep the others from running. */
  private ack(first: number, acks: AckList, err: Error | null): void {
    acks.call(first, this.name, err, this.callbackThrew);
  }

  private readonly callbackThrew = (err: unknown): void => {
    this.ctx.log.error({ err }, 'storage: append callback threw');
  };

  // --- rotation and retention -------------------------------------------------------------------

  /** Closes the active segment (if it holds anything); the next record opens a new one. */
  rotate(): Promise<void> {
    if (this.failure || (this.active?.count ?? 0) === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.rollWaiters.push(resolve);
      this.rollRequested = true;
      this.flush();
    });
  }

  private async roll(): Promise<void> {
    this.rollRequested = false;
    const old = this.active;
    const durable = this.ctx.options.fsync !== 'never';
    try {
      if (old && old.count === 0) return; // already fresh
      if (!this.dirReady) {
        await mkdir(this.dir, { recursive: true });
        if (durable) await this.ctx.files.borrow(() => fsyncDir(this.ctx.options.dataDir));
        this.dirReady = true;
      }
      const seg = await Segment.create(this.dir, this.stage.firstOffset || this.nextOffset, this.ctx.files);
      // The next sync makes the old segment's last writes and the new name durable, before any
      // acknowledgement that needs them (no write reaches `old` from here: the roll is in drain).
      if (old && durable && this.dirty) {
        this.retired.push(old);
        this.dirty = false;
      }
      if (durable) this.dirUnsynced = true;
      this.segments.push(seg);
      this.active = seg;
      this.ctx.log.debug({ channel: this.name, segment: seg.name }, 'storage: new segment');
      void this.applyRetention(Date.now());
    } catch (err) {
      // No segment to write to: refuse what is staged; the next append tries again.
      this.ctx.log.error({ err, channel: this.name }, 'storage: cannot open a new segment');
      this.nextOffset = this.stage.firstOffset || this.nextOffset;
      this.failStaged(asError(err));
    } finally {
      this.wakeRollWaiters();
    }
  }

  private wakeRollWaiters(): void {
    if (this.rollRequested) return;
    const waiters = this.rollWaiters;
    this.rollWaiters = [];
    for (const w of waiters) w();
  }

  /**
   * Deletes the oldest closed segments while the channel keeps at least the configured bytes
   * and messages without them, or when all their records are older than the age bound. They
   * leave the list at once (`first` moves); the promise is for their files being unlinked.
   */
  applyRetention(now: number): Promise<void> {
    const { retainBytes, retainMessages, retainAgeMs } = this.ctx.options;
    const unlinked: Promise<void>[] = [];
    if (retainBytes <= 0 && retainMessages <= 0 && retainAgeMs <= 0) return Promise.resolve();
    const floor = this.pinnedFloor();
    while (this.segments.length > 1) {
      const seg = this.segments[0]!;
      if (seg === this.active) break;
      const oversize =
        (retainBytes > 0 && this.totalBytes - seg.size >= retainBytes) ||
        (retainMessages > 0 && this.totalCount - seg.count >= retainMessages);
      const expired = seg.count === 0 || (oversize && seg.last < floor) || (retainAgeMs > 0 && now - seg.maxTimestamp > retainAgeMs);
      if (!expired) {
        if (oversize) this.ctx.log.debug({ channel: this.name, segment: seg.name, reader: floor }, 'storage: retention waits for a reader behind');
        break;
      }
      this.segments.shift();
      this.totalBytes -= seg.size;
      this.totalCount -= seg.count;
      unlinked.push(seg.remove(this.ctx.log));
      this.ctx.log.debug({ channel: this.name, segment: seg.name, messages: seg.count }, 'storage: segment removed by retention');
    }
    return Promise.all(unlinked).then(() => {});
  }

  pin(reader: RetentionPin): void {
    (this.pins ??= new Set()).add(reader);
  }

  unpin(reader: RetentionPin): void {
    if (this.pins?.delete(reader) && this.pins.size === 0) this.pins = null;
  }

  /** The lowest offset a pinned reader has still to read (Infinity: none). */
  private pinnedFloor(): number {
    let floor = Infinity;
    if (this.pins !== null) for (const r of this.pins) if (r.next >= 0 && r.next < floor) floor = r.next;
    return floor;
  }

  closeIdleFiles(): void {
    for (const s of this.segments) s.closeIfIdle();
    if (this.cursors) {
      // A reader that has not come back for a while went live or away: let its windows go.
      const old = performance.now() - CURSOR_IDLE_MS;
      for (const [offset, c] of this.cursors) if (c.savedAt < old) this.cursors.delete(offset);
      if (this.cursors.size === 0) this.cursors = null;
    }
  }

  /**
   * The segments for the clean-shutdown record, once `close` is done; null when this channel
   * is in doubt (a failed write or fsync): then the next start scans it.
   */
  async cleanRecord(): Promise<SegmentRecord[] | null> {
    if (this.failure !== null || this.dirty || this.retired.length > 0 || this.dirUnsynced) return null;
    return Promise.all(this.segments.filter((s) => !s.deleted).map((s) => s.record()));
  }

  /** Writes what is staged, fsyncs (whatever the policy: this is a clean stop), closes files. */
  async close(): Promise<void> {
    await this.settle();
    this.wakeRollWaiters();
    await this.sync();
    await Promise.all(this.segments.map((s) => s.close()));
  }

  // --- reading -------------------------------------------------------------------------------

  async read(from: number, maxMessages: number, maxBytes: number): Promise<StoredMessage[]> {
    const out: StoredMessage[] = [];
    const budget: ReadBudget = { until: this.committed, maxMessages, maxBytes, bytes: 0 };
    let next = Math.max(from, 1);
    let last: { seg: Segment; stop: WalkEnd } | null = null;
    while (next <= budget.until && out.length < maxMessages && budget.bytes < maxBytes) {
      next = Math.max(next, this.first);
      const seg = this.segmentAt(next);
      if (!seg) break;
      next = Math.max(next, seg.base); // past a gap left by a damaged segment
      const cursor = this.takeCursor(next, seg);
      let stop: WalkEnd;
      try {
        stop = await readSegment(seg, this.name, next, budget, out, cursor);
      } catch (err) {
        if (seg.deleted) continue; // removed by retention under us: go on from the new first
        throw err;
      }
      last = { seg, stop };
      if (stop.offset === next) break;
      next = stop.offset;
    }
    // A reader that stopped inside a segment (or at the end of the one still growing) comes
    // back for what follows: keep its place, and start reading the next window now.
    if (last !== null && !last.seg.deleted && (last.stop.position < last.seg.size || last.seg === this.active)) {
      this.saveCursor(cursorAt(last.seg, last.stop));
    }
    return out;
  }

  private takeCursor(offset: number, seg: Segment): ReadCursor | null {
    const c = this.cursors?.get(offset);
    if (c === undefined) return null;
    this.cursors!.delete(offset);
    return c.seg === seg && !seg.deleted ? c : null;
  }

  private saveCursor(c: ReadCursor): void {
    const cursors = (this.cursors ??= new Map());
    if (cursors.size >= MAX_CURSORS) cursors.delete(cursors.keys().next().value!);
    cursors.set(c.offset, c);
  }

  async resolve(position: StartPosition): Promise<number> {
    switch (position.kind) {
      case 'beginning':
        return this.first;
      case 'new':
        return this.committed + 1;
      case 'offset':
        return Math.max(1, position.offset);
      case 'last':
        return Math.max(this.first, this.committed - position.count + 1);
      case 'time':
        return this.findTime(position.time);
    }
  }

  private async findTime(time: number): Promise<number> {
    const until = this.committed;
    for (const seg of [...this.segments]) {
      if (seg.count === 0 || seg.maxTimestamp < time) continue;
      try {
        const offset = await findTime(seg, this.name, time, until);
        if (offset > 0) return offset;
      } catch (err) {
        if (!seg.deleted) throw err;
      }
    }
    return until + 1;
  }

  /** The segment holding `offset`, or the next one holding anything after it. */
  private segmentAt(offset: number): Segment | undefined {
    const segs = this.segments;
    let lo = 0;
    let hi = segs.length - 1;
    let i = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (segs[mid]!.base <= offset) {
        i = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    if (i >= 0 && offset <= segs[i]!.last) return segs[i];
    for (let j = i + 1; j < segs.length; j++) if (segs[j]!.count > 0) return segs[j];
    return undefined;
  }
}
