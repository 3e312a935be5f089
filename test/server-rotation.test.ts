import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { startBroker } from './helpers/broker.js';
import { RawClient, until } from './helpers/raw.js';

test('SIGHUP and size-based rotation while a subscriber streams: nothing lost, nothing twice, replay intact', async () => {
  const broker = await startBroker({ args: ['--segment-size', '256k', '--fsync', 'never'] });
  try {
    const sub = await RawClient.machine(broker.port);
    const offsets: number[] = [];
    sub.socket.on('data', () => {
      for (const f of sub.frames.splice(0)) if (f.line.startsWith('MSG s ')) offsets.push(Number(f.line.split(' ')[3]));
    });
    sub.send('SUB s rot from=beginning');
    const pub = await RawClient.machine(broker.port);
    let acked = 0;
    pub.socket.on('data', () => {
      for (const f of pub.frames.splice(0)) if (f.line.startsWith('ACK ')) acked++;
    });
    const N = 20_000;
    const payload = Buffer.alloc(64, 0x72);
    for (let i = 0; i < N; i++) {
      pub.pub('rot', payload, String(i));
      if (i % 4000 === 1999) {
        await until(() => acked > i - 1000, 'acks to catch up');
        broker.proc.kill('SIGHUP');
      }
    }
    await until(() => acked === N, 'all acks');
    await until(() => offsets.length >= N, `all ${N} deliveries`);
    assert.deepEqual(offsets, Array.from({ length: N }, (_, i) => i + 1));
    const segments = fs.readdirSync(path.join(broker.dataDir, 'rot')).filter((f) => f.endsWith('.seg'));
    assert.ok(segments.length >= 6, `expected rotation by size and by SIGHUP, got ${segments.length} segments`);
    assert.ok(broker.logs.some((l) => l.msg === 'segments rotated'), 'the broker logs each SIGHUP rotation');
    await sub.close();
    await pub.close();

    await broker.stop();
    await broker.restart();
    const again = await RawClient.machine(broker.port);
    again.send('SUB r rot from=beginning');
    await again.waitFor((f) => f.line.startsWith('LIVE r rot'), 30_000);
    const replayed = again.frames.filter((f) => f.line.startsWith('MSG r ')).map((f) => Number(f.line.split(' ')[3]));
    assert.deepEqual(replayed, Array.from({ length: N }, (_, i) => i + 1));
    await again.close();
  } finally {
    await broker.dispose();
  }
});
