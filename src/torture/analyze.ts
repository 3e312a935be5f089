/**
 * What one wave of the torture test shows, computed from the controller's outcomes: latency
 * and its legs, lost and duplicated replies, clock monotonicity, and the linear fit of
 * measured time against reference time.
 */
import type { Outcome, ScatterReport } from '../swarm/controller.js';
import { linearFit, quantiles, type LinearFit, type Quantiles } from '../swarm/stats.js';

/** One task's timeline, in the torture test's terms. */
export interface MessageRecord {
  /** Reference time: the controller's send time, s since the start of the mode's first wave (host monotonic clock). */
  readonly refS: number;
  /** Measured time: the probe's receive time on the same clock, s. */
  readonly measuredS: number;
  /** Round trip, ms (controller send → reply received, monotonic). */
  readonly rttMs: number;
  /** Legs, ms: controller→broker, broker→probe, in the probe, probe→broker, broker→controller. */
  readonly legs: readonly [up: number, down: number, probe: number, back: number, home: number];
  readonly probe: string;
}

export interface Monotonicity {
  /** A probe's successive receive readings (monotonic or wall, in delivery order) going back. */
  readonly probeClock: number;
  /** send ≤ probe receive ≤ probe done ≤ reply received violated (host monotonic clock). */
  readonly causality: number;
  /** Broker receive times of the tasks going back in publish order. */
  readonly brokerOrder: number;
}

export interface WaveStats {
  readonly mode: string;
  readonly wave: number;
  readonly probes: number;
  readonly workers: number;
  readonly tasks: number;
  readonly replies: number;
  readonly lost: number;
  readonly duplicated: number;
  readonly late: number;
  readonly failed: number;
  /** Replies per second over the wave (first send to last reply). */
  readonly throughput: number;
  readonly rttMs: Quantiles | null;
  readonly legsMs: { readonly up: Quantiles | null; readonly down: Quantiles | null; readonly probe: Quantiles | null; readonly back: Quantiles | null; readonly home: Quantiles | null };
  readonly monotonicity: Monotonicity;
  /** measured = intercept + slope × reference over the wave; maxResidual in ms. */
  readonly fit: (Omit<LinearFit, 'maxResidual'> & { maxResidualMs: number }) | null;
  /** Spread of measured − reference within the wave, ms (a dilating clock grows it). */
  readonly lagMs: Quantiles | null;
}

export function analyzeWave(mode: string, wave: number, probes: number, workers: number, report: ScatterReport, originMonoUs: number, records: MessageRecord[]): WaveStats {
  const ctrlOffsetUs = report.offsetMs * 1000;
  let firstSend = Infinity;
  let lastReply = -Infinity;
  let replies = 0;
  let failed = 0;
  let causality = 0;
  let brokerOrder = 0;
  let prevBrokerUs = -Infinity;
  const byProbe = new Map<string, Outcome[]>();
  const rtt: number[] = [];
  const legs: number[][] = [[], [], [], [], []];
  const xs: number[] = [];
  const ys: number[] = [];
  const lag: number[] = [];
  for (const o of report.outcomes) {
    if (!o.sent) continue;
    firstSend = Math.min(firstSend, o.sent.monoUs);
    replies += o.replies.length;
    const r = o.replies[0];
    if (!r) continue;
    lastReply = Math.max(lastReply, r.recv.monoUs);
    if (!r.result.ok) failed++;
    const t = r.result.t;
    if (!(o.sent.monoUs <= t.recv.monoUs && t.recv.monoUs <= t.done.monoUs && t.done.monoUs <= r.recv.monoUs)) causality++;
    if (t.brokerUs < prevBrokerUs) brokerOrder++;
    prevBrokerUs = t.brokerUs;
    let list = byProbe.get(r.result.probe);
    if (!list) byProbe.set(r.result.probe, (list = []));
    list.push(o);
    const probeOffsetUs = r.result.offsetMs * 1000;
    const rec: MessageRecord = {
      refS: (o.sent.monoUs - originMonoUs) / 1e6,
      measuredS: (t.recv.monoUs - originMonoUs) / 1e6,
      rttMs: (r.recv.monoUs - o.sent.monoUs) / 1000,
      legs: [
        (t.brokerUs - (o.sent.wallUs + ctrlOffsetUs)) / 1000,
        (t.recv.wallUs + probeOffsetUs - t.brokerUs) / 1000,
        (t.done.monoUs - t.recv.monoUs) / 1000,
        (r.brokerUs - (t.done.wallUs + probeOffsetUs)) / 1000,
        (r.recv.wallUs + ctrlOffsetUs - r.brokerUs) / 1000,
      ],
      probe: r.result.probe,
    };
    records.push(rec);
    rtt.push(rec.rttMs);
    rec.legs.forEach((v, i) => legs[i]!.push(v));
    xs.push(rec.refS);
    ys.push(rec.measuredS);
    lag.push((rec.measuredS - rec.refS) * 1000);
  }
  // Each probe got its tasks in publish order (one channel, offsets in order): its readings must not go back.
  let probeClock = 0;
  for (const list of byProbe.values()) {
    let prevMono = -Infinity;
    let prevWall = -Infinity;
    let prevDate = -Infinity;
    for (const o of list) {
      const r = o.replies[0]!.result;
      const v = r.value as { wallMs?: unknown } | undefined;
      const date = typeof v?.wallMs === 'number' ? v.wallMs : -Infinity;
      if (r.t.recv.monoUs < prevMono || r.t.recv.wallUs < prevWall || date < prevDate) probeClock++;
      prevMono = r.t.recv.monoUs;
      prevWall = r.t.recv.wallUs;
      prevDate = Math.max(prevDate, date);
    }
  }
  const c = report.counts;
  const fit = linearFit(xs, ys);
  return {
    mode,
    wave,
    probes,
    workers,
    tasks: c.tasks,
    replies,
    lost: c.missing + c.unsent,
    duplicated: c.duplicates,
    late: c.late,
    failed,
    throughput: lastReply > firstSend ? (c.answered + c.late) / ((lastReply - firstSend) / 1e6) : 0,
    rttMs: quantiles(rtt),
    legsMs: { up: quantiles(legs[0]!), down: quantiles(legs[1]!), probe: quantiles(legs[2]!), back: quantiles(legs[3]!), home: quantiles(legs[4]!) },
    monotonicity: { probeClock, causality, brokerOrder },
    fit: fit ? { n: fit.n, slope: fit.slope, intercept: fit.intercept, r2: fit.r2, maxResidualMs: fit.maxResidual * 1000 } : null,
    lagMs: quantiles(lag),
  };
}

export function violations(m: Monotonicity): number {
  return m.probeClock + m.causality + m.brokerOrder;
}
