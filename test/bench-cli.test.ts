/**
 * The benchmarks' command lines: every tool explains itself with --help and refuses a bad or
 * unknown option by name, before starting anything (real child processes).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT } from './helpers/broker.js';

function run(tool: string, args: string[], env: Record<string, string> = {}): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'dist/bench', tool), ...args], { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('--help lists the options and their environment variables, and exits 0', () => {
  const cases: [string, string[]][] = [
    ['run.js', ['--scenarios <list>', 'BENCH_RUNS', '--profile <dir>', '--doc']],
    ['scale.js', ['--max-connections <n>', 'BENCH_SCALE_CONNS', '--plot <file>']],
    ['hotpath.js', ['--storage <driver>', 'env: STORAGE', '--no-acks', '--window <n>']],
    ['flame.js', ['<profile>', '--min <percent>', '--png']],
  ];
  for (const [tool, expected] of cases) {
    const { code, out } = run(tool, ['--help']);
    assert.equal(code, 0, tool);
    for (const e of expected) assert.ok(out.includes(e), `${tool} --help mentions ${e}:\n${out}`);
  }
});

test('a bad value or an unknown option is refused by name, with exit 1', () => {
  const cases: [string, string[], RegExp][] = [
    ['run.js', ['--runs', '0'], /option '--runs <n>' argument '0' is invalid\. a whole number of at least 1/],
    ['run.js', ['--targets', 'fluctuat,kafka'], /unknown target kafka/],
    ['run.js', ['--bogus'], /unknown option '--bogus'/],
    ['run.js', ['--baseline', '/nonexistent'], /\/nonexistent has no bin\/fluctuat\.js: a fluctuat checkout after npm ci and npm run build/],
    ['scale.js', ['--max-channels', 'many'], /option '--max-channels <n>' argument 'many' is invalid/],
    ['hotpath.js', ['--storage', 'disk'], /Allowed choices are memory, file/],
  ];
  for (const [tool, args, expected] of cases) {
    const { code, err } = run(tool, args);
    assert.equal(code, 1, `${tool} ${args.join(' ')}`);
    assert.match(err, expected);
  }
  // The environment is checked as the flag is.
  const { code, err } = run('run.js', [], { BENCH_SECONDS: 'soon' });
  assert.equal(code, 1);
  assert.match(err, /option '--seconds <s>' value 'soon' from env 'BENCH_SECONDS' is invalid/);
});

test('--render prints the tables of a saved run without measuring, as docs/performance.md shows them', () => {
  // The run whose tables docs/performance.md holds (its header names the start time).
  const doc = fs.readFileSync(path.join(ROOT, 'docs', 'performance.md'), 'utf8');
  const section = doc.slice(doc.indexOf('<!-- bench:results:start -->'), doc.indexOf('<!-- bench:results:end -->'));
  const measured = /^Measured (\S+) with .*$/m.exec(section);
  assert.ok(measured, 'the results section starts with its header');
  const file = path.join(ROOT, 'bench', 'results', `${measured[1]!.replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')}.json`);
  assert.ok(fs.existsSync(file), `${file} is committed with the section it produced`);
  const { code, out } = run('run.js', ['--render', file]);
  assert.equal(code, 0);
  assert.ok(out.startsWith(measured[0]), `the same header line:\n${out.slice(0, 300)}`);
  assert.match(out, /^ratios fluctuat ÷ peer/m);
  assert.doesNotMatch(out, /^run \d+\//m, 'nothing was measured');
  // Each figure of the section's first table row is in the rendered table.
  const row = /^\| 1→1, 16 B \| msgs\/s \| (.+) \| \d+ \|$/m.exec(section)!;
  for (const figure of row[1]!.split(' | ')) assert.ok(out.includes(figure), `${figure} rendered`);

  const bad = run('run.js', ['--render', path.join(ROOT, 'package.json')]);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /package\.json is not a saved benchmark run/);
});
