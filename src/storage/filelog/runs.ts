/**
 * Building blocks of the per-batch lists (ack-list.ts, record-list.ts): values that repeat for
 * consecutive records kept once per run, and typed arrays that grow. They keep a staged batch
 * out of the GC's way: a slot per record in an ordinary array is what every scavenge copies.
 */

/** Shared by every list before its first item: never written (frozen, so a slip throws). */
const NONE = Object.freeze([] as unknown[]) as unknown[];

/** An empty list to start from: no array until something is added (`pushed`). */
export const noItems = <T>(): T[] => NONE as T[];

/**
 * `list` with `item` added at the end: the shared empty list becomes an array of exactly one
 * slot, where a push would grow an empty one to 17. A batch's lists are made per batch, and at a
 * probe's pace a batch is one record.
 */
export function pushed<T>(list: T[], item: T): T[] {
  if ((list as unknown[]) === NONE) return [item];
  list.push(item);
  return list;
}

/**
 * A value per record, stored once for each run of records that share it. A list's first run
 * gets arrays of exactly one slot (a lone message's batch, at a probe's pace, would otherwise
 * grow two arrays to 17 slots); a cleared list keeps its arrays for the next batch (pooled
 * record lists), where `length = 0` would have V8 trim them away.
 */
export class Runs<T> {
  /** Runs in use: [0, count). Slots past it are an earlier batch's (values cleared). */
  count = 0;
  values: T[] = noItems();
  /** Run r covers records [ends[r-1], ends[r]) (from 0 for the first). */
  ends: number[] = noItems();

  /** Record `n`, the one after the last, has `value`. */
  push(n: number, value: T): void {
    const last = this.count - 1;
    if (last >= 0 && this.values[last] === value) {
      this.ends[last] = n + 1;
      return;
    }
    if (last + 1 < this.values.length) {
      this.values[last + 1] = value;
      this.ends[last + 1] = n + 1;
    } else {
      this.values = pushed(this.values, value);
      this.ends = pushed(this.ends, n + 1);
    }
    this.count = last + 2;
  }

  clear(): void {
    // Nothing held past the batch: the values are callbacks and publisher names.
    for (let r = 0; r < this.count; r++) this.values[r] = undefined as T;
    this.count = 0;
  }
}

/** `a` copied into a new typed array of the same kind with room for `capacity` elements. */
export function grown<A extends Int32Array | Float64Array>(a: A, capacity: number): A {
  const bigger = new (a.constructor as new (length: number) => A)(capacity);
  bigger.set(a);
  return bigger;
}
