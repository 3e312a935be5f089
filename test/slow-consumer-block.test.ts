import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { FileStorageEngine } from '../src/storage/filelog/engine.js';
import { startBroker } from './helpers/broker.js';
import { startInProcess } from './helpers/inproc.js';
import { RawClient, stalledSubscriber as stalled, until, type Frame } from './helpers/raw.js';

// `slow-consumer block` (core/pushback.ts): on a memory channel a subscriber past its outbound
// bound makes the channel's publishers wait instead of losing messages; one that never drains
// is disconnected after the timeout.

/** `n` numbered publishes of `size` bytes, written at once (the socket buffers what the broker does not read). */
function flood(pub: RawClient, channel: string, n: number, size: number, tag = ''): void {
  for (let i = 0; i < n; i++) {
    const payload = Buffer.alloc(size, 0x61 + (i % 26));
    payload.write(String(i).padStart(8, '0'));
    pub.pub(channel, payload, `${tag}${i}`);
  }
}

/**
 * Two members of queue group `workers` on `channel` that read nothing (sid `w`), and a publisher
 * that has written `n` numbered tasks of `size` bytes at them.
 */
async function stalledGroupFlooded(port: number, channel: string, n: number, size: number): Promise<{ members: RawClient[]; pub: RawClient }> {
  const members = await Promise.all([1, 2].map(() => stalled(port, 'w', `${channel} queue=workers`)));
  const pub = await RawClient.machine(port);
  flood(pub, channel, n, size);
  return { members, pub };
}

/** The payload numbers of the MSG frames for `sid`, in arrival order. */
function numbers(frames: readonly Frame[], sid: string): number[] {
  return frames.filter((f) => f.line.startsWith(`MSG ${sid} `)).map((f) => Number(f.payload!.toString('latin1', 0, 8)));
}

/** Waits until `read()` has not changed for `quietMs`. */
async function settled(read: () => number, quietMs = 300): Promise<number> {
  let last = read();
  for (;;) {
    await new Promise((r) => setTimeout(r, quietMs));
    const now = read();
    if (now === last) return now;
    last = now;
  }
}

test('block: a stalled subscriber holds its publisher back, memory stays bounded, and once it reads it gets every message in order with nothing dropped', { timeout: 120_000 }, async () => {
  const broker = await startInProcess({ storage: 'memory', broker: { slowConsumer: 'block' }, session: { outboundHighWater: 64 * 1024 } });
  try {
    const counters = broker.server.broker.counters;
    const sub = await stalled(broker.port, 's', 'mem');
    const pub = await RawClient.machine(broker.port);
    const N = 50_000;
    const SIZE = 1000;
    flood(pub, 'mem', N, SIZE);

    // The broker stops reading the publisher: what it accepted is what the subscriber's kernel
    // buffers and its outbound bound hold, plus reads already in hand, far from all 50 MB.
    const accepted = await settled(() => counters.published);
    assert.ok(accepted < N, `the publisher was held back (${accepted} of ${N} accepted)`);
    assert.ok(accepted * SIZE < 24 * 1024 * 1024, `${accepted} messages of ${SIZE} B accepted while the subscriber stalls`);
    const stats = broker.server.broker.stats(2);
    assert.equal(stats.heldChannels, 1);
    assert.equal(stats.waitingPublishers, 1);
    assert.ok(stats.publisherWaits! >= 1);

    sub.socket.resume();
    await until(() => numbers(sub.frames, 's').length === N, `all ${N} messages (got ${numbers(sub.frames, 's').length})`, 60_000);
    assert.deepEqual(numbers(sub.frames, 's'), Array.from({ length: N }, (_, i) => i));
    await pub.waitFor((f) => f.line.startsWith(`ACK ${N - 1} `), 30_000);
    assert.equal(counters.dropped, 0);
    assert.equal(sub.frames.filter((f) => f.line.startsWith('DROP')).length, 0, 'no drop notice');
    assert.equal(broker.server.broker.stats(2).heldChannels, 0);
    await pub.close();
    await sub.close();
  } finally {
    await broker.close();
  }
});

test('block: only publishers into the held channel wait; another channel on the same broker flows on', { timeout: 120_000 }, async () => {
  const broker = await startInProcess({ storage: 'memory', broker: { slowConsumer: 'block' }, session: { outboundHighWater: 64 * 1024 } });
  try {
    const sub = await stalled(broker.port, 's', 'slow');
    const held = await RawClient.machine(broker.port);
    flood(held, 'slow', 30_000, 1000);
    await until(() => broker.server.broker.stats(3).waitingPublishers === 1, 'the publisher into "slow" waits');

    // `clients` says who waits for what, and who holds it.
    const ops = await RawClient.machine(broker.port);
    ops.send('CLIENTS');
    await ops.waitFor((f) => f.line === 'END CLIENTS');
    const rows = ops.frames.filter((f) => f.line.startsWith('CLIENT ')).map((f) => JSON.parse(f.line.slice(7)) as { waitingFor: string[]; holding: string[]; subscriptions: number; messagesIn: number });
    assert.deepEqual(rows.filter((r) => r.waitingFor.length).map((r) => r.waitingFor), [['slow']]);
    assert.deepEqual(rows.filter((r) => r.holding.length).map((r) => [r.holding, r.subscriptions]), [[['slow'], 1]]);
    ops.send('MODE human');
    ops.send('clients');
    await ops.waitFor((f) => /clients?$/.test(f.line) && f.line.startsWith('# [I]'));
    assert.equal(ops.frames.filter((f) => / waiting-for=slow$/.test(f.line)).length, 1, ops.lines().join('\n'));
    assert.equal(ops.frames.filter((f) => / holding=slow$/.test(f.line)).length, 1, ops.lines().join('\n'));
    await ops.close();

    const other = await RawClient.machine(broker.port);
    const reader = await RawClient.machine(broker.port);
    reader.send('SUB r fast');
    await reader.waitFor((f) => f.line === 'OK r');
    flood(other, 'fast', 2000, 100);
    await other.waitFor((f) => f.line.startsWith('ACK 1999 '));
    await until(() => numbers(reader.frames, 'r').length === 2000, 'every message on "fast"');
    assert.equal(broker.server.broker.stats(4).waitingPublishers, 1, 'the publisher into "slow" still waits');
    for (const c of [sub, held, other, reader]) await c.close();
  } finally {
    await broker.close();
  }
});

test('block: a subscriber that never reads is disconnected after --slow-consumer-timeout, and the publisher and a healthy subscriber go on without loss', { timeout: 120_000 }, async () => {
  // 3 s, not 1: the healthy reader is this test's own process, which shares two cores with
  // another test file in CI; a stall of it past the timeout would rightly get it disconnected.
  const broker = await startBroker({ storage: 'memory', args: ['--slow-consumer', 'block', '--slow-consumer-timeout', '3s', '--outbound-buffer', '64KiB'] });
  try {
    const healthy = await RawClient.machine(broker.port);
    healthy.send('SUB h mem');
    await healthy.waitFor((f) => f.line === 'OK h');
    const stuck = await stalled(broker.port, 's', 'mem');
    const pub = await RawClient.machine(broker.port);
    const N = 40_000;
    flood(pub, 'mem', N, 1000);
    await pub.waitFor((f) => f.line.startsWith(`ACK ${N - 1} `), 60_000);
    const seen = (): string => `the healthy subscriber's ${N} messages (got ${numbers(healthy.frames, 'h').length}, ${healthy.closed ? 'closed' : 'open'}; last lines ${JSON.stringify(healthy.lines().slice(-3))})`;
    await until(() => numbers(healthy.frames, 'h').length === N, seen, 60_000);
    assert.deepEqual(numbers(healthy.frames, 'h'), Array.from({ length: N }, (_, i) => i));
    assert.equal(healthy.frames.filter((f) => f.line.startsWith('DROP')).length, 0);

    // The stuck one reads at last: what was queued for it, then the reason, then the close.
    stuck.socket.resume();
    const error = await stuck.waitFor((f) => f.line.startsWith('ERR - SLOW_CONSUMER'), 30_000);
    assert.match(error.line, /publishers on mem waited \d+\.\d s for this connection to read \(slow-consumer block timeout 3 s\)/);
    await stuck.closedByPeer();
    const stats = await healthy.stats();
    assert.equal(stats.slowDisconnects, 1);
    assert.equal(stats.dropped, 0);
    assert.equal(stats.heldChannels, 0);
    await pub.close();
    await healthy.close();
  } finally {
    await broker.dispose();
  }
});

test('block: a queue group whose members all stall holds its publisher at the backlog bound; every task reaches exactly one member', { timeout: 120_000 }, async () => {
  const broker = await startInProcess({ storage: 'memory', broker: { slowConsumer: 'block', queueBacklog: 100 }, session: { outboundHighWater: 4096 } });
  try {
    const N = 30_000;
    const { members, pub } = await stalledGroupFlooded(broker.port, 'jobs', N, 500);
    const accepted = await settled(() => broker.server.broker.counters.published);
    assert.ok(accepted < N, `the publisher was held back (${accepted} of ${N} accepted)`);
    assert.equal(broker.server.broker.stats(3).heldChannels, 1);

    for (const m of members) m.socket.resume();
    const received = (): number[] => members.flatMap((m) => numbers(m.frames, 'w'));
    await until(() => received().length === N, `all ${N} tasks (got ${received().length})`, 60_000);
    assert.equal(new Set(received()).size, N, 'no task delivered twice');
    assert.equal(broker.server.broker.counters.queueDropped, 0);
    for (const m of members) assert.ok(numbers(m.frames, 'w').length > 0, 'both members got work');
    await pub.waitFor((f) => f.line.startsWith(`ACK ${N - 1} `), 30_000);
    for (const c of [...members, pub]) await c.close();
  } finally {
    await broker.close();
  }
});

test('block: a queue group whose members never read is disconnected member by member after the timeout, and its publisher goes on', { timeout: 120_000 }, async () => {
  const broker = await startInProcess({ storage: 'memory', broker: { slowConsumer: 'block', blockTimeoutMs: 300, queueBacklog: 10 }, session: { outboundHighWater: 4096 } });
  try {
    const counters = broker.server.broker.counters;
    const N = 20_000;
    const { members, pub } = await stalledGroupFlooded(broker.port, 'jobs', N, 500);
    await pub.waitFor((f) => f.line.startsWith(`ACK ${N - 1} `), 60_000);
    assert.equal(counters.slowDisconnects, 2, 'both congested members were disconnected');
    for (const m of members) {
      m.socket.resume();
      await m.waitFor((f) => f.line.startsWith('ERR - SLOW_CONSUMER slow consumer: publishers on jobs waited'), 30_000);
      await m.closedByPeer();
    }
    assert.equal(broker.server.broker.stats(1).heldChannels, 0);
    await pub.close();
  } finally {
    await broker.close();
  }
});

/**
 * A file channel with a size retention: a stalled subscriber falls behind onto the log, and
 * with `block` its publisher is held before retention can remove what the subscriber has
 * still to read; with the default `drop` retention overtakes it and a GAP says so (which
 * shows the first case is not luck).
 */
/** ~48 MB of 1,000-byte messages: three times what the channel keeps. */
const FILE_RUN_MESSAGES = 48_000;

async function fileRetentionRun(slowConsumer: 'block' | 'drop'): Promise<{ got: number[]; gaps: string[]; heldWhileStalled: number; accepted: number }> {
  const broker = await startInProcess({
    storage: 'file',
    broker: { slowConsumer },
    session: { outboundHighWater: 64 * 1024 },
    // The hold leaves half of 16 MiB for what is on its way when it begins; should a slow group
    // write let more through, retention waits for the subscriber (the next test).
    storageOptions: { segmentBytes: 1024 * 1024, retainBytes: 16 * 1024 * 1024 },
  });
  try {
    const counters = broker.server.broker.counters;
    const sub = await stalled(broker.port, 's', 'disk');
    const pub = await RawClient.machine(broker.port);
    const N = FILE_RUN_MESSAGES;
    const SIZE = 1000;
    flood(pub, 'disk', N, SIZE);
    // Past the retention pass that runs every second, and past what a stall takes to be held.
    const accepted = await settled(() => counters.published, 1500);
    const heldWhileStalled = broker.server.broker.stats(2).heldChannels ?? 0;
    if (slowConsumer === 'drop') {
      // Retention runs every 5 s: let it remove what the stalled subscriber has not read.
      const log = broker.server.broker.engine.channel('disk');
      await until(() => log.first > 1, 'retention to remove the oldest segments', 20_000);
    }
    sub.socket.resume();
    const done = (): boolean => numbers(sub.frames, 's').length + gapped(sub.frames) >= N;
    await until(done, `every message or a GAP for it (got ${numbers(sub.frames, 's').length})`, 90_000);
    await pub.waitFor((f) => f.line.startsWith(`ACK ${N - 1} `), 60_000);
    const result = { got: numbers(sub.frames, 's'), gaps: sub.frames.filter((f) => f.line.startsWith('GAP ')).map((f) => f.line), heldWhileStalled, accepted };
    await pub.close();
    await sub.close();
    return result;
  } finally {
    await broker.close();
  }
}

/** Offsets the GAP frames say were removed. */
function gapped(frames: readonly Frame[]): number {
  let n = 0;
  for (const f of frames) {
    const m = /^GAP \S+ \S+ (\d+) (\d+)$/.exec(f.line);
    if (m) n += Number(m[2]) - Number(m[1]) + 1;
  }
  return n;
}

test('block on a file channel with a size retention: the publisher is held before retention overtakes a stalled subscriber, which then gets every message in order', { timeout: 180_000 }, async () => {
  const r = await fileRetentionRun('block');
  assert.deepEqual(r.gaps, [], 'no GAP');
  assert.equal(r.heldWhileStalled, 1, 'the channel was held while the subscriber stalled');
  assert.ok(r.accepted < FILE_RUN_MESSAGES, `the publisher was held back (${r.accepted} accepted while stalled)`);
  assert.deepEqual(r.got, Array.from({ length: FILE_RUN_MESSAGES }, (_, i) => i));
});

test('block with a size retention smaller than what is already on its way: retention waits for the stalled subscriber, which gets every message; once it is live the bound applies again', { timeout: 180_000 }, async () => {
  const retainBytes = 1024 * 1024;
  const segmentBytes = 256 * 1024;
  const broker = await startInProcess({
    storage: 'file',
    broker: { slowConsumer: 'block' },
    session: { outboundHighWater: 64 * 1024 },
    // Half of 1 MiB is less than what one publisher has in flight: the hold alone comes too late.
    storageOptions: { segmentBytes, retainBytes },
  });
  try {
    const counters = broker.server.broker.counters;
    const log = broker.server.broker.engine.channel('small');
    const sub = await stalled(broker.port, 's', 'small');
    const pub = await RawClient.machine(broker.port);
    const N = 20_000;
    flood(pub, 'small', N, 1000);
    const accepted = await settled(() => counters.published, 1500);
    assert.ok(accepted < N, `the publisher was held back (${accepted} accepted while stalled)`);
    await (broker.server.broker.engine as FileStorageEngine).maintain(Date.now());
    sub.socket.resume();
    await until(() => numbers(sub.frames, 's').length >= N || sub.frames.some((f) => f.line.startsWith('GAP ')), `every message (got ${numbers(sub.frames, 's').length})`, 90_000);
    assert.deepEqual(sub.frames.filter((f) => f.line.startsWith('GAP ')).map((f) => f.line), [], 'no GAP');
    assert.deepEqual(numbers(sub.frames, 's'), Array.from({ length: N }, (_, i) => i));
    await pub.waitFor((f) => f.line.startsWith(`ACK ${N - 1} `), 60_000);
    await (broker.server.broker.engine as FileStorageEngine).maintain(Date.now());
    // Segments roll at write boundaries (a group write can pass segmentBytes): the bound is
    // that without its oldest segment the channel would keep less than retainBytes.
    const dir = path.join(broker.dataDir, 'small');
    const sizes = fs.readdirSync(dir).filter((f) => f.endsWith('.seg')).sort().map((f) => fs.statSync(path.join(dir, f)).size);
    const total = sizes.reduce((a, b) => a + b, 0);
    assert.ok(sizes.length >= 2 && total - sizes[0]! < retainBytes, `the bound applies again (segments ${sizes.join(', ')})`);
    assert.ok(log.first > 1);
    await pub.close();
    await sub.close();
  } finally {
    await broker.close();
  }
});

test('block with a size retention: a queue group whose members all stall holds the channel and keeps its place from retention; every task reaches exactly one member, none lost', { timeout: 180_000 }, async () => {
  const retainBytes = 1024 * 1024;
  const broker = await startInProcess({
    storage: 'file',
    broker: { slowConsumer: 'block' },
    session: { outboundHighWater: 64 * 1024 },
    storageOptions: { segmentBytes: 256 * 1024, retainBytes },
  });
  try {
    const counters = broker.server.broker.counters;
    const N = 20_000;
    const { members, pub } = await stalledGroupFlooded(broker.port, 'tasks', N, 1000);
    const accepted = await settled(() => counters.published, 1500);
    assert.ok(accepted < N, `the publisher was held back (${accepted} accepted while the members stalled)`);
    assert.equal(broker.server.broker.stats(2).heldChannels, 1, 'the group holds the channel');
    for (const m of members) m.socket.resume();
    const got = (): number[] => members.flatMap((m) => numbers(m.frames, 'w'));
    const gaps = (): string[] => members.flatMap((m) => m.frames.filter((f) => f.line.startsWith('GAP ')).map((f) => f.line));
    await until(() => got().length >= N || gaps().length > 0, () => `every task (got ${got().length})`, 90_000);
    assert.deepEqual(gaps(), [], 'no GAP');
    assert.deepEqual([...got()].sort((a, b) => a - b), Array.from({ length: N }, (_, i) => i), 'each task exactly once');
    for (const m of members) {
      const mine = numbers(m.frames, 'w');
      assert.deepEqual(mine, [...mine].sort((a, b) => a - b), 'each member gets its tasks in order');
    }
    await pub.waitFor((f) => f.line.startsWith(`ACK ${N - 1} `), 60_000);
    assert.equal(counters.queueDropped, 0);
    await pub.close();
    await Promise.all(members.map((m) => m.close()));
  } finally {
    await broker.close();
  }
});

test('drop on the same file channel: retention overtakes the stalled subscriber and GAP frames name what it missed', { timeout: 180_000 }, async () => {
  const r = await fileRetentionRun('drop');
  assert.ok(r.gaps.length >= 1, 'at least one GAP');
  assert.equal(r.heldWhileStalled, 0);
  assert.equal(r.got.length + r.gaps.reduce((n, g) => { const [, , , a, b] = g.split(' '); return n + Number(b) - Number(a) + 1; }, 0), FILE_RUN_MESSAGES, 'every offset delivered or named in a GAP');
  assert.deepEqual(r.got, [...r.got].sort((a, b) => a - b), 'in order');
});
