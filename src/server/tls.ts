/**
 * TLS listeners (node:tls). TLS only moves bytes: a verified connection is handed to the same
 * session code as a TCP one, with the client certificate's subject as its peer identity
 * (which logs it in when the broker has users: Session.loginByCertificate).
 *
 * Client certificates (`tls client-certificate`):
 * - none: no certificate is asked for;
 * - optional: one is asked for; a client without one is let in without a peer identity, a
 *   client whose certificate does not verify (wrong CA, expired, not yet valid) is refused;
 * - required: a client without a verified certificate is refused.
 *
 * Verification is Node's (OpenSSL's chain check against `tls ca`), but the decision is taken
 * here, after the handshake and before a single byte is read from the client, rather than
 * by `rejectUnauthorized`: with it, Node destroys the socket before anyone can see the
 * certificate, and the log could not say whose certificate was refused. Every refusal is one
 * `warn` log line with the reason (OpenSSL's code, e.g. CERT_HAS_EXPIRED), the subject, the
 * issuer, the validity end and the remote address; the client gets one line,
 * `-ERR CERT_REFUSED client certificate refused: <why> (<code>)`, and the connection ends.
 *
 * `tls crl` adds revocation: OpenSSL refuses a revoked certificate (CERT_REVOKED). The files
 * are read and checked by readTlsMaterial(), at start and again on SIGHUP (reload without dropping
 * connections: tls.Server.setSecureContext).
 *
 * `tls ocsp on` adds an asynchronous check of verified certificates (createTlsListener's
 * `check`, src/server/ocsp.ts): the connection waits, unread, for the responder's answer, and a
 * refusal is the same line, with codes OCSP_REVOKED, OCSP_UNKNOWN, OCSP_UNAVAILABLE, OCSP_INVALID.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import type { Log } from '../storage/engine.js';
import type { TlsSettings } from '../config/schema.js';
import { checkCrl, CrlError, type CrlSummary } from './crl.js';
import { ErrorCode } from '../protocol/errors.js';

/** What the broker knows about a verified client certificate. */
export interface PeerCertificate {
  /** Subject common name: the identity authentication will map to a user. */
  readonly subject: string | undefined;
  /** The whole subject, `CN=alice, O=acme`. */
  readonly dn: string;
  readonly issuer: string;
  readonly serialNumber: string;
  readonly fingerprint256: string;
  /** ISO 8601. */
  readonly validTo: string;
}

export class TlsSetupError extends Error {
  override name = 'TlsSetupError';
}

function read(what: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new TlsSetupError(`cannot read the tls ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
}

/**
 * Read and check the certificate, key, CA and CRL: at start (before a privilege drop makes
 * them unreadable) and on reload. Throws TlsSetupError saying which file is wrong and why.
 */
export function readTlsMaterial(settings: TlsSettings, now = new Date()): TlsMaterial {
  const options: tls.TlsOptions = {
    cert: read('certificate', settings.certificate),
    key: read('key', settings.key),
    minVersion: settings.minVersion,
    handshakeTimeout: settings.handshakeTimeoutMs,
    requestCert: settings.clientCertificate !== 'none',
    // The decision is taken in onSecure(), which can log whose certificate it refuses.
    rejectUnauthorized: false,
  };
  if (settings.ca) options.ca = read('ca', settings.ca);
  let crlSummary: CrlSummary | undefined;
  if (settings.crl) {
    if (!options.ca) throw new TlsSetupError(`the tls crl ${settings.crl} needs the tls ca that issued it`);
    const crl = read('crl', settings.crl);
    try {
      crlSummary = checkCrl(crl, options.ca as Buffer, now);
    } catch (err) {
      if (err instanceof CrlError) throw new TlsSetupError(`the tls crl ${settings.crl}: ${err.message}`, { cause: err });
      throw err;
    }
    options.crl = crl;
  }
  try {
    tls.createSecureContext(options);
  } catch (err) {
    throw new TlsSetupError(`TLS refuses ${settings.certificate} with ${settings.key}: ${(err as Error).message}`, { cause: err });
  }
  return { options, crl: crlSummary };
}

/** The options of the TLS listeners, and what the CRL says (for the log). */
export interface TlsMaterial {
  readonly options: tls.TlsOptions;
  readonly crl: CrlSummary | undefined;
}

export function tlsServerOptions(settings: TlsSettings): tls.TlsOptions {
  return readTlsMaterial(settings).options;
}

/** The `info` line of a successful reload: which certificate is served now, and the CRL's state. */
export function logTlsReloaded(log: Log, settings: TlsSettings, material: TlsMaterial): void {
  const cert = new X509Certificate(material.options.cert as Buffer);
  log.info(
    {
      certificate: settings.certificate,
      subject: cert.subject.replace(/\n/g, ', '),
      fingerprint256: cert.fingerprint256,
      validTo: new Date(cert.validTo).toISOString(),
      ...(material.crl ? { crl: settings.crl, revoked: material.crl.revoked.length, nextUpdate: material.crl.nextUpdate?.toISOString() } : {}),
    },
    'tls reloaded',
  );
}

/** Bad new files: the listeners keep the previous certificates; say why, once, as an error. */
export function logTlsReloadFailure(log: Log, err: unknown): void {
  log.error({ err: (err as Error).message }, `tls reload failed, keeping the previous certificates: ${(err as Error).message}`);
}

/** How long a refused TLS client has to read its error line. */
const REFUSAL_LINGER_MS = 2000;

type Name = Record<string, string | string[] | undefined>;

function formatName(name: Name | undefined): string {
  if (!name) return '';
  return Object.entries(name)
    .flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => `${k}=${x}`) : v === undefined ? [] : [`${k}=${v}`]))
    .join(', ');
}

function describeCertificate(cert: tls.PeerCertificate): PeerCertificate & { cnCount: number } {
  const cn = (cert.subject as Name | undefined)?.CN;
  const cns = Array.isArray(cn) ? cn : cn === undefined ? [] : [cn];
  return {
    subject: cns.length === 1 ? cns[0] : undefined,
    cnCount: cns.length,
    dn: formatName(cert.subject as Name | undefined),
    issuer: formatName(cert.issuer as Name | undefined),
    serialNumber: cert.serialNumber ?? '',
    fingerprint256: cert.fingerprint256 ?? '',
    validTo: cert.valid_to ? new Date(cert.valid_to).toISOString() : '',
  };
}

/** A refused client certificate, for the accounting log. */
export interface CertificateRefusal {
  readonly address: string;
  readonly port: number;
  /** OpenSSL's code, or NO_CERTIFICATE / AMBIGUOUS_SUBJECT. */
  readonly reason: string;
  readonly subject: string | undefined;
  readonly fingerprint256: string | undefined;
}

/**
 * A further decision on a certificate OpenSSL verified (OCSP, src/server/ocsp.ts): in, out with
 * a reason (a stable code) and a sentence, or in with a warning; `details` go to the log line.
 */
export type CertificateVerdict =
  | { readonly accept: true; readonly warning?: { readonly reason: string; readonly message: string }; readonly details?: Readonly<Record<string, unknown>> }
  | { readonly accept: false; readonly reason: string; readonly message: string; readonly details?: Readonly<Record<string, unknown>> };

export type CertificateCheck = (socket: tls.TLSSocket, peer: PeerCertificate) => Promise<CertificateVerdict>;

/**
 * A TLS listener. `onClient` gets each connection whose client certificate is acceptable,
 * with the certificate's description when one was presented and verified; `onRefused` hears
 * of the others. `check`, when given, is asked about every verified certificate before the
 * connection goes to `onClient`.
 */
export function createTlsListener(
  settings: TlsSettings,
  options: tls.TlsOptions,
  log: Log,
  onClient: (socket: tls.TLSSocket, peer: PeerCertificate | undefined) => void,
  onRefused: (refusal: CertificateRefusal) => void = () => {},
  check?: CertificateCheck,
): tls.Server {
  const mode = settings.clientCertificate;
  // Not half-open during the handshake: a client that leaves mid-handshake (one that refuses
  // our certificate does) must not hold a socket until the handshake timeout. Sessions get
  // half-open sockets, like on TCP: a client's end of input still gets its answers.
  const server = tls.createServer({ ...options, allowHalfOpen: false, noDelay: true }, (socket) => {
    socket.allowHalfOpen = true;
    const address = socket.remoteAddress ?? '';
    const port = socket.remotePort ?? 0;
    if (mode === 'none') {
      onClient(socket, undefined);
      return;
    }
    const raw = socket.getPeerCertificate();
    const presented = raw !== null && typeof raw === 'object' && Object.keys(raw).length > 0;
    const refuse = (reason: string, message: string, peer?: PeerCertificate, details?: Readonly<Record<string, unknown>>): void => {
      log.warn(
        { address, port, reason, subject: peer?.subject, dn: peer?.dn, issuer: peer?.issuer, validTo: peer?.validTo, fingerprint256: peer?.fingerprint256, ...details },
        `tls client certificate refused: ${message}`,
      );
      onRefused({ address, port, reason, subject: peer?.subject, fingerprint256: peer?.fingerprint256 });
      // One line the client can read (a person at socat, or the client library, which reports
      // it), then the end; a client that does not read it is not waited for.
      socket.allowHalfOpen = false;
      socket.resume(); // discard what it sends, so that its end is seen
      socket.end(`-ERR ${ErrorCode.CERT_REFUSED} client certificate refused: ${message} (${reason})\n`);
      setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS).unref();
    };
    if (!presented) {
      if (mode === 'required') refuse('NO_CERTIFICATE', 'the client sent no certificate and one is required');
      else onClient(socket, undefined);
      return;
    }
    const { cnCount, ...peer } = describeCertificate(raw);
    if (!socket.authorized) {
      const code = String(socket.authorizationError ?? 'UNVERIFIED');
      refuse(code, explain(code), peer);
      return;
    }
    if (cnCount > 1) {
      refuse('AMBIGUOUS_SUBJECT', 'the certificate has several common names, so no single identity', peer);
      return;
    }
    if (!check) {
      log.debug({ address, port, subject: peer.subject, issuer: peer.issuer }, 'tls client certificate accepted');
      onClient(socket, peer);
      return;
    }
    // Until the check decides, nothing reads from the client: the socket is not handed on, and
    // a TLS socket nobody reads stops reading past its buffer. A client that resets meanwhile
    // must not take the broker down with an 'error' nobody listens to; one that closes its side
    // without sending anything is closed (not half-open: what it sent first stays buffered, and
    // its end is only seen, by the session, once that is read).
    const ignore = (): void => {};
    socket.on('error', ignore);
    socket.allowHalfOpen = false;
    check(socket, peer).then(
      (verdict) => {
        if (socket.destroyed) {
          log.debug({ address, port, subject: peer.subject }, 'tls client left during the certificate check');
          return;
        }
        if (!verdict.accept) {
          refuse(verdict.reason, verdict.message, peer, verdict.details);
          return;
        }
        const about = { address, port, subject: peer.subject, dn: peer.dn, issuer: peer.issuer, fingerprint256: peer.fingerprint256, ...verdict.details };
        if (verdict.warning) log.warn({ ...about, reason: verdict.warning.reason }, `tls client certificate accepted with a warning: ${verdict.warning.message}`);
        else log.debug(about, 'tls client certificate accepted');
        socket.off('error', ignore);
        socket.allowHalfOpen = true;
        onClient(socket, peer);
      },
      (err: unknown) => refuse('CHECK_FAILED', `the certificate could not be checked: ${(err as Error).message}`, peer),
    );
  });
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
    // Handshakes that failed before a certificate could be judged: a client that does not
    // trust our certificate, no common protocol version, a timeout, a port scanner.
    log.info({ address: socket.remoteAddress, port: socket.remotePort, reason: err.code ?? 'TLS_ERROR', err: err.message.split('\n')[0] }, 'tls handshake failed');
  });
  return server;
}

/** A sentence for OpenSSL's verification codes that operators meet most. */
function explain(code: string): string {
  switch (code) {
    case 'CERT_HAS_EXPIRED':
      return 'the certificate has expired';
    case 'CERT_NOT_YET_VALID':
      return 'the certificate is not valid yet';
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
      return 'the certificate is not signed by the configured CA (tls ca)';
    case 'CERT_SIGNATURE_FAILURE':
      return 'the certificate signature does not verify';
    case 'INVALID_PURPOSE':
      return 'the certificate is not meant for client authentication';
    case 'CERT_REVOKED':
      return 'the certificate is revoked (tls crl)';
    case 'UNABLE_TO_GET_CRL':
      return 'the broker has no revocation list from the certificate\'s CA (tls crl)';
    case 'CRL_HAS_EXPIRED':
      return 'the broker\'s revocation list is past its next update (tls crl)';
    default:
      return `the certificate does not verify (${code})`;
  }
}
