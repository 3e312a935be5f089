/**
 * Work for the end of the current event-loop turn: one setImmediate runs every task in the
 * order given, and a task added while they run joins the same pass.
 *
 * Why one queue rather than a setImmediate each: an immediate set from inside the check phase
 * waits for the next turn. The file engine writes a turn's appends in the check phase, a write
 * small enough to go inline commits at once, and the deliveries it makes then waited for the
 * outboxes' own immediates, a whole turn later: under a flood, milliseconds more for a quiet
 * client. Here those deliveries leave in the pass that committed them.
 */
const tasks: (() => void)[] = [];
let scheduled = false;

function runAll(): void {
  scheduled = false;
  let i = 0;
  try {
    // tasks.length is read on every step: tasks added by a task run in this pass.
    for (; i < tasks.length; i++) tasks[i]!();
  } finally {
    if (i < tasks.length) {
      // A task threw: it is dropped and propagates as before; the others run in the next pass.
      tasks.splice(0, i + 1);
      if (tasks.length !== 0) schedule();
    } else tasks.length = 0;
  }
}

function schedule(): void {
  scheduled = true;
  setImmediate(runAll);
}

/** Runs `task` once at the end of this event-loop turn, after the turn's I/O callbacks. */
export function atTurnEnd(task: () => void): void {
  tasks.push(task);
  if (!scheduled) schedule();
}
