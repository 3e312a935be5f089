/**
 * The hostile-client suite (security issue, "what shows it is done"): one real broker process
 * (privilege-separated when the tests run as root) with users, two tenants, a TLS listener and
 * limits, and every kind of hostile client at once — oversize and binary lines, a publish flood
 * past the rate limit, 1,000 half-open connections, 10,000 connect/disconnect cycles, wrong,
 * expired and foreign certificates, wrong passwords, cross-tenant subscriptions and wildcards,
 * a subscriber that never reads — while well-behaved clients exchange messages. The broker
 * stays up, and every well-behaved client gets all its messages, in order, once.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { createCa, createClientCert, createServerCert, loadCa, type Pem } from '../src/certs/generate.js';
import { connect, type Client } from '../src/client/index.js';
import type { FluctuatError } from '../src/client/errors.js';
import { hashPassword } from '../src/security/passwords.js';
import { writeUsers } from '../src/security/users-file.js';
import { startBroker, tmpDir, type RunningBroker } from './helpers/broker.js';
import { RawClient, until } from './helpers/raw.js';

const dir = tmpDir('fluctuat-hostile-');
const f = (name: string): string => path.join(dir, name);
let broker: RunningBroker;
let plain = 0;
let secure = 0;

function write(name: string, pem: Pem): void {
  fs.writeFileSync(f(`${name}.crt`), pem.cert);
  fs.writeFileSync(f(`${name}.key`), pem.key, { mode: 0o600 });
}

before(async () => {
  const ca = await createCa({ commonName: 'hostile suite CA' });
  const signer = await loadCa(ca);
  write('ca', ca);
  write('server', await createServerCert(signer, { commonName: 'localhost', ipAddresses: ['127.0.0.1'] }));
  write('alice', await createClientCert(signer, { commonName: 'alice' }));
  write('old', await createClientCert(signer, { commonName: 'alice', notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2020-02-01T00:00:00Z') }));
  write('forged', await createClientCert(await loadCa(await createCa({ commonName: 'mallory CA' })), { commonName: 'alice' }));
  const users = [
    { name: 'alice', password: 'alice-password', tenant: 'acme' },
    { name: 'flooder', password: 'flooder-password', tenant: 'acme' },
    { name: 'victim', password: 'victim-password', tenant: 'acme' },
    { name: 'bob', password: 'bob-password', tenant: 'globex' },
  ];
  writeUsers(f('users'), await Promise.all(users.map(async (u) => ({ name: u.name, hash: await hashPassword(u.password), groups: [], tenant: u.tenant, tokens: [] }))));
  fs.writeFileSync(
    f('hostile.conf'),
    [
      'listen on 127.0.0.1 port 0',
      'listen on 127.0.0.1 port 0 tls',
      `tls certificate "${f('server.crt')}"`,
      `tls key "${f('server.key')}"`,
      `tls ca "${f('ca.crt')}"`,
      'tls client-certificate optional',
      `users file "${f('users')}"`,
      'default-access allow',
      'login backoff 250ms max 4s',
      'limit line 1024',
      'limit payload 64KiB',
      'limit rate 2000/s burst 2000',
      'limit connections 5000',
      'limit connections 5000 per address',
      'timeout handshake 5s',
      'timeout login 20s',
      '',
    ].join('\n'),
  );
  broker = await startBroker({ config: f('hostile.conf'), storage: 'file', listeners: 2 });
  const listening = broker.logs.filter((l) => l.msg === 'listening');
  plain = listening.find((l) => l.tls === undefined)!.port as number;
  secure = listening.find((l) => l.tls === true)!.port as number;
});
after(async () => {
  await broker.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function login(user: string, password: string): Promise<RawClient> {
  const c = await RawClient.machine(plain);
  c.send(`LOGIN ${user} ${password}`);
  await c.waitFor((l) => l.line === `OK ${user}`);
  return c;
}

/** Answers can queue behind the flood and the connection storms on a loaded CI machine. */
const LONG = 60_000;

const tlsFiles = (cert: string) => ({ caFile: f('ca.crt'), certFile: f(`${cert}.crt`), keyFile: f(`${cert}.key`) });

test('hostile clients of every kind at once: the broker stays up and well-behaved clients keep every message', async () => {
  // --- well-behaved clients, logged in before the attack (the attack makes this address back off) ---
  const clients: Client[] = [];
  const raws: RawClient[] = [];
  const halfOpen: net.Socket[] = [];
  try {
    await attack(clients, raws, halfOpen);
  } finally {
    for (const s of halfOpen) s.destroy();
    for (const c of clients) await c.close().catch(() => {});
    for (const c of raws) await c.close();
  }
});

async function attack(clients: Client[], raws: RawClient[], halfOpen: net.Socket[]): Promise<void> {
  const reader = await connect(`tls://127.0.0.1:${secure}`, { tls: tlsFiles('alice') }); // the certificate is the login
  const writer = await connect(`127.0.0.1:${plain}`, { user: 'alice', password: 'alice-password' });
  const globex = await connect(`127.0.0.1:${plain}`, { user: 'bob', password: 'bob-password' });
  clients.push(reader, writer, globex);
  const got: string[] = [];
  const globexGot: string[] = [];
  reader.subscribe('general', (m) => void got.push(m.text));
  globex.subscribe('>', (m) => void globexGot.push(`${m.channel}:${m.text}`));
  await Promise.all([reader.ping(), globex.ping()]);
  // Hostile clients that need a login get it now too.
  const flooder = await login('flooder', 'flooder-password');
  const crossTenant = await login('bob', 'bob-password');
  const neverReads = await login('alice', 'alice-password');
  raws.push(flooder, crossTenant, neverReads);
  neverReads.send('SUB stall general');
  await neverReads.waitFor((l) => l.line === 'OK stall');
  neverReads.socket.pause();

  const N = 3000;
  const wellBehaved = (async () => {
    for (let i = 0; i < N; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, k) => writer.publish('general', `m${String(i + k).padStart(5, '0')}`)));
      await new Promise((r) => setTimeout(r, 25)); // ~2,000 msgs/s: under the rate limit
    }
    for (let i = 0; i < 10; i++) await globex.publish('general', `globex-${i}`);
  })();

  const garbage = (async () => {
    const anon = await RawClient.connect(plain);
    anon.send('A'.repeat(5000)); // oversize line, unauthenticated
    await anon.waitFor((l) => l.line.startsWith('-ERR LINE_TOO_LONG'), LONG);
    anon.send(Buffer.from([0x00, 0xff, 0xfe, 0x1b, 0x5b, 0x32, 0x4a, 0x0a])); // binary, terminal escapes
    await anon.waitFor((l) => l.line.startsWith('-ERR') && !l.line.includes('LINE_TOO_LONG'), LONG);
    flooder.send(`PUB general - - ${100 * 1024}`); // oversize payload, skipped whole
    flooder.send(Buffer.concat([Buffer.alloc(100 * 1024, 0x41), Buffer.from('\n')]));
    flooder.send('PING 1 2');
    await flooder.waitFor((l) => l.line.includes('PAYLOAD_TOO_LARGE'), LONG);
    await flooder.waitFor((l) => l.line.startsWith('PONG 1 2 '), LONG);
    await anon.close();
  })();

  const flood = (async () => {
    const frame = Buffer.from('PUB flood - - 8\nfloodfld\n');
    for (let k = 0; k < 20; k++) flooder.send(Buffer.concat(Array.from({ length: 1000 }, () => frame)));
    await flooder.waitFor((l) => /^ERR - RATE_LIMITED publish rate limit \(2000 msgs\/s\) reached; retry in \d+ ms/.test(l.line), LONG);
  })();

  const halfOpenAndCycles = (async () => {
    for (let i = 0; i < 1000; i++) {
      const s = net.connect(plain, '127.0.0.1');
      s.on('error', () => {});
      s.write('login alice'); // a partial line, then silence
      halfOpen.push(s);
    }
    for (let cycle = 0; cycle < 10_000; cycle += 250) {
      await Promise.all(
        Array.from({ length: 250 }, () => new Promise<void>((resolve) => {
          const s = net.connect(plain, '127.0.0.1', () => s.destroy());
          s.on('close', () => resolve());
          s.on('error', () => resolve());
        })),
      );
    }
  })();

  const certificates = (async () => {
    for (let i = 0; i < 10; i++) {
      for (const bad of ['old', 'forged']) {
        await assert.rejects(connect(`tls://127.0.0.1:${secure}`, { tls: tlsFiles(bad), reconnect: false }), (e: FluctuatError) => /CERT_REFUSED/.test(`${e.message} ${(e.cause as Error | undefined)?.message ?? ''}`));
      }
    }
  })();

  const passwords = (async () => {
    // Each failure announces the next allowed attempt, doubling; an attempt before it is refused
    // with AUTH_BACKOFF without checking the password at all.
    const attempt = async (): Promise<string> => {
      const c = await RawClient.machine(plain);
      c.send('LOGIN victim wrong-guess');
      const answer = await c.waitFor((l) => l.line.startsWith('ERR - AUTH_'), LONG);
      await c.close();
      return answer.line;
    };
    const delays: number[] = [];
    let earlyRefused = false;
    for (let i = 0; i < 4; i++) {
      // An attempt that reaches the broker before the announced time (a timer firing early) is
      // refused with AUTH_BACKOFF, which says how long to wait: the attempt is made again.
      let line = await attempt();
      for (let k = 0; k < 20 && line.startsWith('ERR - AUTH_BACKOFF'); k++) {
        await new Promise((r) => setTimeout(r, Number(/retry in (\d+) ms/.exec(line)![1]) + 20));
        line = await attempt();
      }
      const m = /^ERR - AUTH_FAILED login failed; next attempt allowed in (\d+) ms/.exec(line);
      assert.ok(m, line);
      delays.push(Number(m[1]));
      // Right after the last failure the wait is longest (2 s), far beyond the few round trips of
      // a new attempt even on a loaded machine: an attempt now must be refused unchecked.
      if (i === 3) earlyRefused = /^ERR - AUTH_BACKOFF too many failed logins; retry in \d+ ms/.test(await attempt());
      else await new Promise((r) => setTimeout(r, Number(m[1]) + 20));
    }
    assert.ok(earlyRefused, 'an attempt inside the backoff is refused with AUTH_BACKOFF');
    return delays;
  })();

  const tenants = (async () => {
    crossTenant.send('SUB a _T.acme.general');
    await crossTenant.waitFor((l) => l.line.startsWith('ERR a BAD_CHANNEL'), LONG);
    crossTenant.send('SUB b _T.>');
    await crossTenant.waitFor((l) => l.line.startsWith('ERR b BAD_CHANNEL'), LONG);
    crossTenant.send('SUB c *.acme.>');
    await crossTenant.waitFor((l) => l.line === 'OK c', LONG);
    // Once globex has written its own `general`, that is the one channel globex sees, with
    // globex's 10 messages, not acme's `general` of the same name nor acme's `flood`.
    await wellBehaved;
    const from = crossTenant.frames.length;
    crossTenant.send('CHANNELS');
    await crossTenant.waitFor((l) => l.line === 'END CHANNELS', LONG, from);
    const listed = crossTenant.lines().slice(from).filter((l) => l.startsWith('CHANNEL '));
    assert.equal(listed.length, 1, `globex lists only its own channel: ${JSON.stringify(listed)}`);
    assert.match(listed[0]!, /^CHANNEL general \d+ \d+ 10 \d+$/, 'globex\'s own general, with its 10 messages');
  })();

  // A failure names the part of the attack it came from.
  const named = <T>(name: string, p: Promise<T>): Promise<T> => p.catch((e: Error) => Promise.reject(Object.assign(e, { message: `${name}: ${e.message}` })));
  const [, , , , , delays] = await Promise.all([
    named('well-behaved', wellBehaved), named('garbage', garbage), named('flood', flood), named('half-open and cycles', halfOpenAndCycles),
    named('certificates', certificates), named('passwords', passwords), named('tenants', tenants),
  ]);

  // Every well-behaved message arrived, in order, once; nothing crossed the tenants.
  await until(() => got.length >= N, `all ${N} messages at the reader (got ${got.length})`, 60_000);
  assert.deepEqual(got, Array.from({ length: N }, (_, i) => `m${String(i).padStart(5, '0')}`));
  await until(() => globexGot.length >= 10, 'globex got its own messages');
  assert.deepEqual(globexGot, Array.from({ length: 10 }, (_, i) => `general:globex-${i}`));
  assert.ok(!crossTenant.frames.some((l) => l.line.startsWith('MSG ')), 'no acme message reached globex');
  assert.ok(delays.every((d, i) => i === 0 || d >= delays[i - 1]!) && delays.at(-1)! > delays[0]!, `wrong passwords back off, growing: ${delays.join(', ')} ms`);
  // Still up, and serving.
  assert.equal(broker.proc.exitCode, null);
  await writer.publish('general', 'after');
  await until(() => got.at(-1) === 'after', 'a message after the attack');
}
