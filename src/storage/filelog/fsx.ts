/** The few file-descriptor calls the log needs, as promises (numeric fds: no FileHandle GC). */
import fs from 'node:fs';
import { promisify } from 'node:util';

export const openFile = promisify(fs.open);
export const closeFile = promisify(fs.close);
export const fdatasync = promisify(fs.fdatasync);
export const ftruncate = promisify(fs.ftruncate);
export const fstat = promisify(fs.fstat);
const writev = promisify(fs.writev);
const read = promisify(fs.read);

/** Writes every buffer at `position`; libuv already retries short writes, a remainder is an error. */
export async function writeAll(fd: number, buffers: readonly Buffer[], bytes: number, position: number): Promise<void> {
  const { bytesWritten } = await writev(fd, buffers, position);
  if (bytesWritten !== bytes) throw new Error(`short write: ${bytesWritten} of ${bytes} bytes`);
}

/** writeAll from the event loop (see inline-writes.ts for when that is worth it). */
export function writeAllSync(fd: number, buffers: readonly Buffer[], bytes: number, position: number): void {
  const written = fs.writevSync(fd, buffers as Buffer[], position);
  if (written !== bytes) throw new Error(`short write: ${written} of ${bytes} bytes`);
}

/** Fills buf[0..length) from `position`; returns how many bytes the file had there. */
export async function readAt(fd: number, buf: Buffer, length: number, position: number): Promise<number> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await read(fd, buf, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

/** Makes a directory entry (a new segment, a new channel) durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fd = await openFile(dir, 'r');
  try {
    await promisify(fs.fsync)(fd);
  } finally {
    await closeFile(fd);
  }
}

export function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** Cuts a file (not open elsewhere) to `length` bytes, durably. */
export async function truncateFile(file: string, length: number): Promise<void> {
  const fd = await openFile(file, 'r+');
  try {
    await ftruncate(fd, length);
    await fdatasync(fd);
  } finally {
    await closeFile(fd);
  }
}
