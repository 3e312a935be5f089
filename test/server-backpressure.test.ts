import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { startBroker } from './helpers/broker.js';
import { kept, pinsLittle } from '../src/core/broker.js';
import { payloadOf, storedMessage, type StoredMessage } from '../src/storage/engine.js';
import { startInProcess } from './helpers/inproc.js';
import { RawClient, stalledSubscriber as stalled, until, type Frame } from './helpers/raw.js';

/** Resident memory of a process, from /proc. */
function rssBytes(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/** The documented bound (docs/storage.md, "Bounded memory"): broker RSS under this while a subscriber stalls. */
const RSS_BOUND = 256 * 1024 * 1024;

test('a subscriber stalled for 10 s while a publisher runs at full speed: memory stays bounded, then it gets every message in order', async () => {
  const broker = await startBroker({ args: ['--fsync', 'never'] });
  try {
    const sub = await stalled(broker.port, 's', 'flood');

    const pub = await RawClient.machine(broker.port);
    let sent = 0;
    let acked = 0;
    pub.socket.on('data', () => {
      for (const f of pub.frames.splice(0)) if (f.line.startsWith('ACK ')) acked++;
    });
    const payload = Buffer.alloc(100, 0x61);
    let maxRss = 0;
    const start = Date.now();
    await new Promise<void>((resolve) => {
      const pump = (): void => {
        maxRss = Math.max(maxRss, rssBytes(broker.proc.pid!));
        if (Date.now() - start > 10_000) return resolve();
        while (sent - acked < 2000) {
          payload.write(String(sent).padStart(10, '0'));
          pub.pub('flood', payload, String(sent));
          sent++;
        }
        setTimeout(pump, 1);
      };
      pump();
    });
    await until(() => acked === sent, 'every publish acknowledged');
    maxRss = Math.max(maxRss, rssBytes(broker.proc.pid!));
    assert.ok(sent > 10_000, `publisher sent ${sent}`);
    assert.ok(maxRss < RSS_BOUND, `broker RSS ${(maxRss / 1048576).toFixed(1)} MiB exceeds the bound`);

    // Resume reading: every message arrives, in order, once.
    let next = 1;
    let bad = '';
    let count = 0;
    sub.socket.on('data', () => {
        for (const f of sub.frames.splice(0)) {
          if (!f.line.startsWith('MSG s ')) continue;
          const offset = Number(f.line.split(' ')[3]);
          if (offset !== next && !bad) bad = `expected offset ${next}, got ${offset}`;
          if (f.payload!.subarray(0, 10).toString() !== String(offset - 1).padStart(10, '0') && !bad) bad = `payload mismatch at ${offset}`;
          next = offset + 1;
          count++;
        }
    });
    sub.socket.resume();
    await until(() => count === sent || bad !== '', `all ${sent} messages (got ${count})`, 120_000);
    assert.equal(bad, '');
    assert.equal(count, sent);
    await sub.close();
    await pub.close();
  } finally {
    await broker.dispose();
  }
});

test('memory channels: a slow subscriber gets a drop notice with the count, or is disconnected, per policy', async () => {
  for (const policy of ['drop', 'disconnect'] as const) {
    const broker = await startInProcess({ storage: 'memory', broker: { slowConsumer: policy }, session: { outboundHighWater: 64 * 1024 } });
    try {
      const sub = await stalled(broker.port, 's', 'mem');
      const pub = await RawClient.machine(broker.port);
      const payload = Buffer.alloc(1000, 0x62);
      for (let i = 0; i < 5000; i++) pub.pub('mem', payload, i === 4999 ? 'last' : '-');
      await pub.waitFor((f) => f.line.startsWith('ACK last'));
      const counters = broker.server.broker.counters;
      if (policy === 'drop') {
        assert.ok(counters.dropped > 0);
        sub.socket.resume();
        await sub.waitFor((f) => f.line.startsWith('DROP s mem '));
        // Every message is either delivered or counted in a DROP notice, never silently lost.
        const delivered = (): number => sub.frames.filter((f) => f.line.startsWith('MSG s ')).length;
        const dropped = (): number => sub.frames.filter((f) => f.line.startsWith('DROP s mem ')).reduce((n, f) => n + Number(f.line.split(' ')[3]), 0);
        await until(() => delivered() + dropped() === 5000, 'deliveries + drops to account for all 5000 messages', 10_000);
        assert.ok(dropped() > 0);
        assert.equal(dropped(), counters.dropped);
      } else {
        sub.socket.resume();
        await sub.waitFor((f) => f.line.startsWith('ERR - SLOW_CONSUMER'));
        await sub.closedByPeer();
        assert.equal(counters.slowDisconnects, 1);
      }
      await pub.close();
      await sub.close();
    } finally {
      await broker.close();
    }
  }
});

test('a queue group whose members all stall falls back onto the log: every acknowledged message reaches exactly one member', async () => {
  // Tiny outbound bound and backlog, so the members are congested at once.
  const broker = await startInProcess({ session: { outboundHighWater: 4096 }, broker: { queueBacklog: 10 } });
  try {
    const members = await Promise.all([1, 2].map(() => stalled(broker.port, 'w', 'jobs queue=workers')));
    const pub = await RawClient.machine(broker.port);
    const N = 20_000;
    const payload = Buffer.alloc(200, 0x6a);
    for (let i = 0; i < N; i++) {
      payload.write(String(i).padStart(8, '0'));
      pub.pub('jobs', payload, `j${i}`);
    }
    await pub.waitFor((f) => f.line.startsWith(`ACK j${N - 1} `), 60_000);
    assert.equal(pub.frames.filter((f) => f.line.startsWith('ERR')).length, 0, 'no publish refused');
    assert.ok(broker.server.broker.counters.catchUps > 0, 'the group fell behind onto the log');
    for (const m of members) m.socket.resume();
    const received = (): Frame[] => members.flatMap((m) => m.frames.filter((f) => f.line.startsWith('MSG w ')));
    await until(() => received().length >= N, `all ${N} jobs delivered (got ${received().length})`, 60_000);
    const jobs = received().map((f) => f.payload!.toString('latin1', 0, 8));
    assert.equal(new Set(jobs).size, N, 'no job delivered twice');
    assert.equal(jobs.length, N);
    assert.equal(broker.server.broker.counters.queueDropped, 0);
    for (const m of members) assert.ok(m.frames.some((f) => f.line.startsWith('MSG w ')), 'both members got work');
    for (const c of [...members, pub]) await c.close();
  } finally {
    await broker.close();
  }
});

for (const storage of ['memory', 'file'] as const) {
  test(`a stalled queue group on a ${storage} channel gets every task intact and in order, and holds no whole read`, async () => {
    // Payloads reach the broker as views: of the socket read they came in (memory), or of the
    // staging chunk they were written from, which the next batches reuse (file). A memory
    // channel's backlog outlives both, so it must hold bytes that nothing changes and that pin
    // no whole read; a file channel's group falls back on the log and holds nothing.
    const broker = await startInProcess({ storage, session: { outboundHighWater: 4096 }, broker: { queueBacklog: 60_000 } });
    try {
      const member = await stalled(broker.port, 'w', 'jobs queue=workers');
      const pub = await RawClient.machine(broker.port);
      // Enough to fill the paused member's socket buffers: the rest waits in the backlog.
      const N = 60_000;
      // One write, so many publishes share each read.
      const frames: Buffer[] = [];
      for (let i = 0; i < N; i++) {
        const payload = Buffer.alloc(200, 0x61 + (i % 26));
        payload.write(String(i).padStart(8, '0'));
        frames.push(Buffer.from(`PUB jobs j${i} - ${payload.length}\n`), payload, Buffer.from('\n'));
      }
      pub.socket.write(Buffer.concat(frames));
      await pub.waitFor((f) => f.line.startsWith(`ACK j${N - 1} `), 30_000);
      const groups = (broker.server.broker as unknown as { groups: Map<string, { backlog: StoredMessage[] }> }).groups;
      const held = groups.get('workers\u0000jobs')!.backlog;
      const pinning = held.filter((m) => !pinsLittle(m)).length;
      const heldCount = held.length;
      member.socket.resume();
      if (storage === 'memory') assert.ok(heldCount > 0, 'the member congested and the group held a backlog');
      else {
        assert.equal(heldCount, 0, 'a file channel holds nothing for the group');
        assert.ok(broker.server.broker.counters.catchUps > 0, 'the group fell behind onto the log');
      }
      assert.equal(pinning, 0, 'no held payload pins a whole read');
      const received = (): Frame[] => member.frames.filter((f) => f.line.startsWith('MSG w '));
      await until(() => received().length >= N, `all ${N} jobs delivered (got ${received().length})`, 30_000);
      received().forEach((f, i) => {
        const expected = Buffer.alloc(200, 0x61 + (i % 26));
        expected.write(String(i).padStart(8, '0'));
        if (!f.payload?.equals(expected)) assert.fail(`job ${i}: ${f.payload?.toString('latin1', 0, 16)}`);
      });
      assert.equal(broker.server.broker.counters.queueDropped, 0);
      await member.close();
      await pub.close();
    } finally {
      await broker.close();
    }
  });
}

test('kept: a held message gets its own bytes when its payload views a much larger buffer', () => {
  const read = Buffer.alloc(64 * 1024, 0x78);
  const msg = (payload: Buffer): StoredMessage => storedMessage('c', 1, 0, 'p', '', payload);
  // A payload as a range of the read (as sessions hand them over) and as a view of it.
  for (const held of [{ ...msg(read), start: 100, end: 116 }, msg(read.subarray(100, 116))]) {
    const small = kept(held);
    assert.notEqual(small.data.buffer, read.buffer, 'a 16-byte payload of a 64 KiB read is copied');
    assert.ok(payloadOf(small).equals(read.subarray(100, 116)));
    assert.ok(pinsLittle(small));
  }
  const large = msg(read.subarray(0, 20_000));
  assert.equal(kept(large), large, 'a payload of a quarter of its buffer or more is kept as it is');
  const largeRange = { ...msg(read), start: 1000, end: 21_000 };
  assert.equal(kept(largeRange), largeRange);
});

for (const [bound, args] of [
  ['messages', ['--max-inflight', '3']],
  ['payload bytes', ['--max-inflight-bytes', '1000']],
] as const) {
  test(`a publisher at its in-flight bound (${bound}) is not read again until its publishes are acknowledged`, async () => {
    // Acks wait for a group commit a second away; deliveries do not (they follow the write).
    const broker = await startBroker({ args: ['--fsync', 'interval', '--fsync-interval', '1s', ...args] });
    try {
      const c = await RawClient.machine(broker.port);
      c.send('SUB s bound');
      await c.waitFor((f) => f.line === 'OK s');
      const payload = Buffer.alloc(400, 0x62);
      for (const id of ['a1', 'a2', 'a3']) c.pub('bound', payload, id); // 3 messages, 1,200 bytes
      await c.waitFor((f) => f.line.startsWith('MSG s bound 3 '));
      for (const id of ['a4', 'a5', 'a6']) c.pub('bound', payload, id);
      await c.waitFor((f) => f.line.startsWith('ACK a6 '), 20_000);
      // One connection, one byte stream: the order the broker wrote things in.
      const lines = c.lines();
      const firstAck = lines.findIndex((l) => l.startsWith('ACK a'));
      const fourth = lines.findIndex((l) => l.startsWith('MSG s bound 4 '));
      assert.ok(firstAck >= 0 && fourth >= 0, lines.join('\n'));
      assert.ok(fourth > firstAck, `message 4 was read before any of the first three was acknowledged:\n${lines.join('\n')}`);
      assert.deepEqual(
        lines.filter((l) => l.startsWith('ACK ')).map((l) => l.split(' ').slice(1).join(' ')),
        ['a1 1', 'a2 2', 'a3 3', 'a4 4', 'a5 5', 'a6 6'],
      );
      await c.close();
    } finally {
      await broker.dispose();
    }
  });
}

test('shutdown: a client that stopped reading with bytes queued for it does not keep the broker from closing', { timeout: 60_000 }, async () => {
  const broker = await startInProcess({ storage: 'memory', session: { outboundHighWater: 64 * 1024 } });
  const sub = await stalled(broker.port, 's', 'jam');
  const pub = await RawClient.machine(broker.port);
  const payload = Buffer.alloc(1000, 0x63);
  for (let i = 0; i < 20_000; i++) pub.pub('jam', payload, i === 19_999 ? 'last' : '-');
  await pub.waitFor((f) => f.line.startsWith('ACK last'));
  const gone = new Promise<void>((resolve) => sub.socket.once('close', () => resolve()));
  const started = Date.now();
  await broker.close();
  // Cut after the grace period, not when the client would have read everything (never).
  sub.socket.resume();
  await gone;
  assert.ok(Date.now() - started < 30_000);
  await pub.close();
});
