/**
 * The storage engine interface: the only thing the broker core knows about storage.
 *
 * Design rules (they are what lets a shared engine such as Redis Streams plug in later):
 * - The engine, not the broker, is the source of truth for order. The broker `append`s; the
 *   engine assigns the offset and later hands every committed message, in offset order, to the
 *   commit handler given to `start`. The broker fans out from that handler only. A shared
 *   engine reports messages appended by other brokers through the same handler.
 * - `append` acknowledges through its callback once the configured durability policy holds;
 *   the commit handler may run earlier (on write) than the acknowledgement (on fsync).
 * - `read` never returns a message the commit handler has not yet seen, and `head` is updated
 *   in the same tick the handler runs. A reader that has read up to `head` can therefore switch
 *   to the live stream without a gap or a duplicate.
 * - Offsets are per channel, start at 1 and never repeat. 0 means "nothing yet".
 */

/**
 * A payload as a range: `data[start, end)`. Messages carry their payloads so, not as views of
 * their own, because a view is an object (a `Buffer`: 50–90 ns to make on a 2-core VM, a few
 * percent of a message's whole cost) and most payloads are only ever copied: from the socket
 * read into the store, from the store into the deliveries. `payloadOf` makes a view for code
 * that keeps or hands out a payload as a Buffer.
 */
export interface PayloadRange {
  /** Holds the payload (a socket read, a staging chunk, a slab, a segment read...). */
  readonly data: Buffer;
  readonly start: number;
  readonly end: number;
}

/** A message as stored and delivered. */
export interface StoredMessage extends PayloadRange {
  readonly channel: string;
  readonly offset: number;
  /** Broker receive time, milliseconds since the epoch, with a sub-millisecond fraction. */
  readonly timestamp: number;
  /** Identity of the publisher (user or connection name). */
  readonly publisher: string;
  /** Reply channel for request/reply, '' when none. */
  readonly reply: string;
}

/** What the broker hands to `append` (the payload usually a stretch of the PUB's socket read). */
export interface NewMessage extends PayloadRange {
  readonly timestamp: number;
  readonly publisher: string;
  readonly reply: string;
}

/** The payload as a Buffer of its own length (a view unless it is all of `data`). */
export function payloadOf(m: PayloadRange): Buffer {
  return m.start === 0 && m.end === m.data.length ? m.data : m.data.subarray(m.start, m.end);
}

/** A NewMessage whose payload is all of `payload`. */
export function newMessage(timestamp: number, publisher: string, reply: string, payload: Buffer): NewMessage {
  return { timestamp, publisher, reply, data: payload, start: 0, end: payload.length };
}

/** A StoredMessage whose payload is all of `payload` (tests, tools). */
export function storedMessage(channel: string, offset: number, timestamp: number, publisher: string, reply: string, payload: Buffer): StoredMessage {
  return { channel, offset, timestamp, publisher, reply, data: payload, start: 0, end: payload.length };
}

/** Where a subscription starts. */
export type StartPosition =
  | { readonly kind: 'beginning' }
  | { readonly kind: 'offset'; readonly offset: number }
  | { readonly kind: 'time'; readonly time: number }
  | { readonly kind: 'last'; readonly count: number }
  | { readonly kind: 'new' };

/**
 * Called with the error (or null) and the assigned offset once the durability policy holds,
 * with the `ref` given to `append`, the channel and the payload's size: one callback can serve
 * every publish of a connection, so a publish costs no closure.
 */
export type AppendCallback = (err: Error | null, offset: number, ref: AppendRef, channel: string, bytes: number) => void;

/**
 * What the appender gets back with the outcome, kept as given: '' for nothing, else a string
 * or a number (the server's ack ids, short ones packed: protocol/ack-id.ts).
 */
export type AppendRef = string | number;

/**
 * Called, in offset order, with every batch of messages that became readable on a channel. The
 * array is the engine's and valid during the call only; the messages are the handler's to keep.
 */
export type CommitHandler = (channel: string, batch: readonly StoredMessage[]) => void;

export interface ChannelStats {
  readonly channel: string;
  /** Oldest retained offset (head + 1 when empty). */
  readonly first: number;
  /** Last committed offset, 0 when nothing was ever committed. */
  readonly head: number;
  readonly messages: number;
  readonly bytes: number;
}

export interface ChannelLog {
  readonly name: string;
  /** Oldest offset still retained. */
  readonly first: number;
  /** Last committed (readable) offset. */
  readonly head: number;
  /**
   * True when a reader that fell behind can catch up from storage (a durable log). False for
   * memory logs, whose slow subscribers fall under the drop/disconnect policy instead.
   */
  readonly replayable: boolean;
  /**
   * `message` is read during the call only (the caller reuses it): the log keeps its own
   * StoredMessage. `ref` is handed back to `done`.
   */
  append(message: NewMessage, done?: AppendCallback, ref?: AppendRef): void;
  /**
   * How much of the size and count retention is still free before the stored data holding
   * `offset` may be removed: 1 when nothing after it counts against the bounds (or there are
   * none), 0 when it may go at the next pass. Age retention is not counted: nothing a publisher
   * does brings it sooner. Absent where nothing is removed by size (memory logs keep their own
   * bound and are not replayable).
   */
  retentionRoom?(offset: number): number;
  /**
   * `slow-consumer block`: size and count retention keep every record from `reader.next` on
   * (read live, not copied) until `unpin`, so retention never overtakes a subscriber reading
   * from behind. The hold on publishers (core/broker.ts, holdAhead) keeps what goes past the
   * bounds meanwhile to what was already on its way. Age retention is not held off. Absent
   * where nothing is removed by size.
   */
  pin?(reader: RetentionPin): void;
  unpin?(reader: RetentionPin): void;
  /** Messages with offset >= from, at most `maxMessages` and about `maxBytes`, never past head. */
  read(from: number, maxMessages: number, maxBytes: number): Promise<StoredMessage[]>;
  /** The first offset at which to start for a position (head + 1 for 'new'). */
  resolve(position: StartPosition): Promise<number>;
  stats(): ChannelStats;
}

/** A reader's position as `pin` sees it; negative while not yet known (nothing is kept for it). */
export interface RetentionPin {
  readonly next: number;
}

export interface StorageEngine {
  readonly driver: string;
  /** Recover existing channels and begin reporting commits. */
  start(onCommit: CommitHandler): Promise<void>;
  /** Names of every existing channel. */
  channels(): string[];
  has(channel: string): boolean;
  /** The channel's log, created on first use. Synchronous so a publish never waits to open. */
  channel(name: string): ChannelLog;
  /** Close the current segments and start new ones (SIGHUP). Live readers are unaffected. */
  rotate(): Promise<void>;
  /** Flush pending writes, fsync, close files. */
  close(): Promise<void>;
  /** The driver's own counters, for `stats` (names start with `storage`). */
  counters?(): Readonly<Record<string, number>>;
}

export type FsyncPolicy = 'always' | 'interval' | 'never';

export interface StorageOptions {
  /** Directory for drivers that keep files. */
  readonly dataDir: string;
  /**
   * always: every write batch is fsynced before its publishes are acknowledged.
   * interval: group commit; publishes are acknowledged after the next fsync, which runs every
   *           fsyncIntervalMs while acknowledgements wait for it (or as soon as the last one is
   *           done once fsyncAcks of them, or fsyncBytes of their payloads, wait), and every
   *           fsyncUnackedMs while only writes nobody waits for do. never: acknowledged once
   *           written to the OS; never fsynced.
   */
  readonly fsync: FsyncPolicy;
  readonly fsyncIntervalMs: number;
  /** `interval`: acknowledgements that start a group fsync before the interval is up (0: never early by count). */
  readonly fsyncAcks: number;
  /** `interval`: their payload bytes that do the same (0: never early by bytes). */
  readonly fsyncBytes: number;
  /**
   * `interval`: the group fsync's pace while no acknowledgement waits for it, only writes that
   * asked for none (0, or anything under fsyncIntervalMs: the interval's pace). Why: each
   * fdatasync stalls the appends that meet its writeback, and 100 of them a second doubled the
   * p99 latency of fire-and-forget traffic (docs/storage.md, fsync policies).
   */
  readonly fsyncUnackedMs: number;
  /** `interval`: bytes written since the last group fsync that bring back the interval's pace. */
  readonly fsyncUnackedBytes: number;
  /** Rotate a segment once it holds this many bytes. */
  readonly segmentBytes: number;
  /** Rotate a segment once its first record is this old (0 = never by age). */
  readonly segmentAgeMs: number;
  /** Retention per channel; 0 disables that bound. Whole segments are removed, never the active one. */
  readonly retainBytes: number;
  readonly retainAgeMs: number;
  readonly retainMessages: number;
  /**
   * Segment files a driver keeps open at once, all channels together; the least recently used
   * idle one is closed to open another. 0: half the process's open-file limit.
   */
  readonly maxOpenFiles: number;
}

export const defaultStorageOptions: StorageOptions = Object.freeze({
  dataDir: './data',
  fsync: 'interval',
  fsyncIntervalMs: 10,
  fsyncAcks: 1024,
  fsyncBytes: 4 * 1024 * 1024,
  fsyncUnackedMs: 100,
  fsyncUnackedBytes: 512 * 1024,
  segmentBytes: 64 * 1024 * 1024,
  segmentAgeMs: 24 * 3600 * 1000,
  retainBytes: 0,
  retainAgeMs: 0,
  retainMessages: 0,
  maxOpenFiles: 0,
});

/** Structured logger; pino's Logger satisfies it. */
export interface Log {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

/** One problem found by an integrity check. */
export interface CheckProblem {
  readonly channel: string;
  readonly segment: string;
  /** Byte position in the segment file. */
  readonly position: number;
  /** Offset of the bad record when it could be read, otherwise the offset expected there. */
  readonly offset: number;
  readonly problem: string;
}

export interface CheckReport {
  readonly channels: number;
  readonly segments: number;
  readonly records: number;
  readonly problems: readonly CheckProblem[];
  /** Files that belong to no channel or cannot be segments (orphans). */
  readonly orphans: readonly string[];
  /** What repair did, when asked to. */
  readonly repaired: readonly string[];
}

export interface StorageDriver {
  readonly name: string;
  create(options: StorageOptions, log: Log): StorageEngine;
  /** Verify every record's checksum; with repair, truncate at the first bad record. */
  check?(options: StorageOptions, repair: boolean): Promise<CheckReport>;
}
