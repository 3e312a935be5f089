// How the broker scavenges (src/server/scavenger.ts): one thread on two CPUs or fewer unless
// FLUCTUAT_PARALLEL_SCAVENGE or a node flag says otherwise, bad values refused before anything
// opens, the choice in the startup log, and the flag really reaching V8 when set at run time.
// Whether one thread is faster is a benchmark's question (lat-20k, docs/performance-history.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { tuneScavenger, type ScavengerHost } from '../src/server/scavenger.js';
import { ROOT, startBroker } from './helpers/broker.js';
import { assertConsoleExample, assertStartRefused } from './helpers/startup.js';

const run = promisify(execFile);

function host(env: Record<string, string>, cpus: number, execArgv: string[] = []): ScavengerHost & { flags: string[] } {
  const flags: string[] = [];
  return { env, cpus, execArgv, flags, setFlag: (f) => flags.push(f) };
}

test('tuneScavenger: auto is one thread on two CPUs or fewer and V8\'s helpers above; on and off whatever the CPUs; a node flag wins; garbage throws', () => {
  const cases: [Record<string, string>, number, string[], string, string[]][] = [
    [{}, 2, [], 'one thread (2 CPUs)', ['--no-parallel-scavenge']],
    [{}, 1, [], 'one thread (1 CPUs)', ['--no-parallel-scavenge']],
    [{ FLUCTUAT_PARALLEL_SCAVENGE: 'auto' }, 2, [], 'one thread (2 CPUs)', ['--no-parallel-scavenge']],
    [{ FLUCTUAT_PARALLEL_SCAVENGE: '' }, 3, [], 'parallel (3 CPUs)', []],
    [{}, 8, [], 'parallel (8 CPUs)', []],
    [{ FLUCTUAT_PARALLEL_SCAVENGE: 'on' }, 2, [], 'parallel (FLUCTUAT_PARALLEL_SCAVENGE=on)', []],
    [{ FLUCTUAT_PARALLEL_SCAVENGE: 'off' }, 8, [], 'one thread (FLUCTUAT_PARALLEL_SCAVENGE=off)', ['--no-parallel-scavenge']],
    [{ FLUCTUAT_PARALLEL_SCAVENGE: 'off' }, 2, ['--parallel-scavenge'], 'as the node flag --parallel-scavenge sets it', []],
    [{}, 2, ['--max-old-space-size=512', '--no-parallel_scavenge'], 'as the node flag --no-parallel_scavenge sets it', []],
  ];
  for (const [env, cpus, execArgv, said, flags] of cases) {
    const h = host(env, cpus, execArgv);
    assert.equal(tuneScavenger(h), said, JSON.stringify([env, cpus, execArgv]));
    assert.deepEqual(h.flags, flags, said);
  }
  for (const bad of ['yes', 'OFF', '0', ' auto']) {
    const h = host({ FLUCTUAT_PARALLEL_SCAVENGE: bad }, 2);
    assert.throws(() => tuneScavenger(h), (err: Error) => err instanceof RangeError && err.message === `FLUCTUAT_PARALLEL_SCAVENGE=${bad}: expected auto, on or off`);
    assert.deepEqual(h.flags, [], 'nothing set before the error');
  }
});

/** Sum of the helper threads' scavenging time over a child's scavenges, from --trace-gc-nvp. */
async function helperScavengeMs(setting: string): Promise<{ scavenges: number; helperMs: number }> {
  const module = path.join(ROOT, 'dist', 'src', 'server', 'scavenger.js');
  const script = `
    const { tuneScavenger } = await import(${JSON.stringify(module)});
    tuneScavenger();
    let keep = [];
    for (let i = 0; i < 2e6; i++) { keep.push({ i, a: [i] }); if (keep.length > 100000) keep = []; }
  `;
  const { stdout } = await run(process.execPath, ['--trace-gc-nvp', '--input-type=module', '-e', script], {
    env: { ...process.env, FLUCTUAT_PARALLEL_SCAVENGE: setting },
    maxBuffer: 64 * 1024 * 1024,
  });
  const lines = stdout.split('\n').filter((l) => / gc=s /.test(l));
  let helperMs = 0;
  for (const l of lines) helperMs += Number(/background\.scavenge\.parallel=([\d.]+)/.exec(l)?.[1] ?? 'NaN');
  return { scavenges: lines.length, helperMs };
}

test('set at run time, the flag reaches V8: with off no helper thread scavenges; with on they do (where there is more than one CPU)', async () => {
  const off = await helperScavengeMs('off');
  assert.ok(off.scavenges >= 5, `scavenges seen: ${off.scavenges}`);
  assert.equal(off.helperMs, 0, 'helper threads scavenged although the flag was set');
  if (os.availableParallelism() > 1) {
    const on = await helperScavengeMs('on');
    assert.ok(on.scavenges >= 5);
    assert.ok(on.helperMs > 0, 'no helper thread scavenged with on: the test cannot tell the two apart here');
  }
});

test('serve: a bad FLUCTUAT_PARALLEL_SCAVENGE stops the start with its name; the choice is in the startup log', async () => {
  await assertStartRefused({ FLUCTUAT_PARALLEL_SCAVENGE: 'maybe' }, /cannot start: FLUCTUAT_PARALLEL_SCAVENGE=maybe: expected auto, on or off/);
  const broker = await startBroker({ storage: 'memory', env: { FLUCTUAT_PARALLEL_SCAVENGE: 'off' } });
  try {
    const line = broker.logs.find((l) => l.msg === 'young-generation garbage collection');
    assert.ok(line, `a scavenger line in ${JSON.stringify(broker.logs.map((l) => l.msg))}`);
    assert.equal(line.scavenger, 'one thread (FLUCTUAT_PARALLEL_SCAVENGE=off)');
  } finally {
    await broker.dispose();
  }
});

test('the console example in docs/operations.md prints what it shows', () => assertConsoleExample('### Garbage collection on small machines', 2));
