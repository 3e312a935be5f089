import { defaultBrokerOptions, SLOW_CONSUMER_POLICIES, type BrokerOptions } from '../core/broker.js';
import { defaultStorageOptions, type StorageOptions } from '../storage/engine.js';
import { defaultSessionOptions, type SessionOptions } from './session.js';
import { defaultSecurityOptions, type SecurityOptions } from '../security/options.js';
import type { LogLevel, TlsSettings } from '../config/schema.js';

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
  /** A TLS listener (needs ServerConfig.tls). */
  readonly tls?: boolean;
}

/** Everything `fluctuat serve` needs; validated once, defaults filled in, then frozen. */
export interface ServerConfig {
  readonly listen: readonly ListenAddress[];
  /** Storage driver name, as registered (file, memory). */
  readonly storage: string;
  readonly storageOptions: StorageOptions;
  readonly session: SessionOptions;
  readonly broker: BrokerOptions;
  readonly security: SecurityOptions;
  /** Certificates for the listeners marked tls; undefined when none is. */
  readonly tls: TlsSettings | undefined;
  readonly logLevel: LogLevel;
}

export const DEFAULT_PORT = 2023;

export interface ConfigOverrides {
  listen?: readonly ListenAddress[];
  storage?: string;
  storageOptions?: Partial<StorageOptions>;
  session?: Partial<SessionOptions>;
  broker?: Partial<BrokerOptions>;
  security?: Partial<SecurityOptions>;
  tls?: TlsSettings;
  logLevel?: LogLevel;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function makeConfig(o: ConfigOverrides = {}): ServerConfig {
  const config: ServerConfig = {
    listen: o.listen?.length ? o.listen : [{ host: '127.0.0.1', port: DEFAULT_PORT }],
    storage: o.storage ?? 'file',
    storageOptions: { ...defaultStorageOptions, ...o.storageOptions },
    session: { ...defaultSessionOptions, ...o.session },
    broker: { ...defaultBrokerOptions, ...o.broker },
    security: { ...defaultSecurityOptions, ...o.security },
    tls: o.tls,
    logLevel: o.logLevel ?? 'info',
  };
  validate(config);
  return deepFreeze(config);
}

function validate(c: ServerConfig): void {
  for (const l of c.listen) {
    if (!Number.isInteger(l.port) || l.port < 0 || l.port > 65535) throw new ConfigError(`listen port ${l.port} is not a port number (0-65535)`);
    if (!l.host) throw new ConfigError('listen address needs a host');
    if (l.tls && !c.tls) throw new ConfigError(`listen address ${l.host}:${l.port} is tls, but no TLS certificate and key are configured`);
  }
  if (c.tls && c.tls.clientCertificate !== 'none' && !c.tls.ca) throw new ConfigError(`tls client-certificate ${c.tls.clientCertificate} needs a CA file`);
  if (c.tls?.ocsp) {
    if (c.tls.clientCertificate === 'none') throw new ConfigError('tls ocsp checks client certificates: it needs tls client-certificate optional or required');
    if (!['refuse', 'accept'].includes(c.tls.ocsp.onFailure)) throw new ConfigError(`tls ocsp on-failure "${c.tls.ocsp.onFailure}": expected refuse or accept`);
    positive('tls ocsp timeout', c.tls.ocsp.timeoutMs);
    positive('tls ocsp cache', c.tls.ocsp.cacheMaxAgeMs);
  }
  const s = c.storageOptions;
  if (!['always', 'interval', 'never'].includes(s.fsync)) throw new ConfigError(`fsync "${s.fsync}": expected always, interval or never`);
  positive('fsync interval', s.fsyncIntervalMs);
  for (const [name, v] of [['fsync interval acks', s.fsyncAcks], ['fsync interval bytes', s.fsyncBytes], ['fsync interval unacked', s.fsyncUnackedMs], ['fsync interval unacked-bytes', s.fsyncUnackedBytes]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new ConfigError(`${name} must be a whole number >= 0, got ${v}`);
  }
  positive('segment size', s.segmentBytes);
  for (const [name, v] of Object.entries(c.session)) positive(name, v as number);
  if (!(SLOW_CONSUMER_POLICIES as readonly string[]).includes(c.broker.slowConsumer)) throw new ConfigError(`slow-consumer "${c.broker.slowConsumer}": expected drop, disconnect or block`);
  positive('slow-consumer block timeout', c.broker.blockTimeoutMs);
}

function positive(name: string, v: number): void {
  if (!Number.isFinite(v) || v <= 0) throw new ConfigError(`${name} must be a positive number, got ${v}`);
}

/** "host:port", "[::1]:port" or ":port" / "port". */
export function parseListen(text: string): ListenAddress {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):?(\d*)$/.exec(text);
  if (m && (m[1] || m[2]) && !m[3] && !text.includes(':')) return { host: m[2]!, port: DEFAULT_PORT };
  if (!m || !m[3]) {
    if (/^\d+$/.test(text)) return { host: '127.0.0.1', port: Number(text) };
    throw new ConfigError(`listen address "${text}": expected host:port, [ipv6]:port or port`);
  }
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port: Number(m[3]) };
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
