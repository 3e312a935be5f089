/**
 * Types and defaults of what a configuration file sets beyond the existing option objects
 * (TLS, log level, and the settings that are parsed but not enforced yet), and the value
 * checkers the parser uses (sizes, durations, rates, addresses, names). Nothing here does I/O.
 *
 * Where the settings go (see load.ts): listeners, storage, session and broker options, TLS,
 * log level and the security options (users file, rules, limits, audit log) end up in
 * ServerConfig through ConfigOverrides (tenant quotas in broker.quotas, certificate-to-user
 * mappings in security.certificateUsers). Every keyword is enforced; docs/config.md lists them.
 */
import { isIPv4, isIPv6 } from 'node:net';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';
export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error'];

export type ClientCertificateMode = 'none' | 'optional' | 'required';

/** TLS for the listeners marked `tls`. Paths are absolute once loaded from a file. */
export interface TlsSettings {
  /** Server certificate chain, PEM file. */
  readonly certificate: string;
  /** Its private key, PEM file. */
  readonly key: string;
  /** CA certificates (PEM file) that client certificates must chain to. */
  readonly ca: string | undefined;
  /** none: no client certificate asked; optional: asked, and verified when given; required. */
  readonly clientCertificate: ClientCertificateMode;
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3';
  /** A TLS handshake not finished after this long is abandoned (`timeout handshake`). */
  readonly handshakeTimeoutMs: number;
  /** Certificate revocation list (PEM file) of `ca`: a revoked client certificate is refused. */
  readonly crl?: string | undefined;
  /** OCSP checking of client certificates (`tls ocsp on`); absent when off. */
  readonly ocsp?: OcspSettings | undefined;
}

export const TLS_DEFAULTS = Object.freeze({ clientCertificate: 'none' as ClientCertificateMode, minVersion: 'TLSv1.2' as const, handshakeTimeoutMs: 10_000 });

/** What a client gets when its certificate's OCSP status cannot be had (`tls ocsp on-failure`). */
export type OcspFailurePolicy = 'refuse' | 'accept';

/** `tls ocsp ...`: asking the certificate's OCSP responder before a client comes in (src/server/ocsp.ts). */
export interface OcspSettings {
  /** Responder URL that overrides the one in each certificate (its AIA OCSP URL). */
  readonly responder?: string | undefined;
  /** No answer, an invalid one, or `unknown`: refuse the client (hard fail) or let it in with a warning. */
  readonly onFailure: OcspFailurePolicy;
  /** How long one request to the responder may take. */
  readonly timeoutMs: number;
  /** An answer is reused until its nextUpdate, and never longer than this after it was fetched. */
  readonly cacheMaxAgeMs: number;
}

/**
 * Refuse by default: an OCSP check that lets a client in whenever the responder cannot be asked
 * is turned off by whoever can block the responder, and a revoked certificate's holder is
 * typically that person. The cache keeps outages shorter than `cache` invisible to clients
 * already seen; `on-failure accept` is the explicit choice of availability over revocation.
 */
export const OCSP_DEFAULTS = Object.freeze({ onFailure: 'refuse' as OcspFailurePolicy, timeoutMs: 2000, cacheMaxAgeMs: 3_600_000 });

export interface TenantSettings {
  readonly name: string;
  /** Channels this tenant may hold (0: the server-wide `limit channels per tenant` applies). */
  readonly maxChannels: number;
  /** Disk quota in bytes (0: the server-wide `limit disk per tenant` applies). */
  readonly diskQuotaBytes: number;
}

export type { CertificateUser } from '../security/options.js';

// --------------------------------------------------------------------------------------------
// Value checkers: each returns the value, or a string that says what was expected.

export type Checked<T> = { ok: true; value: T } | { ok: false; expected: string; hint?: string };

const ok = <T>(value: T): Checked<T> => ({ ok: true, value });
const no = <T>(expected: string, hint?: string): Checked<T> => (hint === undefined ? { ok: false, expected } : { ok: false, expected, hint });

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** 4096, 512k, 64MiB, 1g, 10GB: binary units, like the command line. */
export function checkSize(text: string): Checked<number> {
  const m = /^(\d+)([kmgt]?)(i?b)?$/i.exec(text);
  if (!m || (m[3] && !m[2] && m[3].toLowerCase() !== 'b')) return no('a size such as 4096, 512k, 64MiB or 1g');
  const n = Number(m[1]) * SIZE_UNITS[m[2]!.toLowerCase()]!;
  if (!Number.isSafeInteger(n)) return no('a size below 8 PiB');
  return ok(n);
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** 10ms, 5s, 1.5s, 2m, 24h, 7d: the unit is required. */
export function checkDuration(text: string): Checked<number> {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text);
  if (!m) {
    if (/^\d+(\.\d+)?$/.test(text)) return no(`a duration with its unit, such as ${text}ms or ${text}s (units: ms, s, m, h, d)`);
    return no('a duration such as 10ms, 5s, 2m, 24h or 7d');
  }
  const ms = Number(m[1]) * DURATION_UNITS[m[2]!]!;
  if (!Number.isFinite(ms) || ms > 100 * 365 * 86_400_000) return no('a duration below 100 years');
  return ok(Math.round(ms));
}

export function checkCount(text: string, min = 0): Checked<number> {
  if (!/^\d{1,15}$/.test(text)) return no(min > 0 ? `a whole number >= ${min}` : 'a whole number');
  const n = Number(text);
  if (n < min) return no(`a whole number >= ${min}`);
  return ok(n);
}

/** 1000/s, 60/m, 3600/h: messages per second. */
export function checkRate(text: string): Checked<number> {
  const m = /^(\d{1,12})\/(s|m|h)$/.exec(text);
  if (!m) return no('a rate such as 1000/s, 600/m or 3600/h');
  const per = { s: 1, m: 60, h: 3600 }[m[2] as 's' | 'm' | 'h'];
  const n = Number(m[1]) / per;
  if (n <= 0) return no('a rate above zero');
  return ok(n);
}

export function checkPort(text: string): Checked<number> {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) return no('a port number (0-65535; 0 picks a free port)');
  return ok(Number(text));
}

const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/** An IPv4 or IPv6 address or a host name; `[::1]` brackets are accepted and removed. */
export function checkHost(text: string): Checked<string> {
  const t = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  if (isIPv4(t) || isIPv6(t)) return ok(t);
  if (/^[\d.]+$/.test(t) || !HOSTNAME.test(t) || t.length > 253) return no('an IPv4 address, an IPv6 address or a host name');
  return ok(t);
}

/** The users file's name rule (security/users-file.ts), for users, groups and tenants alike. */
const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

/** An http:// or https:// URL (an OCSP responder). */
export function checkHttpUrl(text: string): Checked<string> {
  const expected = 'an http:// or https:// URL such as "http://127.0.0.1:8888"';
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return no(expected);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') return no(expected);
  if (url.username || url.password) return no('a URL without a user name or password');
  return ok(url.href);
}

/** User, group and tenant names: 1 to 64 letters, digits, "_", "." or "-", not starting with "." or "-". */
export function checkName(text: string, what: string): Checked<string> {
  if (!NAME.test(text)) return no(`a ${what} name (1 to 64 letters, digits, "_", "." or "-", not starting with "." or "-")`);
  return ok(text);
}

/** The 16-bit groups of an IPv6 address, or null. */
function ipv6Groups(text: string): number[] | null {
  if (!isIPv6(text)) return null;
  let t = text;
  const tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(t);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    tail.push((b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!);
    t = t.slice(0, -v4[1]!.length);
    if (t.endsWith(':') && !t.endsWith('::')) t = t.slice(0, -1);
  }
  const [head, rest] = t.split('::') as [string, string | undefined];
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const h = parse(head);
  const r = rest === undefined ? [] : parse(rest);
  const fill = 8 - tail.length - h.length - r.length;
  if (rest === undefined ? fill !== 0 : fill < 0) return null;
  return [...h, ...new Array<number>(rest === undefined ? 0 : fill).fill(0), ...r, ...tail];
}

function formatIpv6(groups: number[]): string {
  // RFC 5952: the longest run (>= 2) of zero groups becomes "::".
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/**
 * `10.0.0.0/8`, `192.0.2.7` (a /32), `2001:db8::/32`, `::1`; IPv4-mapped IPv6
 * (`::ffff:10.0.0.0/104`) is turned into IPv4. Host bits set are an error, not silently masked.
 */
export function checkCidr(text: string): Checked<{ cidr: string; family: 'ipv4' | 'ipv6'; network: string; prefix: number }> {
  const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(text);
  const expected = 'an address or network such as 192.0.2.0/24, 10.1.2.3, 2001:db8::/32 or ::1';
  if (!m) return no(expected);
  const addr = m[1]!;
  if (isIPv4(addr)) {
    const prefix = m[2] === undefined ? 32 : Number(m[2]);
    if (prefix > 32) return no('an IPv4 prefix length of 0 to 32');
    return v4Network(addr.split('.').map(Number), prefix);
  }
  const groups = ipv6Groups(addr);
  if (!groups) return no(expected);
  let prefix = m[2] === undefined ? 128 : Number(m[2]);
  if (prefix > 128) return no('an IPv6 prefix length of 0 to 128');
  // IPv4-mapped (::ffff:a.b.c.d): the same host as a.b.c.d for every check that follows.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff && prefix >= 96) {
    prefix -= 96;
    return v4Network([groups[6]! >> 8, groups[6]! & 255, groups[7]! >> 8, groups[7]! & 255], prefix);
  }
  const masked = groups.map((g, i) => {
    const bits = Math.min(16, Math.max(0, prefix - i * 16));
    return bits === 16 ? g : g & ((0xffff << (16 - bits)) & 0xffff);
  });
  const network = formatIpv6(masked);
  if (masked.some((g, i) => g !== groups[i])) return no('a network without host bits set', `did you mean ${network}/${prefix}?`);
  return ok({ cidr: `${network}/${prefix}`, family: 'ipv6', network, prefix });
}

function v4Network(bytes: number[], prefix: number): Checked<{ cidr: string; family: 'ipv4'; network: string; prefix: number }> {
  const value = ((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0;
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  const net = (value & mask) >>> 0;
  const network = [net >>> 24, (net >>> 16) & 255, (net >>> 8) & 255, net & 255].join('.');
  if (net !== value) return no('a network without host bits set', `did you mean ${network}/${prefix}?`);
  return ok({ cidr: `${network}/${prefix}`, family: 'ipv4', network, prefix });
}

/** Levenshtein distance, for "did you mean" hints. */
export function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** The closest candidate within distance 2 (and less than the word's length), if any. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const c of candidates) {
    const d = distance(word.toLowerCase(), c);
    if (d < bestD && d < Math.max(2, c.length - 1)) {
      best = c;
      bestD = d;
    }
  }
  return best;
}
