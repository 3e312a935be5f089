import type { StartPosition } from '../storage/engine.js';
import { ErrorCode, ProtocolError, snippet } from './errors.js';
import { nameProblem } from './names.js';
import { parsePosition } from './position.js';

/**
 * Command lines of both modes, parsed into one typed shape. Pure: no I/O.
 * Human mode takes lower-case words and text to the end of the line; machine mode takes
 * upper-case verbs whose payloads follow as sized frames.
 */
export type Command =
  | { readonly verb: 'pub'; readonly channel: string; readonly ackId: string; readonly reply: string; readonly size: number }
  | { readonly verb: 'pubtext'; readonly channel: string; readonly text: Buffer }
  | { readonly verb: 'req'; readonly channel: string; readonly text: Buffer }
  | { readonly verb: 'sub'; readonly sid: string; readonly pattern: string; readonly from: StartPosition | undefined; readonly queue: string }
  | { readonly verb: 'unsub'; readonly sid: string }
  | { readonly verb: 'ping'; readonly token: string; readonly clientTime: string }
  | { readonly verb: 'name'; readonly name: string }
  | { readonly verb: 'channels'; readonly pattern: string }
  | { readonly verb: 'stats' }
  | { readonly verb: 'clients' }
  | { readonly verb: 'login'; readonly user: string; readonly password: string }
  | { readonly verb: 'token'; readonly token: string }
  | { readonly verb: 'kill'; readonly client: number }
  | { readonly verb: 'pong'; readonly token: string; readonly t1: number; readonly t2: number }
  | { readonly verb: 'mode'; readonly mode: 'human' | 'machine' }
  | { readonly verb: 'help'; readonly topic: string }
  | { readonly verb: 'quit' }
  | { readonly verb: 'empty' };

export const HUMAN_HELP: Readonly<Record<string, string>> = Object.freeze({
  sub: 'sub <pattern> [from=beginning|new|offset:N|after:N|last:N|time:T] [queue=<group>]  subscribe (replays history by default)',
  unsub: 'unsub <pattern>  drop the subscription with that pattern',
  pub: 'pub <channel> <text>  publish the rest of the line',
  req: 'req <channel> <text>  publish with a reply channel and print the first reply',
  channels: 'channels [pattern]  list channels',
  name: 'name <identity>  set the publisher identity',
  stats: 'stats  counters: published, delivered, catch-ups, drops, connections...',
  clients: 'clients  connections with their names, traffic, round-trip time and clock offset (admin)',
  kill: 'kill <client-id>  disconnect a client (admin)',
  login: 'login <user> <password>  authenticate (over TLS or loopback)',
  token: 'token <token>  authenticate with a program token',
  ping: 'ping  answers pong with the server time',
  help: 'help [command]  this list',
  mode: 'mode machine  switch to sized binary-safe frames (docs/protocol.md)',
  quit: 'quit  close the connection',
});

const HUMAN_VERBS = Object.keys(HUMAN_HELP).join(', ');
const MACHINE_VERBS = 'PUB, SUB, UNSUB, PING, PONG, LOGIN, TOKEN, NAME, CHANNELS, STATS, CLIENTS, KILL, MODE, QUIT';
const SPACE = 0x20;
const TAB = 0x09;

/** Splits a line into space-separated words; `rest` returns the raw bytes after word i. */
class Words {
  readonly starts: number[] = [];
  readonly ends: number[] = [];
  constructor(readonly line: Buffer) {
    let i = 0;
    const n = line.length;
    while (i < n) {
      while (i < n && (line[i] === SPACE || line[i] === TAB)) i++;
      if (i >= n) break;
      const s = i;
      while (i < n && line[i] !== SPACE && line[i] !== TAB) i++;
      this.starts.push(s);
      this.ends.push(i);
    }
  }
  get length(): number {
    return this.starts.length;
  }
  word(i: number): string {
    return this.line.toString('utf8', this.starts[i], this.ends[i]);
  }
  /** Bytes from word i to the end of the line, as typed (inner spaces kept). */
  rest(i: number): Buffer {
    return this.line.subarray(this.starts[i]!);
  }
}

function channelArg(w: Words, i: number, usage: string): string {
  if (i >= w.length) throw new ProtocolError(ErrorCode.BAD_ARGUMENTS, `missing channel; usage: ${usage}`);
  const channel = w.word(i);
  const problem = nameProblem(channel, false);
  if (problem) throw new ProtocolError(ErrorCode.BAD_CHANNEL, `bad channel ${JSON.stringify(channel)}: ${problem}`);
  return channel;
}

function patternArg(w: Words, i: number, usage: string): string {
  if (i >= w.length) throw new ProtocolError(ErrorCode.BAD_ARGUMENTS, `missing pattern; usage: ${usage}`);
  const pattern = w.word(i);
  const problem = nameProblem(pattern, true);
  if (problem) throw new ProtocolError(ErrorCode.BAD_PATTERN, `bad pattern ${JSON.stringify(pattern)}: ${problem}`);
  return pattern;
}

const ID = /^[A-Za-z0-9_-]{1,32}$/;

function idArg(w: Words, i: number, what: string, usage: string, dashAllowed: boolean): string {
  if (i >= w.length) throw new ProtocolError(ErrorCode.BAD_ARGUMENTS, `missing ${what}; usage: ${usage}`);
  const id = w.word(i);
  if (dashAllowed && id === '-') return '';
  if (!ID.test(id)) throw new ProtocolError(ErrorCode.BAD_ARGUMENTS, `bad ${what} ${JSON.stringify(id)}: 1 to 32 letters, digits, "_" or "-"; usage: ${usage}`);
  return id;
}

/** `from=` and `queue=` options after a pattern. */
function subOptions(w: Words, first: number, usage: string): { from: StartPosition | undefined; queue: string } {
  let from: StartPosition | undefined;
  let queue = '';
  for (let i = first; i < w.length; i++) {
    const word = w.word(i);
    const eq = word.indexOf('=');
    const key = eq > 0 ? word.slice(0, eq) : '';
    const value = word.slice(eq + 1);
    if (key === 'from') from = parsePosition(value);
    else if (key === 'queue') {
      if (!ID.test(value)) throw new ProtocolError(ErrorCode.BAD_ARGUMENTS, `bad queue group ${JSON.stringify(value)}: 1 to 32 letters, digits, "_" or "-"`);
      queue = value;
    } else throw new ProtocolError(ErrorCode.BAD_ARGUMENTS, `unexpected ${JSON.stringify(word)}; usage: ${usage}`);
  }
  if (queue && from && from.kind !== 'new') {
    throw new ProtocolError(ErrorCode.BAD_ARGUMENTS, 'a queue subscription receives only new messages: drop from= or use from=new');
  }
  return { from, queue };
}

function noMore(w: Words, count: number, usage: string): void {
  if (w.length > count) throw new ProtocolError(ErrorCode.BAD_ARGUMENTS, `unexpected ${JSON.stringify(w.word(count))}; usage: ${usage}`);
}

export function parseHuman(line: Buffer): Command {
  const w = new Words(line);
  if (w.length === 0) return { verb: 'empty' };
  const verb = w.word(0);
  switch (verb) {
    case 'pub':
    case 'req': {
      const usage = HUMAN_HELP[verb]!;
      const channel = channelArg(w, 1, usage);
      // The text is everything after the channel and one separator, as typed.
      const text = w.length > 2 ? w.rest(2) : Buffer.alloc(0);
      return verb === 'pub' ? { verb: 'pubtext', channel, text } : { verb: 'req', channel, text };
    }
    case 'sub': {
      const pattern = patternArg(w, 1, HUMAN_HELP.sub!);
      const { from, queue } = subOptions(w, 2, HUMAN_HELP.sub!);
      return { verb: 'sub', sid: pattern, pattern, from, queue };
    }
    case 'unsub': {
      const pattern = patternArg(w, 1, HUMAN_HELP.unsub!);
      noMore(w, 2, HUMAN_HELP.unsub!);
      return { verb: 'unsub', sid: pattern };
    }
    case 'channels': {
      const pattern = w.length > 1 ? patternArg(w, 1, HUMAN_HELP.channels!) : '>';
      noMore(w, 2, HUMAN_HELP.channels!);
      return { verb: 'channels', pattern };
    }
    case 'name':
      return { verb: 'name', name: idArg(w, 1, 'identity', HUMAN_HELP.name!, false) };
    case 'stats':
      noMore(w, 1, HUMAN_HELP.stats!);
      return { verb: 'stats' };
    case 'clients':
      noMore(w, 1, HUMAN_HELP.clients!);
      return { verb: 'clients' };
    case 'login':
      return loginCommand(w, HUMAN_HELP.login!);
    case 'token':
      return tokenCommand(w, HUMAN_HELP.token!);
    case 'kill':
      return killCommand(w, HUMAN_HELP.kill!);
    case 'ping':
      return { verb: 'ping', token: w.length > 1 ? w.word(1) : '', clientTime: '' };
    case 'help':
      return { verb: 'help', topic: w.length > 1 ? w.word(1) : '' };
    case 'mode':
      return modeCommand(w, HUMAN_HELP.mode!);
    case 'quit':
    case 'exit':
      return { verb: 'quit' };
    default:
      throw new ProtocolError(ErrorCode.UNKNOWN_COMMAND, `unknown command ${snippet(Buffer.from(verb), 24)}; expected one of: ${HUMAN_VERBS}`);
  }
}

/** The password is the rest of the line, as typed (it may contain spaces). */
function loginCommand(w: Words, usage: string): Command {
  if (w.length < 3) throw new ProtocolError(ErrorCode.BAD_ARGUMENTS, `expected a user and a password; usage: ${usage}`);
  return { verb: 'login', user: w.word(1), password: w.rest(2).toString('utf8') };
}

function tokenCommand(w: Words, usage: string): Command {
  if (w.length !== 2) throw new ProtocolError(ErrorCode.BAD_ARGUMENTS, `expected one token; usage: ${usage}`);
  return { verb: 'token', token: w.word(1) };
}

function killCommand(w: Words, usage: string): Command {
  const id = w.length === 2 ? w.word(1) : '';
  if (!/^\d{1,9}$/.test(id)) throw new ProtocolError(ErrorCode.BAD_ARGUMENTS, `expected a client id (see clients); usage: ${usage}`);
  return { verb: 'kill', client: Number(id) };
}

function modeCommand(w: Words, usage: string): Command {
  const mode = w.length > 1 ? w.word(1).toLowerCase() : '';
  if (mode !== 'human' && mode !== 'machine') throw new ProtocolError(ErrorCode.BAD_ARGUMENTS, `expected "human" or "machine"; usage: ${usage}`);
  noMore(w, 2, usage);
  return { verb: 'mode', mode };
}

const PUB_USAGE = 'PUB <channel> <ack-id|-> <reply|-> <size>';
const SUB_USAGE = 'SUB <sid> <pattern> [from=<position>] [queue=<group>]';

export function parseMachine(line: Buffer): Command {
  const w = new Words(line);
  if (w.length === 0) return { verb: 'empty' };
  const verb = w.word(0);
  switch (verb) {
    case 'PUB': {
      const channel = channelArg(w, 1, PUB_USAGE);
      const ackId = idArg(w, 2, 'ack-id', PUB_USAGE, true);
      let reply = '';
      if (w.length > 3 && w.word(3) !== '-') reply = channelArg(w, 3, PUB_USAGE);
      if (w.length < 5) throw new ProtocolError(ErrorCode.BAD_ARGUMENTS, `missing size; usage: ${PUB_USAGE}`);
      noMore(w, 5, PUB_USAGE);
      const sizeText = w.word(4);
      if (!/^\d{1,12}$/.test(sizeText)) throw new ProtocolError(ErrorCode.BAD_SIZE, `size ${JSON.stringify(sizeText)} is not a decimal number; usage: ${PUB_USAGE}`);
      return { verb: 'pub', channel, ackId, reply, size: Number(sizeText) };
    }
    case 'SUB': {
      const sid = idArg(w, 1, 'sid', SUB_USAGE, false);
      const pattern = patternArg(w, 2, SUB_USAGE);
      const { from, queue } = subOptions(w, 3, SUB_USAGE);
      return { verb: 'sub', sid, pattern, from, queue };
    }
    case 'UNSUB': {
      const sid = idArg(w, 1, 'sid', 'UNSUB <sid>', false);
      noMore(w, 2, 'UNSUB <sid>');
      return { verb: 'unsub', sid };
    }
    case 'PING':
      noMore(w, 3, 'PING <token> [<client-time-µs>]');
      return { verb: 'ping', token: w.length > 1 ? w.word(1) : '-', clientTime: w.length > 2 ? w.word(2) : '-' };
    case 'NAME':
      return { verb: 'name', name: idArg(w, 1, 'identity', 'NAME <identity>', false) };
    case 'CHANNELS': {
      const pattern = w.length > 1 ? patternArg(w, 1, 'CHANNELS [<pattern>]') : '>';
      noMore(w, 2, 'CHANNELS [<pattern>]');
      return { verb: 'channels', pattern };
    }
    case 'STATS':
      noMore(w, 1, 'STATS');
      return { verb: 'stats' };
    case 'CLIENTS':
      noMore(w, 1, 'CLIENTS');
      return { verb: 'clients' };
    case 'LOGIN':
      return loginCommand(w, 'LOGIN <user> <password>');
    case 'TOKEN':
      return tokenCommand(w, 'TOKEN <token>');
    case 'KILL':
      return killCommand(w, 'KILL <client-id>');
    case 'PONG': {
      const usage = 'PONG <token> <t1-µs> <client-time-µs>';
      if (w.length !== 4) throw new ProtocolError(ErrorCode.BAD_ARGUMENTS, `expected 3 arguments; usage: ${usage}`);
      const [t1, t2] = [w.word(2), w.word(3)];
      if (!/^\d{1,16}$/.test(t1) || !/^\d{1,16}$/.test(t2)) throw new ProtocolError(ErrorCode.BAD_ARGUMENTS, `times must be whole microseconds; usage: ${usage}`);
      return { verb: 'pong', token: w.word(1), t1: Number(t1), t2: Number(t2) };
    }
    case 'MODE':
      return modeCommand(w, 'MODE human');
    case 'QUIT':
      return { verb: 'quit' };
    default:
      throw new ProtocolError(ErrorCode.UNKNOWN_COMMAND, `unknown verb ${snippet(Buffer.from(verb), 24)}; expected one of: ${MACHINE_VERBS}`);
  }
}
