/** `clock`: the probe's wall and monotonic clocks, and its estimate of the broker's clock. */
import { registerKind, type Params } from '../registry.js';
import { monoUs, wallUs } from '../time.js';

export interface ClockValue {
  /** System wall clock, ms since the epoch (may be stepped by NTP). */
  readonly wallMs: number;
  /** High-resolution wall clock, µs since the epoch. */
  readonly wallUs: number;
  /** Host-wide monotonic clock, µs. */
  readonly monoUs: number;
  /** Broker clock minus this probe's wall clock, ms (client's NTP-style estimate). */
  readonly offsetMs: number;
}

registerKind<Params, ClockValue>({
  name: 'clock',
  description: 'answer with the probe\'s wall and monotonic clocks and its estimated offset to the broker',
  parse: () => ({}),
  run: async (_params, ctx) => ({ wallMs: Date.now(), wallUs: wallUs(), monoUs: monoUs(), offsetMs: ctx.offsetMs }),
});
