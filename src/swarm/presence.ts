/**
 * Who is there: presence events folded into a table of probes, with expiry by last-seen time.
 * A probe is gone when it said `down`, when its fleet said `gone` (its worker died), or when
 * nothing was heard from it for `expiryFactor` heartbeat periods (its connection died).
 */
import type { Presence } from '../probes/protocol.js';

export interface ProbeEntry {
  presence: Presence;
  lastSeenMs: number;
}

export class PresenceTracker {
  private readonly live = new Map<string, ProbeEntry>();

  constructor(private readonly expiryFactor = 3) {}

  /** Fold one event; returns 'joined', 'left' or undefined (nothing changed). */
  update(p: Presence, nowMs: number): 'joined' | 'left' | undefined {
    if (p.event === 'down' || p.event === 'gone') return this.live.delete(p.id) ? 'left' : undefined;
    const known = this.live.get(p.id);
    this.live.set(p.id, { presence: p, lastSeenMs: nowMs });
    return known ? undefined : 'joined';
  }

  /** Remove and return the probes not heard of for too long (deleting while iterating a Map is safe). */
  expire(nowMs: number): Presence[] {
    const gone: Presence[] = [];
    for (const [id, e] of this.live) {
      const period = e.presence.heartbeatMs > 0 ? e.presence.heartbeatMs : 5000;
      if (nowMs - e.lastSeenMs > this.expiryFactor * period) {
        this.live.delete(id);
        gone.push(e.presence);
      }
    }
    return gone;
  }

  get probes(): Presence[] {
    return [...this.live.values()].map((e) => e.presence);
  }
}
