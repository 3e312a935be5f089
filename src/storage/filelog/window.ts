import { readAt } from './fsx.js';

const EMPTY = Buffer.alloc(0);

/**
 * A sliding view over the bytes [0, end) of a file, loaded with large sequential reads.
 * `buf[i]` is the byte at file position `start + i`.
 */
export class FileWindow {
  buf: Buffer = EMPTY;
  start = 0;

  /**
   * @param reuse keep one buffer for every load: only for callers that keep nothing in it
   *              (scans); readers hand payload ranges of it out, so they get a fresh buffer per load.
   */
  constructor(
    private readonly fd: number,
    readonly end: number,
    private readonly chunk: number,
    private readonly reuse = false,
  ) {}

  /** True when [pos, pos + n) is in the buffer. */
  covers(pos: number, n: number): boolean {
    return pos >= this.start && pos + n <= this.start + this.buf.length;
  }

  /**
   * Loads at least [pos, pos + n), and up to a chunk more. False when the range passes `end`
   * or the file turned out shorter than `end` (a torn or truncated file).
   */
  async load(pos: number, n: number): Promise<boolean> {
    if (pos + n > this.end) return false;
    const size = Math.min(this.end - pos, Math.max(n, this.chunk));
    const buf = this.reuse && this.buf.length >= size ? this.buf : Buffer.allocUnsafeSlow(size);
    const got = await readAt(this.fd, buf, size, pos);
    this.buf = buf.subarray(0, got);
    this.start = pos;
    return got >= n;
  }
}
