/** What a scatter-gather run amounts to: counts, latencies, failures by reason, per probe. */
import type { Outcome, ScatterReport } from './controller.js';
import { ms, quantiles, table, type Quantiles } from './stats.js';

export interface ProbeTally {
  expected: number;
  answered: number;
  ok: number;
  failed: number;
  late: number;
  missing: number;
  duplicates: number;
}

export interface Summary {
  readonly kind: string;
  readonly tasks: number;
  readonly answered: number;
  readonly ok: number;
  readonly failed: number;
  readonly late: number;
  readonly missing: number;
  readonly duplicates: number;
  readonly unsent: number;
  readonly durationMs: number;
  /** Controller send → answer received, ms. */
  readonly roundTripMs: Quantiles | null;
  /** What the probes measured (`value.latencyMs`), ms, for kinds that measure a latency. */
  readonly measuredMs: Quantiles | null;
  readonly failures: Readonly<Record<string, number>>;
  /** The first message seen for each failure reason. */
  readonly failureExamples: Readonly<Record<string, string>>;
  /** Per probe id; tasks sent to a queue group that nobody answered count under `(queue)`. */
  readonly perProbe: Readonly<Record<string, ProbeTally>>;
}

const QUEUE = '(queue)';

export function summarize(kind: string, report: ScatterReport): Summary {
  const rtt: number[] = [];
  const measured: number[] = [];
  const failures: Record<string, number> = {};
  const failureExamples: Record<string, string> = {};
  const perProbe: Record<string, ProbeTally> = {};
  const tally = (id: string): ProbeTally => (perProbe[id] ??= { expected: 0, answered: 0, ok: 0, failed: 0, late: 0, missing: 0, duplicates: 0 });
  for (const o of report.outcomes) {
    const first = o.replies[0];
    const owner = o.spec.target ?? first?.result.probe ?? QUEUE;
    const t = tally(owner);
    t.expected++;
    if (o.replies.length > 1) t.duplicates += o.replies.length - 1;
    countOutcome(o, t, failures);
    const error = first?.result.error;
    if (o.status === 'failed' && error && !(error.reason in failureExamples)) failureExamples[error.reason] = error.message;
    if (o.sendError && !('unsent' in failureExamples)) failureExamples.unsent = o.sendError;
    if (!first || !o.sent) continue;
    rtt.push((first.recv.monoUs - o.sent.monoUs) / 1000);
    const v = first.result.value as { latencyMs?: unknown } | undefined;
    if (first.result.ok && v && typeof v.latencyMs === 'number') measured.push(v.latencyMs);
  }
  return {
    kind,
    ...report.counts,
    durationMs: (report.endedMonoUs - report.startedMonoUs) / 1000,
    roundTripMs: quantiles(rtt),
    measuredMs: quantiles(measured),
    failures,
    failureExamples,
    perProbe,
  };
}

function countOutcome(o: Outcome, t: ProbeTally, failures: Record<string, number>): void {
  switch (o.status) {
    case 'ok':
      t.answered++;
      t.ok++;
      return;
    case 'failed': {
      t.answered++;
      t.failed++;
      const reason = o.replies[0]?.result.error?.reason ?? 'error';
      failures[reason] = (failures[reason] ?? 0) + 1;
      return;
    }
    case 'late':
      t.late++;
      failures.late = (failures.late ?? 0) + 1;
      return;
    case 'missing':
    case 'pending':
      t.missing++;
      failures[o.sendError ? 'unsent' : 'missing'] = (failures[o.sendError ? 'unsent' : 'missing'] ?? 0) + 1;
      return;
  }
}

/** The summary as text for a terminal. */
export function formatSummary(s: Summary): string {
  const lines: string[] = [];
  lines.push(`${s.kind}: ${s.tasks} tasks in ${(s.durationMs / 1000).toFixed(2)} s: ${s.ok} ok, ${s.failed} failed, ${s.late} late, ${s.missing} missing, ${s.duplicates} duplicated`);
  const q = (name: string, x: Quantiles | null): string[] => [name, String(x?.n ?? 0), ms(x?.p50), ms(x?.p90), ms(x?.p99), ms(x?.max)];
  lines.push(table([['latency (ms)', 'n', 'p50', 'p90', 'p99', 'max'], q('round trip', s.roundTripMs), ...(s.measuredMs ? [q('measured', s.measuredMs)] : [])]));
  const reasons = Object.entries(s.failures).sort((a, b) => b[1] - a[1]);
  if (reasons.length > 0) {
    lines.push(`failures: ${reasons.map(([r, n]) => `${r} ${n}`).join(', ')}`);
    for (const [r] of reasons) if (s.failureExamples[r]) lines.push(`  ${r}: ${s.failureExamples[r]}`);
  }
  const probes = Object.entries(s.perProbe).sort((a, b) => (a[0] < b[0] ? -1 : 1));
  if (probes.length > 0) {
    lines.push(
      table([
        ['probe', 'expected', 'ok', 'failed', 'late', 'missing', 'dup'],
        ...probes.map(([id, t]) => [id, String(t.expected), String(t.ok), String(t.failed), String(t.late), String(t.missing), String(t.duplicates)]),
      ]),
    );
  }
  return lines.join('\n');
}
