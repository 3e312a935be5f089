/**
 * The clocks every probe result carries.
 *
 * - `monoUs`: CLOCK_MONOTONIC (process.hrtime) in microseconds. It is one clock for the whole
 *   host: worker threads and child processes on the same machine read the same counter, so
 *   the torture test can compare a send time taken by the controller with a receive time
 *   taken by a probe in another process.
 * - `wallUs`: the high-resolution wall clock (performance.timeOrigin + performance.now()) in
 *   microseconds, the clock the client library uses for its NTP-style estimate of the broker's
 *   offset (`client.clockOffsetMs`), so `wallUs + offsetMs × 1000` is on the broker's clock.
 * - `Date.now()`: the system wall clock, which may be stepped; kept where a human reads it.
 */
import { performance } from 'node:perf_hooks';
import type { Client } from '../client/index.js';

export function monoUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

export function wallUs(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

/** A pair of readings taken together. */
export interface Stamp {
  readonly wallUs: number;
  readonly monoUs: number;
}

export function stamp(): Stamp {
  return { wallUs: wallUs(), monoUs: monoUs() };
}

export interface ClockEstimate {
  /** Broker clock minus local clock, ms, from the sample with the smallest round trip. */
  readonly offsetMs: number;
  /** That sample's round trip, ms. */
  readonly rttMs: number;
  /** Every sample, in order. */
  readonly samples: readonly { rttMs: number; offsetMs: number }[];
}

/**
 * NTP-style estimate with the public client: `ping()` sends `PING <token> <client-µs>`, the
 * broker answers `PONG <token> <client-µs> <server-µs>`, and the client sets
 * `clockOffsetMs = server − (sent + rtt/2)`. One sample is as good as its round trip is
 * symmetric; like NTP's clock filter, keep the sample with the smallest round trip.
 */
export async function estimateClock(client: Client, samples = 5): Promise<ClockEstimate> {
  const all: { rttMs: number; offsetMs: number }[] = [];
  for (let i = 0; i < Math.max(1, samples); i++) {
    const rttMs = await client.ping();
    all.push({ rttMs, offsetMs: client.clockOffsetMs });
  }
  let best = all[0]!;
  for (const s of all) if (s.rttMs < best.rttMs) best = s;
  return { offsetMs: best.offsetMs, rttMs: best.rttMs, samples: all };
}
