/**
 * `npm run bench -- --pin`: the generator is moved to the last CPU, brokers started by the
 * benchmark run on the others, and a peer that was already running is moved there and put back
 * as it was, however the run ends. Real processes and real affinities (taskset), read back from
 * /proc; the pinning runs in a child process so this test runner keeps its CPUs.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { parseCpuList, allowedCpus } from '../bench/lib/pin.js';
import { busiestThread, selfThreadCpuSeconds } from '../bench/lib/proc.js';
import { ROOT } from './helpers/broker.js';
import { runBench } from './helpers/bench.js';
import { runNode } from './helpers/child.js';

const cpus = allowedCpus();
const hasTaskset = spawnSync('taskset', ['--version']).status === 0;
const skip = cpus.length < 2 ? 'needs 2 CPUs' : !hasTaskset ? 'needs taskset (util-linux)' : false;

test('CPU lists parse as taskset and /proc write them', () => {
  assert.deepEqual(parseCpuList('0-2,5'), [0, 1, 2, 5]);
  assert.deepEqual(parseCpuList('3'), [3]);
  assert.deepEqual(parseCpuList('0,2-3'), [0, 2, 3]);
  assert.ok(cpus.length >= 1, `this process's CPUs are read from /proc: ${JSON.stringify(cpus)}`);
});

test("the busiest thread: each thread's CPU between two readings, this process's main thread included", () => {
  const before = new Map([['1', 1.0], ['2', 5.0]]);
  const after = new Map([['1', 1.5], ['2', 5.2], ['3', 9.0]]); // 3 started in between: not counted
  assert.equal(busiestThread(before, after, 0.5), 1);
  const mine = selfThreadCpuSeconds();
  assert.ok(mine.has(String(process.pid)), 'the main thread is listed by its id (the pid)');
  assert.ok(mine.get(String(process.pid))! > 0);
});

test('pinning moves the generator and a running peer, and puts the peer back at exit', { skip }, async () => {
  const gen = cpus[cpus.length - 1]!;
  const brokers = cpus.slice(0, -1).join(',');
  const peer = spawn('sleep', ['60'], { stdio: 'ignore' });
  const pid = peer.pid!;
  const cpusOf = (p: number) => /^Cpus_allowed_list:\s*(\S+)/m.exec(fs.readFileSync(`/proc/${p}/status`, 'latin1'))![1];
  const before = cpusOf(pid);
  try {
    const script = `
      import { pinGenerator, pinPeer, onBrokerCpus, allowedCpus } from ${JSON.stringify(path.join(ROOT, 'dist/bench/lib/pin.js'))};
      import { spawn, spawnSync } from 'node:child_process';
      import fs from 'node:fs';
      const p = pinGenerator();
      const failed = pinPeer(${pid});
      const [cmd, args] = onBrokerCpus('sh', ['-c', 'grep Cpus_allowed_list /proc/self/status']);
      const child = spawnSync(cmd, args, { encoding: 'utf8' }).stdout.trim();
      const peer = /^Cpus_allowed_list:\\s*(\\S+)/m.exec(fs.readFileSync('/proc/${pid}/status', 'latin1'))[1];
      console.log(JSON.stringify({ p, failed, self: allowedCpus(), child, peer }));
    `;
    const { code, stdout, stderr } = await runNode(['--input-type=module', '-e', script], { cwd: ROOT, timeoutMs: 30_000 });
    assert.equal(code, 0, stderr);
    const r = JSON.parse(stdout.trim()) as { p: { brokers: string; generator: string }; failed: string | null; self: number[]; child: string; peer: string };
    assert.deepEqual(r.p, { brokers, generator: String(gen), generatorCpus: 1 });
    assert.deepEqual(r.self, [gen], 'the generator runs on the last CPU');
    assert.equal(r.failed, null);
    assert.match(r.child, new RegExp(`Cpus_allowed_list:\\s*${brokers.replace(/,/g, ',')}$`), 'a broker started by the benchmark runs on the others');
    assert.equal(parseCpuList(r.peer).join(','), brokers, 'the running peer was moved while the run lasted');
    assert.equal(cpusOf(pid), before, 'and put back when the run ended');
  } finally {
    peer.kill();
  }
});

test('npm run bench -- --pin prints and records the pinning', { skip }, async () => {
  const { stdout, result: r, markdown } = await runBench<{ pinning: string; cells: { generatorBusiest: number; runs: { generatorBound: boolean }[] }[] }>([
    '--pin',
    '--targets',
    'fluctuat-mem',
    '--scenarios',
    'tput-1x1-16',
    '--runs',
    '1',
    '--seconds',
    '0.5',
    '--warmup',
    '0.2',
  ]);
  const note = `brokers on CPU ${cpus.slice(0, -1).join(',')}, load generator on CPU ${cpus[cpus.length - 1]}`;
  assert.ok(stdout.includes(`pinning: ${note}`), stdout);
  assert.equal(r.pinning, note);
  assert.equal(typeof r.cells[0]!.generatorBusiest, 'number');
  assert.equal(typeof r.cells[0]!.runs[0]!.generatorBound, 'boolean');
  assert.ok(markdown.includes(`Pinning: ${note}.`));
});
