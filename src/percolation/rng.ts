/**
 * Deterministic random numbers for Monte Carlo runs, in 32-bit integer math (no BigInt).
 *
 * - A 64-bit value is a pair of unsigned 32-bit halves `[hi, lo]`.
 * - `SplitMix64` (Steele, Lea & Flood) is the splittable generator; its finaliser `mix64` is
 *   used as a counter-based hash to derive one independent seed per run from
 *   (global seed, p index, run index): no run depends on which probe ran another one first.
 * - Each run draws its cells from `xoshiro128**` (Blackman & Vigna) seeded by SplitMix64.
 */
import { createHash } from 'node:crypto';

export type U64 = readonly [hi: number, lo: number];

const GOLDEN: U64 = [0x9e3779b9, 0x7f4a7c15];
const M1: U64 = [0xbf58476d, 0x1ce4e5b9];
const M2: U64 = [0x94d049bb, 0x133111eb];

export function add64(a: U64, b: U64): U64 {
  const lo = (a[1] + b[1]) >>> 0;
  const carry = lo < a[1] >>> 0 ? 1 : 0;
  return [(a[0] + b[0] + carry) >>> 0, lo];
}

export function xor64(a: U64, b: U64): U64 {
  return [(a[0] ^ b[0]) >>> 0, (a[1] ^ b[1]) >>> 0];
}

/** a ^ (a >>> s), 0 < s < 32. */
function xorShiftRight(a: U64, s: number): U64 {
  const hi = a[0] >>> 0;
  const lo = a[1] >>> 0;
  return [(hi ^ (hi >>> s)) >>> 0, (lo ^ ((lo >>> s) | (hi << (32 - s)))) >>> 0];
}

/** a × b mod 2^64. */
export function mul64(a: U64, b: U64): U64 {
  const alo = a[1] >>> 0;
  const blo = b[1] >>> 0;
  const a0 = alo & 0xffff;
  const a1 = alo >>> 16;
  const b0 = blo & 0xffff;
  const b1 = blo >>> 16;
  const p00 = a0 * b0;
  const p01 = a0 * b1;
  const p10 = a1 * b0;
  const p11 = a1 * b1;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  const lo = (((mid & 0xffff) << 16) | (p00 & 0xffff)) >>> 0;
  const carry = p11 + (p01 >>> 16) + (p10 >>> 16) + Math.floor(mid / 0x10000);
  const hi = (carry + Math.imul(a[0], blo) + Math.imul(alo, b[0])) >>> 0;
  return [hi, lo];
}

/** SplitMix64's output function: a bijective 64-bit mixer. */
export function mix64(z: U64): U64 {
  z = mul64(xorShiftRight(z, 30), M1);
  z = mul64(xorShiftRight(z, 27), M2);
  return xorShiftRight(z, 31);
}

export class SplitMix64 {
  private state: U64;
  constructor(seed: U64) {
    this.state = seed;
  }
  next(): U64 {
    this.state = add64(this.state, GOLDEN);
    return mix64(this.state);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** xoshiro128**: 32-bit outputs, period 2^128 − 1. */
export class Xoshiro128 {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  constructor(seed: U64) {
    const sm = new SplitMix64(seed);
    const [a, b] = sm.next();
    const [c, d] = sm.next();
    this.s0 = a;
    this.s1 = b;
    this.s2 = c;
    this.s3 = d;
    if ((a | b | c | d) === 0) this.s0 = 1; // the one state xoshiro cannot leave
  }
  /** The next unsigned 32-bit number. */
  next(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 = (this.s2 ^ this.s0) >>> 0;
    this.s3 = (this.s3 ^ this.s1) >>> 0;
    this.s1 = (this.s1 ^ this.s2) >>> 0;
    this.s0 = (this.s0 ^ this.s3) >>> 0;
    this.s2 = (this.s2 ^ t) >>> 0;
    this.s3 = rotl(this.s3, 11);
    return result;
  }
}

/** Any seed text (a number or a word) → 64 bits: the first 8 bytes of its SHA-256. */
export function seedFromText(text: string | number): U64 {
  const h = createHash('sha256').update(`fluctuat-percolation:${String(text)}`).digest();
  return [h.readUInt32BE(0), h.readUInt32BE(4)];
}

/** The seed of one run: a hash of (global seed, p index, run index); order-independent. */
export function runSeed(seed: U64, pIndex: number, run: number): U64 {
  const k = mix64(add64(xor64(seed, [0, pIndex >>> 0]), GOLDEN));
  return mix64(add64(xor64(k, [Math.floor(run / 0x100000000) >>> 0, run >>> 0]), GOLDEN));
}

/** p in [0, 1] → the 32-bit threshold a cell's draw must stay below to be open. */
export function threshold32(p: number): number {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`p must be in [0, 1], got ${p}`);
  return Math.floor(p * 0x100000000); // 2^32 for p = 1: every draw is below it
}
