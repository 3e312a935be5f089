import { noteWaitingReaders } from '../loop/input-backlog.js';

/**
 * How many bytes all connections may read in one event-loop turn before the ones still
 * reading wait for the next turn.
 *
 * Why: libuv reads a ready socket up to 32 times (64 KiB each) per poll, and every connection
 * with input is polled in the same turn, so eight publishers flooding the broker made one turn
 * parse ~16 MiB before anything it had read was delivered or written out: turns of 100–200 ms,
 * and a quiet client on another channel waited that long for each message (docs/performance.md,
 * "Overload"). A connection that reads past the budget pauses and resumes in the next turn's
 * check phase, after the deliveries of this one were flushed; its kernel buffer fills
 * meanwhile and TCP slows its sender down, so a flood costs the flooders, not everyone.
 *
 * A turn that reads more than a sixteenth of the budget schedules the budget's renewal at its
 * end (one setImmediate for all connections), so a busy turn never inherits what earlier ones
 * spent and traffic within the budget never waits. Lighter turns schedule nothing: a message
 * a turn costs no timer, and what they read counts towards the turn that crosses the mark.
 */
export class ReadBudget {
  private used = 0;
  /** Bytes past which a turn schedules the renewal. */
  private readonly mark: number;
  /** Times a connection waited for the next turn (`stats`: readYields). */
  yields = 0;
  private waiting: (() => void)[] = [];
  private scheduled = false;
  /** In the check phase of the turn that scheduled it: after that turn's reads and their flushes. */
  private readonly renew = (): void => {
    this.scheduled = false;
    this.used = 0;
    const waiting = this.waiting;
    this.waiting = [];
    noteWaitingReaders(-waiting.length);
    for (const resume of waiting) resume();
  };

  constructor(readonly perTurn: number) {
    this.mark = perTurn / 16;
  }

  /** Counts `bytes` just read; false once the budget is spent: the reader should `wait`. */
  spend(bytes: number): boolean {
    this.used += bytes;
    if (this.used > this.mark) this.schedule();
    return this.used <= this.perTurn;
  }

  /** Calls `resume` once the budget is renewed, at the end of this turn. */
  wait(resume: () => void): void {
    this.yields++;
    this.waiting.push(resume);
    noteWaitingReaders(1);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.renew);
  }
}

const budgets = new Map<number, ReadBudget>();

/** The process's budget of that size: one event loop, one budget shared by its connections. */
export function readBudget(perTurn: number): ReadBudget {
  let b = budgets.get(perTurn);
  if (b === undefined) budgets.set(perTurn, (b = new ReadBudget(perTurn)));
  return b;
}
