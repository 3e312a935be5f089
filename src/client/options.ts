/** URL and option parsing: validated once, defaults filled in, then frozen. */
import { ClientErrorCode, FluctuatError } from './errors.js';

export const DEFAULT_PORT = 2023;

export interface ConnectOptions {
  /** Publisher identity, sent with `NAME` on every (re)connection. */
  name?: string;
  /** Reconnect after the connection is lost (default true). The first connection is never retried. */
  reconnect?: boolean;
  /** First reconnect delay in ms (default 100). */
  backoffInitialMs?: number;
  /** Upper bound of the reconnect delay in ms (default 5000). */
  backoffMaxMs?: number;
  /** Give up after this many failed reconnection attempts in a row (default Infinity). */
  maxReconnectAttempts?: number;
  /**
   * Publishes that may wait, unacknowledged, while the client is disconnected (default 10000).
   * A publish beyond this bound is rejected with BUFFER_FULL.
   */
  maxBuffered?: number;
  /** Bytes of payload that may wait while disconnected (default 64 MiB). */
  maxBufferedBytes?: number;
  /** Time allowed for the TCP connection plus the INFO frame, in ms (default 10000). */
  connectTimeoutMs?: number;
  /** Lines kept by collect() between two calls; the oldest are dropped beyond it (default 10000). */
  collectMax?: number;
  /** `close()` waits at most this long for pending acknowledgements, in ms (default 5000). */
  drainTimeoutMs?: number;
  /**
   * Wildcard subscriptions resume from `time:<last time seen - resumeSlackMs>` and drop the
   * duplicates; the slack covers messages of different channels committed slightly out of
   * time order (default 1000).
   */
  resumeSlackMs?: number;
  /** Channels per wildcard subscription whose last offset is remembered for de-duplication (default 10000). */
  maxTrackedChannels?: number;
  /** Messages an async-iterated subscription holds before it pauses or drops (default 10000). */
  maxQueued?: number;
  /**
   * TLS. On with a `tls://` or `fluctuats://` url, or with this option and a bare `host:port`;
   * `true` verifies the broker against Node's trusted CAs.
   */
  tls?: TlsOptions | boolean;
  /**
   * Log in as `user` with `password` on every (re)connection. The broker accepts passwords over
   * TLS and on loopback only (unless configured otherwise); programs use `token` instead.
   */
  user?: string;
  password?: string;
  /** Log in with a program token (`fluctuat user token NAME`) on every (re)connection. */
  token?: string;
}

export type Credentials = { readonly user: string; readonly password: string } | { readonly token: string };

/** PEM contents (`ca`, `cert`, `key`) or files read at each connection attempt (`caFile`, ...). */
export interface TlsOptions {
  /** CA certificates the broker's certificate must chain to (default: Node's trusted CAs). */
  ca?: string | Buffer | (string | Buffer)[];
  caFile?: string;
  /** Client certificate and its key, for a broker that asks for one; its common name is the client's identity. */
  cert?: string | Buffer;
  certFile?: string;
  key?: string | Buffer;
  keyFile?: string;
  passphrase?: string;
  /** Name the broker's certificate must carry (default: the url's host, a DNS name or an IP address). */
  servername?: string;
  /** Verify the broker's certificate (default true). Off, TLS no longer knows who it talks to. */
  rejectUnauthorized?: boolean;
}

export interface ResolvedOptions {
  readonly host: string;
  readonly port: number;
  readonly name: string | undefined;
  readonly reconnect: boolean;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  readonly maxReconnectAttempts: number;
  readonly maxBuffered: number;
  readonly maxBufferedBytes: number;
  readonly connectTimeoutMs: number;
  readonly collectMax: number;
  readonly drainTimeoutMs: number;
  readonly resumeSlackMs: number;
  readonly maxTrackedChannels: number;
  readonly maxQueued: number;
  /** Set when the connection uses TLS. */
  readonly tls: Readonly<TlsOptions> | undefined;
  readonly credentials: Credentials | undefined;
}

const defaults = {
  reconnect: true,
  backoffInitialMs: 100,
  backoffMaxMs: 5000,
  maxReconnectAttempts: Infinity,
  maxBuffered: 10000,
  maxBufferedBytes: 64 * 1024 * 1024,
  connectTimeoutMs: 10000,
  collectMax: 10000,
  drainTimeoutMs: 5000,
  resumeSlackMs: 1000,
  maxTrackedChannels: 10000,
  maxQueued: 10000,
} as const;

function bad(message: string): FluctuatError {
  return new FluctuatError(ClientErrorCode.BAD_OPTION, message);
}

const TLS_SCHEMES = new Set(['tls:', 'fluctuats:']);

/**
 * `fluctuat://host:port`, `tcp://host:port`, `tls://host:port`, `fluctuats://host:port`, or a
 * bare `host:port`; the port defaults to 2023. `tls` is set (true) for the TLS schemes.
 */
export function parseUrl(url: string): { host: string; port: number; tls?: boolean } {
  if (typeof url !== 'string' || url.length === 0) throw bad('connect: url must be a non-empty string like fluctuat://127.0.0.1:2023');
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url : `fluctuat://${url}`;
  let parsed: URL;
  try {
    parsed = new URL(withScheme);
  } catch (cause) {
    throw new FluctuatError(ClientErrorCode.BAD_OPTION, `connect: cannot parse url ${JSON.stringify(url)}`, { cause });
  }
  if (parsed.protocol !== 'fluctuat:' && parsed.protocol !== 'tcp:' && !TLS_SCHEMES.has(parsed.protocol)) {
    throw bad(`connect: unsupported scheme ${JSON.stringify(parsed.protocol)} in ${JSON.stringify(url)} (expected fluctuat://, tcp://, tls:// or fluctuats://)`);
  }
  let host = parsed.hostname;
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host === '') throw bad(`connect: no host in ${JSON.stringify(url)}`);
  const port = parsed.port === '' ? DEFAULT_PORT : Number(parsed.port);
  if (parsed.pathname !== '' && parsed.pathname !== '/') throw bad(`connect: unexpected path ${JSON.stringify(parsed.pathname)} in ${JSON.stringify(url)}`);
  return TLS_SCHEMES.has(parsed.protocol) ? { host, port, tls: true } : { host, port };
}

const TLS_KEYS = new Set(['ca', 'caFile', 'cert', 'certFile', 'key', 'keyFile', 'passphrase', 'servername', 'rejectUnauthorized']);

function isPem(v: unknown): boolean {
  return typeof v === 'string' || Buffer.isBuffer(v);
}

/** fromUrl: true for a TLS scheme, false for an explicit plaintext one, undefined for a bare host:port. */
function resolveTls(url: string, fromUrl: boolean | undefined, option: ConnectOptions['tls']): Readonly<TlsOptions> | undefined {
  if (option === undefined || option === false) {
    if (option === false && fromUrl === true) throw bad(`connect: option tls is false but ${JSON.stringify(url)} is a TLS url`);
    return fromUrl === true ? Object.freeze({}) : undefined;
  }
  if (fromUrl === false) throw bad(`connect: option tls given for the plaintext url ${JSON.stringify(url)}; use tls://host:port or fluctuats://host:port`);
  if (option === true) return Object.freeze({});
  if (option === null || typeof option !== 'object') throw bad('connect: option tls must be true or an object such as { caFile, certFile, keyFile }');
  for (const k of Object.keys(option)) {
    if (!TLS_KEYS.has(k)) throw bad(`connect: unknown tls option ${JSON.stringify(k)} (known: ${[...TLS_KEYS].join(', ')})`);
  }
  const t = option;
  if (t.ca !== undefined && !(isPem(t.ca) || (Array.isArray(t.ca) && t.ca.every(isPem)))) throw bad('connect: tls.ca must be PEM text, a Buffer, or a list of them');
  for (const k of ['cert', 'key'] as const) if (t[k] !== undefined && !isPem(t[k])) throw bad(`connect: tls.${k} must be PEM text or a Buffer`);
  for (const k of ['caFile', 'certFile', 'keyFile', 'passphrase', 'servername'] as const) {
    if (t[k] !== undefined && (typeof t[k] !== 'string' || t[k] === '')) throw bad(`connect: tls.${k} must be a non-empty string`);
  }
  for (const [a, b] of [['ca', 'caFile'], ['cert', 'certFile'], ['key', 'keyFile']] as const) {
    if (t[a] !== undefined && t[b] !== undefined) throw bad(`connect: give tls.${a} or tls.${b}, not both`);
  }
  const hasCert = t.cert !== undefined || t.certFile !== undefined;
  const hasKey = t.key !== undefined || t.keyFile !== undefined;
  if (hasCert !== hasKey) throw bad('connect: a client certificate needs its key: give tls.cert/certFile and tls.key/keyFile together');
  if (t.rejectUnauthorized !== undefined && typeof t.rejectUnauthorized !== 'boolean') throw bad('connect: tls.rejectUnauthorized must be a boolean');
  return Object.freeze({ ...t });
}

function num(options: ConnectOptions, key: keyof typeof defaults, min: number, integer: boolean): number {
  const value = options[key as keyof ConnectOptions];
  if (value === undefined) return defaults[key] as number;
  if (typeof value !== 'number' || Number.isNaN(value) || value < min || (integer && value !== Infinity && !Number.isInteger(value))) {
    throw bad(`connect: option ${key} must be ${integer ? 'an integer' : 'a number'} >= ${min}, got ${JSON.stringify(value)}`);
  }
  return value;
}

const known = new Set<string>(['name', 'tls', 'user', 'password', 'token', ...Object.keys(defaults)]);

/** user + password, or token, or none; each a single line the LOGIN/TOKEN frame can carry. */
function resolveCredentials(o: ConnectOptions): Credentials | undefined {
  const { user, password, token } = o;
  if (token !== undefined) {
    if (user !== undefined || password !== undefined) throw bad('connect: give user and password, or token, not both');
    if (typeof token !== 'string' || !/^\S+$/.test(token)) throw bad('connect: option token must be a non-empty string without spaces');
    return Object.freeze({ token });
  }
  if (user === undefined && password === undefined) return undefined;
  if (typeof user !== 'string' || !/^[^\s]{1,64}$/.test(user)) throw bad('connect: option user must be 1 to 64 characters without spaces (and needs password)');
  if (typeof password !== 'string' || password === '' || /[\r\n]/.test(password)) throw bad('connect: option password must be a non-empty string on one line (and needs user)');
  return Object.freeze({ user, password });
}

export function resolveOptions(url: string, options: ConnectOptions = {}): ResolvedOptions {
  if (options === null || typeof options !== 'object') throw bad('connect: options must be an object');
  for (const key of Object.keys(options)) {
    if (!known.has(key)) throw bad(`connect: unknown option ${JSON.stringify(key)} (known: ${[...known].join(', ')})`);
  }
  const { host, port, tls: tlsUrl } = parseUrl(url);
  if (options.name !== undefined && (typeof options.name !== 'string' || !/^[A-Za-z0-9_-]{1,32}$/.test(options.name))) {
    throw bad(`connect: option name must be 1 to 32 letters, digits, "_" or "-", got ${JSON.stringify(options.name)}`);
  }
  if (options.reconnect !== undefined && typeof options.reconnect !== 'boolean') throw bad('connect: option reconnect must be a boolean');
  const resolved: ResolvedOptions = {
    host,
    port,
    name: options.name,
    reconnect: options.reconnect ?? defaults.reconnect,
    backoffInitialMs: num(options, 'backoffInitialMs', 1, false),
    backoffMaxMs: num(options, 'backoffMaxMs', 1, false),
    maxReconnectAttempts: num(options, 'maxReconnectAttempts', 0, true),
    maxBuffered: num(options, 'maxBuffered', 0, true),
    maxBufferedBytes: num(options, 'maxBufferedBytes', 0, true),
    connectTimeoutMs: num(options, 'connectTimeoutMs', 1, false),
    collectMax: num(options, 'collectMax', 1, true),
    drainTimeoutMs: num(options, 'drainTimeoutMs', 0, false),
    resumeSlackMs: num(options, 'resumeSlackMs', 0, false),
    maxTrackedChannels: num(options, 'maxTrackedChannels', 1, true),
    maxQueued: num(options, 'maxQueued', 1, true),
    tls: resolveTls(url, tlsUrl ?? (/^(fluctuat|tcp):\/\//i.test(url) ? false : undefined), options.tls),
    credentials: resolveCredentials(options),
  };
  if (resolved.backoffMaxMs < resolved.backoffInitialMs) {
    throw bad(`connect: backoffMaxMs (${resolved.backoffMaxMs}) is smaller than backoffInitialMs (${resolved.backoffInitialMs})`);
  }
  return Object.freeze(resolved);
}

/** Capped exponential backoff with jitter: a delay in [cap/2, cap], cap = min(max, initial * 2^attempt). */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  const cap = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return cap / 2 + random() * (cap / 2);
}
