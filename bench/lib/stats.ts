/** Medians and number formatting for the benchmark tables. */

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** 3 significant digits with k / M suffixes: 5.21 M, 187 k, 940. */
export function si(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  // Judged after rounding to 3 digits, so 999,600 reads 1.00 M, not 1.00e+3 k.
  const a = Number(Math.abs(n).toPrecision(3));
  if (a >= 1e9) return `${(n / 1e9).toPrecision(3)} G`;
  if (a >= 1e6) return `${(n / 1e6).toPrecision(3)} M`;
  if (a >= 1e4) return `${(n / 1e3).toPrecision(3)} k`;
  if (a >= 100) return String(Math.round(n));
  return n.toPrecision(3);
}

/** Microseconds, compact: 73, 1.2k, 50k (µs). */
export function us(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  if (n >= 1e6) return `${(n / 1e6).toPrecision(2)}s`;
  if (n >= 1e4) return `${Math.round(n / 1e3)}k`;
  if (n >= 1e3) return `${(n / 1e3).toPrecision(2)}k`;
  return String(Math.round(n));
}

export function ratio(a: number | null | undefined, b: number | null | undefined): string {
  if (a === null || a === undefined || b === null || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return '—';
  const r = a / b;
  return r >= 10 ? r.toFixed(0) : r >= 1 ? r.toFixed(1) : r.toFixed(2);
}

export function pct(cores: number | null | undefined): string {
  if (cores === null || cores === undefined || !Number.isFinite(cores)) return '—';
  return `${Math.round(cores * 100)}%`;
}

/** Bytes as MiB: 41 MiB, 1.2 GiB. */
export function mib(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return '—';
  const m = bytes / (1024 * 1024);
  return m >= 1024 ? `${(m / 1024).toPrecision(2)} GiB` : `${m >= 100 ? Math.round(m) : m.toPrecision(2)} MiB`;
}

export function pad(s: string, n: number, left = false): string {
  return left ? s.padEnd(n) : s.padStart(n);
}
