/**
 * `--pin`: brokers on some CPUs, the load generator on the others, with taskset(1).
 *
 * Why: unpinned, the kernel may put a generator thread on the broker's core, and on a 2-core
 * machine the same build measured anywhere from 442 k to 888 k msgs/s. Pinned, each broker has
 * a core to itself, as it would in production where the probes are elsewhere, and the question
 * "broker or generator?" has a clean answer. It did not make runs here much steadier, and the
 * generator, with one core, becomes the limit in fan-out, fan-in and for Redis at 256 B (the
 * details table flags such cells, `generator-bound`), so it is an option, not the default
 * (docs/performance.md, "Pinning").
 *
 * fluctuat and Aedes are started under `taskset -c`; peers that were already running (NATS,
 * Redis, Mosquitto) have every thread moved with `taskset -a -p` and are put back as they
 * were when the run ends, however it ends.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

export interface Pinning {
  /** CPU list (taskset -c syntax) for the brokers. */
  readonly brokers: string;
  /** CPU list for this process and its worker threads. */
  readonly generator: string;
  /** How many CPUs the generator has. */
  readonly generatorCpus: number;
}

let active: Pinning | null = null;
const restores: (() => void)[] = [];

/** The pinning in force, or null. */
export function pinning(): Pinning | null {
  return active;
}

/** CPUs this process may run on, from /proc/self/status (Linux), or [] if unknown. */
export function allowedCpus(): number[] {
  try {
    const m = /^Cpus_allowed_list:\s*(\S+)/m.exec(fs.readFileSync('/proc/self/status', 'latin1'));
    return m ? parseCpuList(m[1]!) : [];
  } catch {
    return [];
  }
}

/** "0-2,5" → [0, 1, 2, 5]. */
export function parseCpuList(list: string): number[] {
  const out: number[] = [];
  for (const part of list.split(',')) {
    const [a, b] = part.split('-').map(Number);
    if (!Number.isInteger(a)) continue;
    for (let c = a!; c <= (Number.isInteger(b) ? b! : a!); c++) out.push(c);
  }
  return out;
}

function taskset(args: string[]): { ok: boolean; out: string } {
  const r = spawnSync('taskset', args, { encoding: 'utf8' });
  if (r.error) return { ok: false, out: r.error.message };
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}`.trim() };
}

/**
 * Pins this process (every thread it has now; workers started later inherit it) to the last
 * allowed CPU and keeps the others for the brokers. Returns why it cannot, or the pinning.
 */
export function pinGenerator(): Pinning | { skip: string } {
  const cpus = allowedCpus();
  if (cpus.length < 2) return { skip: `needs at least 2 CPUs, this process may use ${cpus.length || 'an unknown number'}` };
  const gen = cpus[cpus.length - 1]!;
  const brokers = cpus.slice(0, -1).join(',');
  const r = taskset(['-a', '-p', '-c', String(gen), String(process.pid)]);
  if (!r.ok) return { skip: `taskset failed: ${r.out}` };
  active = { brokers, generator: String(gen), generatorCpus: 1 };
  return active;
}

/** The command and arguments that start `file` with `args` on the brokers' CPUs when pinned. */
export function onBrokerCpus(file: string, args: string[]): [string, string[]] {
  return active ? ['taskset', ['-c', active.brokers, file, ...args]] : [file, args];
}

/**
 * Moves every thread of a running peer onto the brokers' CPUs until the process exits (the
 * old CPU list is put back then). Returns an error message, or null.
 */
export function pinPeer(pid: number): string | null {
  if (!active) return null;
  const now = taskset(['-c', '-p', String(pid)]);
  const old = /list:\s*(\S+)/.exec(now.out)?.[1];
  if (!now.ok || !old) return `could not read its CPUs: ${now.out}`;
  const r = taskset(['-a', '-c', '-p', active.brokers, String(pid)]);
  if (!r.ok) return r.out;
  if (restores.length === 0) process.once('exit', restoreAll);
  restores.push(() => void taskset(['-a', '-c', '-p', old, String(pid)]));
  return null;
}

/** Puts every pinned peer back on its CPUs (also run at exit). */
export function restoreAll(): void {
  for (const r of restores.splice(0)) r();
}
