/**
 * The percolation experiment: for each p of a grid, `runs` seeded runs on a size × size grid
 * of hexagonal cells, spread over the swarm's probes (one task = one run). Results are put in
 * place by (p index, run index) and aggregated in that order, so the outcome is bit-identical
 * for the same seed however many probes, threads or processes computed it. A digest over every
 * run's bit makes that easy to check.
 */
import { createHash } from 'node:crypto';
import type { Swarm } from '../swarm/controller.js';
import { percolationRun } from './lattice.js';
import { seedFromText } from './rng.js';

export interface PercolationSpec {
  readonly ps: readonly number[];
  readonly runs: number;
  readonly size: number;
  readonly seed: string;
}

export interface PercolationPoint {
  readonly pIndex: number;
  readonly p: number;
  readonly runs: number;
  readonly crossings: number;
  readonly probability: number;
}

export interface ThresholdEstimate {
  /** p where the fitted crossing probability is 1/2. */
  readonly p: number;
  /** Its standard error (delta method on the logistic fit). */
  readonly stderr: number;
  /** Width of the transition: 1 / slope of the logit. */
  readonly width: number;
  readonly method: 'logistic' | 'interpolation';
}

export interface PercolationResult {
  readonly seed: string;
  readonly size: number;
  readonly runs: number;
  readonly points: readonly PercolationPoint[];
  readonly threshold: ThresholdEstimate | null;
  /** sha256 over every run's bit, in (p index, run) order. */
  readonly digest: string;
  /** Runs with no answer (after retries): a result with any is incomplete. */
  readonly missing: number;
  /** Runs answered twice with different bits (never expected). */
  readonly inconsistent: number;
}

/** `0.30:0.70:0.01` → [0.3, 0.31, ..., 0.7]; a single `0.5` → [0.5]; `0.4,0.5,0.6` → those. */
export function parsePRange(text: string): number[] {
  const t = text.trim();
  let ps: number[];
  if (t.includes(':')) {
    const parts = t.split(':').map(Number);
    const [from, to, step] = parts as [number, number, number];
    if (parts.length !== 3 || parts.some((x) => !Number.isFinite(x)) || !(step > 0) || to < from) throw new RangeError(`--p is from:to:step with from <= to and step > 0, got ${JSON.stringify(text)}`);
    const n = Math.round((to - from) / step) + 1;
    if (n > 100_000) throw new RangeError(`--p ${text} makes ${n} points (at most 100000)`);
    ps = Array.from({ length: n }, (_, i) => Math.round((from + i * step) * 1e9) / 1e9);
  } else {
    ps = t.split(',').map(Number);
  }
  for (const p of ps) if (!(p >= 0 && p <= 1)) throw new RangeError(`p must be in [0, 1], got ${p} in ${JSON.stringify(text)}`);
  return ps;
}

/** Aggregate run bits (index pIndex × runs + run; 0, 1, or 255 for missing) in order. */
export function aggregate(spec: PercolationSpec, bits: Uint8Array, inconsistent = 0): PercolationResult {
  const points: PercolationPoint[] = [];
  let missing = 0;
  for (let i = 0; i < spec.ps.length; i++) {
    let crossings = 0;
    let runs = 0;
    for (let r = 0; r < spec.runs; r++) {
      const b = bits[i * spec.runs + r]!;
      if (b === 255) missing++;
      else {
        runs++;
        crossings += b;
      }
    }
    points.push({ pIndex: i, p: spec.ps[i]!, runs, crossings, probability: runs === 0 ? NaN : crossings / runs });
  }
  return {
    seed: spec.seed,
    size: spec.size,
    runs: spec.runs,
    points,
    threshold: estimateThreshold(points),
    digest: createHash('sha256').update(bits).digest('hex'),
    missing,
    inconsistent,
  };
}

/** Every run in this thread: the reference the swarm's answer must equal. */
export function runPercolationLocal(spec: PercolationSpec): PercolationResult {
  const seed = seedFromText(spec.seed);
  const bits = new Uint8Array(spec.ps.length * spec.runs);
  for (let i = 0; i < spec.ps.length; i++) {
    for (let r = 0; r < spec.runs; r++) bits[i * spec.runs + r] = percolationRun(spec.size, spec.ps[i]!, seed, i, r) ? 1 : 0;
  }
  return aggregate(spec, bits);
}

export interface SwarmPercolationOptions {
  /** Tasks in flight at most (default 256). */
  window?: number;
  timeoutMs?: number;
  /** Times the missing runs are sent again (default 2). */
  retries?: number;
  onProgress?: (done: number, total: number) => void;
}

/** Spread the runs over the probes (the `percolation` queue group) and aggregate. */
export async function runPercolationSwarm(swarm: Swarm, spec: PercolationSpec, o: SwarmPercolationOptions = {}): Promise<PercolationResult> {
  const total = spec.ps.length * spec.runs;
  const bits = new Uint8Array(total).fill(255);
  let inconsistent = 0;
  let done = 0;
  let todo: number[] = Array.from({ length: total }, (_, k) => k);
  for (let attempt = 0; attempt <= (o.retries ?? 2) && todo.length > 0; attempt++) {
    const specs = todo.map((k) => {
      const pIndex = Math.floor(k / spec.runs);
      return { kind: 'percolation', params: { size: spec.size, p: spec.ps[pIndex]!, pIndex, run: k % spec.runs, seed: spec.seed } };
    });
    const keys = todo;
    const report = await swarm.scatter(specs, {
      window: o.window ?? 256,
      timeoutMs: o.timeoutMs ?? 30_000,
      onReply: (outcome, reply) => {
        const v = reply.result.value as { pIndex?: unknown; run?: unknown; crossed?: unknown } | undefined;
        const k = keys[outcome.index]!;
        if (!reply.result.ok || !v || v.pIndex !== Math.floor(k / spec.runs) || v.run !== k % spec.runs || typeof v.crossed !== 'boolean') return;
        const bit = v.crossed ? 1 : 0;
        if (bits[k] === 255) {
          bits[k] = bit;
          o.onProgress?.(++done, total);
        } else if (bits[k] !== bit) inconsistent++;
      },
    });
    void report;
    todo = todo.filter((k) => bits[k] === 255);
  }
  return aggregate(spec, bits, inconsistent);
}

/**
 * The p where the crossing probability is 1/2: maximum-likelihood logistic fit
 * P(p) = 1 / (1 + exp(−(a + b·p))) to the binomial counts (Newton's method), p* = −a/b.
 * Falls back to linear interpolation between the points around 1/2 when the fit does not
 * converge (perfectly separated data).
 */
export function estimateThreshold(points: readonly PercolationPoint[]): ThresholdEstimate | null {
  const pts = points.filter((pt) => pt.runs > 0);
  if (pts.length < 2) return null;
  let a = 0;
  let b = 0;
  // Centre p for conditioning.
  let pc = 0;
  for (const pt of pts) pc += pt.p;
  pc /= pts.length;
  let converged = false;
  let info = [0, 0, 0];
  for (let iter = 0; iter < 100; iter++) {
    let g0 = 0;
    let g1 = 0;
    let h00 = 0;
    let h01 = 0;
    let h11 = 0;
    for (const pt of pts) {
      const x = pt.p - pc;
      const mu = 1 / (1 + Math.exp(-(a + b * x)));
      const w = pt.runs * mu * (1 - mu);
      g0 += pt.crossings - pt.runs * mu;
      g1 += (pt.crossings - pt.runs * mu) * x;
      h00 += w;
      h01 += w * x;
      h11 += w * x * x;
    }
    const det = h00 * h11 - h01 * h01;
    if (!(det > 0) || !Number.isFinite(det)) break;
    const da = (h11 * g0 - h01 * g1) / det;
    const db = (h00 * g1 - h01 * g0) / det;
    a += da;
    b += db;
    info = [h00, h01, h11];
    if (!Number.isFinite(a) || !Number.isFinite(b) || Math.abs(b) > 1e6) break;
    if (Math.abs(da) < 1e-10 && Math.abs(db) < 1e-8) {
      converged = true;
      break;
    }
  }
  if (converged && b > 0) {
    const [h00, h01, h11] = info as [number, number, number];
    const det = h00 * h11 - h01 * h01;
    // Covariance = inverse of the Fisher information.
    const vaa = h11 / det;
    const vab = -h01 / det;
    const vbb = h00 / det;
    const da = -1 / b;
    const db = a / (b * b);
    const variance = da * da * vaa + 2 * da * db * vab + db * db * vbb;
    return { p: pc - a / b, stderr: Math.sqrt(Math.max(0, variance)), width: 1 / b, method: 'logistic' };
  }
  for (let i = 1; i < pts.length; i++) {
    const lo = pts[i - 1]!;
    const hi = pts[i]!;
    if (lo.probability <= 0.5 && hi.probability >= 0.5 && hi.probability > lo.probability) {
      const p = lo.p + ((0.5 - lo.probability) * (hi.p - lo.p)) / (hi.probability - lo.probability);
      return { p, stderr: NaN, width: NaN, method: 'interpolation' };
    }
  }
  return null;
}
