import type { StartPosition } from '../storage/engine.js';
import { ErrorCode, ProtocolError } from './errors.js';

const EXPECTED = 'expected beginning, new, offset:N, after:N, last:N or time:<ISO 8601 with zone | epoch ms>';

/** Parse a `from=` position. */
export function parsePosition(text: string): StartPosition {
  if (text === 'beginning' || text === 'all' || text === 'first') return { kind: 'beginning' };
  if (text === 'new' || text === 'now') return { kind: 'new' };
  const colon = text.indexOf(':');
  if (colon > 0) {
    const kind = text.slice(0, colon);
    const arg = text.slice(colon + 1);
    if (kind === 'offset' || kind === 'after' || kind === 'last') {
      if (!/^\d{1,15}$/.test(arg)) throw new ProtocolError(ErrorCode.BAD_POSITION, `position "${text}": "${arg}" is not a whole number; ${EXPECTED}`);
      const n = Number(arg);
      if (kind === 'offset') return { kind: 'offset', offset: Math.max(1, n) };
      if (kind === 'after') return { kind: 'offset', offset: n + 1 };
      return { kind: 'last', count: n };
    }
    if (kind === 'time') {
      // An ISO time must say its zone (Z or ±hh:mm): a broker's local time is nobody's business.
      const zoned = /^\d{4}-\d\d-\d\d$/.test(arg) || /^\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:?\d\d)$/i.test(arg);
      const time = /^\d{1,15}$/.test(arg) ? Number(arg) : zoned ? Date.parse(arg) : NaN;
      if (!Number.isFinite(time)) throw new ProtocolError(ErrorCode.BAD_POSITION, `position "${text}": "${arg}" is not a time; ${EXPECTED}`);
      return { kind: 'time', time };
    }
  }
  throw new ProtocolError(ErrorCode.BAD_POSITION, `position "${text}" not understood; ${EXPECTED}`);
}

export function formatPosition(p: StartPosition): string {
  switch (p.kind) {
    case 'beginning':
    case 'new':
      return p.kind;
    case 'offset':
      return `offset:${p.offset}`;
    case 'last':
      return `last:${p.count}`;
    case 'time':
      return `time:${new Date(p.time).toISOString()}`;
  }
}
