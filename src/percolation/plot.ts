/** The sigmoid: crossing probability against p, the fitted logistic and the threshold. */
import type { PlotSpec } from '../plot/render.js';
import type { PercolationResult } from './experiment.js';

export function sigmoidSpec(r: PercolationResult): PlotSpec {
  const t = r.threshold;
  const points = r.points.map((pt) => ({ p: pt.p, probability: pt.probability, runs: pt.runs }));
  const curve: { p: number; fit: number }[] = [];
  if (t && t.method === 'logistic') {
    const lo = r.points[0]!.p;
    const hi = r.points[r.points.length - 1]!.p;
    for (let i = 0; i <= 200; i++) {
      const p = lo + ((hi - lo) * i) / 200;
      curve.push({ p, fit: 1 / (1 + Math.exp(-(p - t.p) / t.width)) });
    }
  }
  const title = `Crossing probability, ${r.size}×${r.size} hexagonal cells, ${r.runs} runs per p (seed ${r.seed})`;
  const subtitle = t ? `threshold estimate ${t.p.toFixed(4)}${Number.isFinite(t.stderr) ? ` ± ${t.stderr.toFixed(4)}` : ''} (${t.method}); exact value 1/2` : 'no threshold estimate';
  const x = { field: 'p', type: 'quantitative', title: 'p (probability that a cell is open)', scale: { zero: false } };
  return {
    width: 560,
    height: 320,
    title: { text: title, subtitle },
    layer: [
      { data: { values: curve }, mark: { type: 'line', color: '#999', strokeDash: [4, 3] }, encoding: { x, y: { field: 'fit', type: 'quantitative' } } },
      {
        data: { values: points },
        mark: { type: 'point', filled: true, size: 30, color: '#1f77b4' },
        encoding: { x, y: { field: 'probability', type: 'quantitative', title: 'P(open path joins top and bottom)', scale: { domain: [0, 1] } }, tooltip: [{ field: 'p' }, { field: 'probability' }, { field: 'runs' }] },
      },
      ...(t ? [{ data: { values: [{ p: t.p }] }, mark: { type: 'rule', color: '#d62728' }, encoding: { x } }] : []),
      { data: { values: [{ p: 0.5 }] }, mark: { type: 'rule', color: '#2ca02c', strokeDash: [2, 2] }, encoding: { x } },
    ],
  };
}
