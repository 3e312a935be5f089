/** CRLs: made by src/certs/crl.ts, checked against the CA by src/server/crl.ts (node:crypto only). */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { test } from 'node:test';
import { createCrl } from '../src/certs/crl.js';
import { createCa, createClientCert, loadCa } from '../src/certs/generate.js';
import { checkCrl, CrlError } from '../src/server/crl.js';

function der(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
}

function pem(bytes: Buffer): string {
  return `-----BEGIN X509 CRL-----\n${bytes.toString('base64')}\n-----END X509 CRL-----\n`;
}

for (const keyType of ['ec-p256', 'rsa-2048'] as const) {
  test(`a ${keyType} CA's CRL: its revocations are read; another CA, a past next update, a changed byte are refused`, async () => {
    const caPem = await createCa({ commonName: `CA ${keyType}`, keyType });
    const ca = await loadCa(caPem);
    const revoked = new X509Certificate((await createClientCert(ca, { commonName: 'gone' })).cert);
    const thisUpdate = new Date('2026-01-01T00:00:00Z');
    const crl = await createCrl(ca, { revoked: [{ serial: revoked.serialNumber }], thisUpdate, days: 10 });

    const summary = checkCrl(crl, caPem.cert, new Date('2026-01-05T00:00:00Z'));
    assert.deepEqual(summary.revoked, [revoked.serialNumber]);
    assert.equal(summary.thisUpdate.toISOString(), '2026-01-01T00:00:00.000Z');
    assert.equal(summary.nextUpdate?.toISOString(), '2026-01-11T00:00:00.000Z');
    // The CA can be one of a bundle.
    const other = await createCa({ commonName: 'other CA' });
    assert.equal(checkCrl(crl, other.cert + caPem.cert, new Date('2026-01-05T00:00:00Z')).revoked.length, 1);

    assert.throws(() => checkCrl(crl, other.cert, new Date('2026-01-05T00:00:00Z')), /the CRL is not issued by the tls ca .*CN=other CA/);
    assert.throws(() => checkCrl(crl, caPem.cert, new Date('2026-01-12T00:00:00Z')), /past its next update \(2026-01-11T00:00:00\.000Z\): OpenSSL would refuse every client certificate/);
    const tampered = der(crl);
    tampered[tampered.length - 3]! ^= 0x01; // in the signature
    assert.throws(() => checkCrl(pem(tampered), caPem.cert, new Date('2026-01-05T00:00:00Z')), /signature does not verify with the key of "CN=CA /);
    const truncated = der(crl).subarray(0, 40);
    assert.throws(() => checkCrl(pem(truncated), caPem.cert), (err: unknown) => err instanceof CrlError && /not a PEM certificate revocation list: truncated DER/.test(err.message));
    assert.throws(() => checkCrl(caPem.cert, caPem.cert), /no "-----BEGIN X509 CRL-----" block/);
  });
}
