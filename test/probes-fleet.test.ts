/**
 * Fleets of probes in worker threads and child processes (the same code, the mode a flag):
 * presence up and down, probes marked gone when their worker dies, queue groups spreading
 * tasks, and the `fluctuat probe` / `fluctuat swarm` command lines.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { Fleet } from '../src/probes/fleet.js';
import type { Presence } from '../src/probes/protocol.js';
import { Swarm } from '../src/swarm/controller.js';
import { BIN, startBroker, tmpDir, type RunningBroker } from './helpers/broker.js';
import { until } from './helpers/raw.js';

let broker: RunningBroker;
before(async () => {
  broker = await startBroker();
});
after(async () => broker?.dispose());

for (const mode of ['thread', 'process'] as const) {
  describe(`a fleet in ${mode === 'thread' ? 'worker threads' : 'child processes'}`, () => {
    it('announces, answers, spreads queue tasks, leaves cleanly and is marked gone when killed', async () => {
      const root = `fleet.${mode}`;
      const swarm = await Swarm.connect({ url: broker.url, root });
      const events: Presence[] = [];
      const watch = swarm.watchPresence((p) => events.push(p));
      await watch.ready;
      const fleet = new Fleet({ url: broker.url, mode, root, perWorker: 2, labels: { mode }, kinds: ['clock', 'tcp'] });
      try {
        const up = await fleet.add(4);
        assert.equal(up.length, 4);
        assert.equal(fleet.workers, 2);
        assert.equal(new Set(up.map((p) => p.id)).size, 4);
        for (const p of up) {
          assert.equal(p.mode, mode);
          assert.deepEqual(p.labels, { mode });
        }
        // Threads share the pid and differ by thread id; processes differ by pid.
        const workers = new Set(up.map((p) => (mode === 'thread' ? p.threadId : p.pid)));
        assert.equal(workers.size, 2);
        await until(() => events.filter((e) => e.event === 'up').length === 4, 'four up events');

        const found = await swarm.rollcall({ expect: 4, waitMs: 10_000, kind: 'clock' });
        assert.deepEqual(found.map((p) => p.id).sort(), up.map((p) => p.id).sort());

        // 40 tasks on the queue group: each answered once, by probes of the fleet, all of them used.
        const report = await swarm.scatter(Array.from({ length: 40 }, () => ({ kind: 'clock', params: {} })), { timeoutMs: 10_000 });
        assert.equal(report.counts.ok, 40);
        assert.equal(report.counts.duplicates, 0);
        const by = new Map<string, number>();
        for (const o of report.outcomes) by.set(o.replies[0]!.result.probe, (by.get(o.replies[0]!.result.probe) ?? 0) + 1);
        assert.equal(by.size, 4);

        // Kill one worker: its two probes are announced gone by the fleet.
        const gone = new Promise<readonly Presence[]>((resolve) => fleet.once('gone', (probes) => resolve(probes)));
        assert.ok(fleet.killWorker(0));
        const killed = await gone;
        assert.equal(killed.length, 2);
        await until(() => events.filter((e) => e.event === 'gone').length === 2, 'two gone events');
        assert.equal(fleet.probes.length, 2);
      } finally {
        await fleet.stop('test-done');
      }
      await until(() => events.filter((e) => e.event === 'down').length === 2, 'two down events');
      assert.ok(events.filter((e) => e.event === 'down').every((e) => e.reason === 'test-done'));
      assert.equal(fleet.workers, 0);
      await swarm.close();
    });
  });
}

/** Run `fluctuat ...` to completion. */
function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('the command line', () => {
  it('fluctuat probe runs probes that fluctuat swarm lists, measures with and schedules', async () => {
    const dir = tmpDir('fluctuat-swarm-cli-');
    const probe = spawn(process.execPath, [BIN, 'probe', '-u', broker.url, '--count', '3', '--mode', 'process', '--per-worker', '3', '-l', 'region=eu', '--root', 'cli', '--duration', '60s'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => probe.once('exit', resolve));
    try {
      const lines = readline.createInterface({ input: probe.stdout! });
      await new Promise<void>((resolve, reject) => {
        lines.on('line', (l) => {
          if (/^3 probes up/.test(l)) resolve();
        });
        probe.once('exit', (code) => reject(new Error(`fluctuat probe exited with ${code}`)));
      });
      const u = ['-u', broker.url, '--root', 'cli', '--no-progress'];
      const list = await cli(['swarm', 'list', ...u, '--expect', '3', '--json']);
      assert.equal(list.code, 0, list.stderr);
      assert.equal((JSON.parse(list.stdout) as Presence[]).length, 3);

      const tcp = await cli(['swarm', 'tcp', `127.0.0.1:${broker.port}`, ...u, '--runs', '2', '--select', 'region=eu', '--expect', '3', '--json', '--out', path.join(dir, 'tcp.json')]);
      assert.equal(tcp.code, 0, tcp.stderr);
      const summary = JSON.parse(tcp.stdout) as { tasks: number; ok: number; measuredMs: { n: number } };
      assert.equal(summary.tasks, 6);
      assert.equal(summary.ok, 6);
      assert.equal(summary.measuredMs.n, 6);
      assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, 'tcp.json'), 'utf8')), summary);

      const none = await cli(['swarm', 'tcp', `127.0.0.1:${broker.port}`, ...u, '--select', 'region=mars', '--discover', '300ms']);
      assert.equal(none.code, 1);
      assert.match(none.stderr, /no probe of kind tcp matching region=mars/);

      const state = path.join(dir, 'state.log');
      const every = await cli(['swarm', 'clock', ...u, '--expect', '3', '--every', '50ms', '--rounds', '4', '--state-log', state, '--state-log-max', '1k']);
      assert.equal(every.code, 0, every.stderr);
      assert.equal(every.stdout.trim().split('\n').length, 12);
      assert.ok(fs.existsSync(`${state}.1`), 'the state log rotated');
      const replay = await cli(['swarm', 'replay', state]);
      assert.equal(replay.code, 0, replay.stdout + replay.stderr);
      assert.match(replay.stdout, /decisions replayed, 0 mismatches/);

      const perc = await cli(['swarm', 'percolation', ...u, '--expect', '3', '--p', '0.45:0.55:0.05', '--runs', '50', '--size', '16', '--seed', 'cli', '--plot', path.join(dir, 'sigmoid.svg')]);
      assert.equal(perc.code, 0, perc.stderr);
      assert.match(perc.stdout, /threshold: p = 0\.\d{4}/);
      assert.match(fs.readFileSync(path.join(dir, 'sigmoid.svg'), 'utf8'), /^<svg/);

      const bad = await cli(['swarm', 'teleport', ...u]);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /unknown kind "teleport"/);
    } finally {
      probe.kill('SIGTERM');
      assert.equal(await exited, 0);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
