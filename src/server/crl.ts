/**
 * Checks a certificate revocation list (`tls crl`) against the CA before TLS uses it.
 *
 * Why: once a CRL is given, OpenSSL checks every client certificate against it, and a CRL that
 * is not the CA's (UNABLE_TO_GET_CRL), whose signature does not verify, or that is past its
 * next update (CRL_HAS_EXPIRED) makes it refuse *every* client. Node cannot read a CRL, so the
 * few fields needed are read here from the DER (RFC 5280 §5.1), with node:crypto only: the
 * broker never loads @peculiar/x509.
 */
import { verify, X509Certificate } from 'node:crypto';

export class CrlError extends Error {
  override name = 'CrlError';
}

export interface CrlSummary {
  readonly thisUpdate: Date;
  readonly nextUpdate: Date | undefined;
  /** Serial numbers of the revoked certificates, upper-case hex as node:crypto prints them. */
  readonly revoked: readonly string[];
}

interface Element {
  readonly tag: number;
  /** The whole element, header included. */
  readonly raw: Buffer;
  readonly content: Buffer;
}

function element(buf: Buffer, at: number): Element {
  if (at + 2 > buf.length) throw new CrlError('truncated DER');
  const tag = buf[at]!;
  let len = buf[at + 1]!;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > buf.length) throw new CrlError('bad DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[start + i]!;
    start += n;
  }
  if (start + len > buf.length) throw new CrlError('truncated DER');
  return { tag, raw: buf.subarray(at, start + len), content: buf.subarray(start, start + len) };
}

function children(e: Element): Element[] {
  const out: Element[] = [];
  for (let at = 0; at < e.content.length; ) {
    const c = element(e.content, at);
    out.push(c);
    at += c.raw.length;
  }
  return out;
}

function time(e: Element): Date {
  const s = e.content.toString('latin1');
  const m = e.tag === 0x17 ? /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s) : e.tag === 0x18 ? /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s) : null;
  if (!m) throw new CrlError(`bad time ${JSON.stringify(s)}`);
  // RFC 5280: UTCTime years 50-99 are 19xx.
  const year = e.tag === 0x17 ? (Number(m[1]) >= 50 ? 1900 : 2000) + Number(m[1]) : Number(m[1]);
  return new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
}

const isTime = (e: Element | undefined): e is Element => e !== undefined && (e.tag === 0x17 || e.tag === 0x18);

/** Signature algorithm OIDs (content bytes, hex) and the digest node:crypto's verify() wants. */
const SIGNATURE_DIGESTS: Record<string, string | null> = {
  '2a8648ce3d040302': 'sha256', // ecdsa-with-SHA256
  '2a8648ce3d040303': 'sha384',
  '2a8648ce3d040304': 'sha512',
  '2a864886f70d01010b': 'sha256', // sha256WithRSAEncryption
  '2a864886f70d01010c': 'sha384',
  '2a864886f70d01010d': 'sha512',
  '2b6570': null, // Ed25519
};

/** The subject Name of a certificate, DER, as it appears in a CRL's issuer field (and is hashed in an OCSP CertID). */
export function subjectDer(cert: X509Certificate): Buffer {
  const tbs = children(children(element(cert.raw, 0))[0]!);
  // tbsCertificate: [0] version (optional), serial, signature, issuer, validity, subject, ...
  const fields = tbs[0]?.tag === 0xa0 ? tbs.slice(1) : tbs;
  return fields[4]!.raw;
}

function der(pem: string | Buffer): Buffer {
  const text = pem.toString('latin1');
  const m = /-----BEGIN X509 CRL-----([\s\S]*?)-----END X509 CRL-----/.exec(text);
  if (!m) throw new CrlError('no "-----BEGIN X509 CRL-----" block');
  return Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
}

/**
 * Read a PEM CRL and check it against the CA bundle and the time: issued by one of the CA
 * certificates (same subject, signature verified by its key) and not past its next update.
 * Throws CrlError with the reason; returns what a log line wants to say about it.
 */
export function checkCrl(crlPem: string | Buffer, caPem: string | Buffer, now = new Date()): CrlSummary {
  let tbs: Element;
  let fields: Element[];
  let algorithm: Element;
  let signature: Element;
  try {
    const [t, alg, sig] = children(element(der(crlPem), 0));
    if (!t || !alg || !sig || sig.tag !== 0x03) throw new CrlError('not a CertificateList');
    tbs = t;
    algorithm = alg;
    signature = sig;
    fields = children(tbs);
  } catch (err) {
    throw new CrlError(`not a PEM certificate revocation list: ${(err as Error).message}`, { cause: err });
  }
  // tbsCertList: version (optional INTEGER), signature, issuer, thisUpdate, nextUpdate?, revoked?, [0] extensions?
  const rest = fields[0]?.tag === 0x02 ? fields.slice(1) : fields;
  const [, issuer, thisUpdateEl, maybeNext, ...tail] = rest;
  if (!issuer || !isTime(thisUpdateEl)) throw new CrlError('not a PEM certificate revocation list: no issuer or thisUpdate');
  const nextUpdate = isTime(maybeNext) ? time(maybeNext) : undefined;
  const list = isTime(maybeNext) ? tail[0] : maybeNext;
  const revoked = list && list.tag === 0x30 ? children(list).map((entry) => children(entry)[0]!.content.toString('hex').replace(/^(00)+(?=.)/, '').toUpperCase()) : [];

  // Names compared as DER bytes: gen-cert and `openssl ca` copy the CA's subject into the CRL.
  const cas = splitPem(caPem).map((p) => new X509Certificate(p));
  const ca = cas.find((c) => subjectDer(c).equals(issuer.raw));
  if (!ca) throw new CrlError(`the CRL is not issued by the tls ca (no CA certificate has its issuer name; CAs: ${cas.map((c) => c.subject.replace(/\n/g, ', ')).join('; ')})`);
  const oid = children(algorithm)[0]?.content.toString('hex') ?? '';
  const digest = SIGNATURE_DIGESTS[oid];
  if (digest === undefined) throw new CrlError(`the CRL's signature algorithm (OID bytes ${oid}) is not one this broker checks (ECDSA or RSA with SHA-2, Ed25519)`);
  // A BIT STRING's first content byte is the count of unused bits (0 for signatures).
  if (!verify(digest, tbs.raw, ca.publicKey, signature.content.subarray(1))) throw new CrlError(`the CRL's signature does not verify with the key of "${ca.subject.replace(/\n/g, ', ')}"`);
  if (nextUpdate && nextUpdate.getTime() < now.getTime()) {
    throw new CrlError(`the CRL is past its next update (${nextUpdate.toISOString()}): OpenSSL would refuse every client certificate; make a new one (fluctuat gen-cert crl)`);
  }
  return { thisUpdate: time(thisUpdateEl), nextUpdate, revoked };
}

function splitPem(pem: string | Buffer): string[] {
  return pem.toString('latin1').match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
}
