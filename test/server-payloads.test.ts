// Payloads reach subscribers byte for byte: one delivery at a time through an outbox, as a
// fan-out block, and end to end while the file log reuses the staging chunks that deliveries
// are encoded from.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { INLINE_DELIVERY, machineBlock, machineDelivery } from '../src/protocol/encode.js';
import { Outbox } from '../src/server/outbox.js';
import type { StoredMessage } from '../src/storage/engine.js';
import { startBroker } from './helpers/broker.js';
import { socketPair } from './helpers/socket-pair.js';
import { RawClient, until } from './helpers/raw.js';

const pattern = (n: number, seed: number): Buffer => {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 131 + seed * 17) & 0xff;
  return b;
};

test('an outbox and a fan-out block send every payload size under 16 KiB as it was, even if its source is rewritten right after (the outbox copies those)', async () => {
  const { server, client, close } = await socketPair();
  try {
    const chunks: Buffer[] = [];
    client.on('data', (d: Buffer) => chunks.push(d));
    const out = new Outbox(server, 64 * 1024 * 1024, () => {});
    const source = pattern(64 * 1024, 3);
    const sizes = [0, 1, 64, 65, 256, 1000, 4096, 16 * 1024 - 1];
    const messages: StoredMessage[] = [];
    let at = 0;
    for (let i = 0; i < 300; i++) {
      const size = sizes[i % sizes.length]!;
      messages.push({ channel: 'c', offset: i + 1, timestamp: 1_700_000_000_000, publisher: 'p', reply: '', data: source, start: at, end: at + size });
      at = (at + size + 7) % (source.length - 16 * 1024);
    }
    const prefix = Buffer.from('MSG s');
    // A payload past INLINE_DELIVERY follows the shared encoding on its own.
    const whole = (m: StoredMessage): Buffer[] => (m.end - m.start > INLINE_DELIVERY ? [Buffer.from(m.data.subarray(m.start, m.end)), Buffer.from('\n')] : []);
    const expected = Buffer.concat(messages.flatMap((m) => [prefix, machineDelivery(m), ...whole(m)]));
    const block = machineBlock(prefix, messages);
    assert.deepEqual(block, expected, 'a block holds what one delivery at a time would');
    for (const m of messages) out.writeDelivery(prefix, m);
    source.fill(0);
    await until(() => chunks.reduce((n, c) => n + c.length, 0) >= expected.length, 'every delivery');
    assert.deepEqual(Buffer.concat(chunks), expected);
  } finally {
    close();
  }
});

for (const storage of ['file', 'memory'] as const) {
  test(`${storage} storage: 4,000 publishes of 100–600 B streamed in small writes arrive byte for byte`, async (t) => {
    const broker = await startBroker({ storage });
    t.after(() => broker.stop());
    const sub = await RawClient.machine(broker.port);
    const pub = await RawClient.machine(broker.port);
    t.after(() => {
      sub.socket.destroy();
      pub.socket.destroy();
    });
    sub.send('SUB s bulk');
    await sub.waitFor((f) => f.line === 'OK s');
    const N = 4000;
    const payload = (i: number): Buffer => pattern(100 + ((i * 37) % 500), i);
    // A stream of small writes: the broker commits a few publishes a turn (the file log writes
    // them from the event loop) while the next ones arrive, staged into the chunks just
    // released, which the last turn's deliveries were encoded from: a copy made late (a
    // design tried in the twelfth round) would carry the new bytes.
    for (let from = 0; from < N; from += 8) {
      const frames: Buffer[] = [];
      for (let i = from; i < from + 8; i++) frames.push(Buffer.from(`PUB bulk - - ${payload(i).length}\n`), payload(i), Buffer.from('\n'));
      pub.send(Buffer.concat(frames));
      await nextTurn();
    }
    const deliveries = (): Buffer[] => sub.frames.flatMap((f) => (f.payload ? [f.payload] : []));
    await until(() => deliveries().length >= N, `${N} deliveries`, 60_000);
    const got = deliveries();
    for (let i = 0; i < N; i++) assert.deepEqual(got[i], payload(i), `payload ${i + 1}`);
  });
}
