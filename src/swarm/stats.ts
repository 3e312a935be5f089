/** Small exact statistics over arrays of numbers (no sampling: every value is kept). */

export interface Quantiles {
  readonly n: number;
  readonly min: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

/** Nearest-rank percentile of sorted values (q in [0, 1]). */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1]!;
}

export function quantiles(values: readonly number[]): Quantiles | null {
  if (values.length === 0) return null;
  const sorted = Float64Array.from(values).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  const s = Array.from(sorted);
  return { n: s.length, min: s[0]!, p50: percentile(s, 0.5), p90: percentile(s, 0.9), p99: percentile(s, 0.99), max: s[s.length - 1]!, mean: sum / s.length };
}

export interface LinearFit {
  readonly n: number;
  /** y ≈ intercept + slope × x */
  readonly slope: number;
  readonly intercept: number;
  /** Coefficient of determination. */
  readonly r2: number;
  /** Largest |y − fit(x)|. */
  readonly maxResidual: number;
}

/** Ordinary least squares, computed on centred values for accuracy with large x. */
export function linearFit(xs: readonly number[], ys: readonly number[]): LinearFit | null {
  const n = Math.min(xs.length, ys.length);
  if (n < 2) return null;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += xs[i]!;
    my += ys[i]!;
  }
  mx /= n;
  my /= n;
  let sxx = 0;
  let sxy = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = xs[i]! - mx;
    const dy = ys[i]! - my;
    sxx += dx * dx;
    sxy += dx * dy;
    syy += dy * dy;
  }
  if (sxx === 0) return null;
  const slope = sxy / sxx;
  const intercept = my - slope * mx;
  let sse = 0;
  let maxResidual = 0;
  for (let i = 0; i < n; i++) {
    const r = ys[i]! - (intercept + slope * xs[i]!);
    sse += r * r;
    maxResidual = Math.max(maxResidual, Math.abs(r));
  }
  return { n, slope, intercept, r2: syy === 0 ? 1 : 1 - sse / syy, maxResidual };
}

/** Format a number of ms for a table: 3 significant digits, at least 0.001. */
export function ms(v: number | undefined | null): string {
  if (v === undefined || v === null || Number.isNaN(v)) return '-';
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 10) return v.toFixed(1);
  if (Math.abs(v) >= 1) return v.toFixed(2);
  return v.toFixed(3);
}

/** Render rows as an aligned text table (first row: headers). Numbers are right-aligned. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  const numeric = (s: string): boolean => /^[-+]?[\d.,]+[a-z%]*$/i.test(s) || s === '-';
  return rows
    .map((row, r) => {
      const line = row.map((cell, i) => (r > 0 && numeric(cell) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ');
      return line.trimEnd();
    })
    .join('\n');
}
