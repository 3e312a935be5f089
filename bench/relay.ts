/**
 * `npm run bench:relay`: what moving bytes through one process costs on this machine, with no
 * broker in the way. A producer and a consumer (worker threads of this process) listen on
 * loopback; a relay in a child process connects to both and copies everything from one to the
 * other. Relays:
 *
 *  - `node-stream`: a Node socket's 'data' events written to the other socket as they come
 *    (a fresh 64 KiB buffer per read, handed to the write as it is);
 *  - `node-onread`: `net.connect`'s `onread` with one reused 64 KiB buffer, each read copied
 *    into a ring of 256 KiB chunks before it is written (the broker's outbox pools chunks so);
 *  - `c`: bench/relay.c, blocking read(2)/write(2), compiled with `cc -O2` (skipped without one).
 *
 * It reports each relay's throughput and CPU per GB (user and system) and the CPU that makes a
 * 16 KiB message: the floor under any Node broker's large-message throughput, next to C's
 * (docs/performance-history.md, eighteenth round).
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { Command, InvalidArgumentError, Option } from 'commander';

const RELAYS = ['node-stream', 'node-onread', 'c'] as const;
type RelayName = (typeof RELAYS)[number];
const READ_BYTES = 64 * 1024;
const MESSAGE = 16 * 1024;

interface RelayReport {
  bytes: number;
  seconds: number;
  userSeconds: number;
  systemSeconds: number;
}

const here = path.dirname(fileURLToPath(import.meta.url));

const whole = (min: number) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`a whole number of at least ${min}`);
  return n;
};

// --- the relay, in its own process ---------------------------------------------------------

/** Connects to the consumer, then the producer, and copies until the producer ends. */
function runNodeRelay(kind: RelayName, producerPort: number, consumerPort: number): void {
  const out = net.connect(consumerPort, '127.0.0.1');
  out.on('connect', () => {
    let cpu0: NodeJS.CpuUsage | null = null;
    let t0 = 0;
    let bytes = 0;
    const first = (): void => {
      cpu0 = process.cpuUsage();
      t0 = performance.now();
    };
    const finish = (): void => {
      out.end(() => {
        const cpu = process.cpuUsage(cpu0 ?? undefined);
        const report: RelayReport = { bytes, seconds: (performance.now() - t0) / 1000, userSeconds: cpu.user / 1e6, systemSeconds: cpu.system / 1e6 };
        process.stdout.write(`${JSON.stringify(report)}\n`);
      });
    };
    if (kind === 'node-stream') {
      const input = net.connect(producerPort, '127.0.0.1');
      input.on('data', (chunk: Buffer) => {
        if (cpu0 === null) first();
        bytes += chunk.length;
        out.write(chunk);
      });
      input.on('end', finish);
      return;
    }
    const read = Buffer.allocUnsafeSlow(READ_BYTES);
    const ring = Array.from({ length: 16 }, () => Buffer.allocUnsafeSlow(4 * READ_BYTES));
    let r = 0;
    let used = 0;
    const input = net.connect({
      port: producerPort,
      host: '127.0.0.1',
      onread: {
        buffer: read,
        callback: (n: number, buf: Uint8Array): boolean => {
          if (cpu0 === null) first();
          bytes += n;
          let chunk = ring[r]!;
          if (used + n > chunk.length) {
            r = (r + 1) % ring.length;
            chunk = ring[r]!;
            used = 0;
          }
          chunk.set(buf.subarray(0, n), used);
          out.write(chunk.subarray(used, used + n));
          used += n;
          return true;
        },
      },
    });
    input.on('end', finish);
  });
}

// --- producer and consumer, worker threads of the harness ------------------------------------

interface PeerData {
  role: 'producer' | 'consumer';
  bytes: number;
}

function runPeer({ role, bytes }: PeerData): void {
  const server = net.createServer((socket) => {
    server.close();
    if (role === 'producer') {
      const block = Buffer.alloc(4 * MESSAGE, 0x78);
      let sent = 0;
      const pump = (): void => {
        while (sent < bytes) {
          sent += block.length;
          if (!socket.write(block)) {
            socket.once('drain', pump);
            return;
          }
        }
        socket.end();
      };
      pump();
    } else {
      let got = 0;
      socket.on('data', (chunk: Buffer) => {
        got += chunk.length;
      });
      socket.on('end', () => parentPort!.postMessage({ got }));
    }
  });
  server.listen(0, '127.0.0.1', () => parentPort!.postMessage({ port: (server.address() as net.AddressInfo).port }));
}

// --- the harness -----------------------------------------------------------------------------

function startPeer(data: PeerData): Promise<{ port: number; done: Promise<number> }> {
  const worker = new Worker(fileURLToPath(import.meta.url), { workerData: data });
  return new Promise((resolve, reject) => {
    let done: (got: number) => void;
    const finished = new Promise<number>((res) => (done = res));
    worker.on('error', reject);
    worker.on('message', (m: { port?: number; got?: number }) => {
      if (m.port !== undefined) resolve({ port: m.port, done: finished });
      if (m.got !== undefined) {
        done(m.got);
        void worker.terminate();
      }
    });
  });
}

/** Compiles bench/relay.c into a temporary directory, or says why it could not (no compiler). */
function compileC(): { binary: string } | { skipped: string } {
  const source = path.join(here, '..', '..', 'bench', 'relay.c');
  const binary = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fluctuat-relay-')), 'relay');
  try {
    execFileSync('cc', ['-O2', '-o', binary, source], { stdio: 'pipe' });
    return { binary };
  } catch (err) {
    return { skipped: `no C relay: cc -O2 ${source} failed (${(err as Error).message.split('\n')[0]})` };
  }
}

async function runOnce(kind: RelayName, bytes: number, cBinary: string | null): Promise<RelayReport> {
  const producer = await startPeer({ role: 'producer', bytes });
  const consumer = await startPeer({ role: 'consumer', bytes });
  const args = [String(producer.port), String(consumer.port)];
  const child =
    kind === 'c'
      ? spawn(cBinary!, [...args, String(READ_BYTES)], { stdio: ['ignore', 'pipe', 'inherit'] })
      : spawn(process.execPath, [fileURLToPath(import.meta.url), '--relay', kind, '--ports', args.join(',')], { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  const got = await consumer.done;
  if (code !== 0) throw new Error(`${kind} relay exited with ${code}`);
  if (got !== bytes) throw new Error(`${kind} relay: the consumer got ${got} of ${bytes} bytes`);
  const report = JSON.parse(stdout.trim()) as RelayReport;
  if (report.bytes !== bytes) throw new Error(`${kind} relay: relayed ${report.bytes} of ${bytes} bytes`);
  return report;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function harness(opts: { gigabytes: number; runs: number; relays: RelayName[] }): Promise<void> {
  const bytes = Math.round(opts.gigabytes * 2 ** 30 / (4 * MESSAGE)) * 4 * MESSAGE;
  let cBinary: string | null = null;
  const relays = [...opts.relays];
  if (relays.includes('c')) {
    const c = compileC();
    if ('binary' in c) cBinary = c.binary;
    else {
      console.log(c.skipped);
      relays.splice(relays.indexOf('c'), 1);
    }
  }
  const results = new Map<RelayName, RelayReport[]>(relays.map((r) => [r, []]));
  // Alternated, so a machine growing busier weighs on every relay alike.
  for (let run = 1; run <= opts.runs; run++) {
    for (const kind of relays) {
      const r = await runOnce(kind, bytes, cBinary);
      results.get(kind)!.push(r);
      const gb = r.bytes / 1e9;
      console.log(`run ${run}/${opts.runs}  ${kind.padEnd(12)} ${(r.bytes / r.seconds / 1e6).toFixed(0).padStart(6)} MB/s  CPU ${(((r.userSeconds + r.systemSeconds) / gb) * 1000).toFixed(0)} ms/GB`);
    }
  }
  const rows = relays.map((kind) => {
    const rs = results.get(kind)!;
    const cpuPerGb = median(rs.map((r) => ((r.userSeconds + r.systemSeconds) / (r.bytes / 1e9)) * 1000));
    return {
      kind,
      mbps: median(rs.map((r) => r.bytes / r.seconds / 1e6)),
      cpuPerGb,
      userPerGb: median(rs.map((r) => (r.userSeconds / (r.bytes / 1e9)) * 1000)),
      systemPerGb: median(rs.map((r) => (r.systemSeconds / (r.bytes / 1e9)) * 1000)),
      usPerMessage: (cpuPerGb * 1e3 * MESSAGE) / 1e9,
    };
  });
  const c = rows.find((r) => r.kind === 'c');
  console.log(`\nrelay over loopback, ${(bytes / 2 ** 30).toFixed(1)} GiB a run, medians of ${opts.runs} run(s), ${os.cpus().length} cores, node ${process.version}`);
  console.log(`${'relay'.padEnd(12)} ${'MB/s'.padStart(7)} ${'CPU ms/GB'.padStart(10)} ${'user'.padStart(6)} ${'system'.padStart(7)} ${'µs/16 KiB'.padStart(10)}${c ? ' ÷ C (CPU)'.padStart(11) : ''}`);
  for (const r of rows) {
    console.log(
      `${r.kind.padEnd(12)} ${r.mbps.toFixed(0).padStart(7)} ${r.cpuPerGb.toFixed(0).padStart(10)} ${r.userPerGb.toFixed(0).padStart(6)} ${r.systemPerGb.toFixed(0).padStart(7)} ${r.usPerMessage.toFixed(1).padStart(10)}${c ? (r.cpuPerGb / c.cpuPerGb).toFixed(2).padStart(11) : ''}`,
    );
  }
}

if (!isMainThread) {
  runPeer(workerData as PeerData);
} else {
  const cmd = new Command('bench:relay')
    .description('CPU and throughput of relaying bytes through one process over loopback: Node streams, Node onread, C')
    .addOption(new Option('--gigabytes <n>', 'bytes relayed in each run, in GiB').argParser(Number).default(2))
    .addOption(new Option('--runs <n>', 'runs of each relay, alternated').argParser(whole(1)).default(3))
    .addOption(new Option('--relays <list>', `comma-separated, of ${RELAYS.join(', ')}`).default(RELAYS.join(',')))
    .addOption(new Option('--relay <kind>', 'internal: be the relay').choices(['node-stream', 'node-onread']).hideHelp())
    .addOption(new Option('--ports <producer,consumer>', 'internal: where the relay connects').hideHelp())
    .parse(process.argv);
  const opts = cmd.opts<{ gigabytes: number; runs: number; relays: string; relay?: RelayName; ports?: string }>();
  if (opts.relay !== undefined) {
    const [producer, consumer] = (opts.ports ?? '').split(',').map(Number);
    runNodeRelay(opts.relay, producer!, consumer!);
  } else {
    const relays = opts.relays.split(',').map((s) => s.trim());
    for (const r of relays) if (!(RELAYS as readonly string[]).includes(r)) cmd.error(`error: unknown relay ${r} (${RELAYS.join(', ')})`);
    if (!(opts.gigabytes > 0)) cmd.error('error: --gigabytes must be a positive number of GiB');
    await harness({ gigabytes: opts.gigabytes, runs: opts.runs, relays: relays as RelayName[] });
  }
}
