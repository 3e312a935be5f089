/**
 * Site percolation on the triangular lattice, drawn as hexagonal cells: each cell has six
 * neighbours. The grid is a size × size rhombus in axial coordinates (q, r), like a Hex board:
 * neighbours of (q, r) are (q±1, r), (q, r±1), (q+1, r−1), (q−1, r+1). The rhombus is
 * self-matching, so at p = 1/2 a top-to-bottom crossing has probability exactly 1/2 at every
 * size, and the threshold of the infinite lattice is exactly 1/2.
 */
import { runSeed, threshold32, Xoshiro128, type U64 } from './rng.js';

const CLOSED = 0;
const OPEN = 1;
const SEEN = 2;

/** Reusable buffers for one grid size: one allocation per size, none per run. */
export class Lattice {
  private readonly cells: Uint8Array;
  private readonly queue: Int32Array;

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1 || size > 4096) throw new RangeError(`size must be a whole number from 1 to 4096, got ${size}`);
    this.cells = new Uint8Array(size * size);
    this.queue = new Int32Array(size * size);
  }

  /**
   * One run: open each cell with probability p (drawn in index order r × size + q), then
   * search from the open cells of the top row. True when an open path reaches the bottom row.
   */
  crosses(p: number, seed: U64, pIndex: number, run: number): boolean {
    const n = this.size;
    const cells = this.cells;
    const limit = threshold32(p);
    const rng = new Xoshiro128(runSeed(seed, pIndex, run));
    for (let i = 0; i < cells.length; i++) cells[i] = rng.next() < limit ? OPEN : CLOSED;
    return this.search();
  }

  /** Whether the given open cells (1 = open, index r × size + q) join the top and bottom rows. */
  crossesGrid(open: ArrayLike<number>): boolean {
    if (open.length !== this.cells.length) throw new RangeError(`expected ${this.cells.length} cells, got ${open.length}`);
    for (let i = 0; i < open.length; i++) this.cells[i] = open[i] ? OPEN : CLOSED;
    return this.search();
  }

  /** Breadth-first search from the open cells of the top row. */
  private search(): boolean {
    const n = this.size;
    const cells = this.cells;
    const queue = this.queue;
    let head = 0;
    let tail = 0;
    for (let q = 0; q < n; q++) {
      if (cells[q] === OPEN) {
        cells[q] = SEEN;
        queue[tail++] = q;
      }
    }
    const last = n - 1;
    while (head < tail) {
      const i = queue[head++]!;
      const r = (i / n) | 0;
      const q = i - r * n;
      if (r === last) return true;
      // (q-1, r) (q+1, r) (q, r-1) (q, r+1) (q+1, r-1) (q-1, r+1)
      if (q > 0 && cells[i - 1] === OPEN) (cells[i - 1] = SEEN), (queue[tail++] = i - 1);
      if (q < last && cells[i + 1] === OPEN) (cells[i + 1] = SEEN), (queue[tail++] = i + 1);
      if (r > 0 && cells[i - n] === OPEN) (cells[i - n] = SEEN), (queue[tail++] = i - n);
      if (cells[i + n] === OPEN) (cells[i + n] = SEEN), (queue[tail++] = i + n);
      if (r > 0 && q < last && cells[i - n + 1] === OPEN) (cells[i - n + 1] = SEEN), (queue[tail++] = i - n + 1);
      if (q > 0 && cells[i + n - 1] === OPEN) (cells[i + n - 1] = SEEN), (queue[tail++] = i + n - 1);
    }
    return false;
  }
}

const lattices = new Map<number, Lattice>();

/** One run on a shared lattice of that size (one per size per thread). */
export function percolationRun(size: number, p: number, seed: U64, pIndex: number, run: number): boolean {
  let lattice = lattices.get(size);
  if (!lattice) {
    if (lattices.size > 8) lattices.clear();
    lattice = new Lattice(size);
    lattices.set(size, lattice);
  }
  return lattice.crosses(p, seed, pIndex, run);
}
