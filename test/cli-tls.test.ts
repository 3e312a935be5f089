/**
 * The TLS flags of the client commands (pub, sub, probe, swarm: src/cli/connection.ts), against
 * a real broker that requires client certificates and has users: the certificate is the login.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { hashPassword } from '../src/security/passwords.js';
import { writeUsers } from '../src/security/users-file.js';
import { BIN, startBroker, tmpDir, type RunningBroker } from './helpers/broker.js';

const execFileP = promisify(execFile);
const dir = tmpDir('fluctuat-cli-tls-');
const f = (name: string): string => path.join(dir, name);
let broker: RunningBroker;
let url: string;

/** Run `fluctuat ...`; exit code and output, whatever the code. */
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, FLUCTUAT_URL: '' } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const tlsFlags = (who: string): string[] => ['--url', url, '--ca', f('ca.crt'), '--cert', f(`${who}.crt`), '--key', f(`${who}.key`)];

before(async () => {
  const gen = (...args: string[]): Promise<unknown> => execFileP(process.execPath, [BIN, 'gen-cert', ...args, '--dir', dir]);
  await gen('ca');
  await gen('server', '--host', 'localhost', '--ip', '127.0.0.1');
  await gen('client', '--name', 'alice');
  writeUsers(f('users'), [{ name: 'alice', hash: await hashPassword('alice-password'), groups: [], tenant: 'acme', tokens: [] }]);
  fs.writeFileSync(
    f('fluctuat.conf'),
    'listen on 127.0.0.1 port 0 tls\ntls certificate "server.crt"\ntls key "server.key"\ntls ca "ca.crt"\ntls client-certificate required\nusers file "users"\ndefault-access allow\n',
  );
  broker = await startBroker({ config: f('fluctuat.conf'), storage: 'memory' });
  url = `tls://localhost:${broker.port}`;
});
after(async () => {
  await broker.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('pub and sub with --ca, --cert, --key: the certificate logs them in', async () => {
  const pub = await cli(['pub', 'cli.tls', 'over', 'tls', ...tlsFlags('alice')]);
  assert.equal(pub.code, 0, pub.stderr);
  assert.equal(pub.stdout, 'cli.tls #1\n');
  const sub = await cli(['sub', 'cli.tls', '--from', 'beginning', '--count', '1', '--json', ...tlsFlags('alice')]);
  assert.equal(sub.code, 0, sub.stderr);
  assert.equal(JSON.parse(sub.stdout).text, 'over tls');
  // --servername: the name the broker's certificate must carry (it has localhost and 127.0.0.1).
  const named = await cli(['pub', 'cli.tls', 'again', ...tlsFlags('alice'), '--url', `tls://127.0.0.1:${broker.port}`, '--servername', 'localhost']);
  assert.equal(named.code, 0, named.stderr);
  const wrongName = await cli(['pub', 'cli.tls', 'again', ...tlsFlags('alice'), '--servername', 'broker.example']);
  assert.equal(wrongName.code, 1);
  assert.match(wrongName.stderr, /over TLS: .*broker\.example/);
});

test('without a certificate, the broker says CERT_REFUSED; usage errors exit 2 with the reason', async () => {
  const none = await cli(['pub', 'cli.tls', 'x', '--url', url, '--ca', f('ca.crt')]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /-ERR CERT_REFUSED client certificate refused: the client sent no certificate/);
  const half = await cli(['pub', 'cli.tls', 'x', '--url', url, '--cert', f('alice.crt')]);
  assert.equal(half.code, 2);
  assert.match(half.stderr, /^fluctuat pub: --cert and --key go together/);
  const plain = await cli(['sub', 'cli.tls', '--ca', f('ca.crt')]);
  assert.equal(plain.code, 2);
  assert.match(plain.stderr, /TLS flags need a TLS URL, and fluctuat:\/\/127\.0\.0\.1:2023 is plaintext: use -u tls:\/\/host:port/);
});

test('probe and swarm take the same flags', async () => {
  const probe: ChildProcess = spawn(process.execPath, [BIN, 'probe', '--mode', 'process', '--count', '1', '--kinds', 'clock', ...tlsFlags('alice')], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    let stderr = '';
    probe.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const up = await new Promise<string>((resolve, reject) => {
      readline.createInterface({ input: probe.stdout! }).on('line', (line) => {
        if (/probes up/.test(line)) resolve(line);
      });
      probe.once('exit', (code) => reject(new Error(`probe exited with ${code}: ${stderr}`)));
    });
    assert.match(up, /^1 probes up in 1 processes/);
    const list = await cli(['swarm', 'list', '--expect', '1', '--discover', '20s', ...tlsFlags('alice')]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /\n1 probes\n$/);
    const clock = await cli(['swarm', 'clock', '--expect', '1', '--discover', '20s', ...tlsFlags('alice')]);
    assert.equal(clock.code, 0, clock.stderr);
  } finally {
    probe.kill('SIGTERM');
    await new Promise((r) => probe.once('exit', r));
  }
});
