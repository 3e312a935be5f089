import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startBroker } from './helpers/broker.js';
import { startInProcess } from './helpers/inproc.js';
import { RawClient, until, type Frame } from './helpers/raw.js';

const N = 6000;

/** Payload i: ASCII, sizes from 0 to ~3 KiB, so some are too large to be inlined in a delivery line. */
function payload(i: number): Buffer {
  const size = (i * 37) % 3100;
  return Buffer.from(`${i}:`.padEnd(size, String.fromCharCode(97 + (i % 26))).slice(0, size));
}

/** Every PUB frame in one write: the broker reads them in a few turns and commits them in batches. */
function burst(from: number, to: number, ack: boolean): Buffer {
  const parts: Buffer[] = [];
  for (let i = from; i < to; i++) {
    const p = payload(i);
    parts.push(Buffer.from(`PUB fan ${ack ? `a${i}` : '-'} - ${p.length}\n`), p, Buffer.from('\n'));
  }
  return Buffer.concat(parts);
}

function deliveries(c: RawClient): Frame[] {
  return c.frames.filter((f) => f.line.startsWith('MSG '));
}

async function machineSub(port: number, sid: string): Promise<RawClient> {
  const c = await RawClient.machine(port);
  c.send(`SUB ${sid} fan`);
  await c.waitFor((f) => f.line === `OK ${sid}`);
  return c;
}

async function stats(port: number): Promise<Record<string, number>> {
  const c = await RawClient.machine(port);
  try {
    return await c.stats();
  } finally {
    await c.close();
  }
}

/** How many deliveries, and the first offset out of sequence: what a timed-out wait reports. */
function describe(frames: Frame[]): string {
  const gap = frames.findIndex((f, i) => f.line.split(' ')[3] !== String(i + 1));
  return `${frames.length} deliveries${gap < 0 ? '' : `, delivery ${gap} has offset ${frames[gap]!.line.split(' ')[3]}`}`;
}

/** Offsets 1..n in order, each with the payload published as message offset-1. */
function assertComplete(frames: Frame[], n: number, who: string): void {
  assert.equal(frames.length, n, `${who}: ${frames.length} deliveries`);
  for (let i = 0; i < n; i++) {
    const fields = frames[i]!.line.split(' ');
    assert.equal(fields[3], String(i + 1), `${who}: delivery ${i} has offset ${fields[3]}`);
    assert.ok(frames[i]!.payload!.equals(payload(i)), `${who}: payload of offset ${i + 1}`);
  }
}

test('subscribers that share a sid get each committed batch as one shared block: every one reads the whole stream, byte for byte what it would get alone', async () => {
  const broker = await startBroker({ args: ['--fsync', 'never'] });
  try {
    const twins = await Promise.all([1, 2, 3].map(() => machineSub(broker.port, 's1')));
    const other = await machineSub(broker.port, 'other');
    const human = await RawClient.connect(broker.port);
    human.send('sub fan');
    await human.waitFor((f) => f.line.includes('subscribing fan'));

    const pub = await RawClient.machine(broker.port);
    pub.send(burst(0, N, false));
    await until(() => [...twins, other].every((c) => deliveries(c).length >= N), 'every machine subscriber got every message');
    await until(() => human.frames.filter((f) => f.line.startsWith('pubsub on fan')).length >= N, 'the human subscriber got every message');

    for (const [i, c] of twins.entries()) assertComplete(deliveries(c), N, `twin ${i + 1}`);
    assertComplete(deliveries(other), N, 'the subscriber with its own sid');
    // Same bytes for the twins; the lone sid differs only in its sid.
    const lines = twins.map((c) => deliveries(c).map((f) => f.line));
    assert.deepEqual(lines[1], lines[0]);
    assert.deepEqual(lines[2], lines[0]);
    assert.deepEqual(
      deliveries(other).map((f) => f.line.replace(/^MSG other /, 'MSG s1 ')),
      lines[0],
    );

    const s = await stats(broker.port);
    assert.equal(s.delivered, 5 * N);
    // Only the twins can share blocks (the batches the broker happened to commit).
    assert.ok(s.blockDelivered! > 0, `blockDelivered ${s.blockDelivered}`);
    assert.ok(s.blockDelivered! <= 3 * N, `blockDelivered ${s.blockDelivered}`);
  } finally {
    await broker.dispose();
  }
});

test('a twin that stops reading leaves the block: it falls back on the log while the others go on, then gets every message once, in order', async () => {
  const broker = await startBroker({ args: ['--fsync', 'never'] });
  try {
    const twins = await Promise.all([1, 2, 3].map(() => machineSub(broker.port, 's1')));
    const slow = twins[2]!;
    slow.socket.pause();

    // Far past the slow one's kernel buffers and its outbound bound (1 MiB): ~9 MB per round.
    const pub = await RawClient.machine(broker.port);
    const rounds = 10;
    for (let r = 0; r < rounds; r++) {
      pub.send(burst(r * N, (r + 1) * N, true));
      await pub.waitFor((f) => f.line.startsWith(`ACK a${(r + 1) * N - 1} `), 30_000);
    }
    const total = rounds * N;
    await until(() => deliveries(twins[0]!).length >= total && deliveries(twins[1]!).length >= total, 'the readers got everything');
    const during = await stats(broker.port);
    assert.ok(during.catchUps! > 0, 'the slow twin fell back on the log');
    assert.ok(during.blockDelivered! > 0, 'the others still shared blocks');

    slow.socket.resume();
    await until(() => deliveries(slow).length >= total, 'the slow twin caught up', 60_000);
    for (const [i, c] of twins.entries()) {
      const frames = deliveries(c);
      assert.equal(frames.length, total, `twin ${i + 1}: ${frames.length} deliveries`);
      for (let k = 0; k < total; k++) {
        const offset = frames[k]!.line.split(' ')[3];
        if (offset !== String(k + 1)) assert.fail(`twin ${i + 1}: delivery ${k} has offset ${offset}`);
        if (!frames[k]!.payload!.equals(payload(k))) assert.fail(`twin ${i + 1}: payload of offset ${k + 1}`);
      }
    }
  } finally {
    await broker.dispose();
  }
});

test('memory storage: a read of publishes is one batch, shared by twins; a subscriber replaying the ring while they arrive goes live with no gap and no duplicate', async () => {
  // `block`: the clients read in the broker's own process, so a twin can fall a burst behind;
  // memory storage cannot catch it up from the log, and under the default `drop` it would be
  // told DROP instead of getting every message. Holding the publisher keeps the test about
  // shared blocks and ring replay.
  const broker = await startInProcess({ storage: 'memory', broker: { slowConsumer: 'block' } });
  try {
    const twins = await Promise.all([1, 2, 3].map(() => machineSub(broker.port, 's1')));
    const pub = await RawClient.machine(broker.port);
    const total = 8000; // under the ring's 10,000: the late subscriber can replay all of it
    let late: RawClient | null = null;
    for (let from = 0; from < total; from += 500) {
      pub.send(burst(from, from + 500, true));
      if (from === 3000) {
        // Joins while publishes stream in: replays what is held, then goes live.
        late = await RawClient.machine(broker.port);
        late.send('SUB s1 fan from=beginning');
      }
      await pub.waitFor((f) => f.line.startsWith(`ACK a${from + 499} `));
    }
    const all = [...twins, late!];
    await until(() => all.every((c) => deliveries(c).length >= total), 'every subscriber got every message').catch((e: Error) => {
      throw new Error(`${e.message}: ${all.map((c, i) => `${i < 3 ? `twin ${i + 1}` : 'late'} ${describe(deliveries(c))} ${c.lines().filter((l) => /^(DROP|GAP|ERR) /.test(l)).join(', ')}`).join('; ')}`);
    });
    for (const [i, c] of all.entries()) assertComplete(deliveries(c), total, i < 3 ? `twin ${i + 1}` : 'the late subscriber');
    assert.ok(broker.server.broker.counters.blockDelivered > 0, 'memory batches were shared');
  } finally {
    await broker.close();
  }
});
