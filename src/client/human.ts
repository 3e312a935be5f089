/**
 * The human commands accepted by Client.send(), read with the broker's own parser
 * (src/protocol/commands.ts) so that send() accepts exactly what `nc` accepts and refuses it with
 * the same `-ERR` messages. Pure: no I/O.
 */
import { type Command, parseHuman } from '../protocol/commands.js';
import { ProtocolError } from '../protocol/errors.js';
import type { Position } from './names.js';

export { HUMAN_HELP } from '../protocol/commands.js';

export type HumanCommand = Command | { readonly verb: 'error'; readonly code: string; readonly message: string };

/** One line (without its newline); a refused line becomes an `error` command. */
export function parseHumanCommand(line: string): HumanCommand {
  try {
    return parseHuman(Buffer.from(line.endsWith('\r') ? line.slice(0, -1) : line, 'utf8'));
  } catch (err) {
    if (err instanceof ProtocolError) return { verb: 'error', code: err.code, message: err.message };
    throw err;
  }
}

type StartPosition = Extract<Command, { verb: 'sub' }>['from'];

/** The broker's parsed start position as the client's Position (after:N arrives as offset:N+1). */
export function toPosition(from: NonNullable<StartPosition>): Position {
  switch (from.kind) {
    case 'beginning':
    case 'new':
      return { kind: from.kind };
    case 'offset':
      return { kind: 'offset', offset: from.offset };
    case 'last':
      return { kind: 'last', count: from.count };
    case 'time':
      return { kind: 'time', ms: from.time };
  }
}
