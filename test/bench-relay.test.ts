/**
 * `npm run bench:relay` still runs: every relay moves every byte (the harness checks the
 * consumer's count) and the table has a row for each. No thresholds: a benchmark is not a test.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT } from './helpers/broker.js';
import { runNode } from './helpers/child.js';

const hasCc = spawnSync('cc', ['--version'], { stdio: 'ignore' }).status === 0;

test('npm run bench:relay: Node stream, Node onread and C relays each relay everything', async () => {
  const { code, stdout, stderr } = await runNode([path.join(ROOT, 'dist/bench/relay.js'), '--gigabytes', '0.02', '--runs', '1'], { cwd: ROOT, timeoutMs: 120_000 });
  assert.equal(code, 0, `relay bench failed:\n${stdout}\n${stderr}`);
  const rows = new Map(
    stdout
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => ['node-stream', 'node-onread', 'c'].includes(f[0]!) && f.length >= 6)
      .map((f) => [f[0]!, f.slice(1).map(Number)]),
  );
  const expected = hasCc ? ['node-stream', 'node-onread', 'c'] : ['node-stream', 'node-onread'];
  assert.deepEqual([...rows.keys()], expected, stdout);
  for (const [name, [mbps, cpu, user, system, perMessage]] of rows) {
    for (const v of [mbps, cpu, user, system, perMessage]) assert.ok(Number.isFinite(v) && v! >= 0, `${name}: ${stdout}`);
    assert.ok(mbps! > 0 && cpu! > 0, `${name} moved bytes and used CPU: ${stdout}`);
  }
  if (hasCc) assert.match(stdout, /÷ C \(CPU\)/);
  else assert.match(stdout, /no C relay/);
});

test('npm run bench:relay: an unknown relay is refused by name', async () => {
  const { code, stderr } = await runNode([path.join(ROOT, 'dist/bench/relay.js'), '--relays', 'node-stream,rust'], { cwd: ROOT, timeoutMs: 30_000 });
  assert.notEqual(code, 0);
  assert.match(stderr, /unknown relay rust/);
});
