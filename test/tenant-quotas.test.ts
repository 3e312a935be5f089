/**
 * Per-tenant quotas (limit channels / limit disk per tenant, tenant { } overrides): refused
 * publishes are not stored and say the limit and the usage, other tenants go on, usage is
 * recomputed from the log at start, retention frees space, and every refusal is counted and
 * audited.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { noQuotas, TenantQuotas, type QuotaSettings } from '../src/core/quotas.js';
import { hashPassword } from '../src/security/passwords.js';
import { writeUsers } from '../src/security/users-file.js';
import { defaultStorageOptions, newMessage, type Log } from '../src/storage/engine.js';
import { FileStorageEngine } from '../src/storage/filelog/engine.js';
import { startBroker, tmpDir } from './helpers/broker.js';
import { startInProcess } from './helpers/inproc.js';
import { RawClient } from './helpers/raw.js';

const quiet: Log = { info() {}, warn() {}, error() {}, debug() {} };

async function writeTenantUsers(dir: string): Promise<string> {
  const file = path.join(dir, 'users');
  const hash = await hashPassword('pw');
  writeUsers(file, [
    { name: 'alice', hash, groups: ['t'], tenant: 'acme', tokens: [] },
    { name: 'bob', hash, groups: ['t'], tenant: 'globex', tokens: [] },
    { name: 'ops', hash, groups: ['admin'], tenant: '', tokens: [] },
  ]);
  return file;
}

async function login(port: number, user: string): Promise<RawClient> {
  const c = await RawClient.machine(port);
  c.send(`LOGIN ${user} pw`);
  await c.waitFor((f) => f.line === `OK ${user}`);
  return c;
}

/** Publish and wait for its answer: the ACK line or the ERR line. */
async function publish(c: RawClient, channel: string, payload: string | Buffer, id: string): Promise<string> {
  c.pub(channel, payload, id);
  return (await c.waitFor((f) => f.line.startsWith(`ACK ${id} `) || f.line.startsWith(`ERR ${id} `))).line;
}

const rules = [{ effect: 'allow' as const, ops: ['pub' as const, 'sub' as const, 'request' as const], pattern: '>', who: 'any' as const }];

test('the accounting itself: channels and bytes per tenant, from the log at open, and only tenant channels', async (t) => {
  const dir = tmpDir('fluctuat-quota-unit-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const settings: QuotaSettings = { channelsPerTenant: 2, diskPerTenantBytes: 0, tenants: [{ name: 'big', maxChannels: 5, diskQuotaBytes: 300 }] };
  assert.equal(TenantQuotas.needed(noQuotas), false);
  assert.equal(TenantQuotas.needed(settings), true);
  const open = async () => {
    const engine = new FileStorageEngine({ ...defaultStorageOptions, dataDir: dir }, quiet);
    const quotas = new TenantQuotas(settings, engine);
    await engine.start((channel) => quotas.committed(channel));
    quotas.recount();
    return { engine, quotas };
  };
  const put = (engine: FileStorageEngine, channel: string, text: string) =>
    new Promise<void>((resolve, reject) =>
      engine.channel(channel).append(newMessage(Date.now(), 'p', '', Buffer.from(text)), (err) => (err ? reject(err) : resolve())),
    );

  const a = await open();
  for (const c of ['_T.small.a', '_T.small.b', '_T.big.x', 'free.one', 'free.two', 'free.three']) {
    assert.equal(a.quotas.admit(c, 10), null, c);
    await put(a.engine, c, '0123456789');
  }
  const third = a.quotas.admit('_T.small.c', 10);
  assert.equal(third?.code, 'CHANNEL_QUOTA');
  assert.equal(third?.message, 'tenant small has 2 channels, its limit (limit channels 2); channel not created');
  assert.equal(a.quotas.admit('_T.small.a', 10), null, 'an existing channel takes more messages');
  // Record size on disk: 32 bytes of header + publisher "p" + 10 bytes of payload = 43.
  const big = () => a.quotas.report().find((r) => r.tenant === 'big')!;
  assert.deepEqual(big(), { tenant: 'big', channels: 1, maxChannels: 5, bytes: 43, maxBytes: 300 });
  for (let i = 0; i < 5; i++) await put(a.engine, '_T.big.x', '0123456789');
  assert.equal(big().bytes, 6 * 43);
  const full = a.quotas.admit('_T.big.x', 43);
  assert.equal(full?.code, 'DISK_QUOTA');
  assert.match(full!.message, /^tenant big stores 258 bytes; 43 more would pass its disk quota of 300 bytes/);
  assert.equal(a.quotas.admit('_T.big.x', 42), null, 'exactly up to the quota');
  assert.deepEqual(a.quotas.counters, { channelQuotaRefused: 1, diskQuotaRefused: 1 });
  assert.equal(a.quotas.report().some((r) => r.tenant === ''), false, 'channels outside tenants are not counted');
  await a.engine.close();

  const b = await open();
  assert.deepEqual(b.quotas.report().find((r) => r.tenant === 'big'), { tenant: 'big', channels: 1, maxChannels: 5, bytes: 258, maxBytes: 300 });
  assert.equal(b.quotas.report().find((r) => r.tenant === 'small')!.channels, 2);
  assert.equal(b.quotas.admit('_T.small.c', 1)?.code, 'CHANNEL_QUOTA', 'still full after a restart');
  await b.engine.close();
});

test('a broker refuses past the quotas with the limit and the usage, audits and counts it; other tenants go on', async (t) => {
  const dir = tmpDir('fluctuat-quota-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const usersFile = await writeTenantUsers(dir);
  const auditFile = path.join(dir, 'audit.log');
  const broker = await startInProcess({
    security: { usersFile, auditFile, rules },
    broker: { quotas: { channelsPerTenant: 3, diskPerTenantBytes: 0, tenants: [{ name: 'globex', maxChannels: 0, diskQuotaBytes: 1000 }] } },
  });
  t.after(() => broker.close());
  const alice = await login(broker.port, 'alice');
  const bob = await login(broker.port, 'bob');

  for (const ch of ['a1', 'a2', 'a3']) assert.match(await publish(alice, ch, 'x', `${ch}`), /^ACK a\d 1$/);
  assert.equal(
    await publish(alice, 'a4', 'x', 'a4'),
    'ERR a4 CHANNEL_QUOTA publish to a4 not stored: tenant acme has 3 channels, its limit (limit channels 3); channel not created',
  );
  assert.match(await publish(alice, 'a1', 'more', 'a1b'), /^ACK a1b 2$/, 'existing channels still take messages');

  // globex: its own 1000-byte disk quota; four 200-byte messages fit, the fifth does not.
  const payload = Buffer.alloc(200, 0x62);
  const answers: string[] = [];
  for (let i = 0; i < 6; i++) answers.push(await publish(bob, 'g', payload, `g${i}`));
  assert.deepEqual(answers.slice(0, 4).map((l) => l.split(' ')[0]), ['ACK', 'ACK', 'ACK', 'ACK']);
  const record = broker.server.broker.channelList('_T.globex.g')[0]!.bytes / 4; // header + publisher + 200
  assert.equal(
    answers[4],
    `ERR g4 DISK_QUOTA publish to g not stored: tenant globex stores ${4 * record} bytes; 200 more would pass its disk quota of 1000 bytes (limit disk); free space with retention`,
  );
  assert.equal(answers[5]!.split(' ')[2], 'DISK_QUOTA');
  // Not stored: the channel holds the four acknowledged messages; another tenant is unaffected.
  assert.equal(broker.server.broker.channelList('_T.globex.g')[0]!.messages, 4);
  assert.match(await publish(alice, 'a2', payload, 'a2b'), /^ACK a2b 2$/);

  const ops = await login(broker.port, 'ops');
  const stats = await ops.stats();
  assert.equal(stats.channelQuotaRefused, 1);
  assert.equal(stats.diskQuotaRefused, 2);
  const limits = fs.readFileSync(auditFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.event === 'limit');
  assert.deepEqual(
    limits.map(({ kind, user, tenant, channel, limit, used }) => ({ kind, user, tenant, channel, limit, used })),
    [
      { kind: 'tenant-channels', user: 'alice', tenant: 'acme', channel: 'a4', limit: 3, used: 3 },
      { kind: 'tenant-disk', user: 'bob', tenant: 'globex', channel: 'g', limit: 1000, used: 4 * record },
      { kind: 'tenant-disk', user: 'bob', tenant: 'globex', channel: 'g', limit: 1000, used: 4 * record },
    ],
  );
  for (const c of [alice, bob, ops]) await c.close();
});

test('a broker process: usage survives kill -9 and a restart, and retention by age lets publishing resume', async (t) => {
  const dir = tmpDir('fluctuat-quota-proc-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const usersFile = await writeTenantUsers(dir);
  const config = path.join(dir, 'fluctuat.conf');
  // 1 KiB segments: the messages below fill closed segments that retention by age can delete.
  fs.writeFileSync(
    config,
    [
      'listen on 127.0.0.1 port 0',
      `users file "${usersFile}"`,
      'default-access allow',
      'storage file {',
      '\tsegment size 1KiB',
      '\tretain age 1s',
      '}',
      'limit disk 4KiB per tenant',
      'tenant acme {',
      '\tlimit channels 2',
      '}',
    ].join('\n') + '\n',
  );
  const broker = await startBroker({ config }); // its own data directory, removed by dispose
  t.after(() => broker.dispose());
  let alice = await login(broker.port, 'alice');
  const payload = Buffer.alloc(500, 0x61);
  let refusal = '';
  for (let i = 0; i < 20 && !refusal; i++) {
    const line = await publish(alice, 'fill', payload, `f${i}`);
    if (line.startsWith('ERR ')) refusal = line;
  }
  assert.match(refusal, /^ERR f\d+ DISK_QUOTA publish to fill not stored: tenant acme stores \d+ bytes; 500 more would pass its disk quota of 4096 bytes/);
  const stored = Number(/stores (\d+) bytes/.exec(refusal)![1]);
  assert.match(await publish(alice, 'other', 'x', 'o1'), /^ACK o1 1$/);
  assert.match(await publish(alice, 'third', 'x', 'o2'), /^ERR o2 CHANNEL_QUOTA .*tenant acme has 2 channels, its limit \(limit channels 2\)/);
  await alice.close();

  await broker.kill();
  await broker.restart();
  alice = await login(broker.port, 'alice');
  // Recomputed from the log: the same channels, at least the same bytes (retention may have run).
  assert.match(await publish(alice, 'third', 'x', 'r1'), /^ERR r1 CHANNEL_QUOTA /);
  // Retention by age removes the closed segments (every 5 s); then publishing resumes.
  let resumed = '';
  let n = 0;
  while (!resumed.startsWith('ACK') && n < 200) {
    resumed = await publish(alice, 'fill', payload, `p${n++}`);
    if (resumed.startsWith('ERR')) {
      assert.match(resumed, / DISK_QUOTA /);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  assert.match(resumed, /^ACK p\d+ \d+$/);
  assert.ok(stored > 3000, `stored ${stored} bytes when refused`);
  await alice.close();
});
