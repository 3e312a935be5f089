/**
 * The `file` storage engine: one directory per channel under dataDir, each an append-only log
 * of segment files. The engine owns what is shared between channels: the once-per-turn flush,
 * the group-commit fsync timer, periodic retention and the staging-chunk pool.
 */
import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import type { ChannelLog, CommitHandler, Log, StorageEngine, StorageOptions } from '../engine.js';
import { FileChannelLog, type LogContext } from './channel-log.js';
import { isChannelName } from './layout.js';
import { CLEAN_FILE, type SegmentRecord, takeCleanRecord, writeCleanRecord } from './clean-shutdown.js';
import { recoverChannel } from './recovery.js';
import { ChunkPool } from './stage.js';
import { RecordListPool } from './record-list.js';
import { AckListPool } from './ack-list.js';
import { FdPool, defaultOpenFiles } from './fd-pool.js';
import { checksumImplementation } from '../../native/addon.js';
import { InlineWrites, defaultInlineWrites } from './inline-writes.js';
import { inputWaiting } from '../../loop/input-backlog.js';
import { atTurnEnd } from '../../loop/turn-end.js';
import { WorkList } from '../../loop/work-list.js';

/** How often retention runs and idle descriptors are closed. */
const MAINTENANCE_MS = 5000;
/** Channels count as sharing the disk this long after a turn in which several wrote. */
const SHARING_MS = 100;
/** Channels recovered in parallel at start. */
const RECOVERY_PARALLELISM = 8;

const flushLog = (log: FileChannelLog): void => log.flush();

export class FileStorageEngine implements StorageEngine, LogContext {
  readonly driver = 'file';
  readonly pool = new ChunkPool();
  readonly lists = new RecordListPool();
  readonly ackLists = new AckListPool();
  /** Large batches go inline only while the loop has nothing else to do (inline-writes.ts). */
  readonly inline = new InlineWrites(defaultInlineWrites, undefined, () => this.sharing() || inputWaiting());
  readonly files: FdPool;
  onCommit: CommitHandler = () => {};
  closed: Error | null = null;

  private readonly logs = new Map<string, FileChannelLog>();
  private started = false;
  private closing: Promise<void> | null = null;
  /** Channels with records staged this turn. */
  private readonly toFlush = new WorkList<FileChannelLog>();
  /** When several channels last had writes to start in one turn (performance.now()). */
  private lastSharedTurn = -Infinity;
  private readonly toSync = new Set<FileChannelLog>();
  private syncTimer: NodeJS.Timeout | null = null;
  /** When the armed group fsync is due (performance.now()). */
  private syncDue = 0;
  private lastSyncAt = 0;
  /** An open waits for a descriptor slot that the next group fsync frees: keep the interval's pace. */
  private hurried = false;
  /** Acknowledgements, and their payload bytes, waiting for the next group fsync. */
  private awaiting = 0;
  private awaitingBytes = 0;
  /** Bytes written since the last group fsync began. */
  private unsynced = 0;
  /** Channels whose fsync of the last group is still running. */
  private syncing = 0;
  private earlySyncDue = false;
  /** Group fsyncs under `interval` since start, and those started early (for `stats`). */
  private groupSyncs = 0;
  private earlySyncs = 0;
  private maintenance: NodeJS.Timeout | null = null;

  constructor(
    readonly options: StorageOptions,
    readonly log: Log,
  ) {
    validate(options);
    this.files = new FdPool(options.maxOpenFiles > 0 ? options.maxOpenFiles : defaultOpenFiles(), this.hurrySync);
  }

  async start(onCommit: CommitHandler): Promise<void> {
    if (this.started) throw new Error('storage engine already started');
    const root = this.options.dataDir;
    await mkdir(root, { recursive: true });
    const names: string[] = [];
    // Deleted before anything is written: after a crash from here on, the next start scans all.
    const clean = await takeCleanRecord(root, this.log);
    for (const entry of await readdir(root, { withFileTypes: true })) {
      if (entry.isDirectory() && isChannelName(entry.name)) names.push(entry.name);
      else if (!entry.name.startsWith(CLEAN_FILE)) this.log.warn({ file: entry.name, dataDir: root }, 'storage: ignoring an entry that is not a channel');
    }
    let i = 0;
    let segments = 0;
    let scanned = 0;
    const worker = async (): Promise<void> => {
      while (i < names.length) {
        const name = names[i++]!;
        const recovered = await recoverChannel(path.join(root, name), name, this.log, this.files, clean?.get(name) ?? null);
        segments += recovered.segments.length;
        scanned += recovered.scanned;
        this.logs.set(name, new FileChannelLog(this, name, recovered));
      }
    };
    await Promise.all(Array.from({ length: Math.min(RECOVERY_PARALLELISM, names.length) }, worker));
    if (segments > 0) {
      this.log.info({ segments, verified: scanned, fromCleanShutdown: segments - scanned }, clean ? 'storage: recovered after a clean shutdown' : 'storage: recovered, every record verified');
    }
    this.onCommit = onCommit;
    this.started = true;
    this.maintenance = setInterval(() => void this.maintain(Date.now()), MAINTENANCE_MS).unref();
    this.log.info({ dataDir: root, channels: this.logs.size, fsync: this.options.fsync, maxOpenFiles: this.files.capacity, checksums: checksumImplementation() }, 'storage: file engine started');
  }

  channels(): string[] {
    return [...this.logs.keys()];
  }

  has(channel: string): boolean {
    return this.logs.has(channel);
  }

  channel(name: string): ChannelLog {
    return this.fileLog(name);
  }

  /** The concrete log, for tests and tools that need more than the interface. */
  fileLog(name: string): FileChannelLog {
    let log = this.logs.get(name);
    if (log) return log;
    if (!this.started) throw new Error('storage engine not started');
    if (!isChannelName(name)) throw new TypeError(`not a storable channel name: ${JSON.stringify(name)}`);
    log = new FileChannelLog(this, name, null);
    this.logs.set(name, log);
    return log;
  }

  async rotate(): Promise<void> {
    await Promise.all([...this.logs.values()].map((l) => l.rotate()));
  }

  /** Retention and descriptor housekeeping; runs every few seconds, callable by tests. */
  maintain(now: number): Promise<void> {
    const unlinked: Promise<void>[] = [];
    for (const l of this.logs.values()) {
      unlinked.push(l.applyRetention(now));
      l.closeIdleFiles();
    }
    return Promise.all(unlinked).then(() => {});
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.closed = new Error('storage engine is closed');
    if (this.maintenance) clearInterval(this.maintenance);
    await Promise.all([...this.logs.values()].map((l) => l.close()));
    // Everything is written and fsynced: record what the next start would otherwise rescan.
    if (this.started) {
      try {
        const record = new Map<string, SegmentRecord[]>();
        for (const [name, l] of this.logs) {
          const segments = await l.cleanRecord();
          if (segments) record.set(name, segments);
        }
        await writeCleanRecord(this.options.dataDir, record);
      } catch (err) {
        this.log.warn({ err }, 'storage: cannot write the clean-shutdown record; the next start verifies every segment');
      }
    }
    if (this.syncTimer) clearTimeout(this.syncTimer);
    this.syncTimer = null;
    this.toSync.clear();
  }

  counters(): Readonly<Record<string, number>> {
    const c = this.inline.counts;
    return { storageInlineWrites: c.inline, storagePoolWrites: c.pool, storageInlineBackoffs: c.backoffs, storageGroupSyncs: this.groupSyncs, storageEarlySyncs: this.earlySyncs };
  }

  // --- LogContext: batching across channels ----------------------------------------------------

  readonly scheduleFlush = (log: FileChannelLog): void => {
    // After every I/O callback of this loop turn: one write per channel per turn.
    if (this.toFlush.add(log)) atTurnEnd(this.flushAll);
  };

  private readonly flushAll = (): void => {
    if (this.toFlush.length > 1) this.lastSharedTurn = performance.now();
    this.toFlush.drain(flushLog, this.scheduleFlush);
  };

  sharing(): boolean {
    return performance.now() - this.lastSharedTurn < SHARING_MS;
  }

  scheduleSync(log: FileChannelLog, acks: number, bytes: number, written: number): void {
    this.toSync.add(log);
    this.awaiting += acks;
    this.awaitingBytes += bytes;
    this.unsynced += written;
    this.armSync();
    this.maybeSyncEarly();
  }

  /**
   * Arms the group fsync at a steady cadence (counted from the last one, not from each first
   * write): an interval after the last while an acknowledgement or a descriptor slot waits for
   * it, or `fsyncUnackedBytes` have been written since; `fsyncUnackedMs` after it while only a
   * few writes that nobody waits for do. A wait that starts later brings an armed timer forward.
   * Why the bytes: a stream keeps the interval's small fsyncs (larger ones stalled its writes
   * longer: 100 ms between them cost 1→1 throughput 12–33%), a trickle gets the slower pace.
   */
  private armSync(): void {
    const { fsyncIntervalMs, fsyncUnackedMs, fsyncUnackedBytes } = this.options;
    const pressing = this.awaiting > 0 || this.hurried || this.unsynced >= fsyncUnackedBytes;
    const pace = pressing ? fsyncIntervalMs : Math.max(fsyncIntervalMs, fsyncUnackedMs);
    const due = this.lastSyncAt + pace;
    if (this.syncTimer !== null) {
      if (due >= this.syncDue) return;
      clearTimeout(this.syncTimer);
    }
    this.syncDue = due;
    this.syncTimer = setTimeout(this.syncAll, Math.max(0, due - performance.now()));
  }

  private readonly hurrySync = (): void => {
    this.hurried = true;
    if (this.toSync.size !== 0) this.armSync();
  };

  /**
   * Under `interval`, a group fsync starts before its interval is up once `fsyncAcks`
   * acknowledgements (or `fsyncBytes` of their payloads) wait for it and none is in flight.
   * Why: a publisher that keeps N publishes unacknowledged waited for the timer with the disk
   * idle, capped at N per interval (4,096 in flight: ~410,000/s, whatever the disk). A steady
   * trickle never gathers that many within an interval and keeps its one fsync per interval.
   */
  private maybeSyncEarly(): void {
    if (this.syncing !== 0 || this.earlySyncDue || this.toSync.size === 0) return;
    const { fsyncAcks, fsyncBytes } = this.options;
    if ((fsyncAcks === 0 || this.awaiting < fsyncAcks) && (fsyncBytes === 0 || this.awaitingBytes < fsyncBytes)) return;
    this.earlySyncDue = true;
    // At the turn's end: the writes committed later in this turn join the group.
    atTurnEnd(this.syncEarly);
  }

  private readonly syncEarly = (): void => {
    this.earlySyncDue = false;
    if (this.syncing !== 0 || this.toSync.size === 0) return;
    if (this.syncTimer) clearTimeout(this.syncTimer);
    this.earlySyncs++;
    this.syncAll();
  };

  private readonly syncAll = (): void => {
    this.syncTimer = null;
    this.hurried = false;
    this.lastSyncAt = performance.now();
    this.awaiting = 0;
    this.awaitingBytes = 0;
    this.unsynced = 0;
    const logs = [...this.toSync];
    this.toSync.clear();
    if (logs.length !== 0) this.groupSyncs++;
    this.syncing += logs.length;
    for (const l of logs) void l.sync().then(this.synced, this.syncThrew);
  };

  private readonly synced = (): void => {
    this.syncing--;
    if (this.syncing === 0) this.maybeSyncEarly();
  };

  /** Not expected: a log's sync reports its own failures (and fails its acknowledgements). */
  private readonly syncThrew = (err: unknown): void => {
    this.log.error({ err }, 'storage: group fsync failed');
    this.synced();
  };
}

function validate(o: StorageOptions): void {
  const positive = (name: keyof StorageOptions, min: number): void => {
    const v = o[name];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min) {
      throw new TypeError(`storage option ${name} must be a number >= ${min}, got ${String(v)}`);
    }
  };
  if (typeof o.dataDir !== 'string' || o.dataDir === '') throw new TypeError('storage option dataDir must be a directory path');
  if (o.fsync !== 'always' && o.fsync !== 'interval' && o.fsync !== 'never') {
    throw new TypeError(`storage option fsync must be always, interval or never, got ${String(o.fsync)}`);
  }
  positive('fsyncIntervalMs', o.fsync === 'interval' ? 1 : 0);
  positive('segmentBytes', 1);
  for (const name of ['fsyncAcks', 'fsyncBytes', 'fsyncUnackedMs', 'fsyncUnackedBytes', 'segmentAgeMs', 'retainBytes', 'retainAgeMs', 'retainMessages', 'maxOpenFiles'] as const) positive(name, 0);
}
