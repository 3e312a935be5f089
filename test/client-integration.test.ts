/**
 * The public client library end to end over real sockets, against two targets: the in-test fake
 * broker (test/fixtures/client-fakebroker.ts) and the real broker (`fluctuat serve` as a child
 * process, test/helpers/broker.ts). No timing thresholds: waits poll for an outcome.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { connect, FluctuatError, type Client, type Message } from '../src/client/index.js';
import { FakeBroker } from './fixtures/client-fakebroker.js';
import { startBroker } from './helpers/broker.js';
import { RawClient } from './helpers/raw.js';

interface Target {
  readonly url: string;
  readonly port: number;
  readonly real: boolean;
  /** Like kill -9: the process (or the fake's sockets) gone at once. */
  kill(): Promise<void>;
  /** Start again on the same port and data. */
  restart(): Promise<void>;
  dispose(): Promise<void>;
}

async function fake(): Promise<Target> {
  const b = new FakeBroker();
  await b.start();
  return {
    get url() {
      return b.url;
    },
    get port() {
      return b.port;
    },
    real: false,
    kill: () => b.kill(),
    restart: () => b.start(b.port),
    dispose: () => b.kill(),
  };
}

async function real(): Promise<Target> {
  const b = await startBroker();
  return {
    get url() {
      return b.url;
    },
    get port() {
      return b.port;
    },
    real: true,
    kill: () => b.kill(),
    restart: () => b.restart(),
    dispose: () => b.dispose(),
  };
}

const targets: [string, () => Promise<Target>][] = [
  ['fake broker', fake],
  ['fluctuat broker', real],
];

let counter = 0;
function uniq(prefix: string): string {
  return `${prefix}-${++counter}-${randomBytes(3).toString('hex')}`;
}

/** Poll until `check` holds. The bound only turns a hang into a readable failure. */
async function eventually(check: () => boolean, what: () => string, limitMs = 20_000): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > limitMs) throw new Error(`never happened: ${what()}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const fast = { backoffInitialMs: 10, backoffMaxMs: 200 } as const;

for (const [label, start] of targets) {
  describe(`client against the ${label}`, { timeout: 120_000 }, () => {
    let target: Target;
    const clients: Client[] = [];
    const open = async (options: Parameters<typeof connect>[1] = {}): Promise<Client> => {
      const c = await connect(target.url, { ...fast, ...options });
      c.on('error', () => {}); // tests assert on outcomes, not on the error stream
      clients.push(c);
      return c;
    };

    before(async () => {
      target = await start();
    });
    after(async () => {
      await Promise.all(clients.map((c) => c.close()));
      await target.dispose();
    });

    test('publish resolves on ACK with the offset; ERR and local refusals carry a code', async () => {
      const c = await open({ name: 'pub-test' });
      const ch = uniq('pub');
      const acks = await Promise.all([1, 2, 3].map((i) => c.publish(ch, `m${i}`)));
      assert.deepEqual(
        acks.map((a) => a.offset),
        [1, 2, 3],
      );
      assert.deepEqual(await c.publish(ch, new Uint8Array([0, 1, 2, 10, 255])), { offset: 4 });
      await assert.rejects(c.publish('bad channel', 'x'), (e: FluctuatError) => e instanceof FluctuatError && e.code === 'BAD_CHANNEL');
      await assert.rejects(c.publish('a.*', 'x'), (e: FluctuatError) => e.code === 'BAD_CHANNEL');
      const list = await c.channels(ch);
      assert.equal(list.length, 1);
      assert.equal(list[0]!.channel, ch);
      assert.equal(list[0]!.head, 4);
      const rtt = await c.ping();
      assert.ok(typeof rtt === 'number' && rtt >= 0);
    });

    test('payloads of every size stay intact in the messages a handler keeps, whatever arrives after them', async () => {
      const c = await open();
      const ch = uniq('sizes');
      // Around the size from which the client keeps a view of the read instead of a copy, and
      // past a read's 64 KiB, so payloads also arrive split over reads.
      // A run of small ones first: several split over reads with no large one in between.
      const sizes = [...Array<number>(60).fill(3000), 0, 1, 100, 16 * 1024 - 1, 16 * 1024, 20_000, 70_000, 200_000];
      const round = (): Buffer[] => sizes.flatMap((n) => [randomBytes(n), randomBytes(n)]);
      const first = round();
      const kept: Message[] = [];
      const s = c.subscribe(ch, (m) => kept.push(m));
      await s.ready;
      await Promise.all(first.map((p) => c.publish(ch, p)));
      await eventually(() => kept.length === first.length, () => `got ${kept.length} of ${first.length}`);
      const second = round();
      await Promise.all(second.map((p) => c.publish(ch, p)));
      await eventually(() => kept.length === first.length + second.length, () => `got ${kept.length}`);
      [...first, ...second].forEach((p, i) => assert.ok(kept[i]!.data.equals(p), `message ${i} (${p.length} bytes) changed`));
      await s.unsubscribe();
    });

    test('subscribe with every kind of from= position', async () => {
      const c = await open();
      const ch = uniq('pos');
      for (let i = 1; i <= 5; i++) await c.publish(ch, `m${i}`);
      const all: Message[] = [];
      const s0 = c.subscribe(ch, (m) => all.push(m), { from: 'beginning' });
      await s0.ready;
      await eventually(() => all.length === 5, () => `beginning gave ${all.length}`);
      assert.deepEqual(
        all.map((m) => [m.offset, m.text, m.channel]),
        [1, 2, 3, 4, 5].map((i) => [i, `m${i}`, ch]),
      );
      for (const m of all) assert.ok(m.time > 1e15 && Number.isInteger(m.time), 'time is µs since the epoch');
      const t = Math.floor(all[2]!.time / 1000);
      const sinceT = all.filter((m) => m.time >= t * 1000).map((m) => m.offset);
      const cases: [string, Parameters<Client['subscribe']>[2], number[]][] = [
        ['beginning (object)', { from: { beginning: true } }, [1, 2, 3, 4, 5]],
        ['offset:3', { from: 'offset:3' }, [3, 4, 5]],
        ['{ offset: 2 }', { from: { offset: 2 } }, [2, 3, 4, 5]],
        ['after:3', { from: 'after:3' }, [4, 5]],
        ['{ after: 4 }', { from: { after: 4 } }, [5]],
        ['last:2', { from: 'last:2' }, [4, 5]],
        ['{ last: 1 }', { from: { last: 1 } }, [5]],
        ['time:<ms>', { from: `time:${t}` }, sinceT],
        ['time:<ISO>', { from: `time:${new Date(t).toISOString()}` }, sinceT],
        ['{ time: Date }', { from: { time: new Date(t) } }, sinceT],
        ['new', { from: 'new' }, []],
        ['default (new)', {}, []],
      ];
      const got = cases.map(() => [] as number[]);
      const subs = cases.map(([, opts], i) => c.subscribe(ch, (m) => got[i]!.push(m.offset), opts));
      await Promise.all(subs.map((s) => s.ready));
      // A live sentinel after every replay: per-channel order means nothing can follow it unseen.
      const { offset: end } = await c.publish(ch, 'end');
      await eventually(() => got.every((g) => g.includes(end)), () => `sentinel not everywhere: ${JSON.stringify(got)}`);
      cases.forEach(([name, , expected], i) => assert.deepEqual(got[i], [...expected, end], name));
      await Promise.all(subs.map((s) => s.unsubscribe()));
    });

    test('wildcard subscriptions and async iteration', async () => {
      const c = await open();
      const base = uniq('wild');
      const sub = c.subscribe(`${base}.*`, { from: 'beginning' });
      await sub.ready;
      await c.publish(`${base}.a`, 'one');
      await c.publish(`${base}.b`, 'two');
      await c.publish(`${base}.a.deeper`, 'not matched by *');
      await c.publish(`${base}.a`, 'three');
      const seen: string[] = [];
      for await (const m of sub) {
        seen.push(`${m.channel.slice(base.length + 1)}#${m.offset}:${m.text}`);
        if (seen.length === 3) break; // break unsubscribes
      }
      assert.deepEqual(seen, ['a#1:one', 'b#1:two', 'a#2:three']);
      await eventually(() => sub.closed, () => 'iterator return() did not unsubscribe');
    });

    test('collect/send: human commands in, human-mode lines out', async () => {
      const c = await open({ name: 'collector' });
      const other = await open({ name: 'other' });
      const ch = uniq('chat');
      await other.publish(ch, 'before the sub');
      await c.send(`sub ${ch}`); // human mode replays history by default
      await other.publish(ch, 'hello\nworld\t\\ ✓');
      await c.send(`pub ${ch} typed  by hand `);
      await c.send('frobnicate');
      await c.send(`sub ${ch}`);
      await c.send('unsub nothing.here');
      const lines: string[] = [];
      await eventually(
        () => (lines.push(...c.collect({ info: true })), lines.filter((l) => l.startsWith('pubsub')).length === 3),
        () => JSON.stringify(lines),
      );
      const clock = '\\d\\d:\\d\\d:\\d\\d';
      const expected = [
        new RegExp(`^# \\[D\\]:${clock}: subscribing ${ch}$`),
        new RegExp(`^pubsub on ${ch} at ${clock}: before the sub$`),
        new RegExp(`^pubsub on ${ch} at ${clock}: hello\\\\nworld\\\\t\\\\\\\\ ✓$`),
        new RegExp(`^pubsub on ${ch} at ${clock}: typed  by hand $`),
        new RegExp(`^# \\[D\\]:${clock}: published ${ch} #3$`),
        /^-ERR UNKNOWN_COMMAND /,
        new RegExp(`^-ERR DUPLICATE_SID already subscribed to ${ch}$`),
        /^-ERR NOT_SUBSCRIBED /,
      ];
      assert.equal(lines.length, expected.length, JSON.stringify(lines));
      // Deliveries and answers may interleave; each expected line appears exactly once.
      for (const re of expected) assert.equal(lines.filter((l) => re.test(l)).length, 1, `${re} in ${JSON.stringify(lines)}`);
      // Without info, # lines are hidden.
      await other.publish(ch, 'quiet');
      await c.send(`pub ${uniq('fresh')} first`);
      const more: string[] = [];
      await eventually(() => (more.push(...c.collect()), more.length === 1), () => JSON.stringify(more));
      assert.match(more[0]!, /: quiet$/);
      const fresh = uniq('fresh');
      await c.send(`pub ${fresh} first`);
      await c.send(`unsub ${ch}`);
      await c.send('name renamed');
      await c.send('ping');
      await c.send('help pub');
      const info = c.collect({ info: true });
      assert.ok(info.includes(`# [I] creating ${fresh}`), JSON.stringify(info));
      assert.ok(info.some((l) => l.endsWith(`: published ${fresh} #1`)), JSON.stringify(info));
      assert.ok(info.some((l) => l.endsWith(`: unsubscribing ${ch}`)), JSON.stringify(info));
      assert.ok(info.includes('# [I] you are renamed'), JSON.stringify(info));
      assert.ok(info.some((l) => /^pong \d{4}-\d\d-\d\dT/.test(l)), JSON.stringify(info));
      assert.ok(info.some((l) => l.startsWith('# pub <channel>')), JSON.stringify(info));
    });

    test('collect renders exactly what human mode prints', { skip: !(label === 'fluctuat broker') && 'needs the human mode of the real broker' }, async () => {
      const c = await open();
      const ch = uniq('same');
      const raw = await RawClient.connect(target.port);
      try {
        raw.send(`sub ${ch}`);
        await c.send(`sub ${ch}`);
        await raw.waitFor((f) => f.line.includes('subscribing'));
        const payloads = ['plain', 'tab\there', 'nl\nin', 'back\\slash', 'ctrl\x01\x1b\x7f', 'cr\r', 'ünïcödé ✓ 🌊'];
        for (const p of payloads) await c.publish(ch, p);
        await c.publish(ch, 'reply carried', { reply: '_INBOX.someone.1' });
        const n = payloads.length + 1;
        await raw.waitFor(() => raw.lines().filter((l) => l.startsWith('pubsub')).length === n);
        const fromClient: string[] = [];
        await eventually(() => (fromClient.push(...c.collect()), fromClient.length === n), () => JSON.stringify(fromClient));
        assert.deepEqual(
          fromClient,
          raw.lines().filter((l) => l.startsWith('pubsub')),
        );
      } finally {
        await raw.close();
      }
    });

    test('request/handle across two connections, with a timeout', async () => {
      const server = await open({ name: 'responder' });
      const requester = await open({ name: 'requester' });
      const svc = uniq('svc');
      const h = server.handle(svc, async (msg) => {
        await new Promise((r) => setImmediate(r));
        return `${msg.publisher} asked ${msg.text.toUpperCase()}`;
      });
      const bin = server.handle(`${svc}.bin`, (msg) => Buffer.concat([msg.data, Buffer.from([0, 255])]));
      await Promise.all([h.ready, bin.ready]);
      const answer = await requester.request(svc, 'abc');
      assert.equal(answer.text, 'requester asked ABC');
      assert.equal(answer.publisher, 'responder');
      assert.ok(answer.channel.startsWith('_INBOX.'));
      const answers = await Promise.all([1, 2, 3, 4, 5].map((i) => requester.request(svc, `q${i}`)));
      assert.deepEqual(
        answers.map((a) => a.text),
        [1, 2, 3, 4, 5].map((i) => `requester asked Q${i}`),
      );
      const b = await requester.request(`${svc}.bin`, new Uint8Array([1, 2, 10]));
      assert.deepEqual([...b.data], [1, 2, 10, 0, 255]);
      await assert.rejects(requester.request(uniq('nobody'), 'x', { timeout: 50 }), (e: FluctuatError) => e.code === 'TIMEOUT');
      await c_unsub(h, bin);
    });

    test('a queue group spreads messages over its members, each delivered once', async () => {
      const members = await Promise.all([1, 2, 3].map((i) => open({ name: `worker${i}` })));
      const pub = await open();
      const ch = uniq('work');
      const got = members.map(() => [] as number[]);
      const subs = members.map((m, i) => m.subscribe(ch, (msg) => got[i]!.push(msg.offset), { queue: 'workers' }));
      await Promise.all(subs.map((s) => s.ready));
      const n = 30;
      for (let i = 0; i < n; i++) await pub.publish(ch, `job ${i}`);
      await eventually(() => got.flat().length === n, () => JSON.stringify(got));
      assert.deepEqual(
        got.flat().sort((a, b) => a - b),
        Array.from({ length: n }, (_, i) => i + 1),
      );
      for (const g of got) assert.ok(g.length > 0, `a member got nothing: ${JSON.stringify(got)}`);
      assert.throws(() => members[0]!.subscribe(ch, () => {}, { queue: 'workers', from: 'beginning' }), (e: FluctuatError) => e.code === 'BAD_ARGUMENTS');
    });

    test('the offline buffer is bounded: overflow rejects with BUFFER_FULL, the rest is sent on reconnect', async () => {
      const t = await start();
      try {
        const c = await connect(t.url, { ...fast, maxBuffered: 3 });
        c.on('error', () => {});
        const down = new Promise((r) => c.once('disconnect', r));
        await t.kill();
        await down;
        const ch = uniq('offline');
        const buffered = [1, 2, 3].map((i) => c.publish(ch, `b${i}`));
        await assert.rejects(c.publish(ch, 'b4'), (e: FluctuatError) => e.code === 'BUFFER_FULL' && /offline buffer is full/.test(e.message));
        const up = new Promise((r) => c.once('reconnect', r));
        await t.restart();
        await up;
        assert.deepEqual(
          (await Promise.all(buffered)).map((a) => a.offset),
          [1, 2, 3],
        );
        const reader = await connect(t.url);
        const texts: string[] = [];
        reader.subscribe(ch, (m) => texts.push(m.text), { from: 'beginning' });
        await eventually(() => texts.length === 3, () => JSON.stringify(texts));
        assert.deepEqual(texts, ['b1', 'b2', 'b3']);
        await Promise.all([c.close(), reader.close()]);
      } finally {
        await t.dispose();
      }
    });

    test('reconnect after kill -9 and restart: no gap, no duplicate, every acked publish stored', async () => {
      const t = await start();
      try {
        const subscriber = await connect(t.url, { ...fast, name: 'subscriber' });
        const publisher = await connect(t.url, { ...fast, name: 'publisher' });
        for (const c of [subscriber, publisher]) c.on('error', () => {});
        const base = uniq('rc');
        const plain: number[] = [];
        const wild: string[] = [];
        const s1 = subscriber.subscribe(`${base}.a`, (m) => plain.push(m.offset), { from: 'beginning' });
        const s2 = subscriber.subscribe(`${base}.*`, (m) => wild.push(`${m.channel}#${m.offset}`));
        await Promise.all([s1.ready, s2.ready]);
        const sent: { channel: string; text: string; ack: Promise<{ offset: number }> }[] = [];
        const send = (i: number): void => {
          const channel = `${base}.${i % 3 === 0 ? 'b' : 'a'}`;
          const text = `msg ${i}`;
          sent.push({ channel, text, ack: publisher.publish(channel, text) });
        };
        let i = 0;
        for (; i < 40; i++) send(i);
        await Promise.all(sent.map((s) => s.ack)); // phase 1: acknowledged before the kill
        for (; i < 60; i++) send(i); // phase 2: in flight when the broker dies
        const lost = new Promise((r) => subscriber.once('disconnect', r));
        await t.kill();
        await lost;
        for (; i < 80; i++) send(i); // phase 3: published while the broker is down
        const back = new Promise((r) => subscriber.once('reconnect', r));
        await t.restart();
        await back;
        for (; i < 100; i++) send(i); // phase 4: after the restart
        const acks = await Promise.all(sent.map((s) => s.ack));
        const heads = new Map((await publisher.channels(`${base}.*`)).map((c) => [c.channel, c.head]));
        const headA = heads.get(`${base}.a`)!;
        const headB = heads.get(`${base}.b`)!;
        await eventually(
          () => plain.length >= headA && wild.length >= headA + headB,
          () => `plain ${plain.length}/${headA}, wild ${wild.length}/${headA + headB}`,
        );
        // The plain subscriber saw every offset once, in order.
        assert.deepEqual(
          plain,
          Array.from({ length: headA }, (_, k) => k + 1),
        );
        // The wildcard subscriber (from=new, so from the first live message) saw each one once.
        assert.equal(new Set(wild).size, wild.length, 'duplicate delivery on the wildcard subscription');
        for (const [channel, head] of heads) {
          const offsets = wild.filter((w) => w.startsWith(`${channel}#`)).map((w) => Number(w.split('#')[1]));
          assert.deepEqual(
            offsets,
            Array.from({ length: head }, (_, k) => k + 1),
            channel,
          );
        }
        // Every acknowledged publish is stored at the offset its ACK named, with its text.
        const reader = await connect(t.url);
        const stored = new Map<string, string>();
        reader.subscribe(`${base}.*`, (m) => stored.set(`${m.channel}#${m.offset}`, m.text), { from: 'beginning' });
        await eventually(() => stored.size === headA + headB, () => `${stored.size} stored`);
        sent.forEach((s, k) => assert.equal(stored.get(`${s.channel}#${acks[k]!.offset}`), s.text, `${s.text} acked at ${acks[k]!.offset}`));
        // Re-sent publishes are at least once: the log may hold a copy of one unacked at the kill.
        assert.ok(headA + headB >= sent.length);
        await Promise.all([subscriber.close(), publisher.close(), reader.close()]);
      } finally {
        await t.dispose();
      }
    });

    test('close() waits for pending acknowledgements', async () => {
      const c = await connect(target.url);
      const ch = uniq('drain');
      const acks = Array.from({ length: 200 }, (_, i) => c.publish(ch, `d${i}`));
      await c.close();
      assert.equal((await Promise.all(acks)).length, 200);
      assert.equal(c.status, 'closed');
      await assert.rejects(c.publish(ch, 'late'), (e: FluctuatError) => e.code === 'CLOSED');
      assert.throws(() => c.subscribe(ch, () => {}), (e: FluctuatError) => e.code === 'CLOSED');
    });

    const fixture = new URL('./fixtures/client-worker.js', import.meta.url);

    /** Drive the fixture (worker or child) through its script; the port abstracts postMessage/send. */
    async function driveFixture(
      peer: { on(event: 'message', fn: (m: Record<string, unknown>) => void): void; send(m: string): void },
      id: string,
    ): Promise<Record<string, unknown>> {
      const inbox: Record<string, unknown>[] = [];
      peer.on('message', (m) => inbox.push(m));
      const next = async (key: string): Promise<Record<string, unknown>> => {
        await eventually(() => inbox.some((m) => key in m || 'error' in m), () => `fixture never sent ${key}: ${JSON.stringify(inbox)}`);
        const m = inbox.find((x) => key in x || 'error' in x)!;
        inbox.splice(inbox.indexOf(m), 1);
        if ('error' in m) throw new Error(`fixture failed: ${String(m.error)}`);
        return m;
      };
      const ready = await next('ready');
      assert.deepEqual(ready.offsets, [1, 2, 3]);
      const c = await open();
      assert.equal((await c.request(`ask.${id}`, 'hello from the parent')).text, 'HELLO FROM THE PARENT');
      const published: string[] = [];
      c.subscribe(`from.${id}`, (m) => published.push(`${m.publisher}:${m.text}`), { from: 'beginning' });
      await eventually(() => published.length === 3, () => JSON.stringify(published));
      assert.deepEqual(published, [1, 2, 3].map((i) => `fixture-${id}:message ${i} from ${id}`));
      await c.publish(`to.${id}`, 'over to you');
      let collected: string[] = [];
      await eventually(
        () => {
          peer.send('collect');
          const m = inbox.find((x) => 'collected' in x);
          if (m) {
            inbox.splice(inbox.indexOf(m), 1);
            collected = collected.concat(m.collected as string[]);
          }
          return collected.length > 0;
        },
        () => 'fixture collected nothing',
      );
      assert.match(collected[0]!, new RegExp(`^pubsub on to\\.${id} at \\d\\d:\\d\\d:\\d\\d: over to you$`));
      peer.send('stop');
      await next('closed');
      return ready;
    }

    test('the library works the same from a worker thread', async () => {
      const id = uniq('thread').replace(/-/g, '');
      const worker = new Worker(fixture, { workerData: { url: target.url, id, count: 3 } });
      const exited = new Promise<number>((r) => worker.once('exit', r));
      const errors: Error[] = [];
      worker.on('error', (err) => errors.push(err));
      const ready = await driveFixture({ on: (e, fn) => worker.on(e, fn), send: (m) => worker.postMessage(m) }, id);
      assert.equal(ready.thread, true);
      assert.equal(ready.pid, process.pid);
      assert.equal(await exited, 0);
      assert.deepEqual(errors, []);
    });

    test('the library works the same from a child process', async () => {
      const id = uniq('proc').replace(/-/g, '');
      const child: ChildProcess = fork(fileURLToPath(fixture), [JSON.stringify({ url: target.url, id, count: 3 })], { stdio: 'inherit' });
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      const ready = await driveFixture({ on: (e, fn) => child.on(e, fn), send: (m) => child.send(m) }, id);
      assert.equal(ready.thread, false);
      assert.notEqual(ready.pid, process.pid);
      assert.equal(await exited, 0);
    });
  });
}

async function c_unsub(...subs: { unsubscribe(): Promise<void> }[]): Promise<void> {
  await Promise.all(subs.map((s) => s.unsubscribe()));
}
