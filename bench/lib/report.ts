/**
 * Results: one cell per (scenario, broker) holding every run, its medians, and the tables
 * (plain text for the terminal, Markdown for docs/performance.md).
 */
import type { Outcome } from './gen.js';
import type { Scenario } from './scenarios.js';
import { median, mib, pad, pct, ratio, si, us } from './stats.js';
import { LABELS, type TargetName } from './targets.js';

export interface Cell {
  scenario: string;
  target: TargetName;
  unit: string;
  /** Runs that produced a figure; `median` is taken over them. */
  n: number;
  median: number;
  min: number;
  max: number;
  latency?: { p50: number; p99: number; p999: number; max: number };
  generatorCpu: number;
  /** Median CPU of the generator's busiest thread (cores). */
  generatorBusiest: number;
  /** Runs in which the generator may have set the rate (Outcome.generatorBound). */
  generatorBound: number;
  brokerCpu: number | null;
  /** Median over the runs of the broker's peak resident memory during a run, bytes. */
  brokerRssPeak: number | null;
  lost: number;
  drops: number;
  errors: number;
  /** Runs' subscribers that the broker disconnected, summed. */
  disconnects: number;
  failures: string[];
  skipped?: string;
  runs: Outcome[];
}

/** The figure a run is judged by: p99 latency for latency scenarios, the rate otherwise. */
function figure(s: Scenario, o: Outcome): number {
  return s.unit === 'µs' ? (o.latency?.p99 ?? NaN) : o.rate;
}

export function summarise(s: Scenario, target: TargetName, outcomes: Outcome[], failures: string[], skipped?: string): Cell {
  const values = outcomes.map((o) => figure(s, o));
  const lat = outcomes.filter((o) => o.latency).map((o) => o.latency!);
  const brokers = outcomes.map((o) => o.brokerCpu).filter((x): x is number => x !== null);
  // Results written before the column existed have no RSS.
  const rss = outcomes.map((o) => o.brokerRssPeak ?? null).filter((x): x is number => x !== null);
  return {
    scenario: s.id,
    target,
    unit: s.unit,
    n: outcomes.length,
    median: median(values),
    min: Math.min(...values),
    max: Math.max(...values),
    ...(lat.length
      ? {
          latency: {
            p50: median(lat.map((l) => l.p50)),
            p99: median(lat.map((l) => l.p99)),
            p999: median(lat.map((l) => l.p999)),
            max: median(lat.map((l) => l.max)),
          },
        }
      : {}),
    generatorCpu: median(outcomes.map((o) => o.generatorCpu)),
    generatorBusiest: median(outcomes.map((o) => o.generatorBusiest ?? NaN)),
    generatorBound: outcomes.filter((o) => o.generatorBound).length,
    brokerCpu: brokers.length ? median(brokers) : null,
    brokerRssPeak: rss.length ? median(rss) : null,
    lost: outcomes.reduce((a, o) => a + o.lost, 0),
    drops: outcomes.reduce((a, o) => a + o.drops, 0),
    errors: outcomes.reduce((a, o) => a + o.errors, 0),
    disconnects: outcomes.reduce((a, o) => a + (o.disconnects ?? 0), 0),
    failures,
    ...(skipped ? { skipped } : {}),
    runs: outcomes,
  };
}

/** What fluctuat is compared with; a baseline build first (its memory-storage twin in brackets). */
const PEERS: readonly TargetName[] = ['baseline', 'nats', 'redis', 'redis-aof', 'mosquitto', 'aedes', 'node-floor'];
/** The peer memory storage is compared with: the baseline's own memory storage, or the same peer. */
const memPeer = (p: TargetName): TargetName => (p === 'baseline' ? 'baseline-mem' : p);

/** A cell's note: why it was skipped or failed, and whether the generator set its rate. */
function noteOf(c: Cell): string {
  const bound = c.generatorBound > 0 ? `generator-bound in ${c.generatorBound} of ${c.n} runs` : '';
  const cut = c.disconnects > 0 ? `the broker disconnected ${c.disconnects === 1 ? 'a subscriber' : `${c.disconnects} subscribers`} (${c.n} runs)` : '';
  return [c.skipped ?? (c.failures.length ? c.failures[0]!.slice(0, 100) : ''), cut, bound].filter(Boolean).join('; ');
}

function value(s: Scenario, c: Cell | undefined): string {
  if (!c) return 'n/a';
  if (c.n === 0) return c.skipped ? 'skip' : 'fail';
  if (c.latency) return `${us(c.latency.p50)}/${us(c.latency.p99)}/${us(c.latency.p999)}`;
  return si(c.median);
}

function lookup(cells: Cell[], s: Scenario, t: TargetName): Cell | undefined {
  return cells.find((c) => c.scenario === s.id && c.target === t);
}

/**
 * fluctuat ÷ peer: the median of the ratios of runs from the same pass. A pass runs every
 * broker back to back, so a pass on a busier machine weighs on both sides of its ratio instead
 * of on whichever broker's median it happened to set. Without common passes (a run failed),
 * the ratio of the medians.
 */
export function pairedRatio(s: Scenario, f: Cell | undefined, p: Cell | undefined): number | null {
  if (!f || !p || f.n === 0 || p.n === 0) return null;
  const peer = new Map<number, number>();
  for (const o of p.runs) if (o.pass !== undefined) peer.set(o.pass, figure(s, o));
  const ratios: number[] = [];
  for (const o of f.runs) {
    const b = o.pass === undefined ? undefined : peer.get(o.pass);
    if (b !== undefined && b > 0 && Number.isFinite(b)) ratios.push(figure(s, o) / b);
  }
  return ratios.length ? median(ratios) : p.median > 0 ? f.median / p.median : null;
}

export interface Tables {
  text: string;
  markdown: string;
}

/** Text for a Markdown table cell: a `|` would end the cell. */
const cell = (text: string): string => text.replace(/\|/g, '\\|');

export function tables(scenarios: Scenario[], cells: Cell[], targets: TargetName[]): Tables {
  const cols = targets;
  const peers = PEERS.filter((p) => targets.includes(p));
  const runsOf = (s: Scenario): string => {
    const ns = cols.map((t) => lookup(cells, s, t)).filter((c): c is Cell => !!c && c.n > 0).map((c) => c.n);
    if (ns.length === 0) return '0';
    const lo = Math.min(...ns);
    const hi = Math.max(...ns);
    return lo === hi ? String(lo) : `${lo}–${hi}`;
  };
  const ratioOf = (s: Scenario, f: TargetName, p: TargetName): string => ratio(pairedRatio(s, lookup(cells, s, f), lookup(cells, s, p)), 1);
  const W = 48;
  const CW = 17;
  const text: string[] = [];
  text.push(pad('scenario', W, true) + pad('unit', 13) + cols.map((t) => pad(LABELS[t], CW)).join('') + pad('runs', 6));
  for (const s of scenarios) {
    text.push(pad(s.title.slice(0, W - 1), W, true) + pad(s.unit, 13) + cols.map((t) => pad(value(s, lookup(cells, s, t)), CW)).join('') + pad(runsOf(s), 6));
  }
  const hasMem = targets.includes('fluctuat-mem');
  if (peers.length) {
    text.push('');
    text.push(
      `ratios fluctuat ÷ peer on the primary figure, median of the passes' ratios (throughput: >1 means fluctuat is faster; latency p99: <1 means fluctuat is faster)` +
        (hasMem ? `; in brackets: fluctuat with --storage memory` : '') +
        (peers.includes('baseline') ? '; ÷ baseline: this tree ÷ the --baseline build, memory storage against its memory storage in brackets' : ''),
    );
    text.push(pad('scenario', W, true) + peers.map((p) => pad(`÷ ${LABELS[p]}`, CW)).join(''));
    for (const s of scenarios) {
      if (!peers.some((p) => lookup(cells, s, p))) continue;
      text.push(
        pad(s.title.slice(0, W - 1), W, true) +
          peers
            .map((p) => {
              const f = ratioOf(s, 'fluctuat', p);
              const m = hasMem && lookup(cells, s, 'fluctuat-mem') && lookup(cells, s, memPeer(p)) ? ` (${ratioOf(s, 'fluctuat-mem', memPeer(p))})` : '';
              return pad(lookup(cells, s, p) ? f + m : 'n/a', CW);
            })
            .join(''),
      );
    }
  }
  text.push('');
  text.push(
    "details: median [min–max] of the primary figure, CPU in cores during the measured window (2 cores = 200%); gen thread: the generator's busiest thread (100% = that thread was the limit); broker RSS: the most resident memory of the broker's processes seen during a run (median over runs)",
  );
  text.push(pad('scenario', 20, true) + pad('broker', 14, true) + pad('median', 10) + pad('min–max', 20) + pad('n', 3) + pad('gen CPU', 9) + pad('gen thread', 11) + pad('broker CPU', 11) + pad('broker RSS', 11) + pad('lost', 11) + pad('drops', 11) + pad('errors', 8) + '  note');
  for (const s of scenarios) {
    for (const t of cols) {
      const c = lookup(cells, s, t);
      if (!c) continue;
      const note = noteOf(c);
      const fmt = c.latency ? us : si;
      text.push(
        pad(s.id, 20, true) +
          pad(LABELS[t], 14, true) +
          pad(c.n ? fmt(c.median) : '—', 10) +
          pad(c.n ? `${fmt(c.min)}–${fmt(c.max)}` : '—', 20) +
          pad(String(c.n), 3) +
          pad(c.n ? pct(c.generatorCpu) : '—', 9) +
          pad(c.n ? pct(c.generatorBusiest) : '—', 11) +
          pad(c.n ? pct(c.brokerCpu) : '—', 11) +
          pad(c.n ? mib(c.brokerRssPeak) : '—', 11) +
          pad(String(c.lost), 11) +
          pad(String(c.drops), 11) +
          pad(String(c.errors), 8) +
          (note ? `  ${note}` : ''),
      );
    }
  }

  const md: string[] = [];
  md.push(`| scenario | unit | ${cols.map((t) => LABELS[t]).join(' | ')} | runs |`);
  md.push(`|---|---|${cols.map(() => '---:').join('|')}|---:|`);
  for (const s of scenarios) md.push(`| ${cell(s.title)} | ${s.unit} | ${cols.map((t) => value(s, lookup(cells, s, t))).join(' | ')} | ${runsOf(s)} |`);
  if (peers.length) {
    md.push('');
    md.push(`Ratios fluctuat ÷ peer on the primary figure, the median of each pass's ratio (throughput: above 1 fluctuat is faster; latency, on p99: below 1 fluctuat is faster)${hasMem ? '; in brackets fluctuat with `--storage memory`' : ''}${peers.includes('baseline') ? '; ÷ baseline: this tree ÷ the `--baseline` build, memory storage against its memory storage in brackets' : ''}:`);
    md.push('');
    md.push(`| scenario | ${peers.map((p) => `÷ ${LABELS[p]}`).join(' | ')} |`);
    md.push(`|---|${peers.map(() => '---:').join('|')}|`);
    for (const s of scenarios) {
      if (!peers.some((p) => lookup(cells, s, p))) continue;
      md.push(
        `| ${cell(s.title)} | ${peers
          .map((p) => {
            if (!lookup(cells, s, p)) return 'n/a';
            const m = hasMem && lookup(cells, s, 'fluctuat-mem') && lookup(cells, s, memPeer(p)) ? ` (${ratioOf(s, 'fluctuat-mem', memPeer(p))})` : '';
            return ratioOf(s, 'fluctuat', p) + m;
          })
          .join(' | ')} |`,
      );
    }
  }
  md.push('');
  md.push("Load generator and broker CPU (cores, medians) during the measured window, the generator's busiest thread, the broker's peak resident memory during a run (median), and anything lost:");
  md.push('');
  md.push('| scenario | broker | gen CPU | gen thread | broker CPU | broker RSS | lost | drops | errors | note |');
  md.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---|');
  for (const s of scenarios) {
    for (const t of cols) {
      const c = lookup(cells, s, t);
      if (!c) continue;
      const note = cell(noteOf(c)).replace(/\n/g, ' ').slice(0, 160);
      md.push(`| ${s.id} | ${LABELS[t]} | ${c.n ? pct(c.generatorCpu) : '—'} | ${c.n ? pct(c.generatorBusiest) : '—'} | ${c.n ? pct(c.brokerCpu) : '—'} | ${c.n ? mib(c.brokerRssPeak) : '—'} | ${c.lost} | ${c.drops} | ${c.errors} | ${note} |`);
    }
  }
  return { text: text.join('\n'), markdown: md.join('\n') };
}
