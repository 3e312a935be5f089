// What a broker needs from its first instruction (src/server/start-flags.ts): the launcher
// starts `serve` again in the same process with V8's old-generation floor and libuv's pool of
// 16, a node flag or FLUCTUAT_OLD_SPACE_FLOOR changes the floor, a bad value stops the start,
// and the privilege-separated broker gets the flags too. Whether the floor is faster is a
// benchmark's question (docs/performance-history.md, twenty-fourth round).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { recordCrcAddon } from '../src/native/addon.js';
import { describeOldSpaceFloor, restartWithStartFlags, startFlags, withStartFlags, type RestartHost } from '../src/server/start-flags.js';
import { ROOT, startBroker, tmpDir } from './helpers/broker.js';
import { assertConsoleExample, assertStartRefused } from './helpers/startup.js';

test('startFlags: 64 MiB by default, FLUCTUAT_OLD_SPACE_FLOOR changes it, 0 leaves V8 alone, a node flag wins, garbage throws', () => {
  const cases: [Record<string, string>, string[], string[], string][] = [
    [{}, [], ['--initial-old-space-size=64'], '64 MiB'],
    [{ FLUCTUAT_OLD_SPACE_FLOOR: '' }, ['--cpu-prof'], ['--initial-old-space-size=64'], '64 MiB'],
    [{ FLUCTUAT_OLD_SPACE_FLOOR: '256' }, [], ['--initial-old-space-size=256'], '256 MiB'],
    [{ FLUCTUAT_OLD_SPACE_FLOOR: '0' }, [], [], "V8's own (FLUCTUAT_OLD_SPACE_FLOOR=0)"],
    // What the restart added reads as the floor it set.
    [{}, ['--initial-old-space-size=64'], [], '64 MiB'],
    [{ FLUCTUAT_OLD_SPACE_FLOOR: '128' }, ['--initial-old-space-size=64'], [], 'as the node flag --initial-old-space-size=64 sets it'],
    [{ FLUCTUAT_OLD_SPACE_FLOOR: '0' }, ['--initial_old_space_size=32'], [], 'as the node flag --initial_old_space_size=32 sets it'],
    [{}, ['--max-old-space-size=512', '--initial-heap-size=100'], [], 'as the node flag --initial-heap-size=100 sets it'],
  ];
  for (const [env, execArgv, flags, says] of cases) assert.deepEqual(startFlags(env, execArgv), { flags, says }, JSON.stringify([env, execArgv]));
  for (const bad of ['lots', '-1', '1.5', '64m', '4097', ' 64']) {
    assert.throws(
      () => startFlags({ FLUCTUAT_OLD_SPACE_FLOOR: bad }, []),
      (err: Error) => err instanceof RangeError && err.message === `FLUCTUAT_OLD_SPACE_FLOOR=${bad}: expected a whole number of MiB from 0 to 4096 (0: V8's own limit)`,
    );
  }
  assert.deepEqual(withStartFlags(['--cpu-prof'], {}), ['--cpu-prof', '--initial-old-space-size=64']);
  assert.deepEqual(withStartFlags(['--initial-old-space-size=8'], {}), ['--initial-old-space-size=8']);
  assert.deepEqual(withStartFlags([], { FLUCTUAT_OLD_SPACE_FLOOR: 'lots' }), [], 'a bad value is left for the child to refuse');
});

/** A process that records what it would exec, and whose exec fails as `fails` says. */
function host(env: NodeJS.ProcessEnv, execArgv: string[], exec: 'fails' | 'missing' = 'fails'): RestartHost & { calls: { file: string; argv: string[]; env: string[] }[] } {
  const calls: { file: string; argv: string[]; env: string[] }[] = [];
  return {
    execPath: '/usr/bin/node',
    execArgv,
    args: ['/opt/fluctuat/bin/fluctuat.js', 'serve', '-l', '127.0.0.1:2023'],
    env,
    calls,
    noExec: 'the native addon is turned off',
    exec:
      exec === 'missing'
        ? null
        : (file, argv, e) => {
            calls.push({ file, argv, env: e });
            throw new Error('No such file or directory');
          },
  };
}

test('restartWithStartFlags: execs node with what lacks and the same script and arguments; says why when it cannot; execs nothing when nothing lacks', () => {
  const h = host({ PATH: '/bin' }, ['--cpu-prof']);
  assert.equal(restartWithStartFlags(h), 'restarting with --initial-old-space-size=64 failed: No such file or directory');
  assert.deepEqual(h.calls, [
    {
      file: '/usr/bin/node',
      argv: ['/usr/bin/node', '--cpu-prof', '--initial-old-space-size=64', '/opt/fluctuat/bin/fluctuat.js', 'serve', '-l', '127.0.0.1:2023'],
      env: ['PATH=/bin', 'UV_THREADPOOL_SIZE=16'],
    },
  ]);
  assert.equal(h.env.UV_THREADPOOL_SIZE, '16', 'children of a process that went on get the pool size');
  assert.match(describeOldSpaceFloor(h.env, h.execArgv), /^V8's own: not started with --initial-old-space-size=64 \(restarting with .* failed: No such file or directory\)$/);

  // The pool size set by the user stays; only the flag lacks.
  const own = host({ UV_THREADPOOL_SIZE: '4' }, []);
  restartWithStartFlags(own);
  assert.deepEqual(own.calls[0]!.env, ['UV_THREADPOOL_SIZE=4']);
  // Only the pool lacks (floor 0): a restart for it alone.
  const pool = host({ FLUCTUAT_OLD_SPACE_FLOOR: '0' }, []);
  assert.equal(restartWithStartFlags(pool), 'restarting with UV_THREADPOOL_SIZE failed: No such file or directory');
  assert.deepEqual(pool.calls[0]!.argv, ['/usr/bin/node', '/opt/fluctuat/bin/fluctuat.js', 'serve', '-l', '127.0.0.1:2023']);

  const nothing = host({ UV_THREADPOOL_SIZE: '16' }, ['--initial-old-space-size=64']);
  assert.equal(restartWithStartFlags(nothing), '');
  assert.deepEqual(nothing.calls, []);
  const bad = host({ FLUCTUAT_OLD_SPACE_FLOOR: 'lots' }, []);
  assert.match(restartWithStartFlags(bad), /^FLUCTUAT_OLD_SPACE_FLOOR=lots: expected/);
  assert.deepEqual(bad.calls, [], 'the broker refuses it at its start');
  assert.equal(restartWithStartFlags(host({}, [], 'missing')), 'the native addon is turned off');
});

test('the addon\'s exec: a bad argument is a RangeError, a missing file the system\'s reason, and this process goes on', { skip: recordCrcAddon === null && 'the native addon is not built' }, () => {
  const exec = recordCrcAddon!.exec;
  assert.throws(() => exec('/nonexistent/node', ['node'], ['A=1']), (err: Error) => !(err instanceof RangeError) && err.message === 'No such file or directory');
  assert.throws(() => exec('/bin/true', ['true', 3 as unknown as string], []), (err: Error) => err instanceof RangeError && /argv must be an array of strings/.test(err.message));
  assert.throws(() => exec('/bin/true', ['true'], 'A=1' as unknown as string[]), (err: Error) => err instanceof RangeError && /env must be an array of strings/.test(err.message));
  assert.throws(() => exec('', [], []), RangeError);
});

test('exec under --cpu-prof: a SIGPROF from V8\'s sampler pending at the exec does not kill the new image', { skip: recordCrcAddon === null && 'the native addon is not built' }, async () => {
  // Sampling every 10 µs leaves a SIGPROF pending at almost every exec: without the addon's
  // care the new image died of it (exit 155) in 19 runs of 20.
  const dir = tmpDir();
  try {
    const script = path.join(dir, 'exec.mjs');
    const addon = path.join(ROOT, 'native', 'build', 'Release', 'record_crc.node');
    fs.writeFileSync(
      script,
      `import { createRequire } from 'node:module';
       const addon = createRequire(import.meta.url)(${JSON.stringify(addon)});
       let x = 0; for (let i = 0; i < 2e6; i++) x += Math.sqrt(i);
       addon.exec('/bin/sh', ['sh', '-c', 'exit 7'], []);`,
    );
    for (let i = 0; i < 5; i++) {
      const exit = await promisify(execFile)(process.execPath, ['--cpu-prof', '--cpu-prof-interval', '10', '--cpu-prof-dir', dir, script]).then(
        () => ({ code: 0, signal: null }),
        (err: { code?: number; signal?: string | null }) => ({ code: err.code, signal: err.signal ?? null }),
      );
      assert.deepEqual(exit, { code: 7, signal: null }, `run ${i}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** A process's command line, environment and thread count, from /proc. */
function procOf(pid: number): { argv: string[]; env: string[]; threads: number } {
  const split = (f: string): string[] => fs.readFileSync(`/proc/${pid}/${f}`, 'latin1').split('\0').filter(Boolean);
  return { argv: split('cmdline'), env: split('environ'), threads: fs.readdirSync(`/proc/${pid}/task`).length };
}

test('serve restarts in its own process with the floor and a pool of 16, and says so', { skip: process.platform !== 'linux' && 'reads /proc' }, async () => {
  const broker = await startBroker({ storage: 'memory', args: ['--no-privsep'], env: { FLUCTUAT_OLD_SPACE_FLOOR: '' } });
  try {
    const pid = broker.proc.pid!;
    assert.equal(broker.logs[0]!.pid, pid, 'the broker is the process that was started: same PID');
    const proc = procOf(pid);
    assert.ok(proc.argv.includes('--initial-old-space-size=64'), proc.argv.join(' '));
    if (process.env.UV_THREADPOOL_SIZE === undefined) {
      assert.ok(proc.env.includes('UV_THREADPOOL_SIZE=16'), 'in the environment it started with');
      assert.ok(proc.threads >= 16, `${proc.threads} threads: the pool has 16`);
    }
    assert.equal(broker.logs.find((l) => l.msg === 'old-generation floor')?.oldSpaceFloor, '64 MiB');
  } finally {
    await broker.dispose();
  }
});

test('serve with FLUCTUAT_OLD_SPACE_FLOOR=0 keeps V8\'s limit; a bad value stops the start', { skip: process.platform !== 'linux' && 'reads /proc' }, async () => {
  await assertStartRefused({ FLUCTUAT_OLD_SPACE_FLOOR: 'lots' }, /cannot start: FLUCTUAT_OLD_SPACE_FLOOR=lots: expected a whole number of MiB from 0 to 4096/);
  const broker = await startBroker({ storage: 'memory', args: ['--no-privsep'], env: { FLUCTUAT_OLD_SPACE_FLOOR: '0' } });
  try {
    assert.ok(!procOf(broker.proc.pid!).argv.some((a) => a.startsWith('--initial-old-space-size')));
    assert.equal(broker.logs.find((l) => l.msg === 'old-generation floor')?.oldSpaceFloor, "V8's own (FLUCTUAT_OLD_SPACE_FLOOR=0)");
  } finally {
    await broker.dispose();
  }
});

test('without the native addon serve goes on and says why; a privilege-separated broker gets the floor from its parent all the same', async () => {
  const single = await startBroker({ storage: 'memory', args: ['--no-privsep'], env: { FLUCTUAT_NATIVE: '0' } });
  try {
    assert.equal(
      single.logs.find((l) => l.msg === 'old-generation floor')?.oldSpaceFloor,
      "V8's own: not started with --initial-old-space-size=64 (the native addon is turned off (FLUCTUAT_NATIVE=0))",
    );
  } finally {
    await single.dispose();
  }
  if (process.getuid?.() !== 0) return; // privilege separation runs only as root
  // The parent cannot restart itself, but it forks the broker with the flag (the child's
  // title replaces its command line in /proc: its log line says what its execArgv holds).
  const broker = await startBroker({ storage: 'memory', env: { FLUCTUAT_OLD_SPACE_FLOOR: '96', FLUCTUAT_NATIVE: '0' } });
  try {
    const line = broker.logs.find((l) => l.msg === 'old-generation floor')!;
    assert.notEqual(line.pid, broker.proc.pid, 'logged by the broker child');
    assert.equal(line.oldSpaceFloor, '96 MiB');
  } finally {
    await broker.dispose();
  }
});

test('the console example in docs/operations.md prints what it shows', () => assertConsoleExample('### The old generation\'s floor', 2));
