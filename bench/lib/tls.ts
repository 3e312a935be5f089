/**
 * TLS for the benchmark: does this tree's `fluctuat serve` have a TLS listener? If so, a
 * throw-away CA and server certificate (made with src/certs, in a temporary directory) and a
 * configuration file (docs/config.md: `listen on 127.0.0.1 port 0 tls`, `tls certificate`,
 * `tls key`) that the TLS scenarios start the broker with. A trial broker must complete a TLS
 * handshake first; otherwise the TLS scenarios are skipped with the reason, never faked over
 * plain TCP.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Conn } from './conn.js';
import type { TlsSetup } from './scenarios.js';
import { ROOT, startFluctuat } from './targets.js';

export async function detectTls(): Promise<TlsSetup | { skip: string }> {
  const help = spawnSync(process.execPath, [path.join(ROOT, 'bin/fluctuat.js'), 'serve', '--help'], { encoding: 'utf8' }).stdout ?? '';
  if (!/--config\b/.test(help)) return { skip: '`fluctuat serve` in this tree has no --config, hence no `listen on … tls` listener' };
  let certs: typeof import('../../src/certs/generate.js');
  try {
    certs = await import('../../src/certs/generate.js');
  } catch (err) {
    return { skip: `cannot load src/certs/generate.js to make a certificate: ${(err as Error).message}` };
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fluctuat-bench-tls-'));
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const ca = await certs.createCa({ commonName: 'fluctuat bench CA' });
  const server = await certs.createServerCert(await certs.loadCa(ca), { commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const cert = path.join(dir, 'server.crt');
  const key = path.join(dir, 'server.key');
  const conf = path.join(dir, 'bench.conf');
  fs.writeFileSync(cert, server.cert);
  fs.writeFileSync(key, server.key, { mode: 0o600 });
  fs.writeFileSync(conf, `# written by bench/lib/tls.ts\nlisten on 127.0.0.1 port 0 tls\ntls certificate "${cert}"\ntls key "${key}"\n`);
  const setup: TlsSetup = { serveArgs: ['--config', conf], client: { ca: ca.cert, servername: 'localhost' } };
  try {
    const b = await startFluctuat({ storage: 'memory', extra: setup.serveArgs, tls: setup.client });
    try {
      const c = await Conn.open(b.endpoint, 'bench.tls', 5000);
      c.close();
    } finally {
      await b.stop();
    }
  } catch (err) {
    return { skip: `a fluctuat TLS listener did not work: ${(err as Error).message.split('\n')[0]}` };
  }
  return setup;
}
