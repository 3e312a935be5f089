/**
 * `npm run bench`: 1 publisher -> 1 subscriber over loopback against a broker child process.
 * Small messages (16 B) and 1 KiB, memory and durable (file, fsync interval) channels:
 * delivered messages per second (publisher pipelining with acks) and p50/p99 latency at a
 * fixed rate. Each figure is the median of RUNS runs. Writes bench/results/latest.json.
 *
 * The load generator speaks the machine protocol directly with pre-encoded frames, so that it
 * is not the bottleneck; its CPU share is reported next to the broker's.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import * as hdr from 'hdr-histogram-js';
import { Framer } from '../src/protocol/framer.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const THROUGHPUT_SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const LATENCY_RATE = Number(process.env.BENCH_RATE ?? 20_000);

interface Broker {
  proc: ChildProcess;
  port: number;
  dir: string;
}

async function startBroker(storage: string): Promise<Broker> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fluctuat-bench-'));
  const args = [...(process.env.BENCH_PROFILE ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_PROFILE] : []), path.join(ROOT, 'bin/fluctuat.js'), 'serve', '--listen', '127.0.0.1:0', '--data', dir, '--storage', storage, '--max-payload', '1m'];
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    proc.once('exit', (code) => reject(new Error(`broker exited ${code}`)));
    readline.createInterface({ input: proc.stdout! }).on('line', (line) => {
      const entry = JSON.parse(line) as { msg?: string; port?: number };
      if (entry.msg === 'listening') resolve(entry.port!);
    });
  });
  return { proc, port, dir };
}

async function stopBroker(b: Broker): Promise<void> {
  await new Promise<void>((resolve) => {
    b.proc.once('exit', () => resolve());
    b.proc.kill('SIGTERM');
  });
  fs.rmSync(b.dir, { recursive: true, force: true });
}

/** A machine-mode connection that counts ACKs and MSGs and hands MSG payloads to a callback. */
class Conn {
  acks = 0;
  msgs = 0;
  onMsg: ((payload: Buffer) => void) | null = null;
  private readonly framer: Framer;
  private constructor(readonly socket: net.Socket) {
    this.framer = new Framer(
      {
        onLine: (line) => {
          if (line[0] === 0x4d /* M */) {
            let i = line.length - 1;
            while (line[i - 1] !== 0x20) i--;
            this.framer.expectPayload(Number(line.toString('latin1', i)));
          } else if (line[0] === 0x41 /* A */) this.acks++;
        },
        onPayload: (p) => {
          this.msgs++;
          this.onMsg?.(p);
        },
        onError: (code, message) => {
          throw new Error(`${code} ${message}`);
        },
      },
      { maxLine: 1 << 16, maxPayload: 1 << 24 },
    );
    socket.on('data', (d: Buffer) => this.framer.push(d));
  }
  static open(port: number): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.setNoDelay(true);
        s.write('mode machine\n');
        resolve(new Conn(s));
      });
      s.once('error', reject);
    });
  }
  close(): void {
    this.socket.destroy();
  }
}

function frame(channel: string, payload: Buffer, ack: boolean): Buffer {
  return Buffer.concat([Buffer.from(`PUB ${channel} ${ack ? 'a' : '-'} - ${payload.length}\n`), payload, Buffer.from('\n')]);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Publish as fast as acks allow (a window of frames in flight) for a while; count deliveries. */
async function throughput(port: number, size: number): Promise<{ rate: number; genCpu: number }> {
  const sub = await Conn.open(port);
  const pub = await Conn.open(port);
  const channel = `bench.t${Date.now()}`;
  sub.socket.write(`SUB s ${channel} from=new\n`);
  await sleep(100);
  const one = frame(channel, Buffer.alloc(size, 0x78), true);
  const BATCH = 256;
  const batch = Buffer.concat(Array.from({ length: BATCH }, () => one));
  const WINDOW = 32 * 1024;
  let sent = 0;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const deadline = t0 + THROUGHPUT_SECONDS * 1000;
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      if (performance.now() > deadline) return resolve();
      while (sent - pub.acks < WINDOW) {
        if (!pub.socket.write(batch)) {
          sent += BATCH;
          pub.socket.once('drain', pump);
          return;
        }
        sent += BATCH;
      }
      setImmediate(pump);
    };
    pump();
  });
  while (sub.msgs < sent && performance.now() < deadline + 30_000) await sleep(5);
  const elapsed = (performance.now() - t0) / 1000;
  const gen = process.cpuUsage(cpu0);
  sub.close();
  pub.close();
  return { rate: sub.msgs / elapsed, genCpu: (gen.user + gen.system) / 1e6 / elapsed };
}

/** Publish at a fixed rate; the payload carries its send time; record delivery latency. */
async function latency(port: number, size: number): Promise<{ p50: number; p99: number; p999: number }> {
  const sub = await Conn.open(port);
  const pub = await Conn.open(port);
  const channel = `bench.l${Date.now()}`;
  sub.socket.write(`SUB s ${channel} from=new\n`);
  await sleep(100);
  const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 10_000_000, numberOfSignificantValueDigits: 3 });
  let warm = 0;
  sub.onMsg = (p) => {
    const sentAt = p.readDoubleLE(0);
    if (++warm > LATENCY_RATE / 10) histogram.recordValue(Math.max(1, Math.round((performance.now() - sentAt) * 1000)));
  };
  const payload = Buffer.alloc(Math.max(size, 8), 0x79);
  const header = Buffer.from(`PUB ${channel} - - ${payload.length}\n`);
  const nl = Buffer.from('\n');
  const seconds = 2;
  const total = LATENCY_RATE * seconds;
  const t0 = performance.now();
  let sent = 0;
  // Send in 1 ms ticks: each tick catches up to the schedule, one frame at a time.
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * LATENCY_RATE));
      while (sent < due) {
        payload.writeDoubleLE(performance.now(), 0);
        pub.socket.write(Buffer.concat([header, payload, nl]));
        sent++;
      }
      if (sent >= total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  while (sub.msgs < total && performance.now() < t0 + (seconds + 10) * 1000) await sleep(5);
  sub.close();
  pub.close();
  return { p50: histogram.getValueAtPercentile(50), p99: histogram.getValueAtPercentile(99), p999: histogram.getValueAtPercentile(99.9) };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

interface Row {
  storage: string;
  size: number;
  msgsPerSec: number;
  p50us: number;
  p99us: number;
  p999us: number;
  generatorCpu: number;
  runs: number;
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  for (const storage of (process.env.BENCH_STORAGE ?? 'memory,file').split(',')) {
    for (const size of (process.env.BENCH_SIZES ?? '16,1024').split(',').map(Number)) {
      const rates: number[] = [];
      const gens: number[] = [];
      const p50: number[] = [];
      const p99: number[] = [];
      const p999: number[] = [];
      for (let r = 0; r < RUNS; r++) {
        const broker = await startBroker(storage);
        try {
          const t = await throughput(broker.port, size);
          rates.push(t.rate);
          gens.push(t.genCpu);
          const l = process.env.BENCH_ONLY === 'throughput' ? { p50: 0, p99: 0, p999: 0 } : await latency(broker.port, size);
          p50.push(l.p50);
          p99.push(l.p99);
          p999.push(l.p999);
        } finally {
          await stopBroker(broker);
        }
      }
      rows.push({ storage, size, msgsPerSec: median(rates), p50us: median(p50), p99us: median(p99), p999us: median(p999), generatorCpu: median(gens), runs: RUNS });
    }
  }
  const table = [
    `fluctuat bench: 1 publisher -> 1 subscriber, loopback, ${os.cpus().length} cores, node ${process.version}`,
    `throughput: ${THROUGHPUT_SECONDS} s pipelined with acks; latency at ${LATENCY_RATE} msgs/s; medians of ${RUNS} runs`,
    '',
    'storage  size   msgs/s delivered   p50 µs   p99 µs  p99.9 µs   generator CPU',
    ...rows.map(
      (r) =>
        `${r.storage.padEnd(8)} ${String(r.size).padStart(4)}B ${Math.round(r.msgsPerSec).toLocaleString('en-US').padStart(18)} ${String(r.p50us).padStart(8)} ${String(r.p99us).padStart(8)} ${String(r.p999us).padStart(9)}   ${(r.generatorCpu * 100).toFixed(0).padStart(5)}%`,
    ),
  ].join('\n');
  console.log(table);
  const out = path.join(ROOT, 'bench', 'results');
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'latest.json'), JSON.stringify({ date: new Date().toISOString(), node: process.version, cores: os.cpus().length, runs: RUNS, rows }, null, 2) + '\n');
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
