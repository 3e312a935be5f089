/**
 * Client certificates as identities, revocation and reloading, against a real broker process
 * (privilege-separated when the suite runs as root, and in one process with --no-privsep),
 * with openssl s_client and the client library:
 * - a verified certificate logs in as its common name, or as the user `certificate subject`
 *   maps it to; groups and tenant come from the users file (read by the auth process alone);
 * - a certificate naming no user: CERT_USER_UNKNOWN, and the connection may still log in;
 * - a certificate revoked by `tls crl` (made with `fluctuat gen-cert crl`) is refused;
 * - SIGHUP re-reads certificate, key, CA and CRL without dropping connections, and keeps the
 *   old ones when the new files are bad.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { connect } from '../src/client/index.js';
import type { FluctuatError } from '../src/client/errors.js';
import { hashPassword } from '../src/security/passwords.js';
import { writeUsers } from '../src/security/users-file.js';
import { BIN, startBroker, tmpDir, type RunningBroker } from './helpers/broker.js';
import { auditEntry, genCert, logged, sClient, tlsFiles } from './helpers/tls.js';

const execFileP = promisify(execFile);
const root = process.getuid?.() === 0;

/** A PKI: CA, server, clients alice, bob (no such user), probe-17.eu (mapped), carol (revoked), and a CRL. */
async function makePki(dir: string): Promise<void> {
  await genCert(dir, 'ca', '--name', 'identity test CA');
  await genCert(dir, 'server', '--host', 'localhost', '--ip', '127.0.0.1');
  for (const name of ['alice', 'bob', 'probe-17.eu', 'carol']) await genCert(dir, 'client', '--name', name);
  await genCert(dir, 'crl', '--revoke', path.join(dir, 'carol.crt'));
  writeUsers(path.join(dir, 'users'), [
    { name: 'alice', hash: await hashPassword('alice-password'), groups: ['probes'], tenant: 'acme', tokens: [] },
    { name: 'probe17', hash: await hashPassword('probe17-password'), groups: ['probes'], tenant: 'globex', tokens: [] },
    { name: 'dave', hash: await hashPassword('dave-password'), groups: [], tenant: 'acme', tokens: [] },
  ]);
  fs.writeFileSync(
    path.join(dir, 'fluctuat.conf'),
    [
      'listen on 127.0.0.1 port 0 tls',
      'tls certificate "server.crt"',
      'tls key "server.key"',
      'tls ca "ca.crt"',
      'tls crl "ca.crl"',
      'tls client-certificate optional',
      'users file "users"',
      'default-access allow',
      'certificate subject "probe-17.eu" user probe17',
      'log audit "audit.log"',
      'log level debug',
      '',
    ].join('\n'),
  );
}

/** Wait (bounded) for a broker log line; `from` skips the lines logged before. */
const auditEntries = (dir: string, pred: (e: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> => auditEntry(path.join(dir, 'audit.log'), pred);

/** The fingerprint of the certificate a new connection is served (with probe17's certificate, never revoked here). */
function servedFingerprint(dir: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ...readPem(dir, 'probe-17.eu') }, () => {
      resolve(s.getPeerCertificate().fingerprint256);
      s.destroy();
    });
    s.on('error', reject);
  });
}

async function refusal(url: string, options: Parameters<typeof connect>[1]): Promise<FluctuatError> {
  return connect(url, { reconnect: false, ...options }).then(
    async (c) => {
      await c.close();
      return assert.fail('connected');
    },
    (err: FluctuatError) => err,
  );
}

for (const mode of ['privilege-separated', 'one process'] as const) {
  describe(`client certificates as identities (${mode})`, { skip: mode === 'privilege-separated' && !root ? 'privilege separation needs root' : false }, () => {
    const dir = tmpDir('fluctuat-identity-');
    let broker: RunningBroker;
    let url: string;

    before(async () => {
      await makePki(dir);
      // The unprivileged broker writes the audit log here; keys and users file stay 0600 (root's).
      fs.chmodSync(dir, 0o755);
      broker = await startBroker({ config: path.join(dir, 'fluctuat.conf'), storage: 'memory', args: mode === 'one process' ? ['--no-privsep'] : [] });
      url = `tls://127.0.0.1:${broker.port}`;
      if (mode === 'privilege-separated') await logged(broker, (l) => l.msg === 'privilege separation: broker running unprivileged');
    });
    after(async () => {
      await broker.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    test('a verified certificate logs in as its common name, with the users file\'s tenant; the audit log says "certificate"', async () => {
      const out = await sClient(dir, broker.port, 'alice', 'pub identity.test hello\nquit\n');
      assert.match(out, /^# \[I\] logged in as alice by client certificate \(tenant acme\)$/m);
      assert.match(out, /published identity\.test #1/);
      const entry = await auditEntries(dir, (e) => e.event === 'login' && e.user === 'alice');
      assert.equal(entry.method, 'certificate');
      assert.equal(entry.subject, 'alice');
      assert.equal(entry.tenant, 'acme');
      assert.equal(entry.tls, true);
    });

    test('"certificate subject ... user" maps a common name to another user', async () => {
      const out = await sClient(dir, broker.port, 'probe-17.eu', 'login probe17 probe17-password\nquit\n');
      assert.match(out, /logged in as probe17 by client certificate \(tenant globex\)/);
      assert.match(out, /-ERR BAD_ARGUMENTS already logged in as probe17/);
    });

    test('a certificate naming no user: CERT_USER_UNKNOWN, the connection stays and may log in with a password', async () => {
      const out = await sClient(dir, broker.port, 'bob', 'pub x y\nlogin dave dave-password\npub identity.dave hi\nquit\n');
      assert.match(out, /^-ERR CERT_USER_UNKNOWN client certificate "bob" names user "bob", who is not in the users file; log in with login or token$/m);
      assert.match(out, /-ERR AUTH_REQUIRED/);
      assert.match(out, /logged in as dave \(tenant acme\)/);
      assert.match(out, /published identity\.dave #1/);
      const failed = await auditEntries(dir, (e) => e.event === 'login-failed' && e.method === 'certificate');
      assert.equal(failed.user, 'bob');
      assert.equal(failed.reason, 'unknown user');
    });

    test('the client library, which has no login, is a user through its certificate', async () => {
      const a = await connect(url, { tls: tlsFiles(dir, 'alice'), reconnect: false });
      const p = await connect(url, { tls: tlsFiles(dir, 'probe-17.eu'), reconnect: false });
      try {
        // Tenants: alice (acme) and probe17 (globex) publish to the same name, and each sees its own.
        assert.equal((await a.publish('lib.shared', 'from acme')).offset, 1);
        assert.equal((await p.publish('lib.shared', 'from globex')).offset, 1);
      } finally {
        await a.close();
        await p.close();
      }
      const bob = await refusal(url, { tls: tlsFiles(dir, 'bob') });
      assert.equal(bob.code, 'CONNECTION_FAILED');
      assert.match(bob.message, /-ERR CERT_USER_UNKNOWN client certificate "bob"/);
    });

    test('a revoked certificate is refused with CERT_REFUSED, by openssl and by the library', async () => {
      const from = broker.logs.length;
      const out = await sClient(dir, broker.port, 'carol', 'ping\nquit\n');
      assert.doesNotMatch(out, /pong/);
      assert.match(out, /-ERR CERT_REFUSED client certificate refused: the certificate is revoked \(tls crl\) \(CERT_REVOKED\)/);
      const line = await logged(broker, (l) => String(l.msg).startsWith('tls client certificate refused'), from);
      assert.equal(line.reason, 'CERT_REVOKED');
      assert.equal(line.subject, 'carol');
      const audited = await auditEntries(dir, (e) => e.event === 'login-failed' && e.reason === 'CERT_REVOKED');
      assert.equal(audited.subject, 'carol');
      assert.equal(audited.method, 'certificate');
      const lib = await refusal(url, { tls: tlsFiles(dir, 'carol') });
      assert.match(lib.message, /CERT_REFUSED client certificate refused: the certificate is revoked/);
      assert.equal((lib.cause as FluctuatError).code, 'CERT_REFUSED');
    });

    test('SIGHUP: a new server certificate and CRL for new connections; established ones go on, but one whose certificate is now revoked is closed; bad files keep the old ones', async () => {
      const before = await servedFingerprint(dir, broker.port);
      const revokedNow = await connect(url, { tls: tlsFiles(dir, 'alice'), reconnect: false });
      const old = await connect(url, { tls: tlsFiles(dir, 'probe-17.eu'), reconnect: false });
      const closed = new Promise<void>((resolve) => {
        revokedNow.once('disconnect', () => resolve());
        revokedNow.once('close', () => resolve());
      });
      try {
        // A new server certificate (written aside, then renamed in, as a renewal would) and alice revoked.
        await genCert(dir, 'server', '--host', 'localhost', '--ip', '127.0.0.1', '--out', 'server-new');
        fs.renameSync(path.join(dir, 'server-new.crt'), path.join(dir, 'server.crt'));
        fs.renameSync(path.join(dir, 'server-new.key'), path.join(dir, 'server.key'));
        await genCert(dir, 'crl', '--revoke', path.join(dir, 'alice.crt'));
        let from = broker.logs.length;
        broker.proc.kill('SIGHUP');
        const reloaded = await logged(broker, (l) => l.msg === 'tls reloaded', from);
        assert.equal(reloaded.revoked, 2);
        const served = await servedFingerprint(dir, broker.port);
        assert.notEqual(served, before, 'new connections get the new certificate');
        assert.equal(served, reloaded.fingerprint256);
        const revoked = await refusal(url, { tls: tlsFiles(dir, 'alice') });
        assert.match(revoked.message, /the certificate is revoked/);
        // alice's connection from before the reload is closed, with the reason in the log and
        // the audit log; probe17's goes on.
        await closed;
        const dropped = await logged(broker, (l) => l.msg === 'disconnecting client' && l.code === 'CERT_REFUSED', from);
        assert.match(String(dropped.reason), /^client certificate [0-9A-F]+ revoked \(tls crl reloaded\); disconnected$/);
        const audited = await auditEntries(dir, (e) => e.event === 'disconnect' && String(e.reason).startsWith('CERT_REFUSED'));
        assert.match(String(audited.reason), /revoked/);
        await assert.rejects(revokedNow.publish('reload.old', 'gone'));
        assert.equal((await old.publish('reload.old', 'still here')).offset, 1);

        // Bad new files: a certificate that is not one. The previous context stays.
        fs.writeFileSync(path.join(dir, 'server.crt'), 'not a certificate\n');
        from = broker.logs.length;
        broker.proc.kill('SIGHUP');
        const failed = await logged(broker, (l) => String(l.msg).startsWith('tls reload failed'), from);
        assert.equal(failed.level, 50);
        assert.match(String(failed.msg), /keeping the previous certificates/);
        const still = await servedFingerprint(dir, broker.port);
        assert.equal(still, served);
        assert.equal((await old.publish('reload.old', 'and still')).offset, 2);
      } finally {
        await old.close();
        await revokedNow.close().catch(() => {});
      }
    });
  });
}

function readPem(dir: string, name: string): { ca: Buffer; cert: Buffer; key: Buffer } {
  return { ca: fs.readFileSync(path.join(dir, 'ca.crt')), cert: fs.readFileSync(path.join(dir, `${name}.crt`)), key: fs.readFileSync(path.join(dir, `${name}.key`)) };
}

describe('CRL files the broker refuses before it listens', () => {
  const dir = tmpDir('fluctuat-crl-');
  before(async () => {
    await genCert(dir, 'ca', '--name', 'CA one');
    await genCert(dir, 'server', '--host', 'localhost');
    await genCert(dir, 'client', '--name', 'x');
    fs.mkdirSync(path.join(dir, 'other'));
    await genCert(path.join(dir, 'other'), 'ca', '--name', 'CA two');
    await genCert(path.join(dir, 'other'), 'crl');
    fs.writeFileSync(path.join(dir, 'junk.crl'), 'not a CRL\n');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const serve = async (crl: string): Promise<{ code: number; stderr: string }> => {
    const conf = path.join(dir, 'crl.conf');
    fs.writeFileSync(conf, `listen on 127.0.0.1 port 0 tls\ntls certificate "server.crt"\ntls key "server.key"\ntls ca "ca.crt"\ntls crl "${crl}"\ntls client-certificate required\n`);
    try {
      await execFileP(process.execPath, [BIN, 'check-config', conf], { encoding: 'utf8' });
      return { code: 0, stderr: '' };
    } catch (err) {
      const e = err as { code: number; stderr: string };
      return { code: e.code, stderr: e.stderr };
    }
  };

  test('another CA\'s CRL, a file that is no CRL: file:line errors', async () => {
    const other = await serve('other/ca.crl');
    assert.equal(other.code, 1);
    assert.match(other.stderr, /crl\.conf:5:\d+: .*other\/ca\.crl: the CRL is not issued by the tls ca/);
    const junk = await serve('junk.crl');
    assert.match(junk.stderr, /junk\.crl: not a PEM certificate revocation list/);
  });

  test('serve --tls-crl: sets the CRL of the --config TLS settings; refused without them, or when it is not the CA\'s', async () => {
    const conf = path.join(dir, 'no-crl.conf');
    fs.writeFileSync(conf, 'listen on 127.0.0.1 port 0 tls\ntls certificate "server.crt"\ntls key "server.key"\ntls ca "ca.crt"\ntls client-certificate required\n');
    const serve = async (args: string[]): Promise<{ code: number; stderr: string }> =>
      execFileP(process.execPath, [BIN, 'serve', '--storage', 'memory', '--no-privsep', ...args], { encoding: 'utf8' }).then(
        () => ({ code: 0, stderr: '' }),
        (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
      );
    const alone = await serve(['--tls-crl', path.join(dir, 'other', 'ca.crl')]);
    assert.equal(alone.code, 2);
    assert.match(alone.stderr, /--tls-crl needs a TLS listener/);
    const foreign = await serve(['--config', conf, '--tls-crl', path.join(dir, 'other', 'ca.crl')]);
    assert.equal(foreign.code, 69);
    assert.match(foreign.stderr, /cannot start: the tls crl .*other\/ca\.crl: the CRL is not issued by the tls ca/);
    await genCert(dir, 'crl', '--revoke', path.join(dir, 'x.crt'), '--out', path.join(dir, 'x-revoked.crl'));
    const broker = await startBroker({ config: conf, storage: 'memory', args: ['--no-privsep', '--tls-crl', path.join(dir, 'x-revoked.crl')] });
    try {
      const out = await sClient(dir, broker.port, 'x', 'ping\nquit\n');
      assert.match(out, /-ERR CERT_REFUSED client certificate refused: the certificate is revoked/);
    } finally {
      await broker.dispose();
    }
  });

  test('gen-cert crl: refuses another CA\'s certificate and a bad serial; keeps earlier revocations and reasons; openssl reads it', async () => {
    await assert.rejects(genCert(dir, 'crl', '--revoke', path.join(dir, 'other', 'ca.crt')), /is not issued by the CA "CN=CA one"/);
    await assert.rejects(genCert(dir, 'crl', '--serial', 'xyz'), /"xyz" is not a hexadecimal serial number/);
    await genCert(dir, 'crl', '--serial', '0A:1B', '--reason', 'keyCompromise', '--days', '2');
    // A second run keeps the first one's revocation, and its reason.
    const [crl] = await genCert(dir, 'crl', '--serial', '2C');
    const { stdout } = await execFileP('openssl', ['crl', '-in', crl!, '-noout', '-text'], { encoding: 'utf8' });
    assert.match(stdout, /Serial Number: 0A1B\s+Revocation Date: .*\s+CRL entry extensions:\s+X509v3 CRL Reason Code:\s+Key Compromise/);
    assert.match(stdout, /Serial Number: 2C/);
    // openssl itself reads a revocation made by gen-cert (x-revoked.crl, from the test above).
    const verify = (cert: string): Promise<string> =>
      execFileP('openssl', ['verify', '-crl_check', '-CRLfile', path.join(dir, 'x-revoked.crl'), '-CAfile', path.join(dir, 'ca.crt'), path.join(dir, cert)], { encoding: 'utf8' }).then(
        (r) => r.stdout,
        (e: { stdout: string; stderr: string }) => e.stdout + e.stderr,
      );
    assert.match(await verify('x.crt'), /certificate revoked/);
    assert.match(await verify('server.crt'), /server\.crt: OK/);
    assert.match((await serve('ca.crl')).stderr, /^$/);
  });
});
