/** The torture test's plots, as Vega-Lite specifications. */
import type { PlotSpec } from '../plot/render.js';
import type { TortureReport } from './torture.js';

const MODE_COLORS = { domain: ['thread', 'process'], range: ['#d62728', '#1f77b4'] };

/** Evenly spaced subsample (keeps the first and last), so plots stay light. */
function thin<T>(xs: readonly T[], max: number): T[] {
  if (xs.length <= max) return [...xs];
  const out: T[] = [];
  const step = (xs.length - 1) / (max - 1);
  for (let i = 0; i < max; i++) out.push(xs[Math.round(i * step)]!);
  return out;
}

/** Measured time against reference time (and their difference), threads and processes side by side. */
export function timeSpec(r: TortureReport, maxPoints = 3000): PlotSpec {
  const values = Object.entries(r.messages).flatMap(([mode, list]) =>
    thin(list, maxPoints).map((m) => ({ mode, ref: m.refS, measured: m.measuredS, lagMs: Math.max(0.01, (m.measuredS - m.refS) * 1000), probes: m.probes })),
  );
  const maxRef = values.reduce((m, v) => Math.max(m, v.ref, v.measured), 0);
  const x = { field: 'ref', type: 'quantitative', title: 'reference time: controller sends the task (s)' };
  const color = { field: 'probes', type: 'ordinal', title: 'probes', scale: { scheme: 'viridis' } };
  const facet = { field: 'mode', type: 'nominal', title: null, sort: ['thread', 'process'], header: { labelFontSize: 13, labelFontWeight: 'bold' } };
  return {
    title: { text: 'Measured time against time', subtitle: 'top: probe receive time vs send time on the host monotonic clock (dashed: x = y); bottom: the difference' },
    vconcat: [
      {
        data: { values },
        facet: { column: facet },
        spec: {
          width: 330,
          height: 260,
          layer: [
            { data: { values: [{ ref: 0, measured: 0 }, { ref: maxRef, measured: maxRef }] }, mark: { type: 'line', color: '#888', strokeDash: [4, 3] }, encoding: { x: { field: 'ref', type: 'quantitative' }, y: { field: 'measured', type: 'quantitative' } } },
            { mark: { type: 'point', size: 6, filled: true, opacity: 0.6 }, encoding: { x, y: { field: 'measured', type: 'quantitative', title: 'measured: probe receives it (s)' }, color } },
          ],
        },
      },
      {
        data: { values },
        facet: { column: facet },
        spec: {
          width: 330,
          height: 200,
          mark: { type: 'point', size: 6, filled: true, opacity: 0.6 },
          encoding: { x, y: { field: 'lagMs', type: 'quantitative', title: 'measured − reference (ms, log scale)', scale: { type: 'log' } }, color },
        },
      },
    ],
  };
}

/** Round-trip latency (p50, p99, max) against the number of probes, per mode. */
export function latencySpec(r: TortureReport): PlotSpec {
  const values = r.waves.flatMap((w) =>
    w.rttMs ? (['p50', 'p99', 'max'] as const).map((stat) => ({ mode: w.mode, probes: w.probes, stat, ms: w.rttMs![stat] })) : [],
  );
  return {
    title: { text: 'Round-trip latency against probe count', subtitle: ['controller → broker → probe → broker → controller', '● solid: p50   ■ dashed: p99   ▲ dotted: max'] },
    width: 520,
    height: 320,
    data: { values },
    mark: { type: 'line', point: { filled: true, size: 50 } },
    encoding: {
      x: { field: 'probes', type: 'quantitative', title: 'probes' },
      y: { field: 'ms', type: 'quantitative', title: 'latency (ms, log scale)', scale: { type: 'log' } },
      color: { field: 'mode', type: 'nominal', scale: MODE_COLORS, title: 'mode' },
      strokeDash: { field: 'stat', type: 'nominal', sort: ['p50', 'p99', 'max'], legend: null },
      shape: { field: 'stat', type: 'nominal', sort: ['p50', 'p99', 'max'], scale: { range: ['circle', 'square', 'triangle-up'] }, legend: null },
    },
  };
}

/** Histogram of round-trip latency, log-spaced bins, per mode. */
export function histogramSpec(r: TortureReport, binsPerDecade = 10): PlotSpec {
  const values: { mode: string; lo: number; hi: number; count: number }[] = [];
  for (const [mode, list] of Object.entries(r.messages)) {
    const counts = new Map<number, number>();
    for (const m of list) {
      const k = Math.floor(Math.log10(Math.max(m.rttMs, 1e-3)) * binsPerDecade);
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    for (const [k, count] of [...counts].sort((a, b) => a[0] - b[0])) values.push({ mode, lo: 10 ** (k / binsPerDecade), hi: 10 ** ((k + 1) / binsPerDecade), count });
  }
  return {
    title: { text: 'Round-trip latency histogram', subtitle: 'every task of every wave' },
    width: 520,
    height: 300,
    data: { values },
    mark: { type: 'rect', opacity: 0.55 },
    encoding: {
      x: { field: 'lo', type: 'quantitative', title: 'round trip (ms, log scale)', scale: { type: 'log' } },
      x2: { field: 'hi' },
      y: { field: 'count', type: 'quantitative', title: 'tasks', stack: null },
      color: { field: 'mode', type: 'nominal', scale: MODE_COLORS, title: 'mode' },
    },
  };
}
