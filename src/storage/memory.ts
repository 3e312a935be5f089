/**
 * The `memory` driver: per channel, a bounded ring of recent messages and nothing on disk.
 *
 * `append` is synchronous end to end: it assigns the offset, stores the message, calls the
 * commit handler and then the append callback, all before it returns (there is no durability
 * to wait for, and a microtask per publish would cost more than it protects). Callers must not
 * rely on code after `append` running before the callback.
 *
 * Bounds: retainMessages (or 10,000 when 0), retainBytes (payload bytes) and retainAgeMs
 * (by message timestamp); the oldest messages go first. The ring starts small and doubles up to
 * that bound, and halves when retention empties it, so an idle channel costs a few hundred
 * bytes, not the bound (100,000 channels must fit in memory). Readers that fall behind are not
 * replayed (`replayable` is false): the broker's slow-consumer policy applies instead.
 */
import type {
  AppendCallback,
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
/** First allocation; a channel that never holds more stays this small. */
const MIN_RING = 4;

export class MemoryChannelLog implements ChannelLog {
  readonly replayable = false;
  private ring: (StoredMessage | undefined)[];
  /** Most messages held at once (the retention bound in messages). */
  private readonly bound: number;
  /** Index of the oldest message in `ring`. */
  private start = 0;
  private size = 0;
  private bytes = 0;
  private last = 0;
  /** The one-message batch handed to the commit handler, reused (it may not keep the array). */
  private readonly batch: StoredMessage[] = [];

  constructor(
    readonly name: string,
    private readonly options: StorageOptions,
    private readonly onCommit: CommitHandler,
  ) {
    this.bound = options.retainMessages > 0 ? options.retainMessages : DEFAULT_RING;
    this.ring = new Array<StoredMessage | undefined>(Math.min(MIN_RING, this.bound));
  }

  get head(): number {
    return this.last;
  }

  get first(): number {
    return this.size > 0 ? this.at(0).offset : this.last + 1;
  }

  append(message: NewMessage, done?: AppendCallback, ref = ''): void {
    const stored: StoredMessage = {
      channel: this.name,
      offset: this.last + 1,
      timestamp: message.timestamp,
      publisher: message.publisher,
      reply: message.reply,
      payload: message.payload,
    };
    if (this.size === this.ring.length) {
      if (this.size < this.bound) this.resize(Math.min(this.bound, this.ring.length * 2));
      else this.dropOldest();
    }
    this.ring[(this.start + this.size) % this.ring.length] = stored;
    this.size++;
    this.bytes += stored.payload.length;
    this.last = stored.offset;
    this.expire(stored.timestamp);
    this.batch[0] = stored;
    this.onCommit(this.name, this.batch);
    done?.(null, stored.offset, ref, this.name, stored.payload.length);
  }

  read(from: number, maxMessages: number, maxBytes: number): Promise<StoredMessage[]> {
    this.expire(Date.now());
    const out: StoredMessage[] = [];
    let bytes = 0;
    for (let i = Math.max(0, from - this.first); i < this.size && out.length < maxMessages && bytes < maxBytes; i++) {
      const m = this.at(i);
      out.push(m);
      bytes += m.payload.length;
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
          const m = this.at(i);
          if (m.timestamp >= position.time) return Promise.resolve(m.offset);
        }
        return Promise.resolve(this.last + 1);
      }
    }
  }

  stats(): ChannelStats {
    return { channel: this.name, first: this.first, head: this.last, messages: this.size, bytes: this.bytes };
  }

  private at(i: number): StoredMessage {
    return this.ring[(this.start + i) % this.ring.length]!;
  }

  private dropOldest(): void {
    const m = this.at(0);
    this.ring[this.start] = undefined;
    this.start = (this.start + 1) % this.ring.length;
    this.size--;
    this.bytes -= m.payload.length;
  }

  /** Copies the held messages, oldest first, into a ring of `capacity` slots. */
  private resize(capacity: number): void {
    const ring = new Array<StoredMessage | undefined>(capacity);
    for (let i = 0; i < this.size; i++) ring[i] = this.at(i);
    this.ring = ring;
    this.start = 0;
  }

  /** Applies the byte and age bounds, then gives back memory the ring no longer needs. */
  private expire(now: number): void {
    const { retainBytes, retainAgeMs } = this.options;
    while (this.size > 0 && retainBytes > 0 && this.bytes > retainBytes) this.dropOldest();
    while (this.size > 0 && retainAgeMs > 0 && now - this.at(0).timestamp > retainAgeMs) this.dropOldest();
    // Halve only below a quarter full, so a channel near the threshold does not resize back and forth.
    if (this.ring.length > MIN_RING && this.size * 4 <= this.ring.length) {
      this.resize(Math.max(MIN_RING, this.ring.length >> 1));
    }
  }
}

export class MemoryStorageEngine implements StorageEngine {
  readonly driver = 'memory';
  private readonly logs = new Map<string, MemoryChannelLog>();
  private onCommit: CommitHandler | null = null;

  constructor(private readonly options: StorageOptions) {}

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
      log = new MemoryChannelLog(name, this.options, this.onCommit);
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
  create: (options: StorageOptions, _log: Log) => new MemoryStorageEngine(options),
});
