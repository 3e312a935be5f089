/**
 * What a broker process needs from the moment it starts, before any of its code runs: a floor
 * under V8's old-generation limit, and libuv's thread pool sized for group commit. A broker
 * started without them starts again with them, in the same process (`restartWithStartFlags`,
 * through the native addon's execve): same PID, same parent, same stdio.
 *
 * The old-generation floor (`--initial-old-space-size`, FLUCTUAT_OLD_SPACE_FLOOR MiB, default
 * 64). V8 counts external memory allocated since the last full collection against the old
 * generation's limit, and every socket read is a fresh buffer of external memory, so a broker
 * reading hundreds of MB a second reaches the limit of its small heap (~8 MB live, a limit of
 * ~30 MB) many times a second. Each time it starts a full mark-compact, though almost nothing
 * in the old generation is garbage: on the 2-core test machine 40–90 of them a second, a third
 * of a core on V8's marking threads; with the floor, fan-in of 16 KiB messages ran 1.4–1.6×
 * faster (docs/performance-history.md, twenty-fourth round). It grew worse once the young generation
 * had grown to its largest (after any run of small messages), because V8 starts marking early
 * enough to promote a whole young generation. With the floor the limit cannot fall below
 * 64 MiB; a larger live heap gets V8's own limit, above it. Cost: up to that much more old
 * generation before V8 collects it. Node refuses the flag in NODE_OPTIONS and reads it only
 * when the heap is made, hence the restart.
 *
 * The thread pool: UV_THREADPOOL_SIZE=16 (unless set), so that many channels' fsyncs run at
 * once. libuv reads it when the pool starts, and Node's module loader starts the pool before
 * the launcher's first line runs, so setting it there took effect only in child processes.
 *
 * A node flag naming the old-generation size (`--initial-old-space-size=N`, or
 * `--initial-heap-size`) wins over FLUCTUAT_OLD_SPACE_FLOOR; 0 leaves V8's own limit.
 */
import { nativeAddonProblem, recordCrcAddon } from '../native/addon.js';

export const DEFAULT_OLD_SPACE_FLOOR_MIB = 64;
export const DEFAULT_THREADPOOL_SIZE = '16';
/** Largest floor accepted: beyond it V8's own limits (a quarter of memory, at most 4 GiB) bind anyway. */
const MAX_FLOOR_MIB = 4096;

const OWN_FLAG = /^--initial[-_](old[-_]space|heap)[-_]size(=|$)/;

export interface StartFlags {
  /** Node flags to add to the command line (empty: nothing to add). */
  readonly flags: string[];
  /** What the old generation's floor is, for the startup line. */
  readonly says: string;
}

/**
 * The flags a broker started with `execArgv` and `env` still lacks, and what its floor is.
 * Throws a RangeError for a FLUCTUAT_OLD_SPACE_FLOOR that is not a whole number of MiB from 0
 * to 4096.
 */
export function startFlags(env: NodeJS.ProcessEnv, execArgv: readonly string[]): StartFlags {
  const text = env.FLUCTUAT_OLD_SPACE_FLOOR;
  const mib = text === undefined || text === '' ? DEFAULT_OLD_SPACE_FLOOR_MIB : /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(mib <= MAX_FLOOR_MIB)) {
    throw new RangeError(`FLUCTUAT_OLD_SPACE_FLOOR=${text}: expected a whole number of MiB from 0 to ${MAX_FLOOR_MIB} (0: V8's own limit)`);
  }
  const wanted = mib === 0 ? null : `--initial-old-space-size=${mib}`;
  const own = execArgv.find((a) => OWN_FLAG.test(a));
  // (The flag this module's own restart added reads as the floor, not as the user's choice.)
  if (own !== undefined) return { flags: [], says: own === wanted ? `${mib} MiB` : `as the node flag ${own} sets it` };
  if (wanted === null) return { flags: [], says: "V8's own (FLUCTUAT_OLD_SPACE_FLOOR=0)" };
  return { flags: [wanted], says: `${mib} MiB` };
}

/**
 * `execArgv` with the flags it lacks, for a child process that runs a broker (the privilege-
 * separated one): it has them even where this process could not restart with them. Unchanged
 * for a bad FLUCTUAT_OLD_SPACE_FLOOR, which the child's start then refuses.
 */
export function withStartFlags(execArgv: readonly string[], env: NodeJS.ProcessEnv = process.env): string[] {
  try {
    return [...execArgv, ...startFlags(env, execArgv).flags];
  } catch {
    return [...execArgv];
  }
}

/** What a process is and can do, for `restartWithStartFlags` (a test passes its own). */
export interface RestartHost {
  readonly execPath: string;
  readonly execArgv: readonly string[];
  /** The script and its arguments (process.argv without the node binary). */
  readonly args: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  /** Replaces the process (execve); returns only by throwing. Null where it cannot. */
  readonly exec: ((file: string, argv: string[], env: string[]) => never) | null;
  /** Why `exec` is null. */
  readonly noExec?: string;
}

/** Why the last `restartWithStartFlags` went on without restarting ('' if it did not run or needed nothing). */
let problem = '';

/**
 * The old generation's floor in this process, for the broker's startup line: what is in effect,
 * or why the floor is not. Throws a RangeError for a bad FLUCTUAT_OLD_SPACE_FLOOR (the start is
 * refused before anything opens).
 */
export function describeOldSpaceFloor(env: NodeJS.ProcessEnv = process.env, execArgv: readonly string[] = process.execArgv): string {
  const { flags, says } = startFlags(env, execArgv);
  if (flags.length === 0) return says;
  return `V8's own: not started with ${flags.join(' ')} (${problem || 'not started by bin/fluctuat.js'})`;
}

const thisProcess = (): RestartHost => ({
  execPath: process.execPath,
  execArgv: process.execArgv,
  args: process.argv.slice(1),
  env: process.env,
  exec: recordCrcAddon ? (file, argv, env) => recordCrcAddon!.exec(file, argv, env) : null,
  noExec: `the native addon is ${nativeAddonProblem()}`,
});

/**
 * Starts this process again with the flags it lacks (see above), or returns why it goes on
 * without them: nothing lacks ('' then), a bad FLUCTUAT_OLD_SPACE_FLOOR (the broker's start
 * refuses it), no native addon, or an execve that failed. Call it before anything else runs:
 * what the process holds is gone after the restart (but for its stdio and inherited sockets).
 */
export function restartWithStartFlags(host: RestartHost = thisProcess()): string {
  problem = restart(host);
  // Going on in this process: its pool has started, but child processes still get the size.
  host.env.UV_THREADPOOL_SIZE ??= DEFAULT_THREADPOOL_SIZE;
  return problem;
}

function restart(host: RestartHost): string {
  let lacking: StartFlags;
  try {
    lacking = startFlags(host.env, host.execArgv);
  } catch (err) {
    return (err as Error).message;
  }
  const pool = host.env.UV_THREADPOOL_SIZE === undefined;
  if (lacking.flags.length === 0 && !pool) return '';
  if (host.exec === null) return host.noExec ?? 'it cannot restart itself';
  const env = { ...host.env, ...(pool ? { UV_THREADPOOL_SIZE: DEFAULT_THREADPOOL_SIZE } : {}) };
  try {
    host.exec(host.execPath, [host.execPath, ...host.execArgv, ...lacking.flags, ...host.args], Object.entries(env).map(([k, v]) => `${k}=${v ?? ''}`));
  } catch (err) {
    return `restarting with ${lacking.flags.join(' ') || 'UV_THREADPOOL_SIZE'} failed: ${(err as Error).message}`;
  }
  throw new Error('unreachable: exec returned');
}
