import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { hashPassword } from '../src/security/passwords.js';
import { writeUsers } from '../src/security/users-file.js';
import { lookupUser } from '../src/privsep/users.js';
import { BIN, startBroker, tmpDir } from './helpers/broker.js';
import { RawClient, until } from './helpers/raw.js';

const root = process.getuid?.() === 0;

function uidOf(pid: number): number {
  return Number(/^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

test('started as root: the network-facing broker runs as an unprivileged user and cannot read the users file', { skip: root ? false : 'needs root (CI runs as root)' }, async () => {
  const dir = tmpDir('fluctuat-privsep-');
  const usersFile = path.join(dir, 'users');
  writeUsers(usersFile, [{ name: 'probe', hash: await hashPassword('probe-password'), groups: [], tenant: '', tokens: [] }]);
  const broker = await startBroker({ args: ['--users', usersFile, '--default-access', 'allow', '--user', 'nobody'] });
  try {
    await until(() => broker.logs.some((l) => l.msg === 'privilege separation: broker running unprivileged'), 'the parent to report the separation');
    const sep = broker.logs.find((l) => l.msg === 'privilege separation: broker running unprivileged')!;
    assert.ok(sep, 'the parent says it separated');
    const brokerPid = sep.brokerPid as number;
    const authPid = sep.authPid as number;
    const nobody = lookupUser('nobody').uid;
    assert.equal(uidOf(brokerPid), nobody, 'the broker child runs as nobody');
    assert.equal(uidOf(broker.proc.pid!), 0, 'the parent stays root');
    assert.equal(uidOf(authPid), 0, 'the auth process can read the users file');
    const ps = spawnSync('ps', ['-o', 'user=,args=', '-p', String(brokerPid)], { encoding: 'utf8' }).stdout;
    assert.match(ps, /^nobody\s+fluctuat: broker/m);
    // What the broker's user can do with the users file: nothing.
    const read = spawnSync(process.execPath, ['-e', `require('fs').readFileSync(${JSON.stringify(usersFile)})`], { uid: nobody, gid: lookupUser('nobody').gid, encoding: 'utf8' });
    assert.notEqual(read.status, 0);
    assert.match(read.stderr, /EACCES/);
    // Logins still work: the broker asks the parent, which asks the auth process.
    const c = await RawClient.connect(broker.port);
    c.send('login probe probe-password');
    await c.waitFor((f) => f.line === '# [I] logged in as probe (tenant default)');
    c.send('login probe wrong');
    await c.waitFor((f) => f.line.startsWith('-ERR BAD_ARGUMENTS already logged in'));
    c.send('pub secure.channel hello');
    await c.waitFor((f) => f.line.endsWith('published secure.channel #1'));
    await c.close();
    // The data the unprivileged broker writes belongs to it.
    const st = fs.statSync(path.join(broker.dataDir, '_T.default.secure.channel'));
    assert.equal(st.uid, nobody);
    // SIGTERM stops both processes cleanly: exit 0, and the child's end is not logged as an error.
    const exitCode = new Promise<number | null>((resolve) => broker.proc.once('exit', (code) => resolve(code)));
    await broker.stop();
    assert.equal(await exitCode, 0);
    assert.deepEqual(broker.logs.filter((l) => (l.level as number) >= 50).map((l) => l.msg), []);
    assert.ok(broker.logs.some((l) => l.msg === 'shutting down'));
  } finally {
    await broker.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** A loopback port nobody listens on right now. */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** A connection's INFO greeting, or the reason there was none within 10 s. */
function greeting(socket: net.Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`no INFO within 10 s (got ${JSON.stringify(seen)})`)), 10_000);
    socket.on('data', (d: Buffer) => {
      seen += d.toString('latin1');
      if (seen.includes('INFO ')) {
        clearTimeout(timer);
        socket.destroy();
        resolve();
      }
    });
    socket.on('close', () => reject(new Error(`closed before INFO (got ${JSON.stringify(seen)})`)));
    socket.write('mode machine\n');
  });
}

test('started as root: clients that connect while the broker is still starting are all served, none left hanging', { skip: root ? false : 'needs root (CI runs as root)' }, async () => {
  // The parent binds the port and then starts the broker and hands it the socket: a client
  // that connected in between was accepted by the parent, which then neither served nor
  // closed it. Connect every few ms from the start until one is greeted.
  const port = await freePort();
  const dataDir = tmpDir('fluctuat-privsep-start-');
  const proc = spawn(process.execPath, [BIN, 'serve', '--listen', `127.0.0.1:${port}`, '--data', dataDir, '--storage', 'memory'], { stdio: 'ignore', detached: true });
  try {
    const greeted: Promise<void>[] = [];
    let served = false;
    const deadline = Date.now() + 20_000;
    while (!served && Date.now() < deadline) {
      const socket = await new Promise<net.Socket | null>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => resolve(s));
        s.once('error', () => resolve(null));
      });
      if (socket) greeted.push(greeting(socket).then(() => void (served = true)));
      await sleep(3);
    }
    assert.ok(greeted.length > 0, 'the broker listened within 20 s');
    await Promise.all(greeted);
  } finally {
    process.kill(-proc.pid!, 'SIGTERM');
    await new Promise((resolve) => proc.once('exit', resolve));
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  test(`started as root: ${signal} to the whole process group (a terminal's ^C, a service manager's stop) stops the broker child cleanly too`, { skip: root ? false : 'needs root (CI runs as root)' }, async () => {
    const broker = await startBroker({ storage: 'file' });
    try {
      let stderr = '';
      broker.proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const c = await RawClient.connect(broker.port);
      c.send('pub probes.results rtt=12ms');
      await c.waitFor((f) => f.line.endsWith('published probes.results #1'));
      await c.close();
      const exit = new Promise<number | null>((resolve) => broker.proc.once('exit', (code) => resolve(code)));
      // The group: the parent, the broker child and (with users) the auth process at once.
      process.kill(-broker.proc.pid!, signal);
      assert.equal(await exit, 0, `exit code; stderr: ${stderr}`);
      assert.equal(stderr, '', 'nothing on stderr (the parent once died of an EPIPE querying a child already gone)');
      assert.deepEqual(broker.logs.filter((l) => (l.level as number) >= 50).map((l) => l.msg), [], 'no error logged: the broker ended as asked');
      // It stopped as the parent would have asked: the next start trusts the clean-shutdown record.
      const seen = broker.logs.length;
      await broker.restart();
      await until(() => broker.logs.slice(seen).some((l) => typeof l.msg === 'string' && l.msg.startsWith('storage: recovered')), 'the storage recovery line');
      const recovered = broker.logs.slice(seen).find((l) => typeof l.msg === 'string' && l.msg.startsWith('storage: recovered'))!;
      assert.equal(recovered.msg, 'storage: recovered after a clean shutdown');
      assert.equal(recovered.verified, 0);
    } finally {
      await broker.dispose();
    }
  });
}
