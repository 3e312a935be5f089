/**
 * OCSP checking of client certificates against real processes: `openssl ocsp` responders (one
 * signing as the CA, one with a delegated responder certificate from `fluctuat gen-cert
 * ocsp-responder`, one with a foreign key), each behind a counting proxy on 127.0.0.1, and real
 * brokers with a TLS listener (privilege-separated when the suite runs as root), reached with
 * openssl s_client, plain node:tls sockets and the client library. Certificates come from
 * `fluctuat gen-cert` with `--ocsp-url`, the responders' CA database is openssl's index.txt.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { createClientCert, loadCa } from '../src/certs/generate.js';
import { connect } from '../src/client/index.js';
import type { FluctuatError } from '../src/client/errors.js';
import { BIN, startBroker, tmpDir, type RunningBroker } from './helpers/broker.js';
import { closedPort, CountingProxy, indexLine, OcspResponder, signer } from './helpers/ocsp.js';
import { auditEntry, genCert as genCertIn, logged, sClient as sClientIn, tlsFiles as tlsFilesIn } from './helpers/tls.js';

const execFileP = promisify(execFile);
const dir = tmpDir('fluctuat-ocsp-');
const file = (name: string): string => path.join(dir, name);
const REVOKED_AT = new Date('2026-01-02T03:04:05Z');

/** `fluctuat gen-cert ...` in the test's directory. */
const genCert = (...args: string[]): Promise<string[]> => genCertIn(dir, ...args);

/** The responders, each behind a proxy whose port is in the certificates' AIA. */
let viaCa: CountingProxy;
let viaDelegate: CountingProxy;
let viaForeign: CountingProxy;
let byCa: OcspResponder;
let byDelegate: OcspResponder;
let byForeign: OcspResponder;
let downUrl: string;
/** A responder that accepts connections and never answers. */
let mute: net.Server;
const muted = new Set<net.Socket>();
/** Who is revoked in index.txt (the others listed are good; carol is not listed: unknown). */
const revoked = new Set(['bob']);
const LISTED = ['alice', 'bob', 'dave', 'erin', 'frank', 'gina', 'hank', 'ivan', 'kate', 'lost'];

function writeIndex(): void {
  const lines = LISTED.map((n) => indexLine(fs.readFileSync(file(`${n}.crt`)), revoked.has(n) ? { at: REVOKED_AT, reason: 'keyCompromise' } : undefined));
  // Renamed into place: a responder starting never reads half a file.
  fs.writeFileSync(file('index.txt.tmp'), lines.join(''));
  fs.renameSync(file('index.txt.tmp'), file('index.txt'));
}

/** Revoke in the CA database, and restart the CA's responder (openssl ocsp reads it at start only). */
async function revoke(name: string): Promise<void> {
  revoked.add(name);
  writeIndex();
  await byCa.stop();
  byCa = await OcspResponder.start(dir, signer(dir, 'ca'));
  viaCa.target = byCa.port;
}

async function makePki(): Promise<void> {
  viaCa = await CountingProxy.start(undefined);
  viaDelegate = await CountingProxy.start(undefined);
  viaForeign = await CountingProxy.start(undefined);
  downUrl = `http://127.0.0.1:${await closedPort()}`;
  mute = net.createServer((s) => {
    muted.add(s);
    s.on('error', () => {});
    s.on('close', () => muted.delete(s));
  });
  await new Promise<void>((resolve) => mute.listen(0, '127.0.0.1', resolve));
  await genCert('ca', '--name', 'OCSP test CA');
  await genCert('server', '--host', 'localhost', '--ip', '127.0.0.1');
  assert.deepEqual(await genCert('ocsp-responder'), [file('ocsp.crt'), file('ocsp.key')]);
  await genCert('client', '--name', 'alice', '--ocsp-url', viaCa.url);
  fs.mkdirSync(file('other'));
  await execFileP(process.execPath, [BIN, 'gen-cert', 'ca', '--dir', file('other'), '--name', 'foreign CA']);
  // The others through the library, which gen-cert runs: quicker than a process each.
  const ca = await loadCa({ cert: fs.readFileSync(file('ca.crt'), 'utf8'), key: fs.readFileSync(file('ca.key'), 'utf8') });
  const aia: Record<string, string> = { bob: viaCa.url, carol: viaCa.url, dave: viaCa.url, gina: viaCa.url, hank: viaCa.url, kate: viaCa.url, erin: viaDelegate.url, frank: viaForeign.url, ivan: downUrl, lost: downUrl, mute: `http://127.0.0.1:${(mute.address() as net.AddressInfo).port}` };
  for (const [name, url] of Object.entries(aia)) {
    const pem = await createClientCert(ca, { commonName: name, ocspUrl: url });
    fs.writeFileSync(file(`${name}.crt`), pem.cert);
    fs.writeFileSync(file(`${name}.key`), pem.key, { mode: 0o600 });
  }
  writeIndex();
  byCa = await OcspResponder.start(dir, signer(dir, 'ca'));
  byDelegate = await OcspResponder.start(dir, signer(dir, 'ocsp'));
  byForeign = await OcspResponder.start(dir, signer(file('other'), 'ca'));
  viaCa.target = byCa.port;
  viaDelegate.target = byDelegate.port;
  viaForeign.target = byForeign.port;
  // The unprivileged broker writes the audit log here.
  fs.chmodSync(dir, 0o755);
}

function configFile(name: string, ocsp: string[]): string {
  const text = [
    'listen on 127.0.0.1 port 0 tls',
    'tls certificate "server.crt"',
    'tls key "server.key"',
    'tls ca "ca.crt"',
    'tls client-certificate required',
    ...ocsp,
    `log audit "${name}.audit"`,
    'log level debug',
  ].join('\n');
  fs.writeFileSync(file(`${name}.conf`), `${text}\n`);
  return file(`${name}.conf`);
}

/** openssl s_client with a client certificate: everything it printed. */
const sClient = (port: number, name: string, input: string): Promise<string> => sClientIn(dir, port, name, input);

/** A TLS connection with `name`'s certificate that collects the lines the broker sends. */
class Lines {
  readonly lines: string[] = [];
  readonly closed: Promise<void>;
  private buffer = '';

  private constructor(readonly socket: tls.TLSSocket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.buffer += d;
      const parts = this.buffer.split('\n');
      this.buffer = parts.pop()!;
      this.lines.push(...parts);
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  static open(port: number, name: string): Promise<Lines> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(file('ca.crt')), cert: fs.readFileSync(file(`${name}.crt`)), key: fs.readFileSync(file(`${name}.key`)) }, () => resolve(new Lines(socket)));
      socket.once('error', reject);
    });
  }

  /** Wait (bounded) for a line matching `re` (the `nth` one). */
  async waitFor(re: RegExp, nth = 1): Promise<string> {
    for (let i = 0; i < 500; i++) {
      const line = this.lines.filter((l) => re.test(l))[nth - 1];
      if (line !== undefined) return line;
      await new Promise((r) => setTimeout(r, 20));
    }
    return assert.fail(`no line like ${re}; got ${JSON.stringify(this.lines)}`);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Wait (bounded) for a broker log line; `from` skips the lines logged before. */
const audited = (name: string, pred: (e: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> => auditEntry(file(`${name}.audit`), pred);

const tlsFiles = (name: string): { caFile: string; certFile: string; keyFile: string } => tlsFilesIn(dir, name);

async function refusal(port: number, name: string): Promise<FluctuatError> {
  return connect(`tls://127.0.0.1:${port}`, { tls: tlsFiles(name), reconnect: false }).then(
    async (c) => {
      await c.close();
      return assert.fail(`${name} was let in`);
    },
    (err: FluctuatError) => err,
  );
}

/** One message published and received over TLS by `name`'s certificate. */
async function roundTrip(port: number, name: string, channel: string): Promise<void> {
  const c = await connect(`tls://127.0.0.1:${port}`, { tls: tlsFiles(name), reconnect: false });
  try {
    const got = new Promise<string>((resolve) => c.subscribe(channel, (m) => resolve(m.text), { from: 'beginning' }));
    await c.publish(channel, `hello from ${name}`);
    assert.equal(await got, `hello from ${name}`);
  } finally {
    await c.close();
  }
}

const refusedLine = (name: string) => (l: Record<string, unknown>) => String(l.msg).startsWith('tls client certificate refused') && l.subject === name;

before(makePki);
after(async () => {
  for (const r of [byCa, byDelegate, byForeign]) await r?.stop();
  for (const p of [viaCa, viaDelegate, viaForeign]) await p?.close();
  for (const s of muted) s.destroy();
  mute?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('serve --tls-ocsp refuse: turns OCSP on for the --config TLS settings; refused without them', async () => {
  const alone = spawnSync(process.execPath, [BIN, 'serve', '--storage', 'memory', '--no-privsep', '--tls-ocsp', 'refuse'], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(alone.status, 2);
  assert.match(alone.stderr, /--tls-ocsp needs a TLS listener/);
  const bad = spawnSync(process.execPath, [BIN, 'serve', '--tls-ocsp', 'maybe'], { encoding: 'utf8', timeout: 30_000 });
  assert.match(bad.stderr, /Allowed choices are refuse, accept/);
  const broker = await startBroker({ config: configFile('flag', []), storage: 'memory', args: ['--no-privsep', '--tls-ocsp', 'refuse'] });
  try {
    await roundTrip(broker.port, 'alice', 'ocsp.flag');
    const out = await sClient(broker.port, 'bob', 'ping\nquit\n');
    assert.match(out, /^-ERR CERT_REFUSED client certificate refused: the certificate is revoked \(ocsp\) \(OCSP_REVOKED\)$/m);
  } finally {
    await broker.dispose();
  }
});

describe('tls ocsp on, answers from the certificates\' responders, on-failure refuse', () => {
  let broker: RunningBroker;

  before(async () => {
    broker = await startBroker({ config: configFile('main', ['tls ocsp on']), storage: 'memory' });
  });
  after(() => broker.dispose());

  test('a good certificate, answered by the CA: let in, and messages flow', async () => {
    const from = broker.logs.length;
    await roundTrip(broker.port, 'alice', 'ocsp.alice');
    const accepted = await logged(broker, (l) => l.msg === 'tls client certificate accepted' && l.subject === 'alice', from);
    assert.equal(accepted.ocspStatus, 'good');
    assert.equal(accepted.ocspSigner, 'CA');
    assert.equal(accepted.ocspResponder, `${viaCa.url}/`);
  });

  test('a revoked certificate: refused with CERT_REFUSED ... (OCSP_REVOKED), a warn line and a login-failed audit entry', async () => {
    const from = broker.logs.length;
    const out = await sClient(broker.port, 'bob', 'ping\nquit\n');
    assert.match(out, /^-ERR CERT_REFUSED client certificate refused: the certificate is revoked \(ocsp\) \(OCSP_REVOKED\)$/m);
    assert.doesNotMatch(out, /pong/);
    const line = await logged(broker, refusedLine('bob'), from);
    assert.equal(line.level, 40);
    assert.equal(line.reason, 'OCSP_REVOKED');
    assert.equal(line.revokedAt, REVOKED_AT.toISOString());
    assert.equal(line.revocationReason, 'keyCompromise');
    const entry = await audited('main', (e) => e.event === 'login-failed' && e.subject === 'bob');
    assert.equal(entry.reason, 'OCSP_REVOKED');
    assert.equal(entry.method, 'certificate');
    const lib = await refusal(broker.port, 'bob');
    assert.match(lib.message, /CERT_REFUSED client certificate refused: the certificate is revoked \(ocsp\)/);
  });

  test('a certificate the responder does not know: refused with OCSP_UNKNOWN', async () => {
    const lines = await Lines.open(broker.port, 'carol');
    assert.equal(await lines.waitFor(/^-ERR/), '-ERR CERT_REFUSED client certificate refused: the OCSP responder does not know the certificate (status unknown) (OCSP_UNKNOWN)');
    await lines.closed;
  });

  test('a delegated responder certificate (gen-cert ocsp-responder) signs good answers', async () => {
    const from = broker.logs.length;
    await roundTrip(broker.port, 'erin', 'ocsp.erin');
    const accepted = await logged(broker, (l) => l.msg === 'tls client certificate accepted' && l.subject === 'erin', from);
    assert.equal(accepted.ocspSigner, 'CN=fluctuat OCSP responder');
  });

  test('an answer signed by a foreign key: refused with OCSP_INVALID, saying why', async () => {
    const lines = await Lines.open(broker.port, 'frank');
    assert.equal(
      await lines.waitFor(/^-ERR/),
      '-ERR CERT_REFUSED client certificate refused: its revocation status could not be checked: the OCSP response is signed by "CN=foreign CA", whose certificate the certificate\'s CA ("CN=OCSP test CA") did not issue (OCSP_INVALID)',
    );
    await lines.closed;
  });

  test('the cache: many connections of one certificate, at once and one after another, cost the responder one request', async () => {
    const before = viaCa.connections;
    const first = await Promise.all(Array.from({ length: 4 }, () => Lines.open(broker.port, 'hank')));
    for (const c of first) c.socket.write('ping\n');
    await Promise.all(first.map((c) => c.waitFor(/^pong /)));
    for (let i = 0; i < 3; i++) {
      const c = await Lines.open(broker.port, 'hank');
      c.socket.write('ping\n');
      await c.waitFor(/^pong /);
      c.close();
    }
    assert.equal(viaCa.connections - before, 1);
    for (const c of first) c.close();
  });

  test('SIGHUP: a connection whose certificate the responder now says is revoked is closed with CERT_REFUSED; others stay', async () => {
    const dave = await Lines.open(broker.port, 'dave');
    const alice = await Lines.open(broker.port, 'alice');
    for (const c of [dave, alice]) c.socket.write('ping\n');
    await Promise.all([dave.waitFor(/^pong /), alice.waitFor(/^pong /)]);
    await revoke('dave');
    const from = broker.logs.length;
    broker.proc.kill('SIGHUP');
    const serial = (await execFileP('openssl', ['x509', '-in', file('dave.crt'), '-noout', '-serial'], { encoding: 'utf8' })).stdout.trim().replace(/^serial=/, '');
    assert.equal(await dave.waitFor(/^-ERR/), `-ERR CERT_REFUSED client certificate ${serial} revoked (ocsp); disconnected`);
    await dave.closed;
    const rechecked = await logged(broker, (l) => l.msg === 'ocsp re-checked', from);
    assert.ok((rechecked.revoked as number) >= 1);
    const dropped = await logged(broker, (l) => l.msg === 'disconnecting client' && l.code === 'CERT_REFUSED', from);
    assert.equal(dropped.reason, `client certificate ${serial} revoked (ocsp); disconnected`);
    const entry = await audited('main', (e) => e.event === 'disconnect' && String(e.reason).includes(serial));
    assert.match(String(entry.reason), /^CERT_REFUSED/);
    // alice stays; dave cannot come back.
    alice.socket.write('ping\n');
    await alice.waitFor(/^pong /, 2);
    assert.match((await refusal(broker.port, 'dave')).message, /the certificate is revoked \(ocsp\)/);
    alice.close();
  });
});

describe('tls ocsp responder overrides the certificates\' URL; on-failure refuse when it is down', () => {
  let broker: RunningBroker;
  let override: CountingProxy;

  before(async () => {
    override = await CountingProxy.start(byCa.port);
    broker = await startBroker({ config: configFile('override', ['tls ocsp on', `tls ocsp responder "${override.url}"`, 'tls ocsp on-failure refuse', 'tls ocsp timeout 5s']), storage: 'memory', args: ['--no-privsep'] });
  });
  after(async () => {
    await broker.dispose();
    await override.close();
  });

  test('ivan\'s certificate names a responder that is down, the configured one answers: let in', async () => {
    override.target = byCa.port;
    await roundTrip(broker.port, 'ivan', 'ocsp.ivan');
    assert.equal(override.connections, 1);
  });

  test('the responder down: a certificate already answered for is let in from the cache, a new one is refused with OCSP_UNAVAILABLE', async () => {
    const url = `${override.url}/`;
    await override.close(); // nothing listens on its port any more
    await roundTrip(broker.port, 'ivan', 'ocsp.ivan2');
    const from = broker.logs.length;
    const lines = await Lines.open(broker.port, 'kate');
    assert.equal(await lines.waitFor(/^-ERR/), '-ERR CERT_REFUSED client certificate refused: its revocation status could not be checked: the OCSP responder could not be reached (ECONNREFUSED) (OCSP_UNAVAILABLE)');
    await lines.closed;
    const line = await logged(broker, refusedLine('kate'), from);
    assert.equal(line.reason, 'OCSP_UNAVAILABLE');
    assert.equal(line.ocspResponder, url);
  });
});

describe('on-failure accept, and a short cache: re-checked when the answer expires', () => {
  let broker: RunningBroker;

  before(async () => {
    broker = await startBroker({ config: configFile('accept', ['tls ocsp on', 'tls ocsp on-failure accept', 'tls ocsp cache 1s', 'tls ocsp timeout 1s']), storage: 'memory', args: ['--no-privsep'] });
  });
  after(() => broker.dispose());

  test('a responder that is down: let in, with a warning in the log, and messages flow', async () => {
    const from = broker.logs.length;
    await roundTrip(broker.port, 'lost', 'ocsp.lost');
    const warned = await logged(broker, (l) => String(l.msg).startsWith('tls client certificate accepted with a warning') && l.subject === 'lost', from);
    assert.equal(warned.level, 40);
    assert.equal(warned.reason, 'OCSP_UNAVAILABLE');
    assert.equal(warned.msg, 'tls client certificate accepted with a warning: its revocation status could not be checked: the OCSP responder could not be reached (ECONNREFUSED)');
  });

  test('a responder that never answers: the check ends at the timeout; a client that left meanwhile is let go, and the broker goes on', async () => {
    const from = broker.logs.length;
    const c = await Lines.open(broker.port, 'mute');
    c.socket.end(); // leaves, having sent nothing
    await c.closed;
    await logged(broker, (l) => l.msg === 'tls client left during the certificate check' && l.subject === 'mute', from);
    const quiet = await Lines.open(broker.port, 'mute');
    quiet.socket.write('ping\n');
    // Answered once the check is over (timed out, and accepted by the policy).
    await quiet.waitFor(/^pong /);
    const warned = await logged(broker, (l) => String(l.msg).startsWith('tls client certificate accepted with a warning') && l.subject === 'mute', from);
    // The first check's timeout, shared, or (once it is over) the responder's hold after it.
    assert.match(String(warned.msg), /the OCSP responder did not answer within 1000 ms(; not asked again for \d s)?$/);
    quiet.close();
  });

  test('a revoked certificate is refused all the same', async () => {
    assert.match((await refusal(broker.port, 'bob')).message, /the certificate is revoked \(ocsp\) \(OCSP_REVOKED\)/);
  });

  test('an open connection is closed when its expired answer, asked for again, says revoked (no SIGHUP)', async () => {
    const gina = await Lines.open(broker.port, 'gina');
    gina.socket.write('ping\n');
    await gina.waitFor(/^pong /);
    await revoke('gina');
    assert.match(await gina.waitFor(/^-ERR/), /^-ERR CERT_REFUSED client certificate [0-9A-F]+ revoked \(ocsp\); disconnected$/);
    await gina.closed;
  });
});

test('gen-cert: --ocsp-url puts the responder in authorityInfoAccess, ocsp-responder is for OCSP signing only; a URL that is not http is refused', async () => {
  const text = async (name: string): Promise<string> => (await execFileP('openssl', ['x509', '-in', file(`${name}.crt`), '-noout', '-text'], { encoding: 'utf8' })).stdout;
  assert.match(await text('alice'), new RegExp(`Authority Information Access: \\s+OCSP - URI:${viaCa.url}/`));
  const responder = await text('ocsp');
  assert.match(responder, /Issuer: CN ?= ?OCSP test CA/);
  assert.match(responder, /X509v3 Extended Key Usage: \s+OCSP Signing\s/);
  assert.match(responder, /OCSP No Check/);
  await assert.rejects(genCert('client', '--name', 'nobody', '--ocsp-url', 'ldap://ocsp.example.org'), /"ldap:\/\/ocsp\.example\.org" is not an http:\/\/ or https:\/\/ URL/);
});

describe('check-config', () => {
  const check = async (name: string, lines: string[]): Promise<{ code: number; stderr: string }> => {
    const conf = file(`${name}.conf`);
    fs.writeFileSync(conf, ['listen on 127.0.0.1 port 0 tls', 'tls certificate "server.crt"', 'tls key "server.key"', 'tls ca "ca.crt"', ...lines, ''].join('\n'));
    return execFileP(process.execPath, [BIN, 'check-config', conf], { encoding: 'utf8' }).then(
      (r) => ({ code: 0, stderr: r.stderr }),
      (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
    );
  };

  test('OCSP without client certificates, a bad responder URL: file:line:column errors; a good file passes', async () => {
    const none = await check('ocsp-none', ['tls ocsp on']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /ocsp-none\.conf:5:5: "tls ocsp on" checks client certificates, but "tls client-certificate" is none \(the default\): set tls client-certificate optional or required/);
    const url = await check('ocsp-url', ['tls client-certificate required', 'tls ocsp on', 'tls ocsp responder "ocsp.example.org"']);
    assert.equal(url.code, 1);
    assert.match(url.stderr, /ocsp-url\.conf:7:20: expected an http:\/\/ or https:\/\/ URL/);
    const good = await check('ocsp-good', ['tls client-certificate optional', 'tls ocsp on', 'tls ocsp responder "http://127.0.0.1:8888"', 'tls ocsp on-failure accept', 'tls ocsp timeout 2s', 'tls ocsp cache 1h']);
    assert.deepEqual(good, { code: 0, stderr: '' });
  });
});
