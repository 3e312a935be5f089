/**
 * Whether input is waiting for the event loop: connections that spent this turn's read budget
 * and wait for the next turn (server/read-budget.ts). The file log asks before writing a large
 * batch from the loop itself (storage/filelog/inline-writes.ts): with input waiting, the loop
 * has other work and the write goes to the thread pool instead, overlapping it; with none,
 * the loop would only wait for the pool to call back.
 */
let waiting = 0;

/** `n` readers started (positive) or stopped (negative) waiting for the next turn's budget. */
export function noteWaitingReaders(n: number): void {
  waiting += n;
}

export function inputWaiting(): boolean {
  return waiting > 0;
}
