import os from 'node:os';
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { formatTorture, writeTortureFiles } from '../torture/report.js';
import { runTorture } from '../torture/torture.js';
import { duration, integer } from './options.js';
import { guard } from './guard.js';

interface TortureCliOptions {
  url?: string;
  wave: number;
  max: number;
  modes: string;
  perWorker: number;
  tasks: number;
  waveDuration: number;
  timeout: number;
  grace: number;
  out: string;
  format: string;
  json: boolean;
  messages: boolean;
  progress?: boolean;
  brokerArg: string[];
  force: boolean;
}

/** Rough resident memory of one worker, to refuse a run that would exhaust the machine. */
const WORKER_MIB = { thread: 12, process: 48 } as const;

export function tortureCommand(program: Command, done: (p: Promise<number>) => void): void {
  program
    .command('torture')
    .description('the torture test: probes in waves, in threads and in processes; time, latency, losses (see docs/torture.md)')
    .option('-u, --url <url>', 'use this broker (default: start one as a child process)')
    .option('--wave <n>', 'probes added per wave', integer('--wave', 1), 128)
    .option('--max <n>', 'probes in the last wave', integer('--max', 1), 1024)
    .option('--modes <list>', 'thread, process, or both', 'thread,process')
    .option('--per-worker <n>', 'probes per worker thread or child process', integer('--per-worker', 1), 1)
    .option('--tasks <n>', 'tasks per probe per wave', integer('--tasks', 1), 10)
    .option('--wave-duration <duration>', 'how long each wave sends tasks', duration, 5000)
    .option('--timeout <duration>', 'an answer later than this after its task is late', duration, 10_000)
    .option('--grace <duration>', 'how long to wait for late answers before counting a task lost', duration, 5000)
    .option('-o, --out <dir>', 'directory for torture.json and the plots', 'torture-out')
    .option('--format <list>', 'plot formats: png, svg, both, or none', 'png,svg')
    .option('--json', 'print the report as JSON instead of the table', false)
    .option('--messages', 'keep every message\'s timeline in torture.json', false)
    .option('--progress', 'show a progress bar (default: when stderr is a terminal)')
    .option('--no-progress', 'no progress bar')
    .option('--broker-arg <arg>', 'extra argument for the broker it starts (repeatable)', (v: string, prev: string[]) => [...prev, v], [])
    .option('--force', 'run even if the estimated memory exceeds what is free', false)
    .action((o: TortureCliOptions) => done(guard('torture', () => torture(o))));
}

async function torture(o: TortureCliOptions): Promise<number> {
  const modes = o.modes.split(',').map((m) => m.trim());
  if (modes.length === 0 || modes.some((m) => m !== 'thread' && m !== 'process')) {
    process.stderr.write(`fluctuat torture: --modes is thread, process or thread,process; got ${JSON.stringify(o.modes)}\n`);
    return 2;
  }
  if (o.max < o.wave) {
    process.stderr.write('fluctuat torture: --max must be at least --wave\n');
    return 2;
  }
  const formats = o.format === 'none' ? [] : o.format.split(',').map((f) => f.trim()).flatMap((f) => (f === 'both' ? ['png', 'svg'] : [f]));
  if (formats.some((f) => f !== 'png' && f !== 'svg')) {
    process.stderr.write(`fluctuat torture: --format is png, svg, both or none; got ${JSON.stringify(o.format)}\n`);
    return 2;
  }
  const workers = Math.ceil(o.max / o.perWorker);
  const needMiB = Math.max(...modes.map((m) => workers * WORKER_MIB[m as 'thread' | 'process']));
  const freeMiB = os.freemem() / 2 ** 20;
  if (needMiB > 0.8 * freeMiB && !o.force) {
    process.stderr.write(
      `fluctuat torture: ${o.max} probes in ${workers} ${modes.includes('process') ? 'processes' : 'threads'} need about ${Math.round(needMiB)} MiB and ${Math.round(freeMiB)} MiB are free; ` +
        `put several probes in each worker (--per-worker ${Math.ceil((o.max * WORKER_MIB.process) / (0.6 * freeMiB))}), lower --max, or --force\n`,
    );
    return 2;
  }
  const showBar = o.progress ?? process.stderr.isTTY === true;
  const bar = showBar ? new cliProgress.SingleBar({ stream: process.stderr, format: '{label} [{bar}] {value}/{total} tasks', hideCursor: true, fps: 5, clearOnComplete: true }, cliProgress.Presets.shades_classic) : undefined;
  let barLabel = '';
  const log = (line: string): void => {
    if (bar && barLabel) bar.stop();
    barLabel = '';
    process.stderr.write(`${line}\n`);
  };
  const report = await runTorture({
    ...(o.url === undefined ? {} : { url: o.url }),
    brokerArgs: o.brokerArg,
    wave: o.wave,
    max: o.max,
    modes: modes as ('thread' | 'process')[],
    perWorker: o.perWorker,
    tasksPerProbe: o.tasks,
    waveDurationMs: o.waveDuration,
    timeoutMs: o.timeout,
    graceMs: o.grace,
    log,
    onProgress: (d, n, label) => {
      if (!bar) return;
      if (barLabel !== label) {
        if (barLabel) bar.stop();
        barLabel = label;
        bar.start(n, 0, { label });
      }
      bar.update(d, { label });
    },
  });
  if (bar && barLabel) bar.stop();
  const files = await writeTortureFiles(report, o.out, formats, o.messages);
  if (o.json) {
    const { messages, ...rest } = report;
    process.stdout.write(JSON.stringify({ ...rest, messages: Object.fromEntries(Object.entries(messages).map(([k, v]) => [k, v.length])) }, null, 1) + '\n');
  } else process.stdout.write(formatTorture(report) + '\n');
  process.stderr.write(`wrote ${files.join(', ')}\n`);
  return report.ok ? 0 : 1;
}
