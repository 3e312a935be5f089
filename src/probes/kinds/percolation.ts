/**
 * `percolation`: one seeded Monte Carlo run of site percolation on hexagonal cells
 * (src/percolation). The run's random numbers depend only on (seed, pIndex, run), so any probe,
 * thread or process computes the same answer.
 */
import { percolationRun } from '../../percolation/lattice.js';
import { seedFromText } from '../../percolation/rng.js';
import { check, ProbeError, registerKind, type Params } from '../registry.js';

interface PercolationParams extends Params {
  size: number;
  p: number;
  pIndex: number;
  run: number;
  seed: string;
}

export interface PercolationValue {
  readonly pIndex: number;
  readonly run: number;
  readonly crossed: boolean;
}

registerKind<PercolationParams, PercolationValue>({
  name: 'percolation',
  description: 'one seeded percolation run on a size × size grid of hexagonal cells (size, p, pIndex, run, seed)',
  parse(params) {
    const seed = params.seed;
    if (typeof seed !== 'string' && typeof seed !== 'number') throw new ProbeError('bad-params', 'percolation: parameter seed is required');
    const size = check.number('percolation', params, 'size', 64, 1, 4096);
    if (!Number.isInteger(size)) throw new ProbeError('bad-params', 'percolation: size must be a whole number');
    const pIndex = check.number('percolation', params, 'pIndex', 0, 0, 0xffffffff);
    const run = check.number('percolation', params, 'run', 0, 0, Number.MAX_SAFE_INTEGER);
    if (!Number.isInteger(pIndex) || !Number.isInteger(run)) throw new ProbeError('bad-params', 'percolation: pIndex and run must be whole numbers');
    return { size, p: check.number('percolation', params, 'p', undefined, 0, 1), pIndex, run, seed: String(seed) };
  },
  run: async ({ size, p, pIndex, run, seed }) => ({ pIndex, run, crossed: percolationRun(size, p, seedFromText(seed), pIndex, run) }),
});
