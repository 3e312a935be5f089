/**
 * `node dist/bench/hotpath.js`: the broker's CPU cost per message without sockets. A publisher
 * session is fed pre-encoded PUB frames; a subscriber session writes into a sink. This
 * isolates parse + route + fan-out + encode from the kernel and from the load generator, so a
 * change to the hot path can be judged on a busy machine (compare runs side by side).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Duplex } from 'node:stream';
import { Command, InvalidArgumentError, Option } from 'commander';
import { pino } from 'pino';
import { Broker, defaultBrokerOptions } from '../src/core/broker.js';
import { Session, defaultSessionOptions } from '../src/server/session.js';
import { defaultStorageOptions } from '../src/storage/engine.js';
import { getDriver } from '../src/storage/registry.js';
import '../src/storage/builtin.js';

class Sink extends Duplex {
  bytes = 0;
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.bytes += chunk.length;
    cb();
  }
}

const whole = (min: number) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`a whole number of at least ${min}`);
  return n;
};
// Flags, or the environment variables earlier rounds' commands use (docs/performance-history.md).
const opts = new Command('bench:hotpath')
  .description("The broker's CPU per message without sockets: pre-encoded PUB frames into a publisher session, deliveries into sinks. Compare two builds side by side.")
  .addOption(new Option('--storage <driver>', 'storage driver').choices(['memory', 'file']).env('STORAGE').default('memory'))
  .addOption(new Option('--messages <n>', 'messages to publish').env('N').argParser(whole(1)).default(1_000_000))
  .addOption(new Option('--subscribers <n>', 'subscribers on the channel').env('SUBS').argParser(whole(1)).default(1))
  .addOption(new Option('--publishers <n>', 'publisher sessions, fed a read each in turn (fan-in)').env('PUBS').argParser(whole(1)).default(1))
  .addOption(new Option('--size <bytes>', 'payload size').env('SIZE').argParser(whole(0)).default(16))
  .addOption(new Option('--no-acks', 'publish without ack ids (env: ACK=0)'))
  .addOption(new Option('--distinct-sids', 'each subscriber picks its own sid, so no shared blocks (env: SIDS=distinct)'))
  // Messages in flight (published, not yet delivered), as the network benchmark's end-to-end
  // window: without it a durable channel stages the whole run before its first write commits,
  // and the run measures a heap of hundreds of MB instead of the steady state.
  .addOption(new Option('--window <n>', 'messages published and not yet delivered, at most').env('WINDOW').argParser(whole(1)).default(16_384))
  .addOption(new Option('--counters', "also print the storage driver's counters (env: COUNTERS=1)"))
  .parse(process.argv)
  .opts<{ storage: string; messages: number; subscribers: number; publishers: number; size: number; acks: boolean; distinctSids?: boolean; window: number; counters?: boolean }>();
const N = opts.messages;
const SUBS = opts.subscribers;
const PUBS = opts.publishers;
const SIZE = opts.size;
const ACK = opts.acks && process.env.ACK !== '0';
const DISTINCT = opts.distinctSids === true || process.env.SIDS === 'distinct';
const WINDOW = opts.window;
const COUNTERS = opts.counters === true || process.env.COUNTERS === '1';

/** CPU seconds of this process's main thread (Linux; NaN elsewhere): the other threads excluded. */
function mainThreadCpu(): number {
  try {
    const stat = fs.readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime, fields 14 and 15 of stat(5), in clock ticks (USER_HZ, 100 on Linux).
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

async function main(): Promise<void> {
  const log = pino({ level: 'silent' });
  const storage = opts.storage;
  const dataDir = storage === 'file' ? fs.mkdtempSync(path.join(os.tmpdir(), 'fluctuat-hot-')) : '';
  const engine = getDriver(storage).create({ ...defaultStorageOptions, retainMessages: 1000, dataDir }, log);
  const broker = new Broker(engine, defaultBrokerOptions, log);
  await broker.start();
  const options = { ...defaultSessionOptions, maxInflight: 1e9, outboundHighWater: 1e12 };
  const subs = Array.from({ length: SUBS }, (_, i) => {
    const sink = new Sink();
    new Session(i + 1, sink, broker, options, log, 'sub');
    sink.emit('data', Buffer.from(`mode machine\nSUB ${DISTINCT ? `s${i}` : 's'} hot.chan\n`));
    return sink;
  });
  const pubs = Array.from({ length: PUBS }, (_, i) => {
    const sock = new Sink();
    new Session(100 + i, sock, broker, options, log, `pub${i}`);
    sock.emit('data', Buffer.from('mode machine\n'));
    return sock;
  });
  const frame = Buffer.concat([Buffer.from(`PUB hot.chan ${ACK ? '12345' : '-'} - ${SIZE}\n`), Buffer.alloc(SIZE, 0x61), Buffer.from('\n')]);
  const perChunk = Math.max(1, Math.floor(65536 / frame.length));
  const chunk = Buffer.concat(Array.from({ length: perChunk }, () => frame));
  await new Promise((r) => setImmediate(r));
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const elu0 = performance.eventLoopUtilization();
  const main0 = mainThreadCpu();
  let sent = 0;
  let turn = 0;
  while (sent < N) {
    while (sent - broker.counters.delivered / SUBS > WINDOW) await new Promise((r) => setTimeout(r, 1));
    pubs[turn++ % PUBS]!.emit('data', chunk);
    sent += perChunk;
    // As after a real socket read: microtasks run (a memory channel commits the read's batch).
    await null;
    if ((sent / perChunk) % 16 === 0) await new Promise((r) => setImmediate(r)); // let outboxes flush
  }
  await new Promise((r) => setImmediate(r));
  // Durable: wait for every message to be committed (delivered) before stopping the clock.
  while (broker.counters.delivered < sent * SUBS) await new Promise((r) => setTimeout(r, 1));
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  // The event loop's own busy time (process CPU also counts libuv's and V8's other threads).
  const loopUs = (performance.eventLoopUtilization(elu0).active * 1000) / sent;
  const mainUs = ((mainThreadCpu() - main0) * 1e6) / sent;
  const cpuUs = (cpu.user + cpu.system) / sent; // less disturbed by other load than wall time
  const storageCounters = engine.counters?.() ?? {};
  await broker.close();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  console.log(
    `hotpath (${storage}): ${sent.toLocaleString('en-US')} msgs of ${SIZE} B, ${PUBS > 1 ? `${PUBS} publishers, ` : ''}${SUBS} subscriber(s)${DISTINCT ? ' with distinct sids' : ''}, acks ${ACK ? 'on' : 'off'}: ` +
      `${Math.round(sent / (ms / 1000)).toLocaleString('en-US')} msgs/s, ${((ms * 1000) / sent).toFixed(2)} µs/msg, ${cpuUs.toFixed(2)} µs CPU/msg, ${loopUs.toFixed(2)} µs loop/msg, ${mainUs.toFixed(2)} µs main-thread CPU/msg, ` +
      `delivered bytes ${subs.reduce((n, s) => n + s.bytes, 0).toLocaleString('en-US')}, delivered ${broker.counters.delivered.toLocaleString('en-US')}` +
      (COUNTERS ? `\n${JSON.stringify(storageCounters)}` : ''),
  );
}

void main();
