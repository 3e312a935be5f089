import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { BIN, startBroker } from './helpers/broker.js';
import { RawClient, type Frame } from './helpers/raw.js';

const run = promisify(execFile);

async function fluctuat(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args]);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** Replay a channel from the beginning; payloads in order. */
async function replay(port: number, channel: string): Promise<{ offsets: number[]; payloads: string[] }> {
  const c = await RawClient.machine(port);
  c.send(`SUB r ${channel} from=beginning`);
  await c.waitFor((f) => f.line.startsWith('LIVE r '), 30_000);
  const msgs = c.frames.filter((f: Frame) => f.line.startsWith('MSG r '));
  await c.close();
  return { offsets: msgs.map((m) => Number(m.line.split(' ')[3])), payloads: msgs.map((m) => m.payload!.toString()) };
}

for (const fsync of ['always', 'interval'] as const) {
  test(`kill -9 while publishing with acks (fsync ${fsync}): every acknowledged message survives exactly once, in order`, async () => {
    const broker = await startBroker({ args: ['--fsync', fsync] });
    try {
      const c = await RawClient.machine(broker.port);
      const acked = new Set<number>();
      let sent = 0;
      c.socket.on('data', () => {
        for (const f of c.frames.splice(0)) {
          const m = /^ACK k(\d+) \d+$/.exec(f.line);
          if (m) acked.add(Number(m[1]));
        }
      });
      // Keep up to 500 publishes in flight; kill the broker mid-stream after 3,000 acks.
      let inFlightAtKill = 0;
      await new Promise<void>((resolve) => {
        const pump = (): void => {
          while (sent - acked.size < 500) {
            c.pub('dur.chan', `m${sent}`, `k${sent}`);
            sent++;
          }
          if (acked.size < 3000) {
            setImmediate(pump);
            return;
          }
          inFlightAtKill = sent - acked.size;
          void broker.kill().then(resolve);
        };
        pump();
      });
      await c.close();
      assert.ok(inFlightAtKill > 0, 'some publishes were still in flight when the broker died');

      await broker.restart();
      const { offsets, payloads } = await replay(broker.port, 'dur.chan');
      // Offsets are consecutive from 1; payloads are a prefix of what was sent, in order, each once.
      assert.deepEqual(offsets, payloads.map((_, i) => i + 1));
      payloads.forEach((p, i) => assert.equal(p, `m${i}`));
      for (const k of acked) assert.ok(k < payloads.length, `acknowledged message m${k} is missing after restart`);
      await broker.stop();
      const check = await fluctuat('check', '--data', broker.dataDir);
      assert.equal(check.code, 0, check.stdout + check.stderr);
      assert.match(check.stdout, /^ok: 1 channels/m);
    } finally {
      await broker.dispose();
    }
  });
}

test('serve --fsync-acks: that many acknowledgements waiting start the group fsync, an hour-long interval notwithstanding; --fsync-acks 0 --fsync-bytes 0 waits', async () => {
  for (const [flags, early] of [
    [['--fsync-acks', '5'], true],
    [['--fsync-acks', '0', '--fsync-bytes', '0'], false],
  ] as const) {
    const broker = await startBroker({ args: ['--fsync', 'interval', '--fsync-interval', '1h', ...flags] });
    try {
      const c = await RawClient.machine(broker.port);
      for (let i = 1; i <= 5; i++) c.pub('early', `m${i}`, `a${i}`);
      if (early) {
        await c.waitFor((f) => f.line === 'ACK a5 5', 20_000);
        assert.deepEqual(c.lines().filter((l) => l.startsWith('ACK ')), ['ACK a1 1', 'ACK a2 2', 'ACK a3 3', 'ACK a4 4', 'ACK a5 5']);
      } else {
        c.send('SUB s early from=beginning');
        await c.waitFor((f) => f.line.startsWith('LIVE s '), 20_000);
        await new Promise((r) => setTimeout(r, 300));
        assert.deepEqual(c.lines().filter((l) => l.startsWith('ACK ')), [], `${flags.join(' ')}: acknowledged before the interval`);
      }
      await c.close();
    } finally {
      await broker.dispose();
    }
  }
});

test('a clean stop lets the next start skip verifying; after kill -9 the start verifies every record', async () => {
  const broker = await startBroker();
  const recovered = () => broker.logs.filter((l) => String(l.msg).startsWith('storage: recovered')).at(-1)!;
  try {
    const c = await RawClient.machine(broker.port);
    for (let i = 0; i < 50; i++) c.pub('clean.chan', `m${i}`, `k${i}`);
    await c.waitFor((f) => f.line.startsWith('ACK k49 '));
    await c.close();
    await broker.stop(); // SIGTERM: the unprivileged broker writes the record in its data dir
    assert.ok(fs.existsSync(path.join(broker.dataDir, '.clean-shutdown.json')));
    await broker.restart();
    assert.equal(recovered().msg, 'storage: recovered after a clean shutdown');
    assert.equal(recovered().verified, 0);
    assert.equal(fs.existsSync(path.join(broker.dataDir, '.clean-shutdown.json')), false);
    const first = await replay(broker.port, 'clean.chan');
    assert.deepEqual(first.payloads, Array.from({ length: 50 }, (_, i) => `m${i}`));
    await broker.kill();
    await broker.restart();
    assert.equal(recovered().msg, 'storage: recovered, every record verified');
    assert.equal(recovered().verified, 1);
    assert.deepEqual((await replay(broker.port, 'clean.chan')).offsets, first.offsets);
  } finally {
    await broker.dispose();
  }
});

test('a flipped byte is reported by fluctuat check with its channel and offset, and repaired on request', async () => {
  const broker = await startBroker({ args: ['--fsync', 'always'] });
  try {
    const c = await RawClient.machine(broker.port);
    for (let i = 1; i <= 50; i++) c.pub('flip.me', `payload-${String(i).padStart(4, '0')}`, `f${i}`);
    await c.waitFor((f) => f.line === 'ACK f50 50');
    await c.close();
    await broker.stop();

    const dir = path.join(broker.dataDir, 'flip.me');
    const segment = path.join(dir, fs.readdirSync(dir).find((f) => f.endsWith('.seg'))!);
    const bytes = fs.readFileSync(segment);
    const at = bytes.indexOf('payload-0031');
    assert.ok(at > 0);
    bytes[at + 3] = bytes[at + 3]! ^ 0x20;
    fs.writeFileSync(segment, bytes);

    const check = await fluctuat('check', '--data', broker.dataDir);
    assert.equal(check.code, 1, 'check exits 1 on damage');
    assert.match(check.stdout, /bad record: channel=flip\.me offset=31 /);
    assert.match(check.stdout, /^DAMAGED: /m);

    const repair = await fluctuat('check', '--data', broker.dataDir, '--repair');
    assert.equal(repair.code, 0, repair.stdout + repair.stderr);
    assert.match(repair.stdout, /repaired: /);
    const again = await fluctuat('check', '--data', broker.dataDir);
    assert.equal(again.code, 0, again.stdout);

    // The broker serves what is left and never the corrupt record.
    await broker.restart();
    const { offsets } = await replay(broker.port, 'flip.me');
    assert.deepEqual(offsets, Array.from({ length: 30 }, (_, i) => i + 1));
  } finally {
    await broker.dispose();
  }
});

test('fluctuat check on a missing or empty data dir, and usage errors', async () => {
  const usage = await fluctuat('check', '--bogus');
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /unknown option/);
  const help = await fluctuat('serve', '--help');
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--fsync <policy>/);
});
