/**
 * NTP-style estimate of one connection's round-trip time and clock offset. The broker sends
 * `PING <token> <t1>`; the client answers `PONG <token> <t1> <t2>` with its own clock at t2;
 * the broker reads it at t3. rtt = t3 - t1, offset (client minus broker) = t2 - (t1 + t3) / 2.
 * Like NTP's clock filter, the sample with the smallest round trip of the last few wins: it is
 * the one least disturbed by queueing.
 */
export interface ClockSample {
  readonly rttUs: number;
  readonly offsetUs: number;
  readonly at: number;
}

const KEEP = 8;

export class ClockEstimator {
  private readonly samples: ClockSample[] = [];
  private outstanding = new Map<string, number>();
  private seq = 0;

  /** A new probe: returns the token and t1 to send. */
  probe(nowUs: number): { token: string; t1: number } {
    const token = `c${++this.seq}`;
    // Unanswered probes are forgotten after a few rounds, so a silent client costs nothing.
    if (this.outstanding.size >= KEEP) this.outstanding.clear();
    this.outstanding.set(token, nowUs);
    return { token, t1: nowUs };
  }

  /** A PONG arrived at t3; false when it answers no probe of ours. */
  answer(token: string, t1: number, t2: number, t3: number): boolean {
    const sent = this.outstanding.get(token);
    if (sent === undefined || sent !== t1 || !Number.isFinite(t2)) return false;
    this.outstanding.delete(token);
    this.samples.push({ rttUs: t3 - t1, offsetUs: t2 - (t1 + t3) / 2, at: t3 });
    if (this.samples.length > KEEP) this.samples.shift();
    return true;
  }

  /** The best current estimate, or null before the first answer. */
  best(): ClockSample | null {
    let best: ClockSample | null = null;
    for (const s of this.samples) if (!best || s.rttUs < best.rttUs) best = s;
    return best;
  }
}
