/**
 * OCSP (RFC 6960) checking of client certificates (`tls ocsp on`).
 *
 * Once OpenSSL has verified a client certificate, and before the broker reads a byte from the
 * client, the TLS listener asks the certificate's OCSP responder (its AIA OCSP URL, or
 * `tls ocsp responder`) by HTTP POST, and checks the answer: a successful basic response,
 * signed by the certificate's CA or by a responder certificate that this CA issued for OCSP
 * signing (id-kp-OCSPSigning); about this certificate (CertID: hashes of the issuer's name and
 * key, serial number); current (thisUpdate not ahead, nextUpdate not past, with OpenSSL's five
 * minutes of clock skew); echoing our nonce when it echoes one. `good` lets the client in,
 * `revoked` refuses it; `unknown`, no answer or a bad one is left to `tls ocsp on-failure`.
 *
 * Answers are cached per certificate (issuer and serial) until their nextUpdate and never longer
 * than `tls ocsp cache`, in a bounded map, and concurrent checks of one certificate share one
 * request: a swarm of probes reconnecting at once costs the responder one request per
 * certificate. Open connections are checked again when their answer expires and on SIGHUP
 * (recheckAll); `onRevoked` then closes those whose certificate is revoked.
 *
 * ASN.1 by @peculiar/asn1-ocsp and friends: schemas only, they need no reflect-metadata (unlike
 * @peculiar/x509, which the broker never loads). Hashes and signatures by node:crypto.
 */
import { createHash, randomBytes, verify, X509Certificate, type KeyObject } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { BasicOCSPResponse, CertID, OCSPRequest, OCSPResponse, OCSPResponseStatus, Request, TBSRequest, id_kp_OCSPSigning, id_pkix_ocsp_basic, id_pkix_ocsp_nonce } from '@peculiar/asn1-ocsp';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, CRLReasons, Extension, SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
import type { OcspSettings } from '../config/schema.js';
import type { Log } from '../storage/engine.js';
import { subjectDer } from './crl.js';
import type { CertificateVerdict } from './tls.js';

/**
 * The reasons of OCSP refusals, in the client's `-ERR CERT_REFUSED ... (<reason>)` line, the log
 * and the audit log (docs/security.md lists them): revoked; unknown to the responder; no answer
 * to be had (network, HTTP, an OCSP error status); an answer that does not verify.
 */
export const OCSP_REASONS = ['OCSP_REVOKED', 'OCSP_UNKNOWN', 'OCSP_UNAVAILABLE', 'OCSP_INVALID'] as const;
export type OcspReason = (typeof OCSP_REASONS)[number];

/** Why no usable answer. */
export type OcspFailureCode = Extract<OcspReason, 'OCSP_UNAVAILABLE' | 'OCSP_INVALID'>;

export class OcspError extends Error {
  override name = 'OcspError';
  constructor(
    readonly code: OcspFailureCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Clock skew allowed on thisUpdate and nextUpdate (OpenSSL's OCSP_check_validity default). */
export const OCSP_SKEW_MS = 5 * 60_000;
/** Answers kept at most (expired ones, then the oldest, go first): memory stays bounded. */
export const OCSP_CACHE_ENTRIES = 10_000;
/** An answer is a few hundred bytes, a few KiB with certificates. */
const MAX_RESPONSE_BYTES = 256 * 1024;
/** Re-checks in flight at once on SIGHUP: a reload must not flood the responder. */
const RECHECK_CONCURRENCY = 4;
/** An open connection's certificate is checked again at least this far apart... */
const MIN_RECHECK_MS = 1000;
/** ...and this long after a failed check (or `tls ocsp cache`, if shorter). */
const RETRY_MS = 60_000;
/**
 * A responder that could not be reached (no connection, no answer within the timeout, a broken
 * one) is not asked again for this long by new connections' checks: they fail at once instead of
 * each waiting out the timeout, and a responder coming back is not met by every client at once.
 * Re-checks (SIGHUP, an expired answer) still ask.
 */
export const OCSP_RESPONDER_HOLD_MS = 5_000;
const MAX_TIMER_MS = 2 ** 31 - 1;

const SHA1 = '1.3.14.3.2.26';
/** CertID hash algorithms, by OID. Requests use SHA-1, as RFC 5019 and every responder do. */
const HASHES: Readonly<Record<string, string>> = {
  [SHA1]: 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};
/** Signature algorithms checked, and the digest node:crypto's verify() wants (null: Ed25519). SHA-1 is not accepted. */
const SIGNATURES: Readonly<Record<string, string | null>> = {
  '1.2.840.10045.4.3.2': 'sha256', // ecdsa-with-SHA256
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
  '1.2.840.113549.1.1.11': 'sha256', // sha256WithRSAEncryption
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '1.3.101.112': null, // Ed25519
};

/** A client certificate to ask about, with the issuer its answer must come from. */
export interface OcspSubject {
  /** Cache key: the issuer's fingerprint and the serial number. */
  readonly key: string;
  /** Upper-case hex, as node:crypto prints it (and TransportInfo.peerSerial holds it). */
  readonly serial: string;
  /** The subject DN, for the log. */
  readonly dn: string;
  readonly cert: X509Certificate;
  readonly issuer: X509Certificate;
  /** The certificate's own responder (AIA OCSP URL), if it names one. */
  readonly aiaUrl: string | undefined;
}

export interface OcspAnswer {
  readonly status: 'good' | 'revoked' | 'unknown';
  readonly thisUpdate: Date;
  readonly nextUpdate: Date | undefined;
  readonly revokedAt: Date | undefined;
  /** CRL reason name (keyCompromise, ...), when the responder gives one. */
  readonly revocationReason: string | undefined;
  /** `CA`, or the subject of the delegated responder certificate that signed. */
  readonly signer: string;
}

/** A check's result: an answer (maybe from the cache), or why there is none. */
export type OcspOutcome =
  | { readonly answer: OcspAnswer; readonly cached: boolean; readonly responder: string }
  | { readonly error: OcspError; readonly responder: string | undefined };

/** POSTs an OCSP request, resolves with the response body; rejects with OcspError (OCSP_UNAVAILABLE). */
export type OcspTransport = (url: string, body: Buffer, timeoutMs: number) => Promise<Buffer>;

const dnOf = (cert: X509Certificate): string => cert.subject.replace(/\n/g, ', ');
const iso = (d: Date): string => d.toISOString();

/** The AIA OCSP URL of a certificate (node:crypto prints AIA as `OCSP - URI:http://...` lines). */
export function ocspUrlOf(cert: X509Certificate): string | undefined {
  for (const line of (cert.infoAccess ?? '').split('\n')) {
    const m = /^OCSP - URI:"?(https?:\/\/[^"\s]+)"?$/.exec(line.trim());
    if (m) return m[1];
  }
  return undefined;
}

/** The certificates of a PEM bundle, as TLS options hold it (string, Buffer, or a list of them). */
export function caCertificates(ca: unknown): X509Certificate[] {
  const parts = Array.isArray(ca) ? ca : ca === undefined || ca === null ? [] : [ca];
  const text = parts.map((p) => (typeof p === 'string' ? p : Buffer.from(p as Uint8Array).toString('latin1'))).join('\n');
  return (text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []).map((pem) => new X509Certificate(pem));
}

/**
 * The subject of a check: the certificate and its issuer, found among the CA certificates (or,
 * for a certificate under an intermediate the client sent, the chain's issuer).
 */
export function ocspSubject(cert: X509Certificate, cas: readonly X509Certificate[], chainIssuer?: X509Certificate): OcspSubject {
  const issuer = [...cas, ...(chainIssuer ? [chainIssuer] : [])].find((c) => cert.checkIssued(c) && cert.verify(c.publicKey));
  if (!issuer) throw new OcspError('OCSP_INVALID', 'the broker finds no issuer of the certificate among the tls ca certificates, so it cannot check an OCSP answer');
  const serial = cert.serialNumber.toUpperCase();
  return { key: `${issuer.fingerprint256}/${serial}`, serial, dn: dnOf(cert), cert, issuer, aiaUrl: ocspUrlOf(cert) };
}

const hash = (algorithm: string, data: Uint8Array): Buffer => createHash(algorithm).update(data).digest();

/** The issuer's public key as CertID hashes it: the BIT STRING's value, without tag, length or unused-bits byte. */
function keyBits(issuer: X509Certificate): Buffer {
  const spki = AsnConvert.parse(issuer.publicKey.export({ type: 'spki', format: 'der' }), SubjectPublicKeyInfo);
  return Buffer.from(spki.subjectPublicKey);
}

/** Serial numbers compared as even-length hex without leading zero bytes. */
function normalSerial(hex: string): string {
  const even = hex.length % 2 ? `0${hex}` : hex;
  return even.toUpperCase().replace(/^(00)+(?=..)/, '');
}

function serialInteger(hex: string): ArrayBuffer {
  const bytes = Buffer.from(normalSerial(hex), 'hex');
  // A positive INTEGER whose first byte has its top bit set needs a leading zero byte.
  const der = bytes[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes;
  return new Uint8Array(der).buffer;
}

/** The nonce extension's value (RFC 8954): an OCTET STRING holding the nonce. */
function nonceValue(nonce: Buffer): Buffer {
  return Buffer.from(AsnConvert.serialize(new OctetString(nonce)));
}

/**
 * An OCSPRequest (DER) for one certificate, SHA-1 CertID, with a nonce extension when `nonce`
 * is given. Returns the request and the nonce extension's value, which the answer must echo
 * if it echoes one.
 */
export function ocspRequest(subject: OcspSubject, nonce?: Buffer): { der: Buffer; nonce: Buffer | undefined } {
  const reqCert = new CertID({
    hashAlgorithm: new AlgorithmIdentifier({ algorithm: SHA1, parameters: null }),
    issuerNameHash: new OctetString(hash('sha1', subjectDer(subject.issuer))),
    issuerKeyHash: new OctetString(hash('sha1', keyBits(subject.issuer))),
    serialNumber: serialInteger(subject.serial),
  });
  const tbsRequest = new TBSRequest({ requestList: [new Request({ reqCert })] });
  const value = nonce ? nonceValue(nonce) : undefined;
  if (value) tbsRequest.requestExtensions = [new Extension({ extnID: id_pkix_ocsp_nonce, critical: false, extnValue: new OctetString(value) })];
  return { der: Buffer.from(AsnConvert.serialize(new OCSPRequest({ tbsRequest }))), nonce: value };
}

export interface ResponseExpectation {
  readonly subject: OcspSubject;
  /** The nonce extension value sent (ocspRequest's `nonce`). */
  readonly nonce: Buffer | undefined;
  readonly now: Date;
  /** `tls ocsp cache`: how old an answer with neither nonce nor nextUpdate may be. */
  readonly maxAgeMs: number;
}

const invalid = (why: string, cause?: unknown): OcspError => new OcspError('OCSP_INVALID', `the OCSP response ${why}`, cause === undefined ? undefined : { cause });

/**
 * Who signed the response: the CA, or a responder certificate the CA issued for OCSP signing.
 * The signer is found by the key the signature verifies with rather than by the responderID
 * field: what matters is that an authorised key signed, and trying the candidates' keys says so.
 */
function signerOf(basic: BasicOCSPResponse, tbs: ArrayBuffer, issuer: X509Certificate, now: Date): string {
  const oid = basic.signatureAlgorithm.algorithm;
  const digest = SIGNATURES[oid];
  if (digest === undefined) throw invalid(`is signed with an algorithm the broker does not accept (OID ${oid}; it checks ECDSA and RSA with SHA-2, and Ed25519)`);
  const data = Buffer.from(tbs);
  const signature = Buffer.from(basic.signature);
  const signs = (key: KeyObject): boolean => {
    try {
      return verify(digest, data, key, signature);
    } catch {
      return false; // a key of another type than the signature's
    }
  };
  if (signs(issuer.publicKey)) return 'CA';
  let carried: X509Certificate[];
  try {
    carried = (basic.certs ?? []).map((c) => new X509Certificate(Buffer.from(AsnConvert.serialize(c))));
  } catch (err) {
    throw invalid('carries a certificate that does not parse', err);
  }
  const ca = dnOf(issuer);
  const delegate = carried.find((c) => signs(c.publicKey));
  if (!delegate) {
    throw invalid(`signature does not verify with the key of the certificate's CA ("${ca}")${carried.length > 0 ? ' nor with that of a certificate it carries' : ', and it carries no responder certificate'}`);
  }
  const name = dnOf(delegate);
  if (!delegate.checkIssued(issuer) || !delegate.verify(issuer.publicKey)) throw invalid(`is signed by "${name}", whose certificate the certificate's CA ("${ca}") did not issue`);
  if (!(delegate.keyUsage ?? []).includes(id_kp_OCSPSigning)) throw invalid(`is signed by "${name}", whose certificate is not for OCSP signing (no id-kp-OCSPSigning extended key usage)`);
  const from = new Date(delegate.validFrom);
  const to = new Date(delegate.validTo);
  if (from.getTime() > now.getTime() + OCSP_SKEW_MS || to.getTime() < now.getTime() - OCSP_SKEW_MS) {
    throw invalid(`is signed by "${name}", whose certificate is not valid now (${iso(from)} to ${iso(to)})`);
  }
  return name;
}

/**
 * Read and verify a DER OCSPResponse about `e.subject`. Throws OcspError: OCSP_UNAVAILABLE for
 * an error status (tryLater, unauthorized, ...), OCSP_INVALID for anything that does not verify.
 */
export function readOcspResponse(der: Uint8Array, e: ResponseExpectation): OcspAnswer {
  let response: OCSPResponse;
  try {
    response = AsnConvert.parse(der, OCSPResponse);
  } catch (err) {
    throw invalid('is not a DER OCSPResponse', err);
  }
  if (response.responseStatus !== OCSPResponseStatus.successful) {
    const status = OCSPResponseStatus[response.responseStatus] ?? String(response.responseStatus);
    throw new OcspError('OCSP_UNAVAILABLE', `the OCSP responder answered "${status}" instead of a status`);
  }
  const bytes = response.responseBytes;
  if (!bytes || bytes.responseType !== id_pkix_ocsp_basic) throw invalid(`is not a basic OCSP response (type ${bytes?.responseType ?? 'none'})`);
  let basic: BasicOCSPResponse;
  try {
    basic = AsnConvert.parse(bytes.response.buffer, BasicOCSPResponse);
  } catch (err) {
    throw invalid('holds no readable BasicOCSPResponse', err);
  }
  if (!basic.tbsResponseDataRaw) throw invalid('holds no response data');
  const { subject, now } = e;
  const signer = signerOf(basic, basic.tbsResponseDataRaw, subject.issuer, now);

  // The answer about this certificate, whatever hash algorithm the responder chose.
  const nameDer = subjectDer(subject.issuer);
  const key = keyBits(subject.issuer);
  const wanted = normalSerial(subject.serial);
  const single = basic.tbsResponseData.responses.find((r) => {
    const algorithm = HASHES[r.certID.hashAlgorithm.algorithm];
    return (
      algorithm !== undefined &&
      normalSerial(Buffer.from(r.certID.serialNumber).toString('hex')) === wanted &&
      hash(algorithm, nameDer).equals(Buffer.from(r.certID.issuerNameHash.buffer)) &&
      hash(algorithm, key).equals(Buffer.from(r.certID.issuerKeyHash.buffer))
    );
  });
  if (!single) throw invalid(`is not about this certificate (serial ${subject.serial} of "${dnOf(subject.issuer)}")`);

  const t = now.getTime();
  const { thisUpdate, nextUpdate } = single;
  if (thisUpdate.getTime() > t + OCSP_SKEW_MS) throw invalid(`is not valid yet (thisUpdate ${iso(thisUpdate)}): the responder's clock or the broker's is wrong`);
  if (nextUpdate && nextUpdate.getTime() < t - OCSP_SKEW_MS) throw invalid(`is stale (its nextUpdate, ${iso(nextUpdate)}, is past)`);
  const echoed = basic.tbsResponseData.responseExtensions?.find((x) => x.extnID === id_pkix_ocsp_nonce);
  if (echoed && !(e.nonce && Buffer.from(echoed.extnValue.buffer).equals(e.nonce))) throw invalid('echoes another nonce than the request\'s (a replayed answer?)');
  // Without a nonce, only the dates say the answer is recent; without nextUpdate, `cache` bounds its age.
  if (!echoed && !nextUpdate && thisUpdate.getTime() < t - e.maxAgeMs - OCSP_SKEW_MS) {
    throw invalid(`is too old: no nonce, no nextUpdate, and its thisUpdate (${iso(thisUpdate)}) is older than tls ocsp cache`);
  }

  const s = single.certStatus;
  const base = { thisUpdate, nextUpdate, signer, revokedAt: undefined, revocationReason: undefined };
  if (s.revoked) {
    const code = s.revoked.revocationReason?.reason;
    return { ...base, status: 'revoked', revokedAt: s.revoked.revocationTime, revocationReason: code === undefined ? undefined : (CRLReasons[code] ?? String(code)) };
  }
  if (s.good !== undefined) return { ...base, status: 'good' };
  if (s.unknown !== undefined) return { ...base, status: 'unknown' };
  throw invalid('has a certificate status that is neither good, revoked nor unknown');
}

/** HTTP(S) POST with a deadline on the whole exchange and a cap on the answer's size. */
export const postOcsp: OcspTransport = (url, body, timeoutMs) =>
  new Promise((resolve, reject) => {
    let settled = false;
    const settle = (err: OcspError | null, value?: Buffer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        req.destroy();
        reject(err);
      } else resolve(value!);
    };
    const unavailable = (why: string, cause?: unknown): OcspError => new OcspError('OCSP_UNAVAILABLE', `the OCSP responder ${why}`, cause === undefined ? undefined : { cause });
    const client = url.startsWith('https:') ? https : http;
    // A connection per request (no keep-alive): requests are rare thanks to the cache, and a
    // reused connection the responder has closed would fail a check for nothing.
    const req = client.request(url, { method: 'POST', agent: false, headers: { 'content-type': 'application/ocsp-request', accept: 'application/ocsp-response', 'content-length': body.length } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        settle(unavailable(`answered HTTP ${res.statusCode ?? '?'}`));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_RESPONSE_BYTES) settle(unavailable(`sent more than ${MAX_RESPONSE_BYTES} bytes`));
        else chunks.push(chunk);
      });
      res.on('end', () => settle(null, Buffer.concat(chunks)));
      res.on('error', (err: NodeJS.ErrnoException) => settle(unavailable(`broke off its answer (${err.code ?? err.message})`, err)));
    });
    const timer = setTimeout(() => settle(unavailable(`did not answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => settle(unavailable(`could not be reached (${err.code ?? err.message})`, err)));
    req.end(body);
  });

export interface OcspCheckerOptions {
  readonly log: Log;
  /** An open connection's certificate was found revoked by a re-check: close its connections. */
  readonly onRevoked?: (subject: OcspSubject, answer: OcspAnswer) => void;
  readonly transport?: OcspTransport;
  /** Milliseconds since the epoch (tests move it). */
  readonly now?: () => number;
  readonly cacheEntries?: number;
}

interface CacheEntry {
  readonly subject: OcspSubject;
  readonly answer: OcspAnswer;
  readonly expiresAt: number;
}

interface Watched {
  readonly subject: OcspSubject;
  count: number;
  timer: NodeJS.Timeout | undefined;
}

/** The decision, and what the log should say about it. */
export interface OcspAdmission {
  readonly subject: OcspSubject | undefined;
  readonly verdict: CertificateVerdict;
}

/**
 * Asks, caches, decides. One per server; `setCa` gives it the CA certificates (at start and on
 * each reload), `admit` judges a verified client certificate, `watch` follows an open
 * connection's certificate, `recheckAll` asks again about every known certificate (SIGHUP).
 */
export class OcspChecker {
  private cas: X509Certificate[] = [];
  private readonly cache = new Map<string, CacheEntry>();
  private readonly inflight = new Map<string, Promise<OcspOutcome>>();
  private readonly watched = new Map<string, Watched>();
  private readonly transport: OcspTransport;
  private readonly now: () => number;
  private readonly maxEntries: number;
  private closed = false;
  private readonly counters = { ocspChecks: 0, ocspRequests: 0, ocspCacheHits: 0, ocspShared: 0, ocspFailures: 0, ocspResponderDown: 0, ocspRevoked: 0, ocspRefused: 0 };
  /** Responders that could not be reached lately: until when they are not asked, and why. */
  private readonly unreachable = new Map<string, { readonly until: number; readonly error: OcspError }>();

  constructor(
    readonly settings: OcspSettings,
    private readonly o: OcspCheckerOptions,
  ) {
    this.transport = o.transport ?? postOcsp;
    this.now = o.now ?? Date.now;
    this.maxEntries = o.cacheEntries ?? OCSP_CACHE_ENTRIES;
  }

  /** The CA certificates (tls ca) that client certificates, and so OCSP answers, come from. */
  setCa(ca: unknown): void {
    this.cas = caCertificates(ca);
  }

  /** Counters for `stats`, and the cache's size. */
  figures(): Record<string, number> {
    return { ...this.counters, ocspCached: this.cache.size };
  }

  /** Judge a verified client certificate: the answer (cached or asked for now), then the policy. */
  async admit(cert: X509Certificate, chainIssuer?: X509Certificate): Promise<OcspAdmission> {
    this.counters.ocspChecks++;
    let subject: OcspSubject | undefined;
    let outcome: OcspOutcome;
    try {
      subject = ocspSubject(cert, this.cas, chainIssuer);
      outcome = await this.check(subject);
    } catch (err) {
      const error = err instanceof OcspError ? err : new OcspError('OCSP_INVALID', `the certificate could not be prepared for an OCSP request: ${(err as Error).message}`, { cause: err });
      outcome = { error, responder: undefined };
    }
    const verdict = this.decide(outcome);
    if (!verdict.accept) this.counters.ocspRefused++;
    return { subject, verdict };
  }

  /** A cached answer, or the responder's (shared with the checks of the same certificate in flight); `fresh` skips the cache. */
  check(subject: OcspSubject, fresh = false): Promise<OcspOutcome> {
    if (!fresh) {
      const hit = this.cached(subject.key);
      if (hit) {
        this.counters.ocspCacheHits++;
        return Promise.resolve({ answer: hit.answer, cached: true, responder: this.settings.responder ?? subject.aiaUrl ?? '' });
      }
    }
    const pending = this.inflight.get(subject.key);
    if (pending) {
      this.counters.ocspShared++;
      return pending;
    }
    const asked = this.ask(subject, fresh).finally(() => this.inflight.delete(subject.key));
    this.inflight.set(subject.key, asked);
    return asked;
  }

  private async ask(subject: OcspSubject, fresh: boolean): Promise<OcspOutcome> {
    const responder = this.settings.responder ?? subject.aiaUrl;
    if (!responder) {
      this.counters.ocspFailures++;
      return { error: new OcspError('OCSP_UNAVAILABLE', 'the certificate names no OCSP responder (no AIA OCSP URL) and "tls ocsp responder" is not set'), responder };
    }
    const down = this.unreachable.get(responder);
    if (down !== undefined && !fresh && this.now() < down.until) {
      this.counters.ocspFailures++;
      this.counters.ocspResponderDown++;
      const seconds = Math.ceil((down.until - this.now()) / 1000);
      return { error: new OcspError('OCSP_UNAVAILABLE', `${down.error.message}; not asked again for ${seconds} s`, { cause: down.error }), responder };
    }
    this.counters.ocspRequests++;
    const started = Date.now();
    try {
      const request = ocspRequest(subject, randomBytes(16));
      let body: Buffer;
      try {
        body = await this.transport(responder, request.der, this.settings.timeoutMs);
        this.unreachable.delete(responder);
      } catch (err) {
        if (err instanceof OcspError && err.code === 'OCSP_UNAVAILABLE') {
          if (this.unreachable.size >= this.maxEntries) this.unreachable.clear();
          this.unreachable.set(responder, { until: this.now() + OCSP_RESPONDER_HOLD_MS, error: err });
        }
        throw err;
      }
      const answer = readOcspResponse(body, { subject, nonce: request.nonce, now: new Date(this.now()), maxAgeMs: this.settings.cacheMaxAgeMs });
      if (answer.status !== 'unknown') this.remember(subject, answer);
      if (answer.status === 'revoked') this.counters.ocspRevoked++;
      this.o.log.debug({ responder, serial: subject.serial, subject: subject.dn, status: answer.status, signer: answer.signer, nextUpdate: answer.nextUpdate && iso(answer.nextUpdate), ms: Date.now() - started }, 'ocsp answer');
      return { answer, cached: false, responder };
    } catch (err) {
      this.counters.ocspFailures++;
      const error = err instanceof OcspError ? err : new OcspError('OCSP_INVALID', `the OCSP exchange failed: ${(err as Error).message}`, { cause: err });
      return { error, responder };
    }
  }

  private decide(outcome: OcspOutcome): CertificateVerdict {
    const details = { ocspResponder: outcome.responder ?? null };
    if ('answer' in outcome) {
      const a = outcome.answer;
      const about = { ...details, ocspStatus: a.status, ocspSigner: a.signer, ocspCached: outcome.cached };
      if (a.status === 'good') return { accept: true, details: about };
      if (a.status === 'revoked') {
        return { accept: false, reason: 'OCSP_REVOKED' satisfies OcspReason, message: 'the certificate is revoked (ocsp)', details: { ...about, revokedAt: a.revokedAt && iso(a.revokedAt), revocationReason: a.revocationReason ?? null } };
      }
      return this.byPolicy('OCSP_UNKNOWN', 'the OCSP responder does not know the certificate (status unknown)', about);
    }
    return this.byPolicy(outcome.error.code, `its revocation status could not be checked: ${outcome.error.message}`, details);
  }

  private byPolicy(reason: OcspReason, message: string, details: Record<string, unknown>): CertificateVerdict {
    return this.settings.onFailure === 'accept' ? { accept: true, warning: { reason, message }, details } : { accept: false, reason, message, details };
  }

  private cached(key: string): CacheEntry | undefined {
    const e = this.cache.get(key);
    if (e && e.expiresAt <= this.now()) {
      this.cache.delete(key);
      return undefined;
    }
    return e;
  }

  /** Kept until nextUpdate, never longer than `cache`; the map stays under its bound. */
  private remember(subject: OcspSubject, answer: OcspAnswer): void {
    const now = this.now();
    const expiresAt = Math.min(answer.nextUpdate?.getTime() ?? Infinity, now + this.settings.cacheMaxAgeMs);
    this.cache.delete(subject.key);
    if (expiresAt <= now) return;
    if (this.cache.size >= this.maxEntries) {
      for (const [k, e] of this.cache) if (e.expiresAt <= now) this.cache.delete(k);
      // Still full: the oldest answer goes (Map order is insertion order).
      for (const k of this.cache.keys()) {
        if (this.cache.size < this.maxEntries) break;
        this.cache.delete(k);
      }
    }
    this.cache.set(subject.key, { subject, answer, expiresAt });
  }

  /** Follow an open connection's certificate: checked again when its answer expires. Returns the unwatch. */
  watch(subject: OcspSubject): () => void {
    let w = this.watched.get(subject.key);
    if (!w) {
      w = { subject, count: 0, timer: undefined };
      this.watched.set(subject.key, w);
      this.schedule(w);
    }
    w.count++;
    const entry = w;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      if (--entry.count > 0) return;
      clearTimeout(entry.timer);
      if (this.watched.get(subject.key) === entry) this.watched.delete(subject.key);
    };
  }

  private schedule(w: Watched): void {
    if (this.closed) return;
    clearTimeout(w.timer);
    const cached = this.cached(w.subject.key);
    const delay = cached ? cached.expiresAt - this.now() : Math.min(this.settings.cacheMaxAgeMs, RETRY_MS);
    w.timer = setTimeout(() => void this.recheck(w), Math.min(MAX_TIMER_MS, Math.max(MIN_RECHECK_MS, delay)));
    w.timer.unref();
  }

  private async recheck(w: Watched): Promise<void> {
    w.timer = undefined;
    const outcome = await this.check(w.subject, true);
    if (this.closed || this.watched.get(w.subject.key) !== w) return;
    this.report(w.subject, outcome);
    this.schedule(w);
  }

  /** A re-check of an open connection: revoked closes it; a failure leaves it open (and says so). */
  private report(subject: OcspSubject, outcome: OcspOutcome): void {
    const about = { serial: subject.serial, subject: subject.dn, responder: outcome.responder ?? null };
    if ('error' in outcome || outcome.answer.status === 'unknown') {
      const why = 'error' in outcome ? outcome.error.message : 'the OCSP responder does not know the certificate (status unknown)';
      const reason = 'error' in outcome ? outcome.error.code : 'OCSP_UNKNOWN';
      this.o.log.warn({ ...about, reason, err: why }, `ocsp re-check of a connected client certificate failed, its connections stay: ${why}`);
      return;
    }
    const a = outcome.answer;
    if (a.status !== 'revoked') return;
    this.o.log.warn({ ...about, revokedAt: a.revokedAt && iso(a.revokedAt), revocationReason: a.revocationReason ?? null }, 'ocsp: a connected client certificate is revoked; closing its connections');
    this.o.onRevoked?.(subject, a);
  }

  /**
   * SIGHUP: ask again, now, about every certificate with open connections or a cached answer
   * (a few at a time). A fresh answer replaces the cached one, so a revocation applies to new
   * connections too; a failed one keeps the previous answer until it expires. Open connections
   * whose certificate is revoked are closed (onRevoked).
   */
  async recheckAll(): Promise<{ checked: number; revoked: number; failed: number }> {
    const subjects = new Map<string, OcspSubject>();
    for (const [k, w] of this.watched) subjects.set(k, w.subject);
    for (const [k, e] of this.cache) if (!subjects.has(k)) subjects.set(k, e.subject);
    const queue = [...subjects.values()];
    const tally = { checked: 0, revoked: 0, failed: 0 };
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < queue.length && !this.closed) {
        const subject = queue[next++]!;
        const outcome = await this.check(subject, true);
        tally.checked++;
        if ('error' in outcome) tally.failed++;
        else if (outcome.answer.status === 'revoked') tally.revoked++;
        const w = this.watched.get(subject.key);
        if (w && !this.closed) {
          this.report(subject, outcome);
          this.schedule(w);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(RECHECK_CONCURRENCY, queue.length) }, worker));
    this.o.log.info(tally, 'ocsp re-checked');
    return tally;
  }

  close(): void {
    this.closed = true;
    for (const w of this.watched.values()) clearTimeout(w.timer);
    this.watched.clear();
  }
}
