/**
 * A bounded pool of open segment descriptors, shared by every channel of a file engine, so
 * that 100,000 channels do not need 100,000 descriptors (EMFILE past the process's limit).
 *
 * Least recently used first out, but only a descriptor that is *evictable*: nobody is reading
 * or writing through it, and everything written through it has been fsynced (policies
 * `always` and `interval`). Unsynced data is never closed behind an acknowledgement's back:
 * such a descriptor stays open until the group commit (at most one fsync interval away)
 * has synced it, and an open that needs its slot waits for that. Under `fsync never`
 * nothing waits for an fsync, so a written descriptor is evictable once idle: its data is in
 * the page cache, which a close does not drop.
 *
 * The bound is strict: a slot is counted from the moment an open is decided until its close
 * has completed. Waiting cannot deadlock, because no caller holds one descriptor while
 * waiting for another (every read, write and fsync uses one segment at a time).
 */
import fs from 'node:fs';

/** What the pool needs from a segment. */
export interface PooledFile {
  /** Idle and synced: closing it loses nothing and disturbs no one. */
  readonly evictable: boolean;
  /** Closes the descriptor; calls `closing` at once and `closed` when done. */
  close(): Promise<void>;
}

export class FdPool {
  /** Open descriptors, least recently used first (a Map keeps insertion order). */
  private readonly lru = new Map<PooledFile, true>();
  /**
   * The last key of `lru`, or null when not known: touching it again moves nothing. Every
   * write touches its segment, and a delete and set on the Map for each rehashed its table
   * every few writes (~60 bytes a message at one publish a turn).
   */
  private newest: PooledFile | null = null;
  /** Opens decided but not finished, and closes started but not finished. */
  private pending = 0;
  private readonly waiting: (() => void)[] = [];
  /** Opens that had to wait for a slot (a counter for stats and tests). */
  waits = 0;
  /** Descriptors closed to make room. */
  evictions = 0;

  constructor(
    readonly capacity: number,
    /** Called when an open has to wait: the unsynced descriptors' group fsync should not tarry. */
    private readonly onWait: () => void = () => {},
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new TypeError(`open-file capacity must be a whole number >= 1, got ${capacity}`);
  }

  /** Descriptors open or being opened or closed. */
  get size(): number {
    return this.lru.size + this.pending;
  }

  /** Resolves once one more descriptor fits; the caller then opens and reports `opened` or `failed`. */
  async reserve(): Promise<void> {
    let waited = false;
    while (this.size >= this.capacity) {
      this.evictOne();
      if (!waited) this.waits++;
      waited = true;
      this.onWait();
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    this.pending++;
  }

  opened(file: PooledFile): void {
    this.pending--;
    this.lru.set(file, true);
    this.newest = file;
  }

  /** The open that `reserve` made room for failed (or, from `borrow`, is closed again). */
  failed(): void {
    this.pending--;
    this.wakeOne();
  }

  /** Marks a descriptor most recently used. */
  touch(file: PooledFile): void {
    if (file === this.newest) return;
    if (this.lru.delete(file)) {
      this.lru.set(file, true);
      this.newest = file;
    }
  }

  /** A close has started: the slot stays taken until `closed`. */
  closing(file: PooledFile): void {
    if (file === this.newest) this.newest = null;
    if (this.lru.delete(file)) this.pending++;
  }

  closed(): void {
    this.pending--;
    this.wakeOne();
  }

  /** Runs `use` with one slot held, for a descriptor opened and closed inside it (a directory fsync). */
  async borrow<T>(use: () => Promise<T>): Promise<T> {
    await this.reserve();
    try {
      return await use();
    } finally {
      this.failed(); // gives the slot back
    }
  }

  /** A descriptor may have become evictable (released, fsynced): use it if someone waits. */
  available(): void {
    if (this.waiting.length > 0 && this.size >= this.capacity) this.evictOne();
  }

  private evictOne(): void {
    for (const file of this.lru.keys()) {
      if (!file.evictable) continue;
      this.evictions++;
      void file.close().catch(() => {});
      return;
    }
  }

  private wakeOne(): void {
    this.waiting.shift()?.();
  }
}

/** Used when the limit cannot be read (not Linux): a quarter of the usual 1024. */
const FALLBACK_OPEN_FILES = 256;
/** Upper bound of the default: more open segments than this buy nothing but kernel memory. */
const MAX_DEFAULT_OPEN_FILES = 65_536;

/**
 * The default capacity: half of the process's soft RLIMIT_NOFILE (Node raises the soft limit
 * to the hard one at start), leaving the other half to connections, listeners and logs.
 */
export function defaultOpenFiles(limitsFile = '/proc/self/limits'): number {
  let limit = 0;
  try {
    const line = fs.readFileSync(limitsFile, 'latin1').split('\n').find((l) => l.startsWith('Max open files'));
    const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
    limit = soft === 'unlimited' ? Infinity : Number(soft);
  } catch {
    // not Linux: fall back below
  }
  if (!(limit > 0)) return FALLBACK_OPEN_FILES;
  return Math.max(16, Math.min(MAX_DEFAULT_OPEN_FILES, Math.floor(limit / 2)));
}
