/**
 * Items waiting for one pass of work (a storage engine's commit microtask, its turn-end flush).
 * The array is kept and its slots cleared after each pass, not replaced: a new array, grown by
 * its first push to 17 slots, was ~180 bytes a pass, a whole message's worth of garbage at a
 * probe's pace (one publish a turn; docs/performance-history.md, twenty-second round).
 */
export class WorkList<T> {
  private readonly items: (T | undefined)[] = [];
  private count = 0;

  get length(): number {
    return this.count;
  }

  /** Adds `item`; true when the list was empty, so the caller schedules a pass. */
  add(item: T): boolean {
    this.items[this.count++] = item;
    return this.count === 1;
  }

  /**
   * Runs `run` on every item in order, items added meanwhile included (they join this pass).
   * When `run` throws, the exception propagates and the items after the one that threw go back
   * through `again` (the caller's scheduling): each still has work, and a caller schedules an
   * item only when its work starts, so dropping them would strand them for good.
   */
  drain(run: (item: T) => void, again: (item: T) => void): void {
    let i = 0;
    try {
      for (; i < this.count; i++) {
        const item = this.items[i]!;
        this.items[i] = undefined;
        run(item);
      }
      this.count = 0;
    } finally {
      if (this.count !== 0) {
        const left = this.items.slice(i + 1, this.count) as T[];
        this.items.fill(undefined, 0, this.count);
        this.count = 0;
        for (const item of left) again(item);
      }
    }
  }
}
