/**
 * The percolation experiment over the bus gives the same answer, bit for bit, with 1 probe and
 * with 8, in threads and in processes, as the same runs computed here; and its threshold
 * estimate on 64 × 64 cells lies within 0.02 of the exact 1/2.
 *
 * CI runs a smaller grid than the full experiment (5 values of p around 1/2, 400 runs each,
 * instead of 41 × 1000; docs/torture.md has the full run): at size 64 the logistic fit's
 * standard error is then about 0.003, so 0.02 is more than six standard errors.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { runPercolationLocal, runPercolationSwarm, type PercolationResult, type PercolationSpec } from '../src/percolation/experiment.js';
import { Fleet } from '../src/probes/fleet.js';
import { Swarm } from '../src/swarm/controller.js';
import { startBroker, type RunningBroker } from './helpers/broker.js';

const spec: PercolationSpec = { ps: [0.46, 0.48, 0.5, 0.52, 0.54], runs: 400, size: 64, seed: 'fluctuat-ci' };
let broker: RunningBroker;
let reference: PercolationResult;

before(async () => {
  broker = await startBroker();
  reference = runPercolationLocal(spec);
});
after(async () => broker?.dispose());

async function onSwarm(mode: 'thread' | 'process', probes: number, root: string): Promise<PercolationResult> {
  const fleet = new Fleet({ url: broker.url, mode, root, kinds: ['percolation'], heartbeatMs: 0 });
  const swarm = await Swarm.connect({ url: broker.url, root });
  try {
    await fleet.add(probes);
    assert.equal((await swarm.rollcall({ expect: probes, waitMs: 20_000 })).length, probes);
    return await runPercolationSwarm(swarm, spec, { window: 128 });
  } finally {
    await swarm.close();
    await fleet.stop();
  }
}

describe('percolation over the swarm', () => {
  it('estimates the threshold within 0.02 of 1/2 (64 × 64)', () => {
    const t = reference.threshold!;
    assert.equal(t.method, 'logistic');
    assert.ok(Math.abs(t.p - 0.5) < 0.02, `threshold ${t.p} ± ${t.stderr}`);
    assert.ok(t.stderr < 0.005, `stderr ${t.stderr}`);
    assert.equal(reference.missing, 0);
  });
  for (const [mode, probes] of [
    ['thread', 1],
    ['thread', 8],
    ['process', 8],
  ] as const) {
    it(`is bit-identical with ${probes} probe${probes > 1 ? 's' : ''} in ${mode === 'thread' ? 'threads' : 'processes'}`, async () => {
      const r = await onSwarm(mode, probes, `perc.${mode}${probes}`);
      assert.equal(r.missing, 0);
      assert.equal(r.inconsistent, 0);
      assert.equal(r.digest, reference.digest);
      assert.deepEqual(r, reference);
    });
  }
});
