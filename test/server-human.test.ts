import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { after, before, test } from 'node:test';
import { startBroker, type RunningBroker } from './helpers/broker.js';
import { startInProcess, type InProcessBroker } from './helpers/inproc.js';
import { RawClient } from './helpers/raw.js';
import type { ChannelLog, NewMessage, StorageEngine } from '../src/storage/engine.js';
import { driverNames, getDriver, registerDriver } from '../src/storage/registry.js';
import '../src/storage/builtin.js';

/** A real socat process as the client, like a person at a terminal. */
class Terminal {
  output = '';
  private readonly proc: ChildProcessWithoutNullStreams;
  constructor(port: number) {
    this.proc = spawn('socat', ['-', `TCP:127.0.0.1:${port}`]);
    this.proc.stdout.on('data', (d: Buffer) => (this.output += d.toString()));
  }
  type(line: string): void {
    this.proc.stdin.write(line + '\n');
  }
  async waitFor(re: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.output.match(re);
      if (m) return m;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${re}; output so far:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  close(): void {
    this.proc.kill();
  }
}

let broker: RunningBroker;
before(async () => {
  broker = await startBroker();
});
after(async () => {
  await broker.dispose();
});

test('the original session, through socat: pub, then sub shows history, then a live pub arrives', async () => {
  const publisher = new Terminal(broker.port);
  publisher.type('pub this nada');
  await publisher.waitFor(/# \[I\] creating this\n/);
  await publisher.waitFor(/# \[D\]:\d\d:\d\d:\d\d: published this #1\n/);

  const subscriber = new Terminal(broker.port);
  subscriber.type('sub this');
  await subscriber.waitFor(/# \[D\]:\d\d:\d\d:\d\d: subscribing this\n/);
  await subscriber.waitFor(/pubsub on this at \d\d:\d\d:\d\d: nada\n/);

  publisher.type('pub this hello');
  await subscriber.waitFor(/pubsub on this at \d\d:\d\d:\d\d: hello\n/);
  // History first, then live, each once.
  const deliveries = subscriber.output.split('\n').filter((l) => l.startsWith('pubsub on this'));
  assert.deepEqual(deliveries.map((l) => l.replace(/ at \S+:/, ':')), ['pubsub on this: nada', 'pubsub on this: hello']);
  publisher.close();
  subscriber.close();
});

test('a bad command gets one clear error and the connection stays usable', async () => {
  const t = new Terminal(broker.port);
  t.type('frobnicate the bus');
  await t.waitFor(/-ERR UNKNOWN_COMMAND unknown command "frobnicate"; expected one of: sub, unsub, pub/);
  t.type('pub bad..name x');
  await t.waitFor(/-ERR BAD_CHANNEL bad channel "bad\.\.name": empty token/);
  t.type('ping');
  await t.waitFor(/pong \d{4}-\d\d-\d\dT/);
  t.close();
});

let inproc: InProcessBroker;
test('human mode: help, channels, name, unsub, req, escaping, quit', async (t) => {
  inproc = await startInProcess();
  t.after(() => inproc.close());
  const c = await RawClient.connect(inproc.port);
  c.send('help');
  await c.waitFor((f) => f.line.startsWith('#   quit'));
  c.send('name probe-7');
  await c.waitFor((f) => f.line === '# [I] you are probe-7');
  c.send('pub a.b x\ty');
  c.send('pub a.c two');
  await c.waitFor((f) => f.line.endsWith('published a.c #1'));
  c.send('channels a.*');
  await c.waitFor((f) => f.line === '# [I] 2 channels');
  assert.ok(c.lines().some((l) => /^channel a\.b messages=1 first=1 last=1 bytes=\d+$/.test(l)));
  c.send('sub a.*');
  await c.waitFor((f) => /^pubsub on a\.b at \S+: x\\ty$/.test(f.line));
  c.send('unsub a.*');
  await c.waitFor((f) => f.line.endsWith('unsubscribing a.*'));
  c.send('unsub a.*');
  await c.waitFor((f) => f.line.startsWith('-ERR NOT_SUBSCRIBED'));

  // A responder in machine mode answers the human request.
  const responder = await RawClient.machine(inproc.port);
  responder.send('SUB r svc.time');
  await responder.waitFor((f) => f.line === 'OK r');
  c.send('req svc.time what time is it');
  const request = await responder.waitFor((f) => f.line.startsWith('MSG r svc.time'));
  assert.equal(request.payload!.toString(), 'what time is it');
  const reply = request.line.split(' ')[6]!;
  assert.match(reply, /^_INBOX\./);
  responder.pub(reply, 'teatime');
  await c.waitFor((f) => /^pubsub on _INBOX\.\S+ at \S+: teatime$/.test(f.line));
  c.send('quit');
  await c.waitFor((f) => f.line === '# [I] bye');
  await responder.close();
});

test('quit waits for the acknowledgements of what came before it, then ignores what comes after', async () => {
  for (const storage of ['file', 'memory'] as const) {
    const b = storage === 'file' ? broker : await startInProcess({ storage: 'memory' });
    try {
      const c = await RawClient.connect(b.port);
      // One write: the publishes are acknowledged after the read that carried the quit.
      c.send('pub q.one first\npub q.one second\nquit\npub q.one after quit');
      await c.closedByPeer();
      const lines = c.lines();
      const published = lines.filter((l) => / published q\.one #\d+$/.test(l));
      assert.equal(published.length, 2, `${storage}: ${lines.join(' | ')}`);
      assert.equal(lines[lines.length - 1], '# [I] bye', `${storage}: bye comes last`);
      const check = await RawClient.machine(b.port);
      check.send('CHANNELS q.one');
      const ch = await check.waitFor((f) => f.line.startsWith('CHANNEL q.one '));
      assert.equal(ch.line.split(' ')[4], '2', `${storage}: nothing after quit was published`);
      await check.close();
    } finally {
      if (storage === 'memory') await (b as InProcessBroker).close();
    }
  }
});

test('quit on storage that never acknowledges: the connection still closes after the grace period, with a warning', async () => {
  // A driver that stores through the memory driver but never acknowledges: a hung disk.
  if (!driverNames().includes('test-unacked')) {
    registerDriver({
      name: 'test-unacked',
      create: (options, log): StorageEngine => {
        const inner = getDriver('memory').create(options, log);
        const unacked = (ch: ChannelLog): ChannelLog => ({
          name: ch.name,
          get first() {
            return ch.first;
          },
          get head() {
            return ch.head;
          },
          replayable: ch.replayable,
          append: (m: NewMessage) => ch.append(m),
          read: (from, max, bytes) => ch.read(from, max, bytes),
          resolve: (position) => ch.resolve(position),
          stats: () => ch.stats(),
        });
        return {
          driver: 'test-unacked',
          start: (onCommit) => inner.start(onCommit),
          channels: () => inner.channels(),
          has: (name) => inner.has(name),
          channel: (name) => unacked(inner.channel(name)),
          rotate: () => inner.rotate(),
          close: () => inner.close(),
        };
      },
    });
  }
  const b = await startInProcess({ storage: 'test-unacked', session: { quitGraceMs: 300 } });
  try {
    const c = await RawClient.connect(b.port);
    c.send('pub hung.one never acknowledged\nquit');
    await c.closedByPeer();
    const lines = c.lines();
    assert.ok(lines.some((l) => l === '# [W] 1 publishes still unacknowledged after 300 ms; closing anyway'), lines.join(' | '));
    assert.equal(lines[lines.length - 1], '# [I] bye');
  } finally {
    await b.close();
  }
});
