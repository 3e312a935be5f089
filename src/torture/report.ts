/** The torture test's table and files. */
import { writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { writePlots } from '../plot/render.js';
import { ms, table } from '../swarm/stats.js';
import { violations } from './analyze.js';
import { histogramSpec, latencySpec, timeSpec } from './plots.js';
import type { TortureReport } from './torture.js';

export function formatTorture(r: TortureReport): string {
  const rows: string[][] = [
    ['mode', 'probes', 'workers', 'tasks', 'replies', 'lost', 'dup', 'late', 'replies/s', 'p50 ms', 'p99 ms', 'max ms', 'legs p50 ms (up/down/probe/back/home)', 'clock viol.', 'slope', 'R²', 'max resid. ms'],
  ];
  for (const w of r.waves) {
    const l = w.legsMs;
    rows.push([
      w.mode,
      String(w.probes),
      String(w.workers),
      String(w.tasks),
      String(w.replies),
      String(w.lost),
      String(w.duplicated),
      String(w.late),
      w.throughput.toFixed(0),
      ms(w.rttMs?.p50),
      ms(w.rttMs?.p99),
      ms(w.rttMs?.max),
      [l.up, l.down, l.probe, l.back, l.home].map((q) => ms(q?.p50)).join('/'),
      String(violations(w.monotonicity)),
      w.fit ? w.fit.slope.toFixed(4) : '-',
      w.fit ? w.fit.r2.toFixed(6) : '-',
      w.fit ? ms(w.fit.maxResidualMs) : '-',
    ]);
  }
  const m = r.machine;
  return [
    `torture: ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, node ${m.node}; ${r.durationS.toFixed(0)} s; load average ${m.loadAverageBefore[0]} before, ${m.loadAverageAfter[0]} after`,
    table(rows),
    r.ok ? 'OK: no lost or duplicated reply, no clock violation' : 'FAILED: lost or duplicated replies, or clock violations (see above)',
  ].join('\n');
}

/** Write report.json (waves; messages only with `withMessages`) and the plots into `dir`. */
export async function writeTortureFiles(r: TortureReport, dir: string, formats: readonly string[], withMessages = false): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const json = path.join(dir, 'torture.json');
  const { messages, ...rest } = r;
  await writeFile(json, JSON.stringify(withMessages ? r : { ...rest, messages: Object.fromEntries(Object.entries(messages).map(([k, v]) => [k, v.length])) }, null, 1) + '\n');
  const files = [json];
  if (formats.length > 0) {
    files.push(...(await writePlots(timeSpec(r), dir, 'torture-time', formats)));
    files.push(...(await writePlots(latencySpec(r), dir, 'torture-latency', formats)));
    files.push(...(await writePlots(histogramSpec(r), dir, 'torture-histogram', formats)));
  }
  return files;
}
