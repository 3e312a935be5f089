import type { Command } from 'commander';
import { Option } from 'commander';
import type { ConnectOptions } from '../client/index.js';
import { Fleet } from '../probes/fleet.js';
import { parseLabels, type ProbeMode } from '../probes/protocol.js';
import { getKind, kindNames, loadKinds } from '../probes/registry.js';
import { duration, integer } from './options.js';
import { guard } from './guard.js';
import { addConnectionOptions, withClientOptions, type ConnectionCliOptions } from './connection.js';

interface ProbeCliOptions extends ConnectionCliOptions {
  count: number;
  mode: ProbeMode;
  perWorker: number;
  root: string;
  label: string[];
  kinds?: string;
  kindModule: string[];
  heartbeat: number;
  concurrency: number;
  duration?: number;
  listKinds: boolean;
}

/** `fluctuat probe`: run N probes in worker threads or child processes until interrupted. */
export function probeCommand(program: Command, done: (p: Promise<number>) => void): void {
  addConnectionOptions(program.command('probe').description('run measurement probes that take tasks from the bus (see docs/probes.md)'))
    .option('-n, --count <n>', 'number of probes', integer('--count', 1), 1)
    .addOption(new Option('-m, --mode <mode>', 'where probes run: worker threads, child processes, or this thread').choices(['thread', 'process', 'inline']).default('thread'))
    .option('--per-worker <n>', 'probes per worker thread or child process', integer('--per-worker', 1), 1)
    .option('--root <channel>', 'channel root of the probe channels', 'probes')
    .option('-l, --label <key=value>', 'a label for --select (repeatable, or comma-separated)', (v: string, prev: string[]) => [...prev, v], [])
    .option('-k, --kinds <list>', 'comma-separated kinds to run (default: all)')
    .option('--kind-module <path>', 'import an extra module that registers kinds (repeatable)', (v: string, prev: string[]) => [...prev, v], [])
    .option('--heartbeat <duration>', 'presence heartbeat period (0: none)', duration, 5000)
    .option('--concurrency <n>', 'tasks each probe runs at once', integer('--concurrency', 1), 64)
    .option('--duration <duration>', 'stop after this long (default: until SIGINT/SIGTERM)', duration)
    .option('--list-kinds', 'print the registered kinds and exit', false)
    .action((o: ProbeCliOptions) => done(guard('probe', () => withClientOptions('probe', o, (client) => probe(o, client)))));
}

async function probe(o: ProbeCliOptions, client: Omit<ConnectOptions, 'name'>): Promise<number> {
  await loadKinds(o.kindModule);
  if (o.listKinds) {
    for (const name of kindNames()) process.stdout.write(`${name.padEnd(12)} ${getKind(name)!.description}\n`);
    return 0;
  }
  let labels: Record<string, string>;
  try {
    labels = parseLabels(o.label);
  } catch (err) {
    process.stderr.write(`fluctuat probe: ${(err as Error).message}\n`);
    return 2;
  }
  const kinds = o.kinds?.split(',').map((k) => k.trim()).filter((k) => k !== '');
  for (const k of kinds ?? []) {
    if (!getKind(k)) {
      process.stderr.write(`fluctuat probe: unknown kind ${JSON.stringify(k)}; known: ${kindNames().join(', ')}\n`);
      return 2;
    }
  }
  const fleet = new Fleet({
    url: o.url,
    client,
    mode: o.mode,
    root: o.root,
    labels,
    perWorker: o.perWorker,
    heartbeatMs: o.heartbeat,
    concurrency: o.concurrency,
    kindModules: o.kindModule,
    ...(kinds ? { kinds } : {}),
  });
  fleet.on('gone', (probes, reason) => process.stderr.write(`fluctuat probe: ${probes.length} probes gone (${reason}): ${probes.map((p) => p.id).join(' ')}\n`));
  const started = Date.now();
  try {
    await fleet.add(o.count);
  } catch (err) {
    process.stderr.write(`fluctuat probe: ${(err as Error).message}\n`);
    await fleet.stop('start-failed');
    return 1;
  }
  process.stdout.write(`${o.count} probes up in ${fleet.workers} ${o.mode === 'process' ? 'processes' : o.mode === 'thread' ? 'threads' : 'groups'} (${Date.now() - started} ms), root ${o.root}, kinds ${(kinds ?? kindNames()).join(',')}\n`);
  for (const p of fleet.probes) process.stdout.write(`  ${p.id} pid ${p.pid} thread ${p.threadId}${Object.keys(p.labels).length ? ` ${Object.entries(p.labels).map(([k, v]) => `${k}=${v}`).join(',')}` : ''}\n`);
  const reason = await new Promise<string>((resolve) => {
    const timer = o.duration !== undefined ? setTimeout(() => resolve('duration'), o.duration) : undefined;
    const on = (signal: string) => (): void => {
      if (timer) clearTimeout(timer);
      resolve(signal);
    };
    process.once('SIGINT', on('SIGINT'));
    process.once('SIGTERM', on('SIGTERM'));
  });
  await fleet.stop(`stopped (${reason})`);
  process.stdout.write(`probes stopped (${reason})\n`);
  return 0;
}
