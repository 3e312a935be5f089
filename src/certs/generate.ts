/**
 * Certificate generation for `fluctuat gen-cert`: a CA, server certificates (DNS and IP subject
 * alternative names) and client certificates, all in PEM.
 *
 * Library: @peculiar/x509 over Node's WebCrypto (`crypto.webcrypto`), never a shell-out to
 * openssl. Chosen over node-forge because keys are generated and certificates signed by Node's
 * native crypto (forge signs with its own JavaScript RSA and supports RSA keys only), so the
 * default keys can be ECDSA P-256: small, fast to make (tests create a dozen in milliseconds)
 * and accepted by OpenSSL, socat and every TLS 1.2/1.3 stack. It is typed TypeScript and
 * maintained. Its cost: it needs the `reflect-metadata` polyfill (for its tsyringe container);
 * only this module loads it, and the broker itself never imports this module (the TLS
 * listener uses node:tls and node:crypto's X509Certificate only).
 */
import 'reflect-metadata';
import { createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';
import type { KeyType } from './names.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export { KEY_TYPES, type KeyType } from './names.js';

export interface Pem {
  /** The certificate, PEM. */
  readonly cert: string;
  /** Its private key, PKCS#8 PEM (unencrypted: protect the file, gen-cert writes it 0600). */
  readonly key: string;
}

export interface CertOptions {
  /** Subject common name. For a client certificate, the identity the broker sees. */
  readonly commonName: string;
  /** Extra subject attributes, e.g. { O: 'acme', OU: 'probes' }. */
  readonly subject?: Readonly<Record<string, string>>;
  /** Validity start (default: now minus 5 minutes, for clock skew). */
  readonly notBefore?: Date;
  /** Validity end (default: notBefore + days). */
  readonly notAfter?: Date;
  /** Validity length when notAfter is not given (default: CA 3650, others 825). */
  readonly days?: number;
  readonly keyType?: KeyType;
  /** OCSP responder URL (http:// or https://) for the authorityInfoAccess extension. */
  readonly ocspUrl?: string;
}

export interface ServerCertOptions extends CertOptions {
  /** DNS names for the subjectAltName extension (the common name is added when it is a name). */
  readonly dnsNames?: readonly string[];
  /** IP addresses (v4 or v6) for the subjectAltName extension. */
  readonly ipAddresses?: readonly string[];
}

export class CertError extends Error {
  override name = 'CertError';
}

const SKEW_MS = 5 * 60 * 1000;
const DAY_MS = 86_400_000;

interface Algorithm {
  readonly gen: EcKeyGenParams | RsaHashedKeyGenParams;
  readonly sign: EcdsaParams | Algorithm['gen'];
}

function algorithm(type: KeyType): Algorithm {
  switch (type) {
    case 'ec-p256':
      return { gen: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } };
    case 'ec-p384':
      return { gen: { name: 'ECDSA', namedCurve: 'P-384' }, sign: { name: 'ECDSA', hash: 'SHA-384' } };
    case 'rsa-2048':
    case 'rsa-3072': {
      const gen: RsaHashedKeyGenParams = {
        name: 'RSASSA-PKCS1-v1_5',
        modulusLength: type === 'rsa-2048' ? 2048 : 3072,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: 'SHA-256',
      };
      return { gen, sign: gen };
    }
  }
}

function validity(o: CertOptions, defaultDays: number): { notBefore: Date; notAfter: Date } {
  const notBefore = o.notBefore ?? new Date(Date.now() - SKEW_MS);
  const days = o.days ?? defaultDays;
  if (!(days > 0)) throw new CertError(`validity must be a positive number of days, got ${days}`);
  const notAfter = o.notAfter ?? new Date(notBefore.getTime() + days * DAY_MS);
  if (Number.isNaN(notBefore.getTime()) || Number.isNaN(notAfter.getTime())) throw new CertError('validity dates must be valid dates');
  if (notAfter.getTime() <= notBefore.getTime()) {
    throw new CertError(`the validity ends (${notAfter.toISOString()}) before it starts (${notBefore.toISOString()})`);
  }
  return { notBefore, notAfter };
}

const SUBJECT_ATTRIBUTES = new Set(['C', 'ST', 'L', 'O', 'OU']);

/**
 * The subject as structured attributes, never as a "CN=..., O=..." string: a common name such
 * as `a, O=evil` stays one common name, with nothing to escape.
 */
function distinguishedName(o: CertOptions): x509.JsonName {
  const check = (what: string, value: unknown): string => {
    if (typeof value !== 'string' || value.length === 0 || value.length > 64) throw new CertError(`the ${what} must be 1 to 64 characters`);
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f\u007f]/.test(value)) throw new CertError(`the ${what} ${JSON.stringify(value)} contains control characters`);
    return value;
  };
  const name: x509.JsonName = [{ CN: [check('common name', o.commonName)] }];
  for (const [k, v] of Object.entries(o.subject ?? {})) {
    if (!SUBJECT_ATTRIBUTES.has(k)) throw new CertError(`subject attribute "${k}" is not one of ${[...SUBJECT_ATTRIBUTES].join(', ')}`);
    name.push({ [k]: [check(`subject ${k}`, v)] });
  }
  return name;
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f; // positive
  if (b[0] === 0) b[0] = 1; // no leading zero byte: 16 significant bytes
  return b.toString('hex');
}

function keyPem(der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN PRIVATE KEY-----\n${b64}\n-----END PRIVATE KEY-----\n`;
}

async function generateKeys(type: KeyType): Promise<CryptoKeyPair> {
  const alg = algorithm(type);
  return (await webcrypto.subtle.generateKey(alg.gen, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function finish(cert: x509.X509Certificate, keys: CryptoKeyPair): Promise<Pem> {
  const der = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { cert: cert.toString('pem') + '\n', key: keyPem(der) };
}

/** A self-signed certificate authority (path length 0: it signs leaf certificates only). */
export async function createCa(o: CertOptions): Promise<Pem> {
  const keyType = o.keyType ?? 'ec-p256';
  const keys = await generateKeys(keyType);
  const { notBefore, notAfter } = validity(o, 3650);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: distinguishedName(o),
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: algorithm(keyType).sign,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return finish(cert, keys);
}

export interface LoadedCa {
  readonly cert: x509.X509Certificate;
  readonly key: CryptoKey;
  readonly sign: Algorithm['sign'];
}

/** Read a CA certificate and its key (PEM), as written by createCa or any PKCS#8/SEC1/PKCS#1 key. */
export async function loadCa(ca: Pem): Promise<LoadedCa> {
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(ca.cert);
  } catch (cause) {
    throw new CertError(`the CA certificate is not a PEM certificate: ${(cause as Error).message}`, { cause });
  }
  const basic = cert.getExtension(x509.BasicConstraintsExtension);
  if (!basic?.ca) throw new CertError(`"${cert.subject}" is not a CA certificate (no basicConstraints CA:TRUE)`);
  let keyObject;
  try {
    keyObject = createPrivateKey(ca.key);
  } catch (cause) {
    throw new CertError(`the CA key is not a readable PEM private key: ${(cause as Error).message}`, { cause });
  }
  const pkcs8 = keyObject.export({ type: 'pkcs8', format: 'der' });
  let gen: Algorithm['gen'];
  let sign: Algorithm['sign'];
  if (keyObject.asymmetricKeyType === 'ec') {
    const curve = keyObject.asymmetricKeyDetails?.namedCurve;
    const named = curve === 'prime256v1' ? 'P-256' : curve === 'secp384r1' ? 'P-384' : curve === 'secp521r1' ? 'P-521' : undefined;
    if (!named) throw new CertError(`unsupported CA key curve ${curve ?? '?'} (P-256, P-384 or P-521)`);
    gen = { name: 'ECDSA', namedCurve: named };
    sign = { name: 'ECDSA', hash: named === 'P-256' ? 'SHA-256' : named === 'P-384' ? 'SHA-384' : 'SHA-512' };
  } else if (keyObject.asymmetricKeyType === 'rsa') {
    gen = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as RsaHashedKeyGenParams;
    sign = gen;
  } else {
    throw new CertError(`unsupported CA key type ${keyObject.asymmetricKeyType ?? '?'} (EC or RSA)`);
  }
  const key = await webcrypto.subtle.importKey('pkcs8', pkcs8, gen, false, ['sign']);
  // The key must be the certificate's: sign and verify a probe.
  const probe = randomBytes(32);
  const signature = await webcrypto.subtle.sign(sign, key, probe);
  const pub = await cert.publicKey.export(gen, ['verify']);
  if (!(await webcrypto.subtle.verify(sign, pub, signature, probe))) {
    throw new CertError(`the CA key does not belong to the CA certificate "${cert.subject}"`);
  }
  return { cert, key, sign };
}

/** The authorityInfoAccess extension naming an OCSP responder, which a broker with `tls ocsp on` asks. */
function ocspAccess(url: string): x509.Extension {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new CertError(`"${url}" is not a URL (an OCSP responder's, such as http://ocsp.example.org:8888)`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new CertError(`"${url}" is not an http:// or https:// URL (OCSP responders speak HTTP)`);
  return new x509.AuthorityInfoAccessExtension({ ocsp: [new x509.GeneralName('url', u.href)] });
}

async function issue(
  ca: LoadedCa,
  o: CertOptions,
  defaultDays: number,
  extensions: x509.Extension[],
): Promise<Pem> {
  if (o.ocspUrl !== undefined) extensions = [...extensions, ocspAccess(o.ocspUrl)];
  const keyType = o.keyType ?? 'ec-p256';
  const keys = await generateKeys(keyType);
  const { notBefore, notAfter } = validity(o, defaultDays);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: distinguishedName(o),
    issuer: ca.cert.subjectName,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey: ca.key,
    signingAlgorithm: ca.sign,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
      ...extensions,
    ],
  });
  return finish(cert, keys);
}

function keyUsage(type: KeyType): x509.KeyUsagesExtension {
  const flags = type.startsWith('rsa') ? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment : x509.KeyUsageFlags.digitalSignature;
  return new x509.KeyUsagesExtension(flags, true);
}

/** A server certificate: extendedKeyUsage serverAuth, subjectAltName with DNS names and IPs. */
export async function createServerCert(ca: LoadedCa, o: ServerCertOptions): Promise<Pem> {
  const dns = [...(o.dnsNames ?? [])];
  const ips = [...(o.ipAddresses ?? [])];
  if (isIP(o.commonName)) {
    if (!ips.includes(o.commonName)) ips.push(o.commonName);
  } else if (!dns.includes(o.commonName)) {
    dns.unshift(o.commonName);
  }
  for (const name of dns) {
    if (!/^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(name)) {
      throw new CertError(`"${name}" is not a DNS host name`);
    }
  }
  for (const ip of ips) if (!isIP(ip)) throw new CertError(`"${ip}" is not an IPv4 or IPv6 address`);
  const names: x509.JsonGeneralName[] = [...dns.map((value) => ({ type: 'dns' as const, value })), ...ips.map((value) => ({ type: 'ip' as const, value }))];
  return issue(ca, o, 825, [
    keyUsage(o.keyType ?? 'ec-p256'),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
    new x509.SubjectAlternativeNameExtension(names),
  ]);
}

/** A client certificate: extendedKeyUsage clientAuth; the common name is the client's identity. */
export async function createClientCert(ca: LoadedCa, o: CertOptions): Promise<Pem> {
  return issue(ca, o, 825, [keyUsage(o.keyType ?? 'ec-p256'), new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth])]);
}

/** id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1): its value is an ASN.1 NULL. */
const OCSP_NOCHECK = '1.3.6.1.5.5.7.48.1.5';

/**
 * A delegated OCSP responder certificate: signed by the CA, extendedKeyUsage OCSPSigning (so
 * that its answers count as the CA's, RFC 6960 §4.2.2.2) and id-pkix-ocsp-nocheck (nobody asks
 * about the responder's own status). Short-lived by default (90 days): being unrevocable in
 * practice, it should be renewed rather than revoked.
 */
export async function createOcspResponderCert(ca: LoadedCa, o: CertOptions): Promise<Pem> {
  if (o.ocspUrl !== undefined) throw new CertError('an OCSP responder certificate names no OCSP responder of its own (it has ocsp-nocheck)');
  return issue(ca, o, 90, [
    keyUsage(o.keyType ?? 'ec-p256'),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.ocspSigning]),
    new x509.Extension(OCSP_NOCHECK, false, new Uint8Array([0x05, 0x00])),
  ]);
}
