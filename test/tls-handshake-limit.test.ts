import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { startBroker, tmpDir } from './helpers/broker.js';
import { RawClient } from './helpers/raw.js';
import { genCert, sClient } from './helpers/tls.js';

// Sockets in a TLS handshake (or a certificate check) are not sessions yet, so the guard's
// `limit connections` cannot see them: each listener also caps the sockets it holds, at the
// limit plus a margin (max(16, a tenth)), so that a client that opens connections and never
// completes a handshake cannot make the broker hold sockets without bound.

test('a listener holds at most limit connections + 16 sockets: handshakes that never finish cannot pile up', { timeout: 60_000 }, async () => {
  const dir = tmpDir('fluctuat-tls-cap-');
  await genCert(dir, 'ca', '--name', 'cap test CA');
  await genCert(dir, 'server', '--host', 'localhost', '--ip', '127.0.0.1');
  const conf = path.join(dir, 'cap.conf');
  fs.writeFileSync(conf, ['listen on 127.0.0.1 port 0 tls', 'tls certificate "server.crt"', 'tls key "server.key"', 'limit connections 2', 'timeout handshake 30s', ''].join('\n'));
  fs.chmodSync(dir, 0o755);
  const broker = await startBroker({ config: conf, storage: 'memory' });
  const raw: net.Socket[] = [];
  try {
    // 30 TCP connections that never start the handshake: 18 are held, 12 closed at once.
    const closedEarly: number[] = [];
    await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        new Promise<void>((resolve, reject) => {
          const s = net.connect(broker.port, '127.0.0.1', () => resolve());
          s.on('error', () => {}); // a dropped socket may be reset
          s.on('close', () => closedEarly.push(i));
          s.once('error', reject);
          raw.push(s);
        }),
      ),
    );
    const deadline = Date.now() + 5000;
    while (closedEarly.length < 12 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(closedEarly.length, 12, `sockets closed by the broker: ${closedEarly.length}`);

    // Once they go, a real client gets in as usual.
    for (const s of raw) s.destroy();
    const out = await sClient(dir, broker.port, undefined, 'ping\nquit\n');
    assert.match(out, /bye/, out);
    assert.doesNotMatch(out, /TOO_MANY/);
  } finally {
    for (const s of raw) s.destroy();
    await broker.dispose();
  }
});

test('on a plain listener a client over limit connections still gets the guard\'s error line', async () => {
  const broker = await startBroker({ storage: 'memory', args: ['--max-connections', '1'] });
  try {
    const first = await RawClient.connect(broker.port);
    const second = await RawClient.connect(broker.port);
    await second.waitFor((f) => f.line === '-ERR TOO_MANY_CONNECTIONS the broker has 1 connections, its limit (max-connections)');
    await second.closedByPeer();
    await first.close();
  } finally {
    await broker.dispose();
  }
});
