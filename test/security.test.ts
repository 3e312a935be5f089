import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { hashPassword, newToken } from '../src/security/passwords.js';
import { writeUsers, readUsers } from '../src/security/users-file.js';
import type { AccessRule } from '../src/security/access.js';
import { BIN, tmpDir } from './helpers/broker.js';
import { startInProcess, type InProcessBroker } from './helpers/inproc.js';
import { RawClient, until } from './helpers/raw.js';
import { connect } from '../src/client/index.js';
import type { FluctuatError } from '../src/client/errors.js';

const dir = tmpDir('fluctuat-sec-');
const usersFile = path.join(dir, 'users');
const auditFile = path.join(dir, 'audit.log');
let token = '';

const rules: AccessRule[] = [
  { effect: 'allow', ops: ['pub', 'sub', 'request'], pattern: '>', who: 'group:admin' },
  { effect: 'allow', ops: ['pub'], pattern: 'probes.>', who: 'group:probes' },
  { effect: 'allow', ops: ['sub'], pattern: 'tasks.>', who: 'group:probes' },
  { effect: 'deny', ops: ['sub'], pattern: 'tasks.secret.>', who: 'group:probes' },
  { effect: 'allow', ops: ['pub', 'sub', 'request'], pattern: '>', who: 'group:tenants' },
];

let broker: InProcessBroker;
before(async () => {
  const t = newToken();
  token = t.token;
  const users = [
    { name: 'ops', hash: await hashPassword('ops-password'), groups: ['admin'], tenant: '', tokens: [] },
    { name: 'probe1', hash: await hashPassword('probe-password'), groups: ['probes'], tenant: '', tokens: [t.digest] },
    { name: 'alice', hash: await hashPassword('alice-password'), groups: ['tenants'], tenant: 'acme', tokens: [] },
    { name: 'bob', hash: await hashPassword('bob-password'), groups: ['tenants'], tenant: 'globex', tokens: [] },
  ];
  writeUsers(usersFile, users);
  broker = await startInProcess({
    security: { usersFile, auditFile, rules, backoffBaseMs: 200, backoffMaxMs: 2000, loginTimeoutMs: 60_000 },
  });
});
after(async () => {
  await broker.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function audit(): Record<string, unknown>[] {
  return fs.readFileSync(auditFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function loggedIn(user: string, password: string, machine = false): Promise<RawClient> {
  const c = machine ? await RawClient.machine(broker.port) : await RawClient.connect(broker.port);
  c.send(machine ? `LOGIN ${user} ${password}` : `login ${user} ${password}`);
  await c.waitFor((f) => f.line === (machine ? `OK ${user}` : `# [I] logged in as ${user} (tenant ${user === 'alice' ? 'acme' : user === 'bob' ? 'globex' : 'default'})`));
  return c;
}

test('unauthenticated connections can only log in; the commands behind a login wait for its outcome', async () => {
  const c = await RawClient.connect(broker.port);
  c.send('sub tasks.>');
  await c.waitFor((f) => f.line.startsWith('-ERR AUTH_REQUIRED log in first'));
  c.send('ping');
  await c.waitFor((f) => f.line.startsWith('pong '));
  // Pipelined: the sub right behind the login is judged after the (slow, scrypt) check.
  c.send('login probe1 probe-password\nsub tasks.a');
  await c.waitFor((f) => f.line.endsWith('subscribing tasks.a'));
  assert.ok(!c.lines().slice(2).some((l) => l.startsWith('-ERR')), c.lines().join('\n'));
  await c.close();
  const m = await RawClient.machine(broker.port);
  m.send(`TOKEN ${token}`);
  await m.waitFor((f) => f.line === 'OK probe1');
  await m.close();
});

test('wrong passwords back off exponentially per user and per address, and are audited', async () => {
  const c = await RawClient.connect(broker.port);
  const delays: number[] = [];
  for (let i = 0; i < 3; i++) {
    const from = c.frames.length;
    c.send('login alice wrong-password');
    const f = await c.waitFor((x) => x.line.startsWith('-ERR AUTH_FAILED'), 10_000, from);
    delays.push(Number(/next attempt allowed in (\d+) ms/.exec(f.line)![1]));
    // Retrying at once is refused without checking the password.
    c.send('login alice alice-password');
    await c.waitFor((x) => x.line.startsWith('-ERR AUTH_BACKOFF too many failed logins; retry in'), 10_000, from);
    await new Promise((r) => setTimeout(r, delays[i]! + 50));
  }
  assert.deepEqual(delays, [200, 400, 800]);
  c.send('login alice alice-password');
  await c.waitFor((f) => f.line === '# [I] logged in as alice (tenant acme)');
  await c.close();
  const failed = audit().filter((e) => e.event === 'login-failed' && e.user === 'alice');
  assert.ok(failed.length >= 6);
  assert.ok(failed.every((e) => typeof e.address === 'string' && typeof e.port === 'number' && e.method === 'password'));
  assert.ok(audit().some((e) => e.event === 'login' && e.user === 'alice' && e.tenant === 'acme'));
});

test('a hostile user name cannot forge or split an audit field', async () => {
  const c = await RawClient.connect(broker.port);
  const forged = 'root from 8.8.8.8","event":"login","user":"ops';
  c.send(`login ${forged.replace(/ /g, '\u00a0')} x`);
  c.send(`login root from 8.8.8.8`);
  await until(() => c.lines().filter((l) => l.startsWith('-ERR AUTH_')).length >= 2, 'two refusals');
  await c.close();
  const lines = fs.readFileSync(auditFile, 'utf8').trim().split('\n');
  for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), line);
  const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.ok(entries.some((e) => e.user === 'root' && e.event === 'login-failed'));
  assert.ok(entries.some((e) => typeof e.user === 'string' && (e.user as string).includes('","event":"login"')), 'the forged text stays inside one field');
  assert.ok(!entries.some((e) => e.event === 'login' && e.user === 'ops' && e.address === undefined));
});

test('access rules: deny wins, default deny, denials audited', async () => {
  const c = await loggedIn('probe1', 'probe-password', true);
  c.pub('probes.eu.clock', 'tick', 'a1');
  await c.waitFor((f) => f.line === 'ACK a1 1');
  c.pub('tasks.eu', 'not mine', 'a2');
  await c.waitFor((f) => f.line === 'ERR a2 FORBIDDEN probe1 may not pub on tasks.eu');
  c.send('SUB s1 tasks.eu.*');
  await c.waitFor((f) => f.line === 'OK s1');
  c.send('SUB s2 tasks.>');
  await c.waitFor((f) => f.line === 'ERR s2 FORBIDDEN probe1 may not sub on tasks.>');
  c.send('SUB s3 tasks.secret.plans');
  await c.waitFor((f) => f.line.startsWith('ERR s3 FORBIDDEN'));
  c.send('SUB s4 other');
  await c.waitFor((f) => f.line.startsWith('ERR s4 FORBIDDEN'));
  c.send('CLIENTS');
  await c.waitFor((f) => f.line.startsWith('ERR - FORBIDDEN clients is for members of the admin group'));
  await c.close();
  assert.ok(audit().some((e) => e.event === 'denied' && e.user === 'probe1' && e.op === 'sub' && e.channel === 'tasks.>'));
});

test('tenants: the same channel name in two tenants never mixes, wildcards and listings stay inside', async () => {
  const alice = await loggedIn('alice', 'alice-password');
  const bob = await loggedIn('bob', 'bob-password');
  alice.send('sub >');
  bob.send('sub >');
  await alice.waitFor((f) => f.line.endsWith('subscribing >'));
  await bob.waitFor((f) => f.line.endsWith('subscribing >'));
  alice.send('pub general from alice');
  bob.send('pub general from bob');
  await alice.waitFor((f) => /^pubsub on general at \S+: from alice$/.test(f.line));
  await bob.waitFor((f) => /^pubsub on general at \S+: from bob$/.test(f.line));
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(!alice.lines().some((l) => l.includes('from bob')));
  assert.ok(!bob.lines().some((l) => l.includes('from alice')));
  alice.send('channels');
  await alice.waitFor((f) => f.line === '# [I] 1 channel');
  assert.ok(alice.lines().some((l) => l.startsWith('channel general messages=1')));
  alice.send('sub _T.globex.general');
  await alice.waitFor((f) => f.line.startsWith('-ERR BAD_CHANNEL bad name "_T.globex.general": the prefix "_T" is reserved'));
  alice.send('pub _T.globex.general x');
  await alice.waitFor((f) => f.line.startsWith('-ERR BAD_CHANNEL') && f.line.includes('reserved'), 5000, alice.frames.length - 1);
  // The admin sees both tenants' connections and can disconnect one.
  const ops = await loggedIn('ops', 'ops-password', true);
  ops.send('CLIENTS');
  await ops.waitFor((f) => f.line === 'END CLIENTS');
  const rows = ops.lines().filter((l) => l.startsWith('CLIENT ')).map((l) => JSON.parse(l.slice(7)) as { id: number; user: string; tenant: string });
  const bobRow = rows.find((r) => r.user === 'bob')!;
  assert.equal(bobRow.tenant, 'globex');
  ops.send(`KILL ${bobRow.id}`);
  await ops.waitFor((f) => f.line === `OK ${bobRow.id}`);
  await bob.waitFor((f) => f.line.startsWith('-ERR KILLED disconnected by ops'));
  for (const c of [alice, ops]) await c.close();
  const logout = audit().find((e) => e.event === 'logout' && e.user === 'bob')!;
  assert.ok(typeof logout.seconds === 'number' && (logout.messagesIn as number) >= 1 && (logout.bytesIn as number) > 0);
});

test('the client library logs in with a password or a token on every connection, and reports a refusal by its code', async () => {
  const alice = await connect(`127.0.0.1:${broker.port}`, { user: 'alice', password: 'alice-password', name: 'reader', backoffInitialMs: 20 });
  const writer = await connect(`127.0.0.1:${broker.port}`, { user: 'alice', password: 'alice-password' });
  const probe = await connect(`127.0.0.1:${broker.port}`, { token });
  try {
    const seen: string[] = [];
    alice.subscribe('news', (m) => void seen.push(m.text));
    await alice.ping();
    await writer.publish('news', 'first');
    await until(() => seen.length === 1, 'first news');
    // Tokens log in as their user: probe1 may publish on probes.> and nothing else.
    await probe.publish('probes.rtt', '12');
    await assert.rejects(probe.publish('news', 'x'), (e: FluctuatError) => e.code === 'FORBIDDEN');
    // The broker drops alice's subscriber; the client reconnects, logs in again and resumes.
    const ops = await loggedIn('ops', 'ops-password', true);
    ops.send('CLIENTS');
    await ops.waitFor((f) => f.line === 'END CLIENTS');
    const rows = ops.lines().filter((l) => l.startsWith('CLIENT ')).map((l) => JSON.parse(l.slice(7)) as { id: number; name: string });
    const target = rows.find((r) => r.name === 'alice/reader');
    assert.ok(target, JSON.stringify(rows));
    let reconnects = 0;
    alice.on('reconnect', () => reconnects++);
    ops.send(`KILL ${target.id}`);
    await until(() => reconnects === 1, 'the reader reconnected');
    await alice.ping();
    await writer.publish('news', 'second');
    await until(() => seen.includes('second'), 'news after the reconnection');
    await ops.close();
    await assert.rejects(connect(`127.0.0.1:${broker.port}`, { user: 'nobody-here', password: 'guess' }), (e: FluctuatError) => e.code === 'AUTH_FAILED' && /login .* refused: login failed/.test(e.message));
    await assert.rejects(connect(`127.0.0.1:${broker.port}`, { token: 'not-a-token' }), (e: FluctuatError) => e.code === 'AUTH_FAILED');
    await assert.rejects(connect(`127.0.0.1:${broker.port}`, { user: 'alice' }), (e: FluctuatError) => e.code === 'BAD_OPTION');
    await assert.rejects(connect(`127.0.0.1:${broker.port}`, { token, user: 'alice', password: 'x' }), (e: FluctuatError) => e.code === 'BAD_OPTION');
  } finally {
    for (const c of [alice, writer, probe]) await c.close();
  }
});

test('passwords are refused on a plaintext listener from a non-loopback address', async () => {
  // The only part that is simulated: the peer address (this machine has only loopback).
  const [serverSide, clientSide] = await socketPair();
  broker.server.attach(serverSide, { address: '192.0.2.7', port: 40000, secure: false });
  const c = RawClient.wrap(clientSide);
  c.send('login alice alice-password');
  await c.waitFor((f) => f.line.startsWith('-ERR PLAINTEXT_REFUSED passwords are refused on this plaintext listener'));
  c.send(`token ${token}`);
  await c.waitFor((f) => f.line.startsWith('# [I] logged in as probe1'));
  await c.close();
});

test('the users file is managed by fluctuat user add|passwd|token|list|del', async () => {
  const file = path.join(dir, 'managed-users');
  const run = (args: string[], stdin = ''): Promise<{ code: number | null; out: string; err: string }> =>
    new Promise((resolve) => {
      const p = spawn(process.execPath, [BIN, 'user', ...args, '--file', file]);
      let out = '';
      let err = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      p.stderr.on('data', (d: Buffer) => (err += d.toString()));
      p.on('close', (code) => resolve({ code, out, err }));
      p.stdin.end(stdin);
    });
  assert.equal((await run(['add', 'carol', '--groups', 'probes,ops', '--tenant', 'acme'], 'carol-secret\n')).code, 0);
  assert.equal((await run(['add', 'carol'], 'another-secret\n')).code, 1);
  assert.match((await run(['add', 'dave'], 'short\n')).err, /at least 8 characters/);
  assert.equal((await run(['passwd', 'carol'], 'carol-secret-2\n')).code, 0);
  const tok = await run(['token', 'carol']);
  assert.match(tok.out, /^flt_[A-Za-z0-9_-]{32}\n$/);
  const listed = JSON.parse((await run(['list', '--json'])).out) as { name: string; groups: string[]; tenant: string; tokens: number }[];
  assert.deepEqual(listed, [{ name: 'carol', groups: ['probes', 'ops'], tenant: 'acme', tokens: 1 }]);
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  assert.match(readUsers(file).get('carol')!.hash, /^scrypt\$16384\$8\$1\$/);
  assert.equal((await run(['del', 'carol'])).code, 0);
  assert.equal(readUsers(file).size, 0);
});

function socketPair(): Promise<[net.Socket, net.Socket]> {
  return new Promise((resolve) => {
    const srv = net.createServer((s) => {
      srv.close();
      resolve([s, client]);
    });
    let client: net.Socket;
    srv.listen(0, '127.0.0.1', () => {
      client = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
    });
  });
}
