/**
 * A bounded torture run, the test itself: 2 waves (32 then 64 probes), in worker threads and
 * in child processes, against a broker the torture test starts as a child process. Every task
 * must be answered once (no lost, no duplicated reply) and every timestamp must respect the
 * clocks' order. No timing threshold: how fast is reported, not asserted.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { violations } from '../src/torture/analyze.js';
import { formatTorture, writeTortureFiles } from '../src/torture/report.js';
import { runTorture } from '../src/torture/torture.js';
import { BIN, tmpDir } from './helpers/broker.js';

describe('torture', () => {
  it('2 waves of 32 probes, threads and processes: nothing lost, nothing duplicated, clocks monotonic', async (t) => {
    const lines: string[] = [];
    const report = await runTorture({ wave: 32, max: 64, perWorker: 2, tasksPerProbe: 5, waveDurationMs: 2000, timeoutMs: 10_000, graceMs: 2000, log: (l) => lines.push(l) });
    const table = formatTorture(report);
    for (const line of table.split('\n')) t.diagnostic(line);
    assert.equal(report.waves.length, 4);
    assert.deepEqual(
      report.waves.map((w) => [w.mode, w.probes, w.workers]),
      [
        ['thread', 32, 16],
        ['thread', 64, 32],
        ['process', 32, 16],
        ['process', 64, 32],
      ],
    );
    for (const w of report.waves) {
      const where = `${w.mode} ${w.probes}`;
      assert.equal(w.tasks, w.probes * 5, where);
      assert.equal(w.lost, 0, `${where}: lost replies`);
      assert.equal(w.duplicated, 0, `${where}: duplicated replies`);
      assert.equal(w.replies, w.tasks, where);
      assert.equal(w.failed, 0, where);
      assert.deepEqual(w.monotonicity, { probeClock: 0, causality: 0, brokerOrder: 0 }, where);
      assert.equal(violations(w.monotonicity), 0);
      assert.ok(w.fit && w.fit.n === w.tasks, `${where}: a fit over every task`);
      assert.ok(w.rttMs && w.rttMs.min > 0 && w.rttMs.min <= w.rttMs.p50 && w.rttMs.p50 <= w.rttMs.p99 && w.rttMs.p99 <= w.rttMs.max, where);
      assert.ok(w.throughput > 0);
    }
    // Reference times only grow, wave after wave (one clock for the whole mode).
    for (const list of Object.values(report.messages)) {
      for (let i = 1; i < list.length; i++) if (list[i]!.wave === list[i - 1]!.wave) assert.ok(list[i]!.refS >= list[i - 1]!.refS);
    }
    assert.equal(report.ok, true);
    assert.ok(lines.some((l) => /^broker: pid \d+/.test(l)));

    const dir = tmpDir('fluctuat-torture-out-');
    try {
      const files = await writeTortureFiles(report, dir, ['svg']);
      assert.deepEqual(files.map((f) => path.basename(f)).sort(), ['torture-histogram.svg', 'torture-latency.svg', 'torture-time.svg', 'torture.json']);
      for (const f of files.filter((f) => f.endsWith('.svg'))) assert.match(fs.readFileSync(f, 'utf8'), /^<svg[^>]*>/);
      const json = JSON.parse(fs.readFileSync(path.join(dir, 'torture.json'), 'utf8')) as { ok: boolean; waves: unknown[] };
      assert.equal(json.ok, true);
      assert.equal(json.waves.length, 4);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('fluctuat torture on the command line writes its table, JSON and plots', async () => {
    const dir = tmpDir('fluctuat-torture-cli-');
    try {
      const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const p = spawn(process.execPath, [BIN, 'torture', '--wave', '2', '--max', '4', '--tasks', '3', '--wave-duration', '300ms', '--grace', '500ms', '--format', 'png', '--out', dir, '--no-progress'], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        p.stdout.on('data', (d: Buffer) => (out += d.toString()));
        p.stderr.on('data', (d: Buffer) => (err += d.toString()));
        p.on('exit', (c) => resolve({ code: c, stdout: out, stderr: err }));
      });
      assert.equal(code, 0, stderr);
      assert.match(stdout, /^thread\s+4\s+4\s+12\s+12\s+0\s+0\s/m);
      assert.match(stdout, /^process\s+4\s+4\s+12\s+12\s+0\s+0\s/m);
      assert.match(stdout, /OK: no lost or duplicated reply/);
      for (const f of ['torture.json', 'torture-time.png', 'torture-latency.png', 'torture-histogram.png']) {
        const bytes = fs.readFileSync(path.join(dir, f));
        if (f.endsWith('.png')) assert.deepEqual([...bytes.subarray(1, 4)], [0x50, 0x4e, 0x47]);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
