/**
 * Young-generation collections (scavenges) on one thread on a machine of two CPUs or fewer.
 *
 * V8 scavenges with helper threads. On two CPUs the broker's own loop, its clients (or the
 * load generator) and the file engine's pool threads already use both, so the helpers wait
 * for a CPU and the loop waits for the helpers: every delivery that arrives during a scavenge
 * waits the longer, and a scavenge runs ~8 times a second at 20,000 msgs/s. On the 2-core test
 * machine, nine alternated runs each, the p99 at 20,000 msgs/s went from 516 to 432 µs on file
 * storage and from 349 to 319 µs on memory storage, while throughput was level or up to 10%
 * better (docs/performance-history.md, twenty-third round). With more CPUs the helpers find
 * one free and V8's default stays.
 *
 * FLUCTUAT_PARALLEL_SCAVENGE: `auto` (the default: one thread on two CPUs or fewer), `on`
 * (V8's helpers whatever the CPUs) or `off` (one thread whatever the CPUs). A node flag that
 * names it (`--no-parallel-scavenge`, `--parallel-scavenge`) wins over both.
 */
import os from 'node:os';
import v8 from 'node:v8';

export interface ScavengerHost {
  readonly env: NodeJS.ProcessEnv;
  readonly cpus: number;
  readonly execArgv: readonly string[];
  /** Applies a V8 flag to this process (v8.setFlagsFromString). */
  readonly setFlag: (flag: string) => void;
}

const thisProcess = (): ScavengerHost => ({
  env: process.env,
  cpus: os.availableParallelism(),
  execArgv: process.execArgv,
  setFlag: (flag) => v8.setFlagsFromString(flag),
});

/**
 * Chooses how this process scavenges and says what it chose (for the broker's startup line).
 * Throws a RangeError for a FLUCTUAT_PARALLEL_SCAVENGE that is none of auto, on and off.
 */
export function tuneScavenger(host: ScavengerHost = thisProcess()): string {
  const text = host.env.FLUCTUAT_PARALLEL_SCAVENGE ?? '';
  if (!['', 'auto', 'on', 'off'].includes(text)) {
    throw new RangeError(`FLUCTUAT_PARALLEL_SCAVENGE=${text}: expected auto, on or off`);
  }
  const flag = host.execArgv.find((a) => /^--(no-)?parallel[-_]scavenge$/.test(a));
  if (flag !== undefined) return `as the node flag ${flag} sets it`;
  if (text === 'on') return 'parallel (FLUCTUAT_PARALLEL_SCAVENGE=on)';
  if ((text === '' || text === 'auto') && host.cpus > 2) return `parallel (${host.cpus} CPUs)`;
  // V8 reads the flag at each scavenge, so setting it after start takes effect at the next one.
  host.setFlag('--no-parallel-scavenge');
  return text === 'off' ? 'one thread (FLUCTUAT_PARALLEL_SCAVENGE=off)' : `one thread (${host.cpus} CPUs)`;
}
