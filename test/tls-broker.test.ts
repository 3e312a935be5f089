/**
 * TLS listeners of a real broker process, with real clients: openssl s_client, socat
 * OPENSSL:, and the client library; and the refusals: no certificate, another CA's, an
 * expired one, a client that does not trust the broker.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createCa, createClientCert, createServerCert, loadCa, type Pem } from '../src/certs/generate.js';
import { connect } from '../src/client/index.js';
import { FluctuatError } from '../src/client/errors.js';
import { BIN, startBroker, tmpDir, type RunningBroker } from './helpers/broker.js';

const dir = tmpDir('fluctuat-tls-');
const file = (name: string): string => path.join(dir, name);

function write(name: string, pem: Pem): void {
  fs.writeFileSync(file(`${name}.crt`), pem.cert);
  fs.writeFileSync(file(`${name}.key`), pem.key, { mode: 0o600 });
}

async function makePki(): Promise<void> {
  const ca = await createCa({ commonName: 'fluctuat test CA' });
  const other = await createCa({ commonName: 'another CA' });
  const signer = await loadCa(ca);
  write('ca', ca);
  write('other-ca', other);
  write('server', await createServerCert(signer, { commonName: 'localhost', ipAddresses: ['127.0.0.1'] }));
  write('alice', await createClientCert(signer, { commonName: 'alice' }));
  write('old', await createClientCert(signer, { commonName: 'old', notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2020-02-01T00:00:00Z') }));
  write('mallory', await createClientCert(await loadCa(other), { commonName: 'mallory' }));
}

function configFile(name: string, mode: 'optional' | 'required'): string {
  const text = [
    '# written by tls-broker.test.ts',
    'listen on 127.0.0.1 port 0 tls',
    'listen on 127.0.0.1 port 0',
    'tls certificate "server.crt"',
    'tls key "server.key"',
    'tls ca "ca.crt"',
    `tls client-certificate ${mode}`,
    // Long, so that a test that sees a failed handshake logged knows it was not the timeout.
    'timeout handshake 60s',
    'log level debug',
  ].join('\n');
  fs.writeFileSync(file(name), `${text}\n`);
  return file(name);
}

/** Run a command with `input` on stdin; resolve with everything it printed, whatever its exit. */
function run(cmd: string, args: string[], input: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    p.stdout.on('data', (d: Buffer) => (output += d.toString()));
    p.stderr.on('data', (d: Buffer) => (output += d.toString()));
    p.on('error', reject);
    // A client that hangs would hang the suite: the broker closes after `quit`, so this only guards bugs.
    const guard = setTimeout(() => p.kill('SIGKILL'), 20_000);
    p.on('close', (code) => {
      clearTimeout(guard);
      resolve({ code, output });
    });
    // A client refused during the handshake may exit before it reads its input: EPIPE is expected then.
    p.stdin.on('error', () => {});
    p.stdin.end(input);
  });
}

function sClient(port: number, cert?: string): Promise<{ code: number | null; output: string }> {
  const args = ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', 'ca.crt', '-verify_ip', '127.0.0.1', '-verify_return_error', '-quiet'];
  if (cert) args.push('-cert', `${cert}.crt`, '-key', `${cert}.key`);
  return run('openssl', args, 'ping\npub tls.test hello over tls\nquit\n');
}

/** Wait (bounded) until the broker has logged a line matching `pred`. */
async function logged(broker: RunningBroker, pred: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  for (let i = 0; i < 500; i++) {
    const line = broker.logs.find(pred);
    if (line) return line;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`no such log line; logs: ${JSON.stringify(broker.logs.slice(-5))}`);
}

function ports(broker: RunningBroker): { tls: number; plain: number } {
  const listening = broker.logs.filter((l) => l.msg === 'listening');
  return { tls: listening.find((l) => l.tls === true)!.port as number, plain: listening.find((l) => l.tls === undefined)!.port as number };
}

/** The local port of an openssl or socat connection is unknown here: refusals are found by order. */
function refusals(broker: RunningBroker): Record<string, unknown>[] {
  return broker.logs.filter((l) => String(l.msg ?? '').startsWith('tls client certificate refused'));
}

async function nextRefusal(broker: RunningBroker, before: number): Promise<Record<string, unknown>> {
  return logged(broker, (l) => refusals(broker).indexOf(l) >= before);
}

before(makePki);
after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('a broker with client certificates required', () => {
  let broker: RunningBroker;
  let port: { tls: number; plain: number };

  before(async () => {
    broker = await startBroker({ config: configFile('required.conf', 'required'), storage: 'memory', listeners: 2 });
    port = ports(broker);
  });
  after(() => broker.dispose());

  test('openssl s_client with a client certificate: a human session over TLS, the subject as peer identity', async () => {
    const { output } = await sClient(port.tls, 'alice');
    assert.match(output, /verify return:1/);
    assert.match(output, /^pong \S+$/m);
    assert.match(output, /published tls\.test #\d+/);
    const accepted = await logged(broker, (l) => l.msg === 'tls client certificate accepted' && l.subject === 'alice');
    assert.equal(accepted.issuer, 'CN=fluctuat test CA');
  });

  test('socat OPENSSL: with a client certificate', async () => {
    const { output } = await run('socat', ['-', `OPENSSL:127.0.0.1:${port.tls},cafile=ca.crt,cert=alice.crt,key=alice.key`], 'ping\nquit\n');
    assert.match(output, /^pong \S+$/m);
    assert.match(output, /# \[I\] bye/);
  });

  test('the client library over tls:// with files, and fluctuats:// with PEM contents', async () => {
    const a = await connect(`tls://127.0.0.1:${port.tls}`, { tls: { caFile: file('ca.crt'), certFile: file('alice.crt'), keyFile: file('alice.key') }, reconnect: false });
    const b = await connect(`fluctuats://127.0.0.1:${port.tls}`, {
      tls: { ca: fs.readFileSync(file('ca.crt')), cert: fs.readFileSync(file('alice.crt'), 'utf8'), key: fs.readFileSync(file('alice.key')) },
      reconnect: false,
    });
    try {
      const got = new Promise<string>((resolve) => b.subscribe('tls.lib', (m) => resolve(m.text)));
      await b.ping(); // the subscription is in place
      const { offset } = await a.publish('tls.lib', 'across TLS');
      assert.ok(offset >= 1);
      assert.equal(await got, 'across TLS');
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('the plaintext listener beside it still works', async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const s = net.connect(port.plain, '127.0.0.1', () => s.end('ping\n'));
      let text = '';
      s.on('data', (d) => (text += d.toString()));
      s.on('end', () => resolve(text));
      s.on('error', reject);
    });
    assert.match(answer, /^pong /m);
  });

  test('plaintext on the TLS port: the handshake fails, and the log says so', async () => {
    const closed = await new Promise<string>((resolve, reject) => {
      const s = net.connect(port.tls, '127.0.0.1', () => s.write('ping\n'));
      let text = '';
      s.on('data', (d) => (text += d.toString('latin1')));
      s.on('close', () => resolve(text));
      s.on('error', () => resolve(text));
      s.setTimeout(20_000, () => reject(new Error('the broker kept a plaintext client on its TLS port')));
    });
    assert.doesNotMatch(closed, /pong/);
    const line = await logged(broker, (l) => l.msg === 'tls handshake failed');
    assert.equal(line.address, '127.0.0.1');
    assert.ok(typeof line.reason === 'string' && line.reason.length > 0);
  });

  test('no client certificate: refused, with a log line and an error line', async () => {
    const n = refusals(broker).length;
    const { output } = await sClient(port.tls);
    assert.doesNotMatch(output, /pong/);
    assert.match(output, /-ERR CERT_REFUSED client certificate refused: the client sent no certificate and one is required/);
    const line = await nextRefusal(broker, n);
    assert.equal(line.reason, 'NO_CERTIFICATE');
    assert.equal(line.level, 40);
    assert.equal(line.address, '127.0.0.1');
  });

  test('a certificate from another CA: refused, the log names its subject and issuer', async () => {
    const n = refusals(broker).length;
    const { output } = await run('socat', ['-', `OPENSSL:127.0.0.1:${port.tls},cafile=ca.crt,cert=mallory.crt,key=mallory.key`], 'ping\nquit\n');
    assert.doesNotMatch(output, /pong/);
    assert.match(output, /CERT_REFUSED client certificate refused: the certificate is not signed by the configured CA/);
    const line = await nextRefusal(broker, n);
    assert.match(String(line.reason), /^UNABLE_TO_(VERIFY_LEAF_SIGNATURE|GET_ISSUER_CERT)/);
    assert.equal(line.subject, 'mallory');
    assert.equal(line.issuer, 'CN=another CA');
  });

  test('an expired certificate: refused with CERT_HAS_EXPIRED and its end date', async () => {
    const n = refusals(broker).length;
    const { output } = await sClient(port.tls, 'old');
    assert.doesNotMatch(output, /pong/);
    const line = await nextRefusal(broker, n);
    assert.equal(line.reason, 'CERT_HAS_EXPIRED');
    assert.equal(line.subject, 'old');
    assert.equal(line.validTo, '2020-02-01T00:00:00.000Z');
    assert.match(String(line.msg), /the certificate has expired/);
  });

  test('the client library: refused certificates and an untrusted broker fail the connection with the reason', async () => {
    const attempt = (options: Parameters<typeof connect>[1]): Promise<FluctuatError> =>
      connect(`tls://127.0.0.1:${port.tls}`, { reconnect: false, ...options }).then(
        async (c) => {
          await c.close();
          return assert.fail('connected');
        },
        (err: FluctuatError) => err,
      );
    const none = await attempt({ tls: { caFile: file('ca.crt') } });
    assert.equal(none.code, 'CONNECTION_FAILED');
    assert.match(none.message, /broker refused the session: -ERR CERT_REFUSED client certificate refused: the client sent no certificate/);
    const expired = await attempt({ tls: { caFile: file('ca.crt'), certFile: file('old.crt'), keyFile: file('old.key') } });
    assert.match(expired.message, /client certificate refused: the certificate has expired/);
    // The client does not trust the broker's CA: TLS fails on the client's side, which leaves
    // mid-handshake; the broker lets go of the socket at once (not at the handshake timeout).
    const failed = broker.logs.filter((l) => l.msg === 'tls handshake failed').length;
    const untrusted = await attempt({ tls: { caFile: file('other-ca.crt'), certFile: file('alice.crt'), keyFile: file('alice.key') } });
    assert.equal(untrusted.code, 'CONNECTION_FAILED');
    assert.match(untrusted.message, /over TLS: .*(certificate|verify)/i);
    await logged(broker, (l) => l.msg === 'tls handshake failed' && broker.logs.filter((x) => x.msg === 'tls handshake failed').indexOf(l) >= failed);
    // A TLS client on the plaintext port gets nowhere.
    const wrongPort = await connect(`tls://127.0.0.1:${port.plain}`, { reconnect: false, connectTimeoutMs: 5000, tls: { caFile: file('ca.crt') } }).then(
      () => assert.fail('connected'),
      (err: FluctuatError) => err,
    );
    assert.equal(wrongPort.code, 'CONNECTION_FAILED');
  });
});

describe('a broker with client certificates optional', () => {
  let broker: RunningBroker;
  let port: { tls: number; plain: number };

  before(async () => {
    broker = await startBroker({ config: configFile('optional.conf', 'optional'), storage: 'memory', listeners: 2 });
    port = ports(broker);
  });
  after(() => broker.dispose());

  test('no certificate is let in; a valid one gives an identity; a bad one is still refused', async () => {
    const anonymous = await sClient(port.tls);
    assert.match(anonymous.output, /^pong /m);
    const alice = await sClient(port.tls, 'alice');
    assert.match(alice.output, /^pong /m);
    await logged(broker, (l) => l.msg === 'tls client certificate accepted' && l.subject === 'alice');
    const n = refusals(broker).length;
    const old = await sClient(port.tls, 'old');
    assert.doesNotMatch(old.output, /pong/);
    assert.equal((await nextRefusal(broker, n)).reason, 'CERT_HAS_EXPIRED');
  });
});

test('serve --config refuses a TLS listener whose key does not match, before listening', async () => {
  fs.writeFileSync(file('mismatch.conf'), 'listen on 127.0.0.1 port 0 tls\ntls certificate "server.crt"\ntls key "alice.key"\n');
  const res = await run(process.execPath, [BIN, 'serve', '--config', file('mismatch.conf'), '--storage', 'memory'], '');
  assert.equal(res.code, 2);
  assert.match(res.output, /mismatch\.conf:3:9: the tls key .*alice\.key does not belong to the tls certificate .*server\.crt/);
});
