/**
 * Periodic work with an interval adapted to what each target shows, as a pure function so a
 * state log can replay every decision.
 *
 * After each run of a target the controller observes when it settled, whether it succeeded
 * and its round trip. It keeps exponentially weighted moving averages (weight `alpha` for the
 * newest value) of the observed interval between runs and of the latency, and decides the delay
 * before the next run:
 *
 * - on time: the delay is corrected by half the gap between the wanted period and the averaged
 *   observed interval, so the real period converges on `everyMs` whatever each run costs;
 * - never faster than the target answers: the delay is at least the averaged latency;
 * - failing targets back off: × 2 per consecutive failure (at most × 64);
 * - always within [minMs, maxMs].
 */

export interface ScheduleConfig {
  readonly everyMs: number;
  readonly alpha: number;
  readonly minMs: number;
  readonly maxMs: number;
}

export interface TargetState {
  readonly target: string;
  readonly runs: number;
  /** Consecutive failures. */
  readonly failures: number;
  readonly ewmaLatencyMs: number | null;
  readonly ewmaIntervalMs: number | null;
  /** Controller monotonic time (ms) at which the last run settled. */
  readonly lastAtMs: number | null;
  /** The delay decided last. */
  readonly delayMs: number;
}

export interface Observation {
  /** Controller monotonic time (ms) at which the run settled. */
  readonly atMs: number;
  readonly ok: boolean;
  /** Round trip, ms; null when there was no answer. */
  readonly latencyMs: number | null;
  readonly reason?: string;
}

export interface Decision {
  readonly state: TargetState;
  readonly delayMs: number;
  readonly why: string;
}

export function scheduleConfig(everyMs: number, o: Partial<Omit<ScheduleConfig, 'everyMs'>> = {}): ScheduleConfig {
  if (!(everyMs > 0)) throw new RangeError(`the period must be positive, got ${everyMs}`);
  const alpha = o.alpha ?? 0.3;
  if (!(alpha > 0 && alpha <= 1)) throw new RangeError(`alpha must be in (0, 1], got ${alpha}`);
  return { everyMs, alpha, minMs: o.minMs ?? Math.min(everyMs, 10), maxMs: o.maxMs ?? everyMs * 64 };
}

export function initialState(target: string, cfg: ScheduleConfig): TargetState {
  return { target, runs: 0, failures: 0, ewmaLatencyMs: null, ewmaIntervalMs: null, lastAtMs: null, delayMs: cfg.everyMs };
}

function ewma(prev: number | null, value: number, alpha: number): number {
  return prev === null ? value : alpha * value + (1 - alpha) * prev;
}

function clamp(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x));
}

/** The next state and delay. Pure: the same inputs give the same decision, bit for bit. */
export function decide(prev: TargetState, obs: Observation, cfg: ScheduleConfig): Decision {
  const interval = prev.lastAtMs === null ? null : obs.atMs - prev.lastAtMs;
  const ewmaIntervalMs = interval === null ? prev.ewmaIntervalMs : ewma(prev.ewmaIntervalMs, interval, cfg.alpha);
  const ewmaLatencyMs = obs.latencyMs === null ? prev.ewmaLatencyMs : ewma(prev.ewmaLatencyMs, obs.latencyMs, cfg.alpha);
  const failures = obs.ok ? 0 : prev.failures + 1;
  // The period observed is latency + delay + overhead: correct the delay by half the error.
  const onTime = ewmaIntervalMs === null || prev.failures > 0 ? cfg.everyMs - (ewmaLatencyMs ?? 0) : prev.delayMs + 0.5 * (cfg.everyMs - ewmaIntervalMs);
  let delayMs = Math.max(onTime, ewmaLatencyMs ?? 0);
  let why = ewmaIntervalMs === null ? 'first' : Math.abs(cfg.everyMs - ewmaIntervalMs) <= cfg.everyMs * 0.05 ? 'on-time' : ewmaIntervalMs > cfg.everyMs ? 'catching-up' : 'slowing-down';
  if (delayMs === (ewmaLatencyMs ?? 0) && ewmaLatencyMs !== null && onTime < ewmaLatencyMs) why = 'latency-bound';
  if (failures > 0) {
    delayMs = Math.max(delayMs, cfg.everyMs) * 2 ** Math.min(failures, 6);
    why = `backoff-${failures}${obs.reason ? `-${obs.reason}` : ''}`;
  }
  delayMs = clamp(delayMs, cfg.minMs, cfg.maxMs);
  return { state: { target: prev.target, runs: prev.runs + 1, failures, ewmaLatencyMs, ewmaIntervalMs, lastAtMs: obs.atMs, delayMs }, delayMs, why };
}
