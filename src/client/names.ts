/**
 * Local checks of channel names, patterns, positions and ids, so that nothing a caller passes
 * can break a frame (a space or newline in a name would inject a command). The broker checks
 * again; the rules are the ones of docs/protocol.md, shared with it through src/protocol.
 */
import { ErrorCode } from '../protocol/errors.js';
import { EPHEMERAL_PREFIX, nameProblem } from '../protocol/names.js';
import { FluctuatError } from './errors.js';

export const INBOX_PREFIX = EPHEMERAL_PREFIX;

/** The same rule as the broker's (src/protocol/names.ts), so the messages are the same too. */
export function checkChannel(channel: string): void {
  if (typeof channel !== 'string') throw new FluctuatError(ErrorCode.BAD_CHANNEL, `channel must be a string, got ${typeof channel}`);
  const problem = nameProblem(channel, false);
  if (problem) throw new FluctuatError(ErrorCode.BAD_CHANNEL, `bad channel ${JSON.stringify(channel)}: ${problem}`);
}

export function checkPattern(pattern: string): void {
  if (typeof pattern !== 'string') throw new FluctuatError(ErrorCode.BAD_PATTERN, `pattern must be a string, got ${typeof pattern}`);
  const problem = nameProblem(pattern, true);
  if (problem) throw new FluctuatError(ErrorCode.BAD_PATTERN, `bad pattern ${JSON.stringify(pattern)}: ${problem}`);
}

/** True when a pattern names exactly one channel (no `*`, no `>` token). */
export function isPlainChannel(pattern: string): boolean {
  return !/(^|\.)(\*|>)(\.|$)/.test(pattern);
}

export function isEphemeral(channel: string): boolean {
  return channel.startsWith(INBOX_PREFIX);
}

const ID = /^[A-Za-z0-9_-]{1,32}$/;

/** Identities, queue groups, sids and ack ids: 1 to 32 letters, digits, `_` or `-`. */
export function checkId(value: string, what: string): void {
  if (typeof value !== 'string' || !ID.test(value)) {
    throw new FluctuatError(ErrorCode.BAD_ARGUMENTS, `bad ${what} ${JSON.stringify(value)}: 1 to 32 letters, digits, "_" or "-"`);
  }
}

/** Where a subscription starts, as in docs/protocol.md. */
export type Position =
  | { readonly kind: 'beginning' }
  | { readonly kind: 'new' }
  | { readonly kind: 'offset'; readonly offset: number }
  | { readonly kind: 'after'; readonly offset: number }
  | { readonly kind: 'last'; readonly count: number }
  /** `ms` since the epoch; `iso` keeps an ISO 8601 text as given. */
  | { readonly kind: 'time'; readonly ms: number; readonly iso?: string };

/** What callers may pass as `from`: the wire text (`after:41`) or an object. */
export type PositionInput =
  | string
  | { beginning: true }
  | { new: true }
  | { offset: number }
  | { after: number }
  | { last: number }
  | { time: Date | number | string };

function badPosition(input: unknown, why: string): FluctuatError {
  return new FluctuatError(ErrorCode.BAD_POSITION, `position ${typeof input === 'string' ? JSON.stringify(input) : JSON.stringify(input)}: ${why} (expected beginning, new, offset:N, after:N, last:N or time:T)`);
}

function count(input: unknown, text: unknown, min: number): number {
  const n = typeof text === 'number' ? text : typeof text === 'string' && /^\d{1,15}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min) throw badPosition(input, `needs an integer >= ${min}`);
  return n;
}

function time(input: unknown, value: unknown): Position {
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) throw badPosition(input, 'invalid date');
    return { kind: 'time', ms: value.getTime() };
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) throw badPosition(input, 'time must be milliseconds since the epoch');
    return { kind: 'time', ms: Math.floor(value) };
  }
  if (typeof value === 'string') {
    if (/^\d{1,15}$/.test(value)) return { kind: 'time', ms: Number(value) };
    const ms = Date.parse(value);
    if (/^\d{4}-\d\d-\d\dT[0-9:.]+(Z|[+-]\d\d:?\d\d)$/.test(value) && !Number.isNaN(ms)) return { kind: 'time', ms, iso: value };
  }
  throw badPosition(input, 'time must be ISO 8601 with a zone or milliseconds since the epoch');
}

export function parsePosition(input: PositionInput): Position {
  if (typeof input === 'string') {
    if (input === 'beginning') return { kind: 'beginning' };
    if (input === 'new') return { kind: 'new' };
    const colon = input.indexOf(':');
    if (colon < 0) throw badPosition(input, 'unknown position');
    const kind = input.slice(0, colon);
    const arg = input.slice(colon + 1);
    switch (kind) {
      case 'offset':
        return { kind: 'offset', offset: count(input, arg, 1) };
      case 'after':
        return { kind: 'after', offset: count(input, arg, 0) };
      case 'last':
        return { kind: 'last', count: count(input, arg, 0) };
      case 'time':
        return time(input, arg);
      default:
        throw badPosition(input, 'unknown position');
    }
  }
  if (input === null || typeof input !== 'object') throw badPosition(input, 'not a string or object');
  const keys = Object.keys(input);
  if (keys.length !== 1) throw badPosition(input, 'an object position has exactly one key');
  const o = input as Record<string, unknown>;
  if (o.beginning === true) return { kind: 'beginning' };
  if (o.new === true) return { kind: 'new' };
  if ('offset' in o) return { kind: 'offset', offset: count(input, o.offset, 1) };
  if ('after' in o) return { kind: 'after', offset: count(input, o.after, 0) };
  if ('last' in o) return { kind: 'last', count: count(input, o.last, 0) };
  if ('time' in o) return time(input, o.time);
  throw badPosition(input, 'unknown position');
}

export function formatPosition(p: Position): string {
  switch (p.kind) {
    case 'beginning':
    case 'new':
      return p.kind;
    case 'offset':
    case 'after':
      return `${p.kind}:${p.offset}`;
    case 'last':
      return `last:${p.count}`;
    case 'time':
      return `time:${p.iso ?? p.ms}`;
  }
}
