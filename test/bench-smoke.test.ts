/**
 * The comparative benchmark still runs: one short scenario against fluctuat only, and the
 * result file has the shape docs/performance.md and the tables rely on. No thresholds: a
 * benchmark is not a test, this only keeps `npm run bench` from rotting.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runBench } from './helpers/bench.js';
import { ROOT } from './helpers/broker.js';

test('npm run bench: one scenario against fluctuat writes results of the expected shape', async () => {
  const env = { BENCH_RUNS: '1', BENCH_SECONDS: '0.5', BENCH_LATENCY_SECONDS: '0.5', BENCH_WARMUP: '0.2' };
  const { stdout, result: r, markdown, files } = await runBench<Record<string, unknown>>(['--targets', 'fluctuat', '--scenarios', 'tput-1x1-16,lat-20k'], env);
  assert.match(stdout, /^command: BENCH_RUNS=1 .*node .*run\.js --targets fluctuat/m, 'the header prints the exact command');

  assert.ok(files.includes('latest.json'), `latest.json in ${files.join(', ')}`);
  assert.ok(files.some((f) => /^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ\.json$/.test(f)), `a dated result file in ${files.join(', ')}`);
  for (const k of ['date', 'command', 'machine', 'options', 'brokers', 'scenarios', 'cells']) assert.ok(k in r, `result has ${k}`);
  const machine = r.machine as Record<string, unknown>;
  assert.equal(typeof machine.cores, 'number');
  assert.equal(machine.node, process.version);

  const cells = r.cells as Record<string, unknown>[];
  assert.deepEqual(
    cells.map((c) => `${c.scenario as string}/${c.target as string}`),
    ['tput-1x1-16/fluctuat', 'lat-20k/fluctuat'],
  );
  for (const c of cells) {
    for (const k of ['unit', 'n', 'median', 'min', 'max', 'generatorCpu', 'brokerCpu', 'lost', 'drops', 'errors', 'failures', 'runs']) assert.ok(k in c, `cell has ${k}`);
    assert.equal(c.n, 1, `one run behind the median of ${c.scenario as string}: ${JSON.stringify(c.failures)}`);
    assert.equal(typeof c.median, 'number');
    assert.ok((c.median as number) > 0);
    assert.equal((c.runs as unknown[]).length, 1);
  }
  const lat = cells[1]!.latency as Record<string, number>;
  for (const k of ['p50', 'p99', 'p999']) assert.equal(typeof lat[k], 'number', `latency has ${k}`);
  assert.ok(markdown.includes('| scenario |'), 'latest.md has the table');
});

test('npm run bench -- --baseline DIR: another build runs beside this one in the same pass, with a ratio column', async () => {
  // This checkout as its own baseline: what matters is that both run and are compared.
  const { stdout, result: r } = await runBench<{ cells: { target: string; n: number; runs: { pass?: number }[] }[]; brokers: Record<string, { version: string }> }>(
    ['--targets', 'fluctuat,fluctuat-mem', '--baseline', ROOT, '--scenarios', 'tput-1x1-16'],
    { BENCH_RUNS: '1', BENCH_SECONDS: '0.3', BENCH_WARMUP: '0.1' },
  );
  assert.deepEqual(
    r.cells.map((c) => c.target),
    ['fluctuat', 'baseline', 'fluctuat-mem', 'baseline-mem'],
    'each build of fluctuat is followed by its baseline twin',
  );
  for (const c of r.cells) assert.equal(c.n, 1, `${c.target} ran`);
  assert.ok(r.brokers.baseline!.version.startsWith(ROOT), `the report names the baseline: ${r.brokers.baseline!.version}`);
  assert.match(stdout, /÷ baseline/);
  // One ratio for file storage and one in brackets for memory storage, e.g. "1.0 (0.97)".
  assert.match(stdout, /^1→1, 16 B\s+[\d.]+ \([\d.]+\)\s*$/m, stdout);
});
