/**
 * Channel names and subscription patterns: dot-separated tokens of letters, digits, `_`, `-`.
 * In a pattern a token may be `*` (one token) and the last token may be `>` (the rest).
 */
export const MAX_NAME_BYTES = 255;
export const MAX_TOKENS = 32;
export const EPHEMERAL_PREFIX = '_INBOX.';

function isTokenChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x5f || c === 0x2d;
}

/** Why `name` is not a valid channel or pattern, or null when it is. */
export function nameProblem(name: string, pattern: boolean): string | null {
  if (name.length === 0) return 'empty name';
  if (name.length > MAX_NAME_BYTES) return `longer than ${MAX_NAME_BYTES} bytes`;
  let tokens = 1;
  let tokenStart = 0;
  for (let i = 0; i <= name.length; i++) {
    const c = i < name.length ? name.charCodeAt(i) : 0x2e;
    if (c === 0x2e) {
      const len = i - tokenStart;
      if (len === 0) return `empty token at position ${i}`;
      if (len === 1 && pattern) {
        const t = name.charCodeAt(tokenStart);
        if (t === 0x3e && i !== name.length) return '">" must be the last token';
      }
      if (i < name.length && ++tokens > MAX_TOKENS) return `more than ${MAX_TOKENS} tokens`;
      tokenStart = i + 1;
      continue;
    }
    if (isTokenChar(c)) continue;
    if (pattern && (c === 0x2a || c === 0x3e) && i === tokenStart && (i + 1 === name.length || name.charCodeAt(i + 1) === 0x2e)) continue;
    if (!pattern && (c === 0x2a || c === 0x3e)) return `wildcard "${String.fromCharCode(c)}" is only allowed in subscription patterns`;
    return `invalid character ${JSON.stringify(String.fromCharCode(c))} at position ${i} (allowed: letters, digits, "_", "-", "." between tokens)`;
  }
  return null;
}

export function isWildcard(pattern: string): boolean {
  return pattern.includes('*') || pattern.includes('>');
}

export function isEphemeral(channel: string): boolean {
  return channel.startsWith(EPHEMERAL_PREFIX);
}

/** Does a channel match a pattern? (Reference implementation; the broker uses an index.) */
export function matches(pattern: string, channel: string): boolean {
  const p = pattern.split('.');
  const c = channel.split('.');
  for (let i = 0; i < p.length; i++) {
    const t = p[i];
    if (t === '>') return c.length > i;
    if (i >= c.length) return false;
    if (t !== '*' && t !== c[i]) return false;
  }
  return p.length === c.length;
}
