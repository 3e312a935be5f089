/**
 * Reading a configuration file into ConfigOverrides for makeConfig, and merging it with the
 * command line (flags given on the command line win over the file).
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { ConfigError, type ConfigOverrides } from '../server/config.js';
import { checkCrl, CrlError } from '../server/crl.js';
import { driverNames } from '../storage/registry.js';
import '../storage/builtin.js';
import { ConfigSyntaxError, type Position } from './lexer.js';
import { parseConfig, type ParsedConfig } from './parser.js';
import { OCSP_DEFAULTS, TLS_DEFAULTS, type TlsSettings } from './schema.js';

export interface LoadedConfig extends ConfigOverrides {
  /** Every file read, the main one first. */
  readonly files: readonly string[];
  /** `file:line:col: warning: ...` lines: legal, but probably not what was meant. */
  readonly warnings: readonly string[];
}

export interface LoadOptions {
  /** Macros defined before the file is read (`-D name=value`). */
  readonly macros?: Readonly<Record<string, string>>;
  /** Check that TLS files exist, parse and match (default true). */
  readonly checkFiles?: boolean;
  /** The time certificates are checked against (default now). */
  readonly now?: Date;
}

/**
 * Parse, type-check and cross-check a configuration file and the files it includes.
 * Throws ConfigSyntaxError (`file:line:column: expected ..., found ...`) or, when the file
 * itself cannot be read, ConfigError.
 */
export function loadConfigFile(file: string, options: LoadOptions = {}): LoadedConfig {
  const absolute = path.resolve(file);
  let text: string;
  try {
    text = fs.readFileSync(absolute, 'utf8');
  } catch (err) {
    throw new ConfigError(`${file}: cannot read the configuration file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  const parsed = parseConfig(text, file, {
    readFile: (f) => fs.readFileSync(f, 'utf8'),
    realpath: (f) => {
      try {
        return fs.realpathSync(f);
      } catch {
        return f;
      }
    },
    drivers: driverNames(),
    ...(options.macros ? { macros: options.macros } : {}),
  });
  const warnings = [...parsed.warnings];
  const result = toOverrides(parsed);
  if (result.tls && options.checkFiles !== false) checkTlsFiles(parsed, result.tls, warnings, options.now ?? new Date());
  return { ...result, files: parsed.files, warnings };
}

/** What a parsed file sets, as makeConfig's input (only what it sets; defaults come later). */
export function toOverrides(parsed: ParsedConfig): ConfigOverrides {
  const tlsSettings = tlsFrom(parsed);
  const result: ConfigOverrides = {
    storageOptions: parsed.storageOptions,
    session: parsed.session,
    broker: parsed.broker,
    security: parsed.security,
  };
  if (parsed.listen.length > 0) result.listen = parsed.listen;
  if (parsed.storage !== undefined) result.storage = parsed.storage;
  if (parsed.logLevel !== undefined) result.logLevel = parsed.logLevel;
  if (tlsSettings) result.tls = tlsSettings;
  return result;
}

function tlsFrom(p: ParsedConfig): TlsSettings | undefined {
  const t = p.tls;
  if (!t.certificate || !t.key) return undefined;
  return {
    certificate: t.certificate,
    key: t.key,
    ca: t.ca,
    ...(t.crl ? { crl: t.crl } : {}),
    clientCertificate: t.clientCertificate ?? TLS_DEFAULTS.clientCertificate,
    minVersion: t.minVersion ?? TLS_DEFAULTS.minVersion,
    handshakeTimeoutMs: t.handshakeTimeoutMs ?? TLS_DEFAULTS.handshakeTimeoutMs,
    ...(t.ocsp
      ? {
          ocsp: {
            ...(t.ocspResponder ? { responder: t.ocspResponder } : {}),
            onFailure: t.ocspOnFailure ?? OCSP_DEFAULTS.onFailure,
            timeoutMs: t.ocspTimeoutMs ?? OCSP_DEFAULTS.timeoutMs,
            cacheMaxAgeMs: t.ocspCacheMs ?? OCSP_DEFAULTS.cacheMaxAgeMs,
          },
        }
      : {}),
  };
}

function sourceLine(at: Position): string | undefined {
  try {
    return fs.readFileSync(at.file, 'utf8').split('\n')[at.line - 1]?.replace(/\r$/, '');
  } catch {
    return undefined;
  }
}

/** The TLS files exist, parse, the key is the certificate's; expiry and loose permissions are warnings. */
function checkTlsFiles(p: ParsedConfig, t: TlsSettings, warnings: string[], now: Date): void {
  const at = (k: string): Position => p.at.get(`tls ${k} file`)!;
  const fail = (k: string, detail: string, cause?: unknown): never => {
    const pos = at(k);
    throw new ConfigSyntaxError(pos, detail, sourceLine(pos), { cause });
  };
  const read = (k: 'certificate' | 'key' | 'ca' | 'crl', file: string): string => {
    try {
      return fs.readFileSync(file, 'utf8');
    } catch (err) {
      return fail(k, `cannot read the tls ${k} file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, err);
    }
  };
  const certPem = read('certificate', t.certificate);
  const keyPem = read('key', t.key);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    return fail('certificate', `${t.certificate} is not a PEM certificate: ${(err as Error).message}`, err);
  }
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    return fail('key', `${t.key} is not a PEM private key (an encrypted key is not supported): ${(err as Error).message}`, err);
  }
  if (!cert.checkPrivateKey(key)) fail('key', `the tls key ${t.key} does not belong to the tls certificate ${t.certificate}`);
  const pos = at('certificate');
  const place = `${pos.file}:${pos.line}:${pos.column}`;
  if (new Date(cert.validTo).getTime() < now.getTime()) warnings.push(`${place}: warning: the tls certificate expired on ${new Date(cert.validTo).toISOString()}: clients will refuse it`);
  if (new Date(cert.validFrom).getTime() > now.getTime()) warnings.push(`${place}: warning: the tls certificate is not valid before ${new Date(cert.validFrom).toISOString()}`);
  try {
    const mode = fs.statSync(t.key).mode;
    if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
      const k = at('key');
      warnings.push(`${k.file}:${k.line}:${k.column}: warning: the tls key ${t.key} can be read by others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`);
    }
  } catch {
    // already read above; a race is not this check's business
  }
  if (t.ca) {
    const caPem = read('ca', t.ca);
    if (!caPem.includes('-----BEGIN CERTIFICATE-----')) fail('ca', `${t.ca} holds no PEM certificate`);
    try {
      tls.createSecureContext({ ca: caPem });
      new X509Certificate(caPem);
    } catch (err) {
      fail('ca', `${t.ca} is not a PEM certificate bundle: ${(err as Error).message}`, err);
    }
    if (t.crl) {
      try {
        checkCrl(read('crl', t.crl), caPem, now);
      } catch (err) {
        if (!(err instanceof CrlError)) throw err;
        fail('crl', `${t.crl}: ${err.message}`, err);
      }
    }
  } else if (t.crl) {
    fail('crl', `"tls crl" needs "tls ca", the CA that issued the CRL`);
  }
  try {
    tls.createSecureContext({ cert: certPem, key: keyPem, minVersion: t.minVersion });
  } catch (err) {
    fail('certificate', `TLS refuses the certificate and key: ${(err as Error).message}`, err);
  }
}

type Plain = Record<string, unknown>;

function isPlain(v: unknown): v is Plain {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Values that mean "not given": undefined, null, NaN and empty lists. */
function given(v: unknown): boolean {
  return v !== undefined && v !== null && !(typeof v === 'number' && Number.isNaN(v)) && !(Array.isArray(v) && v.length === 0);
}

function defined(o: unknown): Plain {
  const out: Plain = {};
  if (!isPlain(o)) return out;
  for (const [k, v] of Object.entries(o)) if (given(v)) out[k] = v;
  return out;
}

/**
 * File settings, then the command line's on top: section by section (storageOptions,
 * session, broker, security), setting by setting. Lists (listen, address lists) given on
 * the command line replace the file's. Values that mean "not given" never override.
 * Without a file, the command line's overrides are returned unchanged.
 */
export function mergeOverrides(file: ConfigOverrides | undefined, cli: ConfigOverrides): ConfigOverrides {
  if (!file) return cli;
  const out: Plain = defined(file);
  for (const [k, v] of Object.entries(cli)) {
    if (!given(v)) continue;
    out[k] = isPlain(v) && isPlain(out[k]) ? { ...defined(out[k]), ...defined(v) } : isPlain(v) ? defined(v) : v;
  }
  for (const k of ['storageOptions', 'session', 'broker', 'security']) if (isPlain(out[k])) out[k] = defined(out[k]);
  return out as ConfigOverrides;
}

/**
 * `fluctuat serve` flags (commander attribute names) that a configuration file can also set.
 * With --config their commander defaults are dropped, so that they do not hide the file's
 * values; every other flag (--user, --no-privsep, ...) keeps its default. A new serve flag
 * that the file can set belongs here.
 */
export const FILE_SETTABLE_FLAGS: ReadonlySet<string> = new Set([
  'listen', 'data', 'storage', 'fsync', 'fsyncInterval', 'fsyncAcks', 'fsyncBytes', 'fsyncUnacked', 'fsyncUnackedBytes', 'segmentSize', 'segmentAge', 'retainBytes', 'retainAge', 'retainMessages', 'openFiles',
  'maxLine', 'maxPayload', 'historyMax', 'outboundBuffer', 'maxSubscriptions', 'maxInflight', 'maxInflightBytes', 'readPerTurn', 'clockInterval', 'slowConsumer', 'slowConsumerTimeout', 'logLevel',
  'users', 'defaultAccess', 'auditLog', 'auditSyslog', 'auditSyslogFacility', 'allowPlaintextPasswords', 'loginTimeout',
  'idleTimeout', 'maxConnections', 'maxConnectionsPerAddress', 'publishRate', 'allow', 'deny', 'tlsCrl', 'tlsOcsp',
]);

/** The options, less the file-settable ones that were not given on the command line (commander defaults). */
export function explicitOptions<T extends object>(options: T, sourceOf: (key: string) => string | undefined): T {
  const out: Plain = {};
  for (const [k, v] of Object.entries(options)) {
    const source = sourceOf(k);
    if (!FILE_SETTABLE_FLAGS.has(k) || source === 'cli' || source === 'env') out[k] = v;
  }
  return out as T;
}
