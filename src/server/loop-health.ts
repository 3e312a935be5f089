/**
 * How well the broker's event loop keeps up, for `stats`: every connection is served by this
 * one thread, so when it is late, every delivery is late. Over the last complete window (10 s):
 *
 * - loopDelayP50Us, loopDelayP99Us, loopDelayMaxUs: how late a timer due every `resolutionMs`
 *   fired (Node's event-loop delay histogram, less the timer's own period). Late by
 *   milliseconds means something held the loop: a long task, a garbage collection, or the
 *   thread waiting for a CPU.
 * - loopBusyPercent: the share of the window the loop spent running callbacks rather than
 *   waiting for I/O (event-loop utilization); near 100 the broker has no headroom left.
 * - gcPauses, gcPauseMs, gcPauseMaxMs: garbage collections and their pauses.
 * - gcMajor: how many of them were full collections (mark-compact). A broker's heap is small,
 *   so more than a few a second means V8 is marking for something else than its own objects:
 *   the external memory of socket reads, which it counts against the old generation's limit
 *   (server/start-flags.ts, the old generation's floor, keeps that from happening).
 *
 * The timer costs one wake-up per `resolutionMs` (100 a second by default), nothing per
 * message. Before the first window ends the figures cover the time since start.
 */
import { constants, monitorEventLoopDelay, performance, PerformanceObserver, type EventLoopUtilization, type IntervalHistogram } from 'node:perf_hooks';

export interface LoopHealthOptions {
  /** Length of a window, ms. */
  readonly windowMs: number;
  /** Period of the timer whose lateness is measured, ms (Node's minimum is 1). */
  readonly resolutionMs: number;
}

export const defaultLoopHealth: LoopHealthOptions = Object.freeze({ windowMs: 10_000, resolutionMs: 10 });

export type LoopHealthFigures = Readonly<Record<'loopDelayP50Us' | 'loopDelayP99Us' | 'loopDelayMaxUs' | 'loopBusyPercent' | 'gcPauses' | 'gcPauseMs' | 'gcPauseMaxMs' | 'gcMajor', number>>;

export class LoopHealth {
  private readonly delay: IntervalHistogram;
  private readonly gc: PerformanceObserver;
  private timer: NodeJS.Timeout | null = null;
  private windowStart: EventLoopUtilization = performance.eventLoopUtilization();
  private gcCount = 0;
  private gcMs = 0;
  private gcMaxMs = 0;
  private gcMajor = 0;
  /** The last complete window, or null before the first ends. */
  private last: LoopHealthFigures | null = null;

  constructor(private readonly options: LoopHealthOptions = defaultLoopHealth) {
    this.delay = monitorEventLoopDelay({ resolution: options.resolutionMs });
    this.gc = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        this.gcCount++;
        this.gcMs += e.duration;
        if (e.duration > this.gcMaxMs) this.gcMaxMs = e.duration;
        if ((e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) this.gcMajor++;
      }
    });
  }

  start(): this {
    if (this.timer) return this;
    this.delay.enable();
    this.gc.observe({ entryTypes: ['gc'] });
    this.windowStart = performance.eventLoopUtilization();
    this.timer = setInterval(() => this.roll(), this.options.windowMs);
    this.timer.unref();
    return this;
  }

  stop(): void {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = null;
    this.delay.disable();
    this.gc.disconnect();
  }

  /** The last complete window's figures (since start, before one has ended). */
  figures(): LoopHealthFigures {
    return this.last ?? this.current();
  }

  /** Ends the current window: `figures` reports it until the next one ends. */
  roll(): void {
    this.last = this.current();
    this.reset();
  }

  private current(): LoopHealthFigures {
    const h = this.delay;
    // The histogram holds the time between the timer's calls (ns): its period plus how late.
    const lateUs = (ns: number): number => (h.count === 0 ? 0 : Math.max(0, Math.round(ns / 1e3 - this.options.resolutionMs * 1e3)));
    return {
      loopDelayP50Us: lateUs(h.percentile(50)),
      loopDelayP99Us: lateUs(h.percentile(99)),
      loopDelayMaxUs: lateUs(h.max),
      loopBusyPercent: Math.round(performance.eventLoopUtilization(this.windowStart).utilization * 100),
      gcPauses: this.gcCount,
      gcPauseMs: Math.round(this.gcMs * 10) / 10,
      gcPauseMaxMs: Math.round(this.gcMaxMs * 10) / 10,
      gcMajor: this.gcMajor,
    };
  }

  private reset(): void {
    this.delay.reset();
    this.windowStart = performance.eventLoopUtilization();
    this.gcCount = 0;
    this.gcMs = 0;
    this.gcMaxMs = 0;
    this.gcMajor = 0;
  }
}
