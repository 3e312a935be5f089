/**
 * Building blocks of the per-batch lists (ack-list.ts, record-list.ts): values that repeat for
 * consecutive records kept once per run, and typed arrays that grow. They keep a staged batch
 * out of the GC's way: a slot per record in an ordinary array is what every scavenge copies.
 */

/** A value per record, stored once for each run of records that share it. */
export class Runs<T> {
  readonly values: T[] = [];
  /** Run r covers records [ends[r-1], ends[r]) (from 0 for the first). */
  readonly ends: number[] = [];

  /** Record `n`, the one after the last, has `value`. */
  push(n: number, value: T): void {
    const last = this.values.length - 1;
    if (last >= 0 && this.values[last] === value) this.ends[last] = n + 1;
    else {
      this.values.push(value);
      this.ends.push(n + 1);
    }
  }

  clear(): void {
    this.values.length = 0;
    this.ends.length = 0;
  }
}

/** `a` copied into a new typed array of the same kind with room for `capacity` elements. */
export function grown<A extends Int32Array | Float64Array>(a: A, capacity: number): A {
  const bigger = new (a.constructor as new (length: number) => A)(capacity);
  bigger.set(a);
  return bigger;
}
