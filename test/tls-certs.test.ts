/** Certificate generation (src/certs) and `fluctuat gen-cert`, checked with node:crypto and the real openssl. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { CertError, createCa, createClientCert, createServerCert, loadCa } from '../src/certs/generate.js';
import { BIN, tmpDir } from './helpers/broker.js';

const run = promisify(execFile);

/** Run a command; resolve with its exit code and output whatever the code. */
async function exec(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(cmd, args, { encoding: 'utf8' });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

test('a CA, a server certificate with DNS and IP names, a client certificate: they chain and match their keys', async () => {
  const ca = await createCa({ commonName: 'test CA', subject: { O: 'fluctuat' } });
  const caCert = new X509Certificate(ca.cert);
  assert.equal(caCert.ca, true);
  assert.equal(caCert.subject, 'CN=test CA\nO=fluctuat');
  assert.ok(caCert.verify(caCert.publicKey), 'self-signed');
  const loaded = await loadCa(ca);

  const server = await createServerCert(loaded, { commonName: 'localhost', ipAddresses: ['127.0.0.1', '::1'], dnsNames: ['broker.test'] });
  const s = new X509Certificate(server.cert);
  assert.equal(s.ca, false);
  assert.ok(s.checkIssued(caCert) && s.verify(caCert.publicKey));
  assert.ok(s.checkPrivateKey(createPrivateKey(server.key)));
  assert.equal(s.checkHost('localhost'), 'localhost');
  assert.equal(s.checkHost('broker.test'), 'broker.test');
  assert.equal(s.checkIP('127.0.0.1'), '127.0.0.1');
  assert.equal(s.checkIP('::1'), '::1');
  assert.equal(s.checkIP('127.0.0.2'), undefined);
  assert.deepEqual(s.keyUsage, ['1.3.6.1.5.5.7.3.1']); // serverAuth

  const client = await createClientCert(loaded, { commonName: 'alice' });
  const c = new X509Certificate(client.cert);
  assert.equal(c.subject, 'CN=alice');
  assert.equal(c.issuer, 'CN=test CA\nO=fluctuat');
  assert.ok(c.verify(caCert.publicKey));
  assert.deepEqual(c.keyUsage, ['1.3.6.1.5.5.7.3.2']); // clientAuth
  assert.notEqual(c.serialNumber, s.serialNumber);

  // A subject is attributes, not a string to parse: this common name stays one common name.
  const tricky = new X509Certificate((await createClientCert(loaded, { commonName: 'a, O=evil' })).cert);
  assert.equal(tricky.subject.split('\n').length, 1);
});

test('validity windows: the default, a past window for tests, nonsense refused', async () => {
  const ca = await loadCa(await createCa({ commonName: 'CA' }));
  const now = Date.now();
  const current = new X509Certificate((await createClientCert(ca, { commonName: 'x', days: 2 })).cert);
  assert.ok(new Date(current.validFrom).getTime() <= now && new Date(current.validTo).getTime() > now + 86_400_000);
  const expired = new X509Certificate((await createClientCert(ca, { commonName: 'old', notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2020-02-01T00:00:00Z') })).cert);
  assert.equal(new Date(expired.validTo).toISOString(), '2020-02-01T00:00:00.000Z');
  await assert.rejects(createClientCert(ca, { commonName: 'x', notBefore: new Date('2021-01-01'), notAfter: new Date('2020-01-01') }), CertError);
  await assert.rejects(createClientCert(ca, { commonName: '' }), /common name must be 1 to 64 characters/);
  await assert.rejects(createServerCert(ca, { commonName: 'bad_host!' }), /is not a DNS host name/);
  await assert.rejects(createServerCert(ca, { commonName: 'localhost', ipAddresses: ['300.1.1.1'] }), /not an IPv4 or IPv6 address/);
});

test('loadCa refuses a key that is not the certificate\'s, and a certificate that is not a CA', async () => {
  const a = await createCa({ commonName: 'A' });
  const b = await createCa({ commonName: 'B' });
  await assert.rejects(loadCa({ cert: a.cert, key: b.key }), /does not belong to the CA certificate/);
  const leaf = await createClientCert(await loadCa(a), { commonName: 'leaf' });
  await assert.rejects(loadCa(leaf), /is not a CA certificate/);
  await assert.rejects(loadCa({ cert: 'nonsense', key: a.key }), /not a PEM certificate/);
  // An RSA CA works as well as the default EC one.
  const rsa = await loadCa(await createCa({ commonName: 'R', keyType: 'rsa-2048' }));
  const c = new X509Certificate((await createClientCert(rsa, { commonName: 'r' })).cert);
  assert.equal(c.issuer, 'CN=R');
});

test('fluctuat gen-cert writes a CA, server and client files that openssl verifies; keys are 0600; no overwrite', async () => {
  const dir = tmpDir('fluctuat-gencert-');
  try {
    const gen = (...args: string[]): ReturnType<typeof exec> => exec(process.execPath, [BIN, 'gen-cert', ...args, '--dir', dir]);
    assert.equal((await gen('ca', '--name', 'Test CA')).code, 0);
    const server = await gen('server', '--host', 'localhost', '--ip', '127.0.0.1');
    assert.equal(server.code, 0, server.stderr);
    assert.deepEqual(server.stdout.trim().split('\n'), [path.join(dir, 'server.crt'), path.join(dir, 'server.key')]);
    assert.equal((await gen('client', '--name', 'alice')).code, 0);
    assert.equal((await gen('client', '--name', 'old', '--not-before', '2020-01-01', '--not-after', '2020-02-01')).code, 0);
    for (const f of ['ca', 'server', 'alice', 'old']) {
      assert.equal(fs.statSync(path.join(dir, `${f}.key`)).mode & 0o777, 0o600, `${f}.key`);
    }
    const ca = path.join(dir, 'ca.crt');
    const ok = await exec('openssl', ['verify', '-CAfile', ca, '-verify_ip', '127.0.0.1', '-purpose', 'sslserver', path.join(dir, 'server.crt')]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    const alice = await exec('openssl', ['verify', '-CAfile', ca, '-purpose', 'sslclient', path.join(dir, 'alice.crt')]);
    assert.equal(alice.code, 0, alice.stdout + alice.stderr);
    const old = await exec('openssl', ['verify', '-CAfile', ca, path.join(dir, 'old.crt')]);
    assert.notEqual(old.code, 0);
    assert.match(old.stdout + old.stderr, /certificate has expired/);
    const again = await gen('ca');
    assert.equal(again.code, 1);
    assert.match(again.stderr, /ca\.crt exists; use --force to overwrite it/);
    const noCa = await exec(process.execPath, [BIN, 'gen-cert', 'client', '--name', 'x', '--dir', path.join(dir, 'empty')]);
    assert.equal(noCa.code, 1);
    assert.match(noCa.stderr, /cannot read the CA .*make one with "fluctuat gen-cert ca"/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
