/**
 * `fluctuat swarm <kind> --every <period>`: each target probe runs the task on its own
 * schedule, adapted by schedule.ts and written to a state log.
 */
import type { Presence } from '../probes/protocol.js';
import { monoUs } from '../probes/time.js';
import type { Outcome, Swarm } from './controller.js';
import { decide, initialState, type Decision, type Observation, type ScheduleConfig, type TargetState } from './schedule.js';
import type { StateLog } from './statelog.js';

export interface PeriodicOptions {
  kind: string;
  params: Readonly<Record<string, unknown>>;
  targets: readonly Presence[];
  config: ScheduleConfig;
  /** Runs per target (default: until the signal). */
  rounds?: number;
  timeoutMs?: number;
  stateLog?: StateLog;
  signal?: AbortSignal;
  onRun?: (target: string, outcome: Outcome, decision: Decision) => void;
}

export interface PeriodicReport {
  readonly states: readonly TargetState[];
  readonly outcomes: readonly Outcome[];
}

export async function runPeriodic(swarm: Swarm, o: PeriodicOptions): Promise<PeriodicReport> {
  const rounds = o.rounds ?? Number.POSITIVE_INFINITY;
  const outcomes: Outcome[] = [];
  const states = new Map<string, TargetState>();
  if (o.targets.length === 0) return { states: [], outcomes };
  const loops = o.targets.map(async (p) => {
    let state = initialState(p.id, o.config);
    states.set(p.id, state);
    for (let round = 0; round < rounds && !o.signal?.aborted; round++) {
      const report = await swarm.scatter([{ kind: o.kind, params: o.params, target: p.id }], { timeoutMs: o.timeoutMs ?? Math.max(1000, o.config.everyMs) });
      const outcome = report.outcomes[0]!;
      outcomes.push(outcome);
      const reply = outcome.replies[0];
      const obs: Observation = {
        atMs: monoUs() / 1000,
        ok: outcome.status === 'ok',
        latencyMs: reply && outcome.sent ? (reply.recv.monoUs - outcome.sent.monoUs) / 1000 : null,
        ...(outcome.status === 'ok' ? {} : { reason: reply?.result.error?.reason ?? outcome.status }),
      };
      const d = decide(state, obs, o.config);
      state = d.state;
      states.set(p.id, state);
      o.stateLog?.write(p.id, obs, d);
      o.onRun?.(p.id, outcome, d);
      if (round + 1 >= rounds) break;
      await sleep(d.delayMs, o.signal);
    }
  });
  await Promise.all(loops);
  return { states: [...states.values()], outcomes };
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
