/**
 * Running a group of probes in one thread of execution, and the messages a fleet exchanges
 * with it. The same function runs probes in the main thread (`inline`), in a worker thread and
 * in a child process (host-entry.ts): the mode is where it runs, not another implementation.
 */
import type { ConnectOptions } from '../client/index.js';
import { Probe } from './probe.js';
import type { Presence, ProbeMode } from './protocol.js';
import { loadKinds } from './registry.js';

export interface HostConfig {
  url: string;
  /** Client options (TLS files, ...): plain data, so they cross to a thread or a process. */
  client?: Omit<ConnectOptions, 'name'>;
  root?: string;
  kinds?: readonly string[];
  labels?: Readonly<Record<string, string>>;
  mode: ProbeMode;
  /** Probes in this thread or process. */
  count: number;
  /** Number of the first probe (probe ids end with it). */
  firstIndex?: number;
  heartbeatMs?: number;
  concurrency?: number;
  /** Extra kind modules to import (paths or file: URLs). */
  kindModules?: readonly string[];
}

export type ToHost = { type: 'start'; config: HostConfig } | { type: 'stop'; reason: string };
export type FromHost =
  | { type: 'ready'; probes: Presence[] }
  | { type: 'failed'; message: string }
  | { type: 'stopped'; stats: { tasks: number; ok: number; failed: number } };

export interface ProbeGroup {
  readonly probes: readonly Probe[];
  stop(reason: string): Promise<{ tasks: number; ok: number; failed: number }>;
}

/** Start `config.count` probes here; if one fails, stop the others and throw. */
export async function startProbeGroup(config: HostConfig): Promise<ProbeGroup> {
  await loadKinds(config.kindModules ?? []);
  const first = config.firstIndex ?? 0;
  const settled = await Promise.allSettled(
    Array.from({ length: config.count }, (_, i) =>
      Probe.start({
        url: config.url,
        ...(config.client === undefined ? {} : { client: config.client }),
        mode: config.mode,
        index: first + i,
        ...(config.root === undefined ? {} : { root: config.root }),
        ...(config.kinds === undefined ? {} : { kinds: config.kinds }),
        ...(config.labels === undefined ? {} : { labels: config.labels }),
        ...(config.heartbeatMs === undefined ? {} : { heartbeatMs: config.heartbeatMs }),
        ...(config.concurrency === undefined ? {} : { concurrency: config.concurrency }),
      }),
    ),
  );
  const probes = settled.filter((s): s is PromiseFulfilledResult<Probe> => s.status === 'fulfilled').map((s) => s.value);
  const failure = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failure) {
    await Promise.all(probes.map((p) => p.stop('start-failed')));
    throw failure.reason instanceof Error ? failure.reason : new Error(String(failure.reason));
  }
  return {
    probes,
    async stop(reason) {
      await Promise.all(probes.map((p) => p.stop(reason)));
      const stats = { tasks: 0, ok: 0, failed: 0 };
      for (const p of probes) {
        stats.tasks += p.stats.tasks;
        stats.ok += p.stats.ok;
        stats.failed += p.stats.failed;
      }
      return stats;
    },
  };
}

/**
 * Serve a fleet over a message port (a worker's parentPort or a child's IPC channel): start on
 * `start`, stop on `stop` or when the parent goes away, then let the thread or process end.
 */
export function serveHost(port: { send(msg: FromHost): void; on(cb: (msg: ToHost) => void): void; onParentGone(cb: () => void): void; done(): void }): void {
  let group: ProbeGroup | undefined;
  let starting: Promise<void> | undefined;
  let stopped = false;
  const stop = async (reason: string): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await starting?.catch(() => {});
    const stats = group ? await group.stop(reason) : { tasks: 0, ok: 0, failed: 0 };
    port.send({ type: 'stopped', stats });
    port.done();
  };
  port.on((msg) => {
    if (msg.type === 'start' && !starting) {
      starting = startProbeGroup(msg.config).then(
        (g) => {
          group = g;
          if (stopped) return;
          port.send({ type: 'ready', probes: g.probes.map((p) => p.presence('up')) });
        },
        (err: unknown) => {
          port.send({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
          stopped = true;
          port.done();
        },
      );
    } else if (msg.type === 'stop') {
      void stop(msg.reason);
    }
  });
  port.onParentGone(() => void stop('parent-gone'));
}
