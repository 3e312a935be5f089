/**
 * Heap bytes per channel of a storage driver, without a broker or sockets:
 * `node --expose-gc dist/bench/channel-memory.js [--driver memory] [--channels 20000] [--messages 1]`.
 * Creates the channels, appends `messages` 16 B messages to each, and reports the heap growth
 * (after a full GC) divided by the channel count. The file driver also reports its open
 * descriptors (from /proc/self/fd).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { defaultStorageOptions, newMessage, type Log } from '../src/storage/engine.js';
import { getDriver } from '../src/storage/registry.js';
import '../src/storage/builtin.js';

function arg(flag: string, def: string): string {
  const i = process.argv.indexOf(`--${flag}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : def;
}
const driver = arg('driver', 'memory');
const channels = Number(arg('channels', '20000'));
const messages = Number(arg('messages', '1'));
const quiet: Log = { info() {}, warn() {}, error() {}, debug() {} };
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');

const heap = (): number => {
  gc();
  gc();
  return process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
};
const fds = (): number => fs.readdirSync('/proc/self/fd').length;

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fluctuat-chanmem-'));
const engine = getDriver(driver).create({ ...defaultStorageOptions, dataDir }, quiet);
await engine.start(() => {});
const payload = Buffer.alloc(16, 120);
const names = Array.from({ length: channels }, (_, i) => `bench.c${i}`);
const before = heap();
const fdBefore = fds();
let pending = 0;
await new Promise<void>((resolve, reject) => {
  pending = channels * messages;
  const done = (err: Error | null): void => {
    if (err) reject(err);
    else if (--pending === 0) resolve();
  };
  for (const name of names) {
    const log = engine.channel(name);
    for (let m = 0; m < messages; m++) log.append(newMessage(Date.now(), 'p', '', payload), done);
  }
});
const after = heap();
const fdAfter = fds();
console.log(
  JSON.stringify({
    driver,
    channels,
    messagesPerChannel: messages,
    heapBytesPerChannel: Math.round((after - before) / channels),
    openFdsAdded: fdAfter - fdBefore,
  }),
);
await engine.close();
fs.rmSync(dataDir, { recursive: true, force: true });
