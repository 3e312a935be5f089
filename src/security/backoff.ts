/**
 * Failed logins back off exponentially: after n failures the next attempt is refused until
 * base·2^(n−1) has passed (capped). The guard keeps one instance per user and one per address. Entries expire by last-seen time,
 * and the sweep deletes while iterating a Map, which is safe in JavaScript.
 */
export interface BackoffOptions {
  readonly baseMs: number;
  readonly maxMs: number;
  /** Failures allowed before the delays start (an address shared by many users gets a few). */
  readonly free?: number;
}

interface Entry {
  failures: number;
  until: number;
  seen: number;
}

export class LoginBackoff {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly options: BackoffOptions) {}

  /** Milliseconds to wait before `keys` may try again (0 = now). */
  wait(keys: readonly string[], now = Date.now()): number {
    let wait = 0;
    for (const k of keys) {
      const e = this.entries.get(k);
      if (e) wait = Math.max(wait, e.until - now);
    }
    return Math.max(0, wait);
  }

  failed(keys: readonly string[], now = Date.now()): number {
    let delay = 0;
    for (const k of keys) {
      const e = this.entries.get(k) ?? { failures: 0, until: 0, seen: now };
      e.failures++;
      e.seen = now;
      const counted = e.failures - (this.options.free ?? 0);
      const d = counted <= 0 ? 0 : Math.min(this.options.maxMs, this.options.baseMs * 2 ** (counted - 1));
      e.until = now + d;
      delay = Math.max(delay, d);
      this.entries.set(k, e);
    }
    this.sweep(now);
    return delay;
  }

  succeeded(keys: readonly string[]): void {
    for (const k of keys) this.entries.delete(k);
  }

  failures(key: string): number {
    return this.entries.get(key)?.failures ?? 0;
  }

  private sweep(now: number): void {
    if (this.entries.size < 10_000) return;
    for (const [k, e] of this.entries) if (now - e.seen > 2 * this.options.maxMs) this.entries.delete(k);
  }
}
