/**
 * Certificate revocation lists for `fluctuat gen-cert crl`, signed by the CA with
 * @peculiar/x509's X509CrlGenerator (same library and reasons as generate.ts).
 */
// generate.js loads reflect-metadata, which @peculiar/x509 needs, and sets its crypto provider: first.
import { CertError, type LoadedCa } from './generate.js';
import * as x509 from '@peculiar/x509';
import { REVOCATION_REASONS, type RevocationReason } from './names.js';

export interface Revocation {
  /** Serial number, hex (as `openssl x509 -serial` or node:crypto print it; case and leading zeros do not matter). */
  readonly serial: string;
  /** When it was revoked (default: now). */
  readonly date?: Date;
  /** RFC 5280 reason code; absent means unspecified (which RFC 5280 says to leave out). */
  readonly reason?: RevocationReason;
}

export { REVOCATION_REASONS, type RevocationReason } from './names.js';

export interface CrlOptions {
  readonly revoked: readonly Revocation[];
  /** Start of this CRL (default: now minus 5 minutes, for clock skew). */
  readonly thisUpdate?: Date;
  /** Days until the next update (default 30). A broker refuses every client past it. */
  readonly days?: number;
}

const DAY_MS = 86_400_000;
const SKEW_MS = 5 * 60 * 1000;

export function normalSerial(hex: string): string {
  const s = hex.replace(/^0x/i, '').replace(/:/g, '').toLowerCase();
  if (!/^[0-9a-f]+$/.test(s)) throw new CertError(`"${hex}" is not a hexadecimal serial number`);
  return s.replace(/^0+(?=.)/, '');
}

/** A CRL (PEM) signed by `ca`, listing `revoked` once each. */
export async function createCrl(ca: LoadedCa, o: CrlOptions): Promise<string> {
  const days = o.days ?? 30;
  if (!(days > 0)) throw new CertError(`--days must be a positive number of days, got ${days}`);
  const thisUpdate = o.thisUpdate ?? new Date(Date.now() - SKEW_MS);
  const seen = new Map<string, Revocation>();
  for (const r of o.revoked) if (!seen.has(normalSerial(r.serial))) seen.set(normalSerial(r.serial), r);
  const crl = await x509.X509CrlGenerator.create({
    issuer: ca.cert.subjectName,
    thisUpdate,
    nextUpdate: new Date(thisUpdate.getTime() + days * DAY_MS),
    signingKey: ca.key,
    signingAlgorithm: ca.sign,
    // An even-length serial: the DER INTEGER of the certificate, as issued. (Without a reason the
    // library writes an empty entry-extensions SEQUENCE; OpenSSL and Node accept it.)
    entries: [...seen].map(([serial, r]) => ({
      serialNumber: serial.length % 2 ? `0${serial}` : serial,
      revocationDate: r.date ?? new Date(),
      ...(r.reason ? { reason: x509.X509CrlReason[r.reason] } : {}),
    })),
    extensions: [await x509.AuthorityKeyIdentifierExtension.create(ca.cert)],
  });
  // The label OpenSSL and Node expect (the library writes "BEGIN CRL").
  const b64 = crl.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN X509 CRL-----\n${b64}\n-----END X509 CRL-----\n`;
}

/** The revocations already in a CRL that `ca` signed, to carry them into the next one. */
export async function readCrl(ca: LoadedCa, pem: string): Promise<Revocation[]> {
  let crl: x509.X509Crl;
  try {
    crl = new x509.X509Crl(pem);
  } catch (cause) {
    throw new CertError(`the existing CRL is not a PEM certificate revocation list: ${(cause as Error).message}`, { cause });
  }
  if (!(await crl.verify({ publicKey: ca.cert }))) throw new CertError(`the existing CRL is not signed by the CA "${ca.cert.subject}"`);
  return crl.entries.map((e) => {
    const reason = e.reason === undefined ? undefined : REVOCATION_REASONS.find((n) => x509.X509CrlReason[n] === e.reason);
    return reason ? { serial: e.serialNumber, date: e.revocationDate, reason } : { serial: e.serialNumber, date: e.revocationDate };
  });
}

/** The serial number of a certificate (PEM) issued by `ca`; another CA's certificate is an error. */
export async function serialOf(ca: LoadedCa, pem: string, file: string): Promise<string> {
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(pem);
  } catch (cause) {
    throw new CertError(`${file} is not a PEM certificate: ${(cause as Error).message}`, { cause });
  }
  if (!(await cert.verify({ publicKey: ca.cert, signatureOnly: true }))) throw new CertError(`${file} ("${cert.subject}") is not issued by the CA "${ca.cert.subject}"`);
  return cert.serialNumber;
}
