/** The percolation building blocks: 64-bit math against BigInt, the generators, the lattice, the fit. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { aggregate, estimateThreshold, parsePRange, runPercolationLocal } from '../src/percolation/experiment.js';
import { Lattice } from '../src/percolation/lattice.js';
import { add64, mix64, mul64, runSeed, seedFromText, SplitMix64, threshold32, Xoshiro128, type U64 } from '../src/percolation/rng.js';

const M = (1n << 64n) - 1n;
const big = (x: U64): bigint => (BigInt(x[0]) << 32n) | BigInt(x[1]);
const u64 = (x: bigint): U64 => [Number((x >> 32n) & 0xffffffffn), Number(x & 0xffffffffn)];
const word = fc.integer({ min: 0, max: 0xffffffff });
const pair = fc.tuple(word, word) as fc.Arbitrary<U64>;

function mix64Ref(z: bigint): bigint {
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M;
  return z ^ (z >> 31n);
}

function xoshiroRef(seed: bigint, n: number): number[] {
  let st = seed;
  const next64 = (): bigint => {
    st = (st + 0x9e3779b97f4a7c15n) & M;
    return mix64Ref(st);
  };
  const a = next64();
  const b = next64();
  const s = [Number(a >> 32n), Number(a & 0xffffffffn), Number(b >> 32n), Number(b & 0xffffffffn)].map(BigInt);
  const rotl = (x: bigint, k: bigint): bigint => ((x << k) | (x >> (32n - k))) & 0xffffffffn;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    out.push(Number((rotl((s[1]! * 5n) & 0xffffffffn, 7n) * 9n) & 0xffffffffn));
    const t = (s[1]! << 9n) & 0xffffffffn;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11n);
  }
  return out;
}

describe('64-bit arithmetic in 32-bit halves', () => {
  it('add, multiply and mix agree with BigInt', () => {
    fc.assert(
      fc.property(pair, pair, (a, b) => {
        assert.equal(big(add64(a, b)), (big(a) + big(b)) & M);
        assert.equal(big(mul64(a, b)), (big(a) * big(b)) & M);
        assert.equal(big(mix64(a)), mix64Ref(big(a)));
      }),
      { numRuns: 2000 },
    );
  });
  it('SplitMix64 and xoshiro128** match a BigInt reference', () => {
    const seed: U64 = [0x12345678, 0x9abcdef0];
    const sm = new SplitMix64(seed);
    let st = big(seed);
    for (let i = 0; i < 100; i++) {
      st = (st + 0x9e3779b97f4a7c15n) & M;
      assert.equal(big(sm.next()), mix64Ref(st));
    }
    const x = new Xoshiro128(seed);
    assert.deepEqual(Array.from({ length: 1000 }, () => x.next()), xoshiroRef(big(seed), 1000));
  });
  it('derives distinct seeds per (p index, run) and the same one every time', () => {
    const s = seedFromText('42');
    assert.deepEqual(runSeed(s, 3, 9), runSeed(s, 3, 9));
    const seen = new Set<string>();
    for (let p = 0; p < 20; p++) for (let r = 0; r < 200; r++) seen.add(runSeed(s, p, r).join(','));
    assert.equal(seen.size, 4000);
    assert.notDeepEqual(seedFromText('42'), seedFromText('43'));
    assert.equal(threshold32(0), 0);
    assert.equal(threshold32(1), 2 ** 32);
  });
  it('draws uniformly enough (mean and a coarse chi-square on 16 bins)', () => {
    const x = new Xoshiro128(seedFromText('u'));
    const bins = new Array<number>(16).fill(0);
    const n = 160_000;
    for (let i = 0; i < n; i++) bins[x.next() >>> 28]!++;
    const chi = bins.reduce((s, b) => s + (b - n / 16) ** 2 / (n / 16), 0);
    assert.ok(chi < 60, `chi-square ${chi} on 15 degrees of freedom`);
  });
});

describe('the hexagonal lattice', () => {
  it('crosses always at p = 1 and never at p = 0', () => {
    const l = new Lattice(20);
    const s = seedFromText('x');
    for (let r = 0; r < 20; r++) {
      assert.equal(l.crosses(1, s, 0, r), true);
      assert.equal(l.crosses(0, s, 0, r), false);
    }
    const one = new Lattice(1);
    assert.equal(one.crosses(1, s, 0, 0), true);
  });
  it('uses the six hexagonal neighbours: (q+1, r−1) joins rows, (q+1, r+1) does not', () => {
    const l = new Lattice(2); // cells r × 2 + q: (0,0)=0 (1,0)=1 (0,1)=2 (1,1)=3
    assert.equal(l.crossesGrid([0, 1, 1, 0]), true); // (1,0)–(0,1): a hexagonal neighbour
    assert.equal(l.crossesGrid([1, 0, 0, 1]), false); // (0,0)–(1,1): not one
    assert.equal(l.crossesGrid([1, 0, 1, 0]), true); // straight down
    const l3 = new Lattice(3);
    // A path that zig-zags: (2,0) → (1,1) → (0,2).
    assert.equal(l3.crossesGrid([0, 0, 1, 0, 1, 0, 1, 0, 0]), true);
    // The mirror image goes through (0,0) → (1,1) → (2,2): not neighbours.
    assert.equal(l3.crossesGrid([1, 0, 0, 0, 1, 0, 0, 0, 1]), false);
  });
  it('crosses with probability 1/2 at p = 1/2 (self-matching rhombus)', () => {
    const r = runPercolationLocal({ ps: [0.5], runs: 4000, size: 8, seed: 'half' });
    const p = r.points[0]!.probability;
    // 4000 runs: standard deviation 0.0079; 0.04 is five of them.
    assert.ok(Math.abs(p - 0.5) < 0.04, `P(cross) = ${p}`);
  });
  it('gives the same result for the same seed, another for another seed', () => {
    const spec = { ps: [0.45, 0.5, 0.55], runs: 60, size: 24, seed: 's1' };
    assert.equal(runPercolationLocal(spec).digest, runPercolationLocal(spec).digest);
    assert.notEqual(runPercolationLocal(spec).digest, runPercolationLocal({ ...spec, seed: 's2' }).digest);
  });
});

describe('the experiment', () => {
  it('parses p grids', () => {
    assert.deepEqual(parsePRange('0.30:0.34:0.01'), [0.3, 0.31, 0.32, 0.33, 0.34]);
    assert.equal(parsePRange('0.30:0.70:0.01').length, 41);
    assert.deepEqual(parsePRange('0.4,0.5'), [0.4, 0.5]);
    assert.throws(() => parsePRange('0.7:0.3:0.1'), RangeError);
    assert.throws(() => parsePRange('1.5'), RangeError);
  });
  it('fits a logistic whose midpoint is where the data cross 1/2', () => {
    const ps = [0.4, 0.45, 0.5, 0.55, 0.6];
    const points = ps.map((p, i) => {
      const prob = 1 / (1 + Math.exp(-(p - 0.52) / 0.03));
      return { pIndex: i, p, runs: 10_000, crossings: Math.round(prob * 10_000), probability: 0 };
    });
    const t = estimateThreshold(points)!;
    assert.equal(t.method, 'logistic');
    assert.ok(Math.abs(t.p - 0.52) < 0.001, String(t.p));
    assert.ok(Math.abs(t.width - 0.03) < 0.001, String(t.width));
    assert.ok(t.stderr > 0 && t.stderr < 0.01);
  });
  it('counts missing runs and keeps them out of the probabilities', () => {
    const bits = Uint8Array.from([1, 0, 255, 1]);
    const r = aggregate({ ps: [0.5, 0.6], runs: 2, size: 4, seed: 'm' }, bits);
    assert.equal(r.missing, 1);
    assert.deepEqual(
      r.points.map((p) => [p.runs, p.crossings]),
      [
        [2, 1],
        [1, 1],
      ],
    );
  });
});
