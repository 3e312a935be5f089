import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { hashPassword } from '../src/security/passwords.js';
import { writeUsers } from '../src/security/users-file.js';
import { lookupUser } from '../src/privsep/users.js';
import { startBroker, tmpDir } from './helpers/broker.js';
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
