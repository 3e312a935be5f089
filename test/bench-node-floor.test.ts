/**
 * The benchmark's Node floor (bench/peers/node-floor.ts): a real child process spoken to over
 * a real socket, then measured by `npm run bench` in a latency scenario.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startNodeFloor } from '../bench/lib/targets.js';
import { runBench } from './helpers/bench.js';
import { RawClient } from './helpers/raw.js';

test('the Node floor relays PUB to its subscribers as MSG, answers mode and SUB, and refuses the rest', async () => {
  const floor = await startNodeFloor();
  try {
    const sub = await RawClient.machine(floor.endpoint.port);
    sub.send('SUB s1 probes.a');
    await sub.waitFor((f) => f.line === 'OK s1');
    const pub = await RawClient.machine(floor.endpoint.port);
    pub.pub('probes.a', 'hello');
    pub.pub('probes.b', 'nobody listens');
    pub.pub('probes.a', Buffer.from('two\nlines'));
    const second = await sub.waitFor((f) => f.payload?.toString() === 'two\nlines');
    assert.equal(second.line, 'MSG s1 probes.a 0 0 - - 9');
    assert.deepEqual(
      sub.frames.filter((f) => f.payload).map((f) => f.payload!.toString()),
      ['hello', 'two\nlines'],
    );
    pub.send('STATS');
    const err = await pub.waitFor((f) => f.line.startsWith('ERR '));
    assert.match(err.line, /speaks mode, SUB and PUB only/);
    await sub.close();
    await pub.close();
  } finally {
    await floor.stop();
  }
});

test('npm run bench: the Node floor in a latency scenario, with a ratio column', async () => {
  const { result: r, markdown } = await runBench<{ brokers: Record<string, { label: string; version: string }>; cells: { target: string; n: number; lost: number; latency: { p50: number } }[] }>(
    ['--targets', 'fluctuat-mem,node-floor', '--scenarios', 'lat-20k'],
    { BENCH_RUNS: '1', BENCH_LATENCY_SECONDS: '0.5', BENCH_WARMUP: '0.2' },
  );
  assert.deepEqual(r.brokers['node-floor'], { label: 'Node floor', version: process.version });
  const floor = r.cells.find((c) => c.target === 'node-floor')!;
  assert.equal(floor.n, 1);
  assert.equal(floor.lost, 0);
  assert.ok(floor.latency.p50 > 0);
  assert.match(markdown, /÷ Node floor/);
});
