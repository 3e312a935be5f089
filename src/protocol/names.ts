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

/**
 * Tenants are namespaces: the session prefixes every name a tenant's client uses with
 * `_T.<tenant>.` before the broker sees it, and strips it from everything it sends back. The
 * prefix is reserved: no client can name it, so no pattern can reach across tenants.
 */
export const TENANT_PREFIX = '_T.';

export function tenantPrefix(tenant: string): string {
  return tenant ? `${TENANT_PREFIX}${tenant}.` : '';
}

export function isReserved(name: string): boolean {
  return name === '_T' || name.startsWith(TENANT_PREFIX);
}

/** The name as its tenant's clients know it. */
export function displayName(internal: string): string {
  if (!internal.startsWith(TENANT_PREFIX)) return internal;
  return internal.slice(internal.indexOf('.', TENANT_PREFIX.length) + 1);
}

/** Reply inboxes (`_INBOX.…`, in any tenant) are never stored. */
export function isEphemeral(channel: string): boolean {
  if (channel.startsWith(EPHEMERAL_PREFIX)) return true;
  return channel.startsWith(TENANT_PREFIX) && channel.startsWith(EPHEMERAL_PREFIX, channel.indexOf('.', TENANT_PREFIX.length) + 1);
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
