import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startInProcess, type InProcessBroker } from './helpers/inproc.js';
import { RawClient, type Frame } from './helpers/raw.js';

let broker: InProcessBroker;
before(async () => {
  broker = await startInProcess({ session: { maxPayload: 64 * 1024 } });
});
after(async () => {
  await broker.close();
});

const isMsg = (sid: string) => (f: Frame) => f.line.startsWith(`MSG ${sid} `);
function fields(f: Frame): { sid: string; channel: string; offset: number; time: number; publisher: string; reply: string; size: number } {
  const [, sid, channel, offset, time, publisher, reply, size] = f.line.split(' ');
  return { sid: sid!, channel: channel!, offset: Number(offset), time: Number(time), publisher: publisher!, reply: reply!, size: Number(size) };
}

test('publish with acks, then replay from the beginning with offsets, times and identities', async () => {
  const c = await RawClient.machine(broker.port);
  c.send('NAME probe-1');
  const binary = Buffer.from([0, 10, 13, 255, 10, 0x4d, 0x53, 0x47, 10]);
  c.pub('m.one', 'first', 'a1');
  c.pub('m.one', binary, 'a2');
  c.pub('m.one', '', 'a3');
  await c.waitFor((f) => f.line === 'ACK a1 1');
  await c.waitFor((f) => f.line === 'ACK a2 2');
  await c.waitFor((f) => f.line === 'ACK a3 3');

  const s = await RawClient.machine(broker.port);
  s.send('SUB s1 m.one from=beginning');
  await s.waitFor((f) => f.line === 'OK s1');
  await s.waitFor((f) => f.line === 'LIVE s1 m.one 3');
  const msgs = s.frames.filter(isMsg('s1'));
  assert.equal(msgs.length, 3);
  assert.deepEqual(msgs.map((m) => fields(m).offset), [1, 2, 3]);
  assert.deepEqual(msgs[1]!.payload, binary);
  assert.equal(msgs[2]!.payload!.length, 0);
  const first = fields(msgs[0]!);
  assert.equal(first.publisher, 'probe-1');
  assert.equal(first.reply, '-');
  assert.ok(Math.abs(first.time / 1000 - Date.now()) < 60_000, 'broker time is wall-clock µs');

  // And live afterwards.
  c.pub('m.one', 'live', 'a4');
  const live = await s.next(isMsg('s1'));
  assert.equal(fields(live).offset, 4);
  assert.equal(live.payload!.toString(), 'live');
  await c.close();
  await s.close();
});

test('every start position', async () => {
  const c = await RawClient.machine(broker.port);
  for (let i = 1; i <= 10; i++) c.pub('pos', `m${i}`, `p${i}`);
  await c.waitFor((f) => f.line === 'ACK p10 10');
  const cases: [string, number[]][] = [
    ['from=beginning', [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]],
    ['from=offset:8', [8, 9, 10]],
    ['from=after:8', [9, 10]],
    ['from=last:2', [9, 10]],
    ['from=last:0', []],
    ['from=offset:11', []],
    [`from=time:${Date.now() + 60_000}`, []],
    ['from=time:0', [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]],
  ];
  for (const [i, [position, offsets]] of cases.entries()) {
    const s = await RawClient.machine(broker.port);
    s.send(`SUB q${i} pos ${position}`);
    await s.waitFor((f) => f.line.startsWith(`LIVE q${i} pos`));
    assert.deepEqual(s.frames.filter(isMsg(`q${i}`)).map((m) => fields(m).offset), offsets, position);
    await s.close();
  }
  const s = await RawClient.machine(broker.port);
  s.send('SUB n pos from=new');
  await s.waitFor((f) => f.line === 'OK n');
  c.pub('pos', 'eleven', 'p11');
  const m = await s.next(isMsg('n'));
  assert.equal(fields(m).offset, 11);
  await c.close();
  await s.close();
});

test('errors carry stable codes and the connection stays usable', async () => {
  const c = await RawClient.machine(broker.port);
  const big = Buffer.alloc(100 * 1024, 0x41);
  c.pub('e', big, 'big');
  await c.waitFor((f) => f.line.startsWith('ERR big PAYLOAD_TOO_LARGE payload of 102400 bytes exceeds max-payload 65536'));
  c.pub('bad..channel', 'x', 'b1');
  await c.waitFor((f) => f.line.startsWith('ERR b1 BAD_CHANNEL'));
  c.send(Buffer.from('PUB e k1 - 3\nabcdef\n'));
  await c.waitFor((f) => f.line.startsWith('ERR - BAD_FRAME payload of 3 bytes not followed by a newline'));
  assert.ok(!c.lines().some((l) => l.startsWith('ACK k1')), 'a torn frame is not stored');
  c.send('SUB s e');
  await c.waitFor((f) => f.line === 'OK s');
  c.send('SUB s e');
  await c.waitFor((f) => f.line.startsWith('ERR s DUPLICATE_SID'));
  c.send('UNSUB nope');
  await c.waitFor((f) => f.line.startsWith('ERR nope NOT_SUBSCRIBED'));
  c.send('sub lower case');
  await c.waitFor((f) => f.line.startsWith('ERR - UNKNOWN_COMMAND'));
  c.send(Buffer.concat([Buffer.from('X'.repeat(5000)), Buffer.from('\n')]));
  await c.waitFor((f) => f.line.startsWith('ERR - LINE_TOO_LONG'));
  // Nothing of the refused frames was stored, and the connection still works.
  c.pub('e', 'fine', 'ok1');
  await c.waitFor((f) => f.line === 'ACK ok1 1');
  c.send('PING t 5');
  await c.waitFor((f) => /^PONG t 5 \d+$/.test(f.line));
  c.send('CHANNELS e');
  await c.waitFor((f) => f.line === 'END CHANNELS');
  assert.ok(c.lines().some((l) => /^CHANNEL e 1 1 1 \d+$/.test(l)));
  await c.close();
});

test('wildcards across several connections', async () => {
  const star = await RawClient.machine(broker.port);
  const rest = await RawClient.machine(broker.port);
  const middle = await RawClient.machine(broker.port);
  star.send('SUB w w.*');
  rest.send('SUB w w.>');
  middle.send('SUB w *.x.*');
  for (const c of [star, rest, middle]) await c.waitFor((f) => f.line === 'OK w');
  const p = await RawClient.machine(broker.port);
  for (const ch of ['w.a', 'w.x.b', 'w.x', 'v.x.c', 'w']) p.pub(ch, ch, `k${ch.replace(/\./g, '')}`);
  p.pub('w.done', 'end', 'last');
  await p.waitFor((f) => f.line.startsWith('ACK last'));
  const got = async (c: RawClient): Promise<string[]> => {
    await c.waitFor((f) => f.payload?.toString() === 'end' || (f.line.startsWith('MSG') && f.line.includes(' w.x.b ')));
    await new Promise((r) => setTimeout(r, 100));
    // Order holds within a channel; channels are independent logs.
    return c.frames.filter(isMsg('w')).map((m) => fields(m).channel).sort();
  };
  assert.deepEqual(await got(star), ['w.a', 'w.done', 'w.x']);
  assert.deepEqual(await got(rest), ['w.a', 'w.done', 'w.x', 'w.x.b']);
  assert.deepEqual(await got(middle), ['v.x.c', 'w.x.b']);
  for (const c of [star, rest, middle, p]) await c.close();
});

test('queue groups spread messages: each goes to exactly one member, plain subscribers get all', async () => {
  const members = await Promise.all([1, 2, 3].map(() => RawClient.machine(broker.port)));
  for (const m of members) m.send('SUB g tasks.> queue=workers');
  const watcher = await RawClient.machine(broker.port);
  watcher.send('SUB all tasks.>');
  for (const m of members) await m.waitFor((f) => f.line === 'OK g');
  await watcher.waitFor((f) => f.line === 'OK all');
  const p = await RawClient.machine(broker.port);
  const N = 300;
  for (let i = 0; i < N; i++) p.pub(`tasks.t${i % 7}`, `task-${i}`, `t${i}`);
  await p.waitFor((f) => f.line.startsWith(`ACK t${N - 1} `));
  await watcher.waitFor(() => watcher.frames.filter(isMsg('all')).length === N);
  const deadline = Date.now() + 10_000;
  const total = (): number => members.reduce((n, m) => n + m.frames.filter(isMsg('g')).length, 0);
  while (total() < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const seen = members.flatMap((m) => m.frames.filter(isMsg('g')).map((f) => f.payload!.toString()));
  assert.equal(seen.length, N);
  assert.equal(new Set(seen).size, N, 'no task delivered twice');
  for (const m of members) assert.ok(m.frames.filter(isMsg('g')).length > 0, 'every member got work');
  for (const c of [...members, watcher, p]) await c.close();
});

test('request/reply across connections with a queue group of responders', async () => {
  const responders = await Promise.all([1, 2].map(async (n) => {
    const r = await RawClient.machine(broker.port);
    r.send(`NAME responder-${n}`);
    r.send('SUB svc svc.echo queue=echo');
    await r.waitFor((f) => f.line === 'OK svc');
    r.socket.on('data', () => {
      for (const f of r.frames.splice(0)) {
        if (!f.line.startsWith('MSG svc ')) continue;
        const { reply } = fields(f);
        r.pub(reply, `${n}:${f.payload!.toString()}`);
      }
    });
    return r;
  }));
  const req = await RawClient.machine(broker.port);
  req.send('SUB inbox _INBOX.me.>');
  await req.waitFor((f) => f.line === 'OK inbox');
  for (let i = 0; i < 20; i++) req.pub('svc.echo', `q${i}`, '-', `_INBOX.me.${i}`);
  await req.waitFor(() => req.frames.filter(isMsg('inbox')).length === 20);
  const replies = req.frames.filter(isMsg('inbox'));
  for (const r of replies) {
    const { channel, offset } = fields(r);
    const i = channel.split('.')[2];
    assert.match(r.payload!.toString(), new RegExp(`^[12]:q${i}$`));
    assert.equal(offset, 0, 'reply inboxes are ephemeral');
  }
  assert.equal(new Set(replies.map((r) => r.payload!.toString()[0])).size, 2, 'both responders answered');
  for (const c of [...responders, req]) await c.close();
});

test('the broker measures a client round trip and clock offset NTP-style; clients lists them', async () => {
  const c = await RawClient.machine(broker.port);
  const ping = await c.waitFor((f) => f.line.startsWith('PING '));
  const [, token, t1] = ping.line.split(' ');
  // Answer as a client whose clock runs 5 s ahead.
  c.send(`PONG ${token} ${t1} ${Math.round((performance.timeOrigin + performance.now()) * 1000) + 5_000_000}`);
  c.send('NAME clocky');
  c.send('CLIENTS');
  await c.waitFor((f) => f.line === 'END CLIENTS');
  const me = c.frames.map((f) => f.line).filter((l) => l.startsWith('CLIENT ')).map((l) => JSON.parse(l.slice(7)) as { name: string; rttUs: number; offsetUs: number }).find((r) => r.name === 'clocky')!;
  assert.ok(me.rttUs >= 0, `rtt ${me.rttUs}`);
  assert.ok(Math.abs(me.offsetUs - 5_000_000) < 1_000_000, `offset ${me.offsetUs} should be about +5 s`);
  c.send('PONG nope 1 2');
  c.send('PONG x y');
  await c.waitFor((f) => f.line.startsWith('ERR - BAD_ARGUMENTS expected 3 arguments'));
  await c.close();
});

test('payloads around the inline and direct-write sizes arrive byte-exact at every subscriber', async () => {
  const subs = await Promise.all([1, 2].map(() => RawClient.machine(broker.port)));
  for (const s of subs) {
    s.send('SUB z sizes.x');
    await s.waitFor((f) => f.line === 'OK z');
  }
  const p = await RawClient.machine(broker.port);
  const sizes = [0, 1, 63, 64, 65, 2047, 2048, 2049, 16_383, 16_384, 40_000];
  const payloads = sizes.map((n, k) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + k) & 0xff)));
  payloads.forEach((b, k) => p.pub('sizes.x', b, `s${k}`));
  await p.waitFor((f) => f.line.startsWith(`ACK s${sizes.length - 1} `));
  for (const s of subs) {
    await s.waitFor(() => s.frames.filter(isMsg('z')).length === sizes.length);
    const got = s.frames.filter(isMsg('z'));
    got.forEach((f, k) => {
      assert.equal(fields(f).size, sizes[k]);
      assert.deepEqual(f.payload, payloads[k]);
    });
  }
  for (const c of [...subs, p]) await c.close();
});
