/**
 * The `memory` driver: per channel, a bounded ring of recent messages and nothing on disk.
 *
 * `append` assigns the offset at once; the messages appended during one callback (a socket
 * read's worth of publishes) are committed together in a microtask right after it: held in
 * the ring, `head` moved, the commit handler called with the batch, then each append
 * callback. There is no durability to wait for; the batch is what lets the broker encode a
 * fan-out once for subscribers that share a sid (core/fan-out-plan.ts), and like the file
 * driver's, `head` and reads never show a message before the commit handler has seen it.
 *
 * Bounds: retainMessages (or 10,000 when 0), retainBytes (payload bytes, or 16 MiB when 0) and
 * retainAgeMs (by message timestamp); the oldest messages go first. The default byte bound
 * keeps one channel of large payloads from holding 10,000 of them (10 GiB at the 1 MiB
 * max-payload), and keeps a busy ring's slabs few enough to come back warm from the pool
 * instead of freshly allocated. The ring starts small and doubles up to that bound, and halves
 * when retention empties it, so an idle channel costs a few hundred bytes, not the bound
 * (100,000 channels must fit in memory). Readers that fall behind are not replayed
 * (`replayable` is false): the broker's slow-consumer policy applies instead.
 *
 * Held messages are packed, not kept as objects: numbers in one Float64Array, names in one
 * array, payload bytes copied into slabs (a batch's copies in one native call at the end of
 * its commit, native/copy-list.ts: one Buffer#copy a message was a fifth of the hot path). The live message (and its payload buffer) then dies
 * young, in the scavenger, instead of surviving into the old generation with everything the
 * ring holds: with a full history, copying those survivors made scavenges of 10–25 ms and a
 * 20–30 ms p99 at 20,000 msgs/s. Reads copy payloads out, so a slab whose messages are all
 * gone can be reused at once (SlabPool): no view of it is ever handed out.
 */
import { CopyList, DEFER_OVER } from '../native/copy-list.js';
import { copyAll, copyBytes } from '../protocol/ascii.js';
import { WorkList } from '../loop/work-list.js';
import type {
  AppendCallback,
  AppendRef,
  ChannelLog,
  ChannelStats,
  CommitHandler,
  Log,
  NewMessage,
  StartPosition,
  StorageDriver,
  StorageEngine,
  StorageOptions,
  StoredMessage,
} from './engine.js';

const DEFAULT_RING = 10_000;
const DEFAULT_RING_BYTES = 16 * 1024 * 1024;
/** A ring emptied by retention shrinks down to this many slots (it starts at one). */
const MIN_RING = 4;
/** Slabs double from MIN_SLAB as a channel keeps filling them, up to MAX_SLAB. */
const MIN_SLAB = 64;
/** Smaller slabs come from Node's shared 8 KiB buffer pool and are left to the GC, not pooled here. */
const POOLED_SLAB = 4096;
const MAX_SLAB = 256 * 1024;
/** A payload this large gets a buffer of its own rather than a slab. */
const OWN_BUFFER = MAX_SLAB / 4;

/** Per message in `numbers`: timestamp, position in its slab, payload length. */
const TIME = 0;
const POS = 1;
const LEN = 2;
const NUMBERS = 3;
/** Per message in `refs`: its slab, publisher, reply. */
const SLAB = 0;
const PUBLISHER = 1;
const REPLY = 2;
const REFS = 3;

/**
 * Slabs whose messages are all gone, for reuse by any channel of the engine: a busy channel
 * then writes into memory already paged in instead of fresh allocations (page faults are
 * expensive on a VM). Bounded; beyond it slabs are left to the GC.
 */
export class SlabPool {
  private readonly free = new Map<number, Buffer[]>();
  private pooled = 0;

  constructor(private readonly maxBytes = 32 * 1024 * 1024) {}

  get(size: number): Buffer {
    if (size < POOLED_SLAB) return Buffer.allocUnsafe(size);
    const slab = this.free.get(size)?.pop();
    if (slab) {
      this.pooled -= size;
      return slab;
    }
    return Buffer.allocUnsafeSlow(size);
  }

  put(slab: Buffer): void {
    const size = slab.length;
    if (size < POOLED_SLAB || size > MAX_SLAB || (size & (size - 1)) !== 0 || this.pooled + size > this.maxBytes) return;
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push(slab);
    this.pooled += size;
  }
}

/** A batch of two messages or more (a quiet channel's batch of one is held without arrays). */
interface Pending {
  readonly messages: StoredMessage[];
  /**
   * Whom to tell about each message, and with which ref; null while no append of the batch
   * asked to be told (publishes without ack ids): two arrays less to grow per message.
   */
  done: (AppendCallback | undefined)[] | null;
  refs: AppendRef[] | null;
}

export class MemoryChannelLog implements ChannelLog {
  readonly replayable = false;
  /** Most messages held at once (the retention bound in messages). */
  private readonly bound: number;
  /** Most payload bytes held at once. */
  private readonly byteBound: number;
  /** Ring slots; held messages are slots start .. start+size-1 (mod capacity). */
  private capacity: number;
  /** Doubles only, so V8 stores them unboxed (no GC pointers); lighter than a Float64Array for a small channel. */
  private numbers: number[];
  private refs: (Buffer | string | undefined)[];
  private start = 0;
  private size = 0;
  private bytes = 0;
  private last = 0;
  /** The slab being filled, how much of it is used, and the size of the next one. */
  private slab: Buffer | null = null;
  private slabUsed = 0;
  private nextSlab = MIN_SLAB;
  /**
   * Appended, waiting for the engine's microtask to commit them (offsets last+1 …). The first
   * one is held alone, with its callback: at one publish a turn (a probe's pace) a batch is
   * that message, and the arrays of `pending` were two fifths of what the broker allocated per
   * message. A second append moves both into `pending`.
   */
  private one: StoredMessage | null = null;
  private oneDone: AppendCallback | undefined = undefined;
  private oneRef: AppendRef = '';
  private pending: Pending | null = null;

  constructor(
    readonly name: string,
    private readonly options: StorageOptions,
    private readonly onCommit: CommitHandler,
    private readonly log: Log,
    private readonly slabs: SlabPool,
    /** Calls `commit` on this log in a microtask (the engine's, one for all its channels). */
    private readonly scheduleCommit: (log: MemoryChannelLog) => void,
    /** The engine's: payload copies into slabs, made at the end of each commit's loop. */
    private readonly copies: CopyList | null = null,
  ) {
    this.bound = options.retainMessages > 0 ? options.retainMessages : DEFAULT_RING;
    this.byteBound = options.retainBytes > 0 ? options.retainBytes : DEFAULT_RING_BYTES;
    this.capacity = 1; // doubles on demand: a channel holding one message pays for one slot
    this.numbers = doubles(this.capacity * NUMBERS);
    this.refs = new Array<Buffer | string | undefined>(this.capacity * REFS);
  }

  get head(): number {
    return this.last;
  }

  get first(): number {
    return this.size > 0 ? this.last - this.size + 1 : this.last + 1;
  }

  append(message: NewMessage, done?: AppendCallback, ref: AppendRef = ''): void {
    // The live message: handed to the commit handler and dropped, the ring keeps a packed copy.
    const stored: StoredMessage = {
      channel: this.name,
      offset: this.last + (this.one === null ? 0 : this.pending === null ? 1 : this.pending.messages.length) + 1,
      timestamp: message.timestamp,
      publisher: message.publisher,
      reply: message.reply,
      data: message.data,
      start: message.start,
      end: message.end,
    };
    const one = this.one;
    if (one === null) {
      this.one = stored;
      this.oneDone = done;
      this.oneRef = ref;
      this.scheduleCommit(this);
      return;
    }
    let p = this.pending;
    if (p === null) {
      // Allocated per batch, not per channel: an idle channel holds no arrays.
      p = this.pending = { messages: [one], done: null, refs: null };
      if (this.oneDone !== undefined) {
        p.done = [this.oneDone];
        p.refs = [this.oneRef];
      }
    }
    p.messages.push(stored);
    if (done !== undefined || p.done !== null) {
      if (p.done === null || p.refs === null) {
        const before = p.messages.length - 1;
        p.done = new Array<AppendCallback | undefined>(before).fill(undefined);
        p.refs = new Array<AppendRef>(before).fill('');
      }
      p.done.push(done);
      p.refs.push(ref);
    }
  }

  /** Everything appended since the last commit: into the ring, to the broker, acknowledged. */
  commit(): void {
    const one = this.one;
    if (one === null) return;
    const p = this.pending;
    const oneDone = this.oneDone;
    const oneRef = this.oneRef;
    this.one = null;
    this.pending = null;
    this.oneDone = undefined;
    this.oneRef = '';
    if (p === null) this.commitOne(one, oneDone, oneRef);
    else this.commitBatch(p);
  }

  /** A batch of one: the handler gets a shared one-slot array (valid during the call, engine.ts). */
  private commitOne(m: StoredMessage, done: AppendCallback | undefined, ref: AppendRef): void {
    this.makeRoom();
    this.hold(m);
    this.copies?.make();
    this.last = m.offset;
    this.expire(m.timestamp);
    // Taken while in use: a handler that commits again (it never does today) gets its own.
    const batch = solo ?? [m];
    solo = null;
    batch[0] = m;
    try {
      this.onCommit(this.name, batch);
    } catch (err) {
      this.log.error({ err, channel: this.name }, 'storage: commit handler threw');
    } finally {
      batch[0] = NO_MESSAGE;
      solo = batch;
    }
    if (done === undefined) return;
    try {
      done(null, m.offset, ref, this.name, m.end - m.start);
    } catch (err) {
      this.log.error({ err, channel: this.name }, 'storage: append callback threw');
    }
  }

  private commitBatch(p: Pending): void {
    const { messages: batch, done, refs } = p;
    for (let i = 0; i < batch.length; i++) {
      this.makeRoom();
      this.hold(batch[i]!);
    }
    // Before anything can read the ring (reads and the handler below come after this).
    this.copies?.make();
    const newest = batch[batch.length - 1]!;
    this.last = newest.offset;
    this.expire(newest.timestamp);
    // A microtask has no caller to hand an exception to: one that escaped would end the process.
    try {
      this.onCommit(this.name, batch);
    } catch (err) {
      this.log.error({ err, channel: this.name }, 'storage: commit handler threw');
    }
    if (done === null || refs === null) return;
    for (let i = 0; i < batch.length; i++) {
      try {
        const m = batch[i]!;
        done[i]?.(null, m.offset, refs[i]!, this.name, m.end - m.start);
      } catch (err) {
        this.log.error({ err, channel: this.name }, 'storage: append callback threw');
      }
    }
  }

  read(from: number, maxMessages: number, maxBytes: number): Promise<StoredMessage[]> {
    this.expire(Date.now());
    const out: StoredMessage[] = [];
    let bytes = 0;
    for (let i = Math.max(0, from - this.first); i < this.size && out.length < maxMessages && bytes < maxBytes; i++) {
      const m = this.message(i);
      out.push(m);
      bytes += m.end - m.start;
    }
    return Promise.resolve(out);
  }

  resolve(position: StartPosition): Promise<number> {
    this.expire(Date.now());
    switch (position.kind) {
      case 'beginning':
        return Promise.resolve(this.first);
      case 'new':
        return Promise.resolve(this.last + 1);
      case 'offset':
        return Promise.resolve(Math.max(1, position.offset));
      case 'last':
        return Promise.resolve(Math.max(this.first, this.last - position.count + 1));
      case 'time': {
        for (let i = 0; i < this.size; i++) {
          if (this.timestampAt(i) >= position.time) return Promise.resolve(this.first + i);
        }
        return Promise.resolve(this.last + 1);
      }
    }
  }

  stats(): ChannelStats {
    return { channel: this.name, first: this.first, head: this.last, messages: this.size, bytes: this.bytes };
  }

  /** Makes a free slot: the ring doubles up to its bound, then the oldest message goes. */
  private makeRoom(): void {
    if (this.size !== this.capacity) return;
    if (this.size < this.bound) this.resize(Math.min(this.bound, this.capacity * 2));
    else this.dropOldest();
  }

  /** Packs a message into the next free slot (there is one). */
  private hold(m: StoredMessage): void {
    const slot = this.slotOf(this.size);
    const length = m.end - m.start;
    let slab: Buffer;
    let position = 0;
    if (length > OWN_BUFFER) {
      slab = Buffer.allocUnsafeSlow(length);
      // Later messages start a new slab: a slab's messages stay consecutive (dropOldest relies on it).
      this.slab = null;
    } else {
      if (this.slab === null || this.slabUsed + length > this.slab.length) this.newSlab(length);
      slab = this.slab!;
      position = this.slabUsed;
      this.slabUsed += length;
    }
    if (length > DEFER_OVER && this.copies !== null) this.copies.note(slab, position, m.data, m.start, m.end);
    else copyBytes(slab, position, m.data, m.start, m.end);
    const n = slot * NUMBERS;
    this.numbers[n + TIME] = m.timestamp;
    this.numbers[n + POS] = position;
    this.numbers[n + LEN] = length;
    const r = slot * REFS;
    this.refs[r + SLAB] = slab;
    this.refs[r + PUBLISHER] = m.publisher;
    this.refs[r + REPLY] = m.reply;
    this.size++;
    this.bytes += length;
  }

  /** Starts a slab with room for `length`; the one before stays with the messages in it. */
  private newSlab(length: number): void {
    let size = this.nextSlab;
    while (size < length) size *= 2;
    this.slab = this.slabs.get(size);
    this.slabUsed = 0;
    this.nextSlab = Math.min(MAX_SLAB, size * 2);
  }

  /** The i-th held message (0 = oldest), with a copy of its payload. */
  private message(i: number): StoredMessage {
    const slot = this.slotOf(i);
    const n = slot * NUMBERS;
    const r = slot * REFS;
    const position = this.numbers[n + POS]!;
    const length = this.numbers[n + LEN]!;
    const payload = Buffer.allocUnsafe(length);
    copyBytes(payload, 0, this.refs[r + SLAB] as Buffer, position, position + length);
    return {
      channel: this.name,
      offset: this.first + i,
      timestamp: this.numbers[n + TIME]!,
      publisher: this.refs[r + PUBLISHER] as string,
      reply: this.refs[r + REPLY] as string,
      data: payload,
      start: 0,
      end: length,
    };
  }

  private timestampAt(i: number): number {
    return this.numbers[this.slotOf(i) * NUMBERS + TIME]!;
  }

  /** The ring slot of the i-th held message (0 = oldest; `size` is the next free one). */
  private slotOf(i: number): number {
    return (this.start + i) % this.capacity;
  }

  private dropOldest(): void {
    const r = this.start * REFS;
    const slab = this.refs[r + SLAB] as Buffer;
    this.bytes -= this.numbers[this.start * NUMBERS + LEN]!;
    this.refs[r + SLAB] = this.refs[r + PUBLISHER] = this.refs[r + REPLY] = undefined;
    this.start = (this.start + 1) % this.capacity;
    this.size--;
    // Slabs fill in offset order: the oldest message leaving its slab was the slab's last one.
    if (slab !== this.slab && (this.size === 0 || this.refs[this.start * REFS + SLAB] !== slab)) this.slabs.put(slab);
  }

  /** Copies the held messages, oldest first, into a ring of `capacity` slots. */
  private resize(capacity: number): void {
    const numbers = doubles(capacity * NUMBERS);
    const refs = new Array<Buffer | string | undefined>(capacity * REFS);
    for (let i = 0; i < this.size; i++) {
      const from = this.slotOf(i);
      for (let k = 0; k < NUMBERS; k++) numbers[i * NUMBERS + k] = this.numbers[from * NUMBERS + k]!;
      for (let k = 0; k < REFS; k++) refs[i * REFS + k] = this.refs[from * REFS + k];
    }
    this.numbers = numbers;
    this.refs = refs;
    this.capacity = capacity;
    this.start = 0;
  }

  /** Applies the byte and age bounds, then gives back memory the ring no longer needs. */
  private expire(now: number): void {
    const retainAgeMs = this.options.retainAgeMs;
    while (this.size > 0 && this.bytes > this.byteBound) this.dropOldest();
    while (this.size > 0 && retainAgeMs > 0 && now - this.timestampAt(0) > retainAgeMs) this.dropOldest();
    if (this.size === 0 && this.slab !== null) {
      // Emptied: the slab goes back too, and the next burst starts small again.
      this.slabs.put(this.slab);
      this.slab = null;
      this.nextSlab = MIN_SLAB;
    }
    // Halve only below a quarter full, so a channel near the threshold does not resize back and forth.
    if (this.capacity > MIN_RING && this.size * 4 <= this.capacity) {
      this.resize(Math.max(MIN_RING, this.capacity >> 1));
    }
  }
}

/**
 * Settled once: `then` on it queues the commit's microtask. queueMicrotask wraps each in an
 * AsyncResource (a bound function, async-hooks bookkeeping before and after it runs): at one
 * message a turn (20,000 msgs/s, paced) that was ~160 bytes a message more than `then`, 15% of
 * what the broker allocated (sampling heap profile, docs/performance-history.md, twelfth round).
 */
const SETTLED = Promise.resolve();

const commitLog = (log: MemoryChannelLog): void => log.commit();

/** What the one-slot batch holds between commits (it must not keep a payload alive). */
const NO_MESSAGE: StoredMessage = Object.freeze({ channel: '', offset: 0, timestamp: 0, publisher: '', reply: '', data: Buffer.alloc(0), start: 0, end: 0 });
/** The one-slot batch, shared by every memory channel; null while a commit uses it. */
let solo: StoredMessage[] | null = [NO_MESSAGE];

/** An array V8 keeps as unboxed doubles from the start (filled with a non-integer). */
const doubles = (n: number): number[] => new Array<number>(n).fill(0.5);

export class MemoryStorageEngine implements StorageEngine {
  readonly driver = 'memory';
  private readonly logs = new Map<string, MemoryChannelLog>();
  private readonly slabs = new SlabPool();
  /** Shared by the channels: each makes its copies before its commit returns. */
  private readonly copies = CopyList.native ? new CopyList() : null;
  private onCommit: CommitHandler | null = null;
  /** Channels with appends waiting for this turn's commit microtask. */
  private readonly toCommit = new WorkList<MemoryChannelLog>();
  private readonly commitAll = (): void => this.toCommit.drain(commitLog, this.schedule);
  private readonly schedule = (log: MemoryChannelLog): void => {
    if (this.toCommit.add(log)) void SETTLED.then(this.commitAll);
  };

  constructor(
    private readonly options: StorageOptions,
    private readonly log: Log,
  ) {}

  start(onCommit: CommitHandler): Promise<void> {
    this.onCommit = onCommit;
    return Promise.resolve();
  }

  channels(): string[] {
    return [...this.logs.keys()];
  }

  has(channel: string): boolean {
    return this.logs.has(channel);
  }

  channel(name: string): ChannelLog {
    let log = this.logs.get(name);
    if (!log) {
      if (!this.onCommit) throw new Error('storage engine not started');
      log = new MemoryChannelLog(name, this.options, this.onCommit, this.log, this.slabs, this.schedule, this.copies);
      this.logs.set(name, log);
    }
    return log;
  }

  rotate(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

export const memoryDriver: StorageDriver = Object.freeze({
  name: 'memory',
  create: (options: StorageOptions, log: Log) => new MemoryStorageEngine(options, log),
});
