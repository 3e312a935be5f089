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
 * The budget is spent across turns until it runs out, and only then does a turn end it: no
 * timer per turn while traffic is light (a light connection then yields once per `perTurn`
 * bytes, an extra pause and resume).
 */
export class ReadBudget {
  private used = 0;
  /** Times a connection waited for the next turn (`stats`: readYields). */
  yields = 0;
  private waiting: (() => void)[] = [];
  private scheduled = false;
  private readonly nextTurn = (): void => {
    this.scheduled = false;
    this.used = 0;
    const waiting = this.waiting;
    this.waiting = [];
    for (const resume of waiting) resume();
  };

  constructor(readonly perTurn: number) {}

  /** Counts `bytes` just read; false once the budget is spent: the reader should `wait`. */
  spend(bytes: number): boolean {
    this.used += bytes;
    return this.used <= this.perTurn;
  }

  /** Calls `resume` in the next turn's check phase, with a fresh budget. */
  wait(resume: () => void): void {
    this.yields++;
    this.waiting.push(resume);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.nextTurn);
    }
  }
}

const budgets = new Map<number, ReadBudget>();

/** The process's budget of that size: one event loop, one budget shared by its connections. */
export function readBudget(perTurn: number): ReadBudget {
  let b = budgets.get(perTurn);
  if (b === undefined) budgets.set(perTurn, (b = new ReadBudget(perTurn)));
  return b;
}
