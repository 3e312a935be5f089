/**
 * The client under faults the real broker cannot be asked to produce on cue: held
 * acknowledgements, refused frames, cut connections, a broker that never answers, DROP and GAP
 * notices, a reader that stops reading. Against the fake broker over real sockets.
 */
import { afterEach, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { connect, FluctuatError, type Client, type ConnectOptions, type DropInfo, type GapInfo } from '../src/client/index.js';
import { FakeBroker } from './fixtures/client-fakebroker.js';

let broker: FakeBroker;
const clients: Client[] = [];

async function open(options: ConnectOptions = {}): Promise<Client> {
  const c = await connect(broker.url, { backoffInitialMs: 5, backoffMaxMs: 50, drainTimeoutMs: 200, ...options });
  c.on('error', () => {});
  clients.push(c);
  return c;
}

async function eventually(check: () => boolean, what: () => string, limitMs = 20_000): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > limitMs) throw new Error(`never happened: ${what()}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function framesLike(re: RegExp): string[] {
  return broker.received.filter((l) => re.test(l));
}

beforeEach(async () => {
  broker = new FakeBroker({ greeting: ['# [I] welcome to the fake', 'some banner'] });
  await broker.start();
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await broker.kill();
});

test('a human-mode greeting before INFO is ignored', async () => {
  const c = await open();
  assert.equal(c.status, 'open');
  assert.equal(c.info.server, 'fake');
});

test('connection failures reject connect() with CONNECTION_FAILED', async () => {
  const port = broker.port;
  await broker.kill();
  await assert.rejects(connect(`fluctuat://127.0.0.1:${port}`), (e: FluctuatError) => e.code === 'CONNECTION_FAILED' && /cannot connect/.test(e.message));
  broker = new FakeBroker();
  broker.sendInfo = false;
  await broker.start();
  await assert.rejects(connect(broker.url, { connectTimeoutMs: 100 }), (e: FluctuatError) => e.code === 'CONNECTION_FAILED' && /no INFO/.test(e.message));
  await assert.rejects(connect('http://x'), (e: FluctuatError) => e.code === 'BAD_OPTION' && /unsupported scheme/.test(e.message));
  await assert.rejects(connect('fluctuat://h', { reconect: false } as ConnectOptions), /unknown option "reconect"/);
});

test('resubscription after a reconnect: NAME again, after:<last offset> for a channel, time: and de-duplication for a pattern', async () => {
  const c = await open({ name: 'resumer', resumeSlackMs: 60_000 });
  const plain: number[] = [];
  const wild: string[] = [];
  const s1 = c.subscribe('r.a', (m) => plain.push(m.offset), { from: 'beginning' });
  const s2 = c.subscribe('r.*', (m) => wild.push(`${m.channel}#${m.offset}`));
  await Promise.all([s1.ready, s2.ready]);
  for (let i = 0; i < 6; i++) broker.inject(i % 2 ? 'r.b' : 'r.a', `x${i}`);
  await eventually(() => plain.length === 3 && wild.length === 6, () => `${plain} ${wild}`);
  const reconnected = new Promise((r) => c.once('reconnect', r));
  broker.dropConnections();
  broker.inject('r.a', 'while away');
  broker.inject('r.b', 'while away');
  await reconnected;
  await eventually(() => plain.length === 4 && wild.length === 8, () => `${plain} ${wild}`);
  assert.deepEqual(plain, [1, 2, 3, 4]);
  assert.deepEqual(wild, ['r.a#1', 'r.b#1', 'r.a#2', 'r.b#2', 'r.a#3', 'r.b#3', 'r.a#4', 'r.b#4']);
  assert.equal(framesLike(/^NAME resumer$/).length, 2);
  const subs = framesLike(/^SUB /);
  assert.equal(subs.length, 4);
  // The k-th subscription is s<k> on every connection (clients that subscribe alike share blocks).
  assert.match(subs[0]!, /^SUB s1 r\.a from=beginning$/);
  assert.match(subs[1]!, /^SUB s2 r\.\*$/);
  assert.match(subs[2]!, /^SUB s1 r\.a from=after:3$/);
  // A 60 s slack replays everything the wildcard saw: the fake re-sent 6 duplicates, none reached the handler.
  assert.match(subs[3]!, /^SUB s2 r\.\* from=time:\d+$/);
});

test('a subscription that saw nothing resumes where its replay went live (LIVE), or by time for new', async () => {
  const c = await open();
  const a: number[] = [];
  const b: number[] = [];
  const s1 = c.subscribe('quiet.a', (m) => a.push(m.offset), { from: 'beginning' });
  broker.inject('quiet.b', 'old');
  const s2 = c.subscribe('quiet.b', (m) => b.push(m.offset), { from: 'last:0' });
  await Promise.all([s1.ready, s2.ready]);
  await c.ping(); // the LIVE frames come before the PONG
  const reconnected = new Promise((r) => c.once('reconnect', r));
  broker.dropConnections();
  broker.inject('quiet.a', 'one');
  broker.inject('quiet.b', 'two');
  await reconnected;
  await eventually(() => a.length === 1 && b.length === 1, () => `${a} ${b}`);
  assert.deepEqual([a, b], [[1], [2]]);
  const subs = framesLike(/^SUB /);
  // No LIVE for a channel that did not exist yet: asked again from the beginning, which is exact.
  assert.match(subs[2]!, /^SUB \w+ quiet\.a from=beginning$/);
  assert.match(subs[3]!, /^SUB \w+ quiet\.b from=after:1$/);

  const fresh = c.subscribe('quiet.c', () => {});
  await fresh.ready;
  const again = new Promise((r) => c.once('reconnect', r));
  broker.dropConnections();
  await again;
  await eventually(() => framesLike(/^SUB \w+ quiet\.c( |$)/).length === 2, () => broker.received.join('\n'));
  assert.match(framesLike(/^SUB \w+ quiet\.c/)[1]!, /from=time:\d+$/);
});

test('unacknowledged publishes are re-sent after a reconnect (at least once)', async () => {
  const c = await open();
  broker.holdAcks = true;
  const acks = [1, 2, 3].map((i) => c.publish('held', `h${i}`));
  await eventually(() => broker.messages('held').length === 3, () => 'not stored');
  broker.holdAcks = false;
  broker.dropConnections();
  assert.deepEqual(
    (await Promise.all(acks)).map((a) => a.offset),
    [4, 5, 6],
  );
  // The broker stored them before the cut and again when re-sent: the documented duplicate.
  assert.deepEqual(
    broker.messages('held').map((m) => m.data.toString()),
    ['h1', 'h2', 'h3', 'h1', 'h2', 'h3'],
  );
});

test('ERR frames reject the publish or the subscription they name, with .code and .ref', async () => {
  const c = await open();
  const errors: FluctuatError[] = [];
  c.on('error', (e) => errors.push(e));
  broker.failPubs.push('STORAGE_FAILED');
  await assert.rejects(c.publish('p', 'x'), (e: FluctuatError) => e.code === 'STORAGE_FAILED' && e.ref !== undefined && /refused/.test(e.message));
  assert.deepEqual(await c.publish('p', 'y'), { offset: 1 });
  broker.failSubs.push('TOO_MANY_SUBSCRIPTIONS');
  const sub = c.subscribe('s', () => {});
  await assert.rejects(sub.ready, (e: FluctuatError) => e.code === 'TOO_MANY_SUBSCRIPTIONS');
  assert.equal(sub.closed, true);
  assert.equal(errors.at(-1)?.code, 'TOO_MANY_SUBSCRIPTIONS');
  broker.failSubs.push('BAD_PATTERN');
  await c.send('sub t');
  assert.deepEqual(c.collect(), ['-ERR BAD_PATTERN refused by the fake broker']);
  broker.sendRaw('ERR - BAD_FRAME something was wrong\n');
  await eventually(() => errors.at(-1)?.code === 'BAD_FRAME', () => JSON.stringify(errors.map((e) => e.code)));
});

test('without reconnect, a lost connection rejects what is pending with DISCONNECTED and closes', async () => {
  const c = await open({ reconnect: false });
  broker.holdAcks = true;
  const pending = c.publish('p', 'x');
  await eventually(() => broker.messages('p').length === 1, () => 'not stored');
  const closed = new Promise<void>((r) => c.once('close', () => r()));
  broker.dropConnections();
  await assert.rejects(pending, (e: FluctuatError) => e.code === 'DISCONNECTED');
  await closed;
  assert.equal(c.status, 'closed');
  await assert.rejects(c.publish('p', 'y'), (e: FluctuatError) => e.code === 'CLOSED');
  await assert.rejects(c.ping(), (e: FluctuatError) => e.code === 'CLOSED');
});

test('after maxReconnectAttempts the client gives up and rejects with CLOSED', async () => {
  const c = await open({ maxReconnectAttempts: 2 });
  const errors: FluctuatError[] = [];
  c.on('error', (e) => errors.push(e));
  const closed = new Promise<void>((r) => c.once('close', () => r()));
  await broker.kill();
  const buffered = c.publish('p', 'never');
  await assert.rejects(c.ping(), (e: FluctuatError) => e.code === 'DISCONNECTED');
  await closed;
  await assert.rejects(buffered, (e: FluctuatError) => e.code === 'CLOSED' && /gave up reconnecting/.test(e.message));
  assert.ok(errors.some((e) => e.code === 'CLOSED'));
});

test('close() gives up waiting for acknowledgements after drainTimeoutMs', async () => {
  const c = await open({ drainTimeoutMs: 20 });
  broker.holdAcks = true;
  const pending = c.publish('p', 'x');
  await c.close();
  await assert.rejects(pending, (e: FluctuatError) => e.code === 'CLOSED');
  assert.ok(broker.received.includes('QUIT'));
});

test('DROP and GAP notices become events and collect() warnings', async () => {
  const c = await open();
  const drops: DropInfo[] = [];
  const gaps: GapInfo[] = [];
  c.on('drop', (d) => drops.push(d));
  c.on('gap', (g) => gaps.push(g));
  const s = c.subscribe('mem', () => {});
  await c.send('sub disk from=beginning');
  await s.ready;
  const [sidMem] = broker.sids('mem');
  const [sidDisk] = broker.sids('disk');
  broker.sendRaw(`DROP ${sidMem} mem 7\nGAP ${sidDisk} disk 1 41\nDROP ${sidDisk} disk 2\n`);
  await eventually(() => drops.length === 2 && gaps.length === 1, () => `${drops.length} ${gaps.length}`);
  assert.equal(drops[0]!.subscription, s);
  assert.deepEqual([drops[0]!.reason, drops[0]!.channel, drops[0]!.count], ['slow-consumer', 'mem', 7]);
  assert.deepEqual([gaps[0]!.channel, gaps[0]!.from, gaps[0]!.to], ['disk', 1, 41]);
  assert.deepEqual(c.collect(), [
    '# [W] messages #1 to #41 on disk were removed by retention before delivery',
    '# [W] dropped 2 messages on disk (slow consumer)',
  ]);
  // A gap moves the resume point past the removed offsets.
  const again = new Promise((r) => c.once('reconnect', r));
  broker.dropConnections();
  await again;
  await eventually(() => framesLike(/^SUB \w+ disk /).length === 2, () => broker.received.join('\n'));
  assert.match(framesLike(/^SUB \w+ disk /)[1]!, /from=after:41$/);
});

test('collect() is bounded: the oldest lines go, a counted warning says so', async () => {
  const c = await open({ collectMax: 5 });
  const drops: DropInfo[] = [];
  c.on('drop', (d) => drops.push(d));
  await c.send('sub flood');
  for (let i = 1; i <= 12; i++) broker.inject('flood', `line ${i}`);
  await c.ping();
  const lines = c.collect();
  // 13 lines came in (the hidden `# [D] subscribing flood` counts too); the 8 oldest went.
  assert.equal(lines[0], '# [W] collect buffer full: dropped 8 lines');
  assert.deepEqual(
    lines.slice(1).map((l) => l.replace(/^.*: /, '')),
    ['line 8', 'line 9', 'line 10', 'line 11', 'line 12'],
  );
  assert.equal(drops.reduce((n, d) => n + d.count, 0), 8);
  assert.deepEqual(c.collect(), []);
});

test('an iterated subscription that falls behind pauses on the log and resumes after its last offset', async () => {
  const c = await open({ maxQueued: 5 });
  const sub = c.subscribe('slow', { from: 'beginning' });
  await sub.ready;
  for (let i = 1; i <= 40; i++) broker.inject('slow', `s${i}`);
  await c.ping(); // every MSG is in before the PONG
  const got: number[] = [];
  for await (const m of sub) {
    got.push(m.offset);
    await new Promise((r) => setImmediate(r));
    if (got.length === 40) break;
  }
  assert.deepEqual(
    got,
    Array.from({ length: 40 }, (_, i) => i + 1),
  );
  assert.ok(framesLike(/^UNSUB /).length >= 1, 'the wire subscription was suspended');
  assert.ok(framesLike(/^SUB \w+ slow from=after:\d+$/).length >= 1, 'and resumed after its last offset');
  // On the same connection a resumed subscription takes a new sid: a late MSG of the old one is not taken for it.
  const sids = framesLike(/^SUB \w+ slow/).map((l) => l.split(' ')[1]);
  assert.equal(new Set(sids).size, sids.length, `sids ${sids.join(' ')}`);
});

test('an iterated wildcard subscription that overflows drops the oldest and counts them', async () => {
  const c = await open({ maxQueued: 3 });
  const drops: DropInfo[] = [];
  c.on('drop', (d) => drops.push(d));
  const sub = c.subscribe('many.*');
  await sub.ready;
  for (let i = 1; i <= 10; i++) broker.inject(`many.c${i}`, `m${i}`);
  await c.ping();
  const it = sub[Symbol.asyncIterator]();
  const first = await it.next();
  assert.equal(first.done, false);
  assert.equal(!first.done && first.value.text, 'm8');
  assert.equal(drops.reduce((n, d) => n + d.count, 0), 7);
  assert.ok(drops.every((d) => d.reason === 'queue-overflow'));
  await it.return!();
});

test('a handler that throws is reported and the next messages still arrive', async () => {
  const c = await open();
  const errors: FluctuatError[] = [];
  c.on('error', (e) => errors.push(e));
  const got: string[] = [];
  const s = c.subscribe('boom', (m) => {
    if (m.text === 'bad') throw new Error('handler bug');
    got.push(m.text);
  });
  const h = c.handle('boom.async', async () => {
    throw new Error('async bug');
  });
  await Promise.all([s.ready, h.ready]);
  broker.inject('boom', 'bad');
  broker.inject('boom', 'good');
  broker.inject('boom.async', 'x', 'other', '_INBOX.z.1');
  await eventually(() => got.length === 1 && errors.length === 2, () => JSON.stringify(errors.map((e) => e.message)));
  assert.ok(errors.every((e) => e.code === 'HANDLER_FAILED'));
  assert.ok(errors[0]!.cause instanceof Error);
});

test('outgoing frames are batched per event-loop turn', async () => {
  const c = await open();
  const before = broker.chunks;
  const acks = Array.from({ length: 200 }, (_, i) => c.publish('batch', `b${i}`));
  await Promise.all(acks);
  assert.ok(broker.chunks - before < 20, `200 publishes arrived in ${broker.chunks - before} reads`);
});

test('a broker that stops reading backs the writes up without losing any (write() === false honoured)', async () => {
  const c = await open();
  broker.pauseReading(true);
  const payload = Buffer.alloc(64 * 1024, 7);
  const acks = Array.from({ length: 200 }, () => c.publish('big', payload));
  await new Promise((r) => setTimeout(r, 50));
  assert.ok(broker.messages('big').length < 200, 'the broker was not reading');
  broker.pauseReading(false);
  const offsets = (await Promise.all(acks)).map((a) => a.offset);
  assert.deepEqual(
    offsets,
    Array.from({ length: 200 }, (_, i) => i + 1),
  );
  assert.ok(broker.messages('big').every((m) => m.data.equals(payload)));
});

test('a request whose responder answers twice resolves once; a handler ignores messages without reply', async () => {
  const responder = await open();
  const requester = await open();
  let calls = 0;
  const h = responder.subscribe('twice', (m) => {
    calls++;
    void m.respond('first');
    void m.respond('second');
  });
  const quiet = responder.handle('noreply', () => 'unused');
  await Promise.all([h.ready, quiet.ready]);
  assert.equal((await requester.request('twice', 'q')).text, 'first');
  await requester.publish('noreply', 'fire and forget');
  await responder.ping();
  assert.equal(calls, 1);
  assert.equal(framesLike(/^SUB \w+ _INBOX\.\w+\.> *$/).length, 1, 'one inbox subscription per client');
});

test('sockets the client did not open are not touched (a plain net server sees mode machine first)', async () => {
  const seen: string[] = [];
  const server = net.createServer((s) => {
    s.on('data', (d) => {
      seen.push(d.toString());
      s.write('INFO {"server":"bare"}\n');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const c = await connect(`tcp://127.0.0.1:${port}`, { reconnect: false });
  assert.equal(seen[0], 'mode machine\n');
  assert.equal(c.info.server, 'bare');
  await c.close();
  await new Promise((r) => server.close(r));
});

test('the clock offset comes from the fastest round trip: a slow answer does not drag it', async () => {
  const c = await open();
  await c.ping();
  await c.ping();
  const fast = c.clockOffsetMs;
  assert.ok(Math.abs(fast) < 100, `offset from fast pings: ${fast} ms`);
  // Now the request path takes 300 ms: the midpoint guess would be off by ~150 ms.
  // (The bounds are about which sample is used, not speed: they hold on a loaded machine.)
  broker.pingDelayMs = 300;
  const rttMs = await c.ping();
  assert.ok(rttMs >= 290, `slow ping took ${rttMs} ms`);
  assert.ok(Math.abs(c.clockOffsetMs - fast) < 100, `offset moved from ${fast} to ${c.clockOffsetMs} ms`);
});
