import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { startInProcess } from './helpers/inproc.js';
import { RawClient, until } from './helpers/raw.js';

function connectFrom(port: number, localAddress: string): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress }, () => resolve(RawClient.wrap(socket)));
    socket.once('error', reject);
  });
}

test('connection limits and address lists refuse with a clear line; others keep working', async () => {
  const broker = await startInProcess({ security: { maxConnectionsPerAddress: 3, denyAddresses: ['127.0.0.2/32', '::ffff:127.0.0.3'] } });
  try {
    const ok = await Promise.all([1, 2, 3].map(() => RawClient.connect(broker.port)));
    const fourth = await RawClient.connect(broker.port);
    await fourth.waitFor((f) => f.line.startsWith('-ERR TOO_MANY_CONNECTIONS 127.0.0.1 has 3 connections, the limit per address'));
    await until(() => fourth.closed, 'the refused connection to close');
    for (const denied of ['127.0.0.2', '127.0.0.3']) {
      const c = await connectFrom(broker.port, denied);
      await c.waitFor((f) => f.line === `-ERR ADDRESS_REFUSED connections from ${denied} are not allowed`);
    }
    // From another loopback address the per-address limit is separate.
    const other = await connectFrom(broker.port, '127.0.0.4');
    other.send('ping');
    await other.waitFor((f) => f.line.startsWith('pong '));
    ok[0]!.send('pub still.works yes');
    await ok[0]!.waitFor((f) => f.line.endsWith('published still.works #1'));
    for (const c of [...ok, other]) await c.close();
    assert.ok(broker.server.guard.counters.refusedConnections >= 3);
  } finally {
    await broker.close();
  }
});

test('publish rate: a token bucket per connection, with an error that says the limit and when to retry', async () => {
  const broker = await startInProcess({ security: { publishRate: 50, publishBurst: 10 } });
  try {
    const c = await RawClient.machine(broker.port);
    for (let i = 0; i < 30; i++) c.pub('rated', `m${i}`, `a${i}`);
    await until(() => c.lines().filter((l) => l.startsWith('ACK ') || l.startsWith('ERR ')).length === 30, 'an answer to each publish');
    const acked = c.lines().filter((l) => l.startsWith('ACK ')).length;
    const limited = c.lines().filter((l) => /^ERR a\d+ RATE_LIMITED publish rate limit \(50 msgs\/s\) reached; retry in \d+ ms; not stored$/.test(l));
    assert.ok(acked >= 10 && acked < 30, `acked ${acked}`);
    assert.equal(acked + limited.length, 30);
    // Refused publishes were not stored: the channel holds exactly the acknowledged ones.
    c.send('CHANNELS rated');
    await c.waitFor((f) => f.line === 'END CHANNELS');
    assert.ok(c.lines().includes(`CHANNEL rated 1 ${acked} ${acked} ${c.lines().find((l) => l.startsWith('CHANNEL rated'))!.split(' ')[5]}`));
    await c.close();
  } finally {
    await broker.close();
  }
});

test('idle and login timeouts close slow or silent connections with a reason', async () => {
  const broker = await startInProcess({ security: { idleTimeoutMs: 300 } });
  try {
    const c = await RawClient.connect(broker.port);
    await c.waitFor((f) => f.line.startsWith('-ERR IDLE_TIMEOUT idle for'), 5000);
    await until(() => c.closed, 'close');
  } finally {
    await broker.close();
  }
  const auth = await startInProcess({ security: { usersFile: '/nonexistent/users', loginTimeoutMs: 300 } });
  try {
    // Slowloris: a login line that never ends.
    const c = await RawClient.connect(auth.port);
    c.send(Buffer.from('login someb'));
    await c.waitFor((f) => f.line.startsWith('-ERR LOGIN_TIMEOUT no login within 300 ms'), 5000);
    await until(() => c.closed, 'close');
  } finally {
    await auth.close();
  }
});

test('hostile clients: 1,000 half-open connections, 3,000 connect/disconnect cycles and a reader that never reads leave a well-behaved client with all its messages', async () => {
  const broker = await startInProcess({ security: { maxConnectionsPerAddress: 5000, maxConnections: 5000 } });
  try {
    const good = await RawClient.machine(broker.port);
    good.send('SUB g good.chan');
    await good.waitFor((f) => f.line === 'OK g');
    const stalled = await RawClient.machine(broker.port);
    stalled.send('SUB s good.chan');
    await stalled.waitFor((f) => f.line === 'OK s');
    stalled.socket.pause();
    // Half-open: connected, a partial line, then nothing.
    const halfOpen: net.Socket[] = [];
    for (let i = 0; i < 1000; i++) {
      const s = net.connect(broker.port, '127.0.0.1');
      s.on('error', () => {});
      s.write('pub x');
      halfOpen.push(s);
    }
    const pub = await RawClient.machine(broker.port);
    let sent = 0;
    for (let cycle = 0; cycle < 3000; cycle += 100) {
      await Promise.all(
        Array.from({ length: 100 }, () => new Promise<void>((resolve) => {
          const s = net.connect(broker.port, '127.0.0.1', () => s.destroy());
          s.on('close', () => resolve());
          s.on('error', () => resolve());
        })),
      );
      for (let k = 0; k < 50; k++) pub.pub('good.chan', Buffer.alloc(2000, 0x67), String(sent++));
    }
    await until(() => good.frames.filter((f) => f.line.startsWith('MSG g ')).length === sent, `all ${sent} messages at the good client`);
    const offsets = good.frames.filter((f) => f.line.startsWith('MSG g ')).map((f) => Number(f.line.split(' ')[3]));
    assert.deepEqual(offsets, Array.from({ length: sent }, (_, i) => i + 1));
    for (const s of halfOpen) s.destroy();
    await good.close();
    await stalled.close();
    await pub.close();
  } finally {
    await broker.close();
  }
});
