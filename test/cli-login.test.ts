/**
 * The login flags of the client commands (src/cli/connection.ts) against a real broker with
 * users: --user with --password-file or FLUCTUAT_PASSWORD, --token-file or FLUCTUAT_TOKEN.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { hashPassword, newToken } from '../src/security/passwords.js';
import { writeUsers } from '../src/security/users-file.js';
import { BIN, startBroker, tmpDir, type RunningBroker } from './helpers/broker.js';

const execFileP = promisify(execFile);
const dir = tmpDir('fluctuat-cli-login-');
const f = (name: string): string => path.join(dir, name);
let broker: RunningBroker;
let token = '';

async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const clean = { ...process.env, FLUCTUAT_URL: '', FLUCTUAT_USER: '', FLUCTUAT_PASSWORD: '', FLUCTUAT_TOKEN: '', ...env };
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [BIN, ...args, '--url', `fluctuat://127.0.0.1:${broker.port}`], { encoding: 'utf8', env: clean });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

before(async () => {
  const t = newToken();
  token = t.token;
  writeUsers(f('users'), [
    { name: 'alice', hash: await hashPassword('alice password with spaces'), groups: [], tenant: 'acme', tokens: [] },
    { name: 'robot', hash: await hashPassword('unused-password'), groups: [], tenant: 'acme', tokens: [t.digest] },
  ]);
  fs.writeFileSync(f('alice.pw'), 'alice password with spaces\n', { mode: 0o600 });
  fs.writeFileSync(f('robot.token'), `${token}\n`, { mode: 0o600 });
  fs.writeFileSync(f('wrong.pw'), 'not it\n');
  broker = await startBroker({ storage: 'memory', args: ['--users', f('users'), '--default-access', 'allow'] });
});
after(async () => {
  await broker.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('pub and sub log in with --user and --password-file, a token file, or the environment', async () => {
  const a = await cli(['pub', '--user', 'alice', '--password-file', f('alice.pw'), 'logins.x', 'from a password']);
  assert.equal(a.code, 0, a.stderr);
  const b = await cli(['pub', '--token-file', f('robot.token'), 'logins.x', 'from a token']);
  assert.equal(b.code, 0, b.stderr);
  const c = await cli(['pub', 'logins.x', 'from the environment'], { FLUCTUAT_USER: 'alice', FLUCTUAT_PASSWORD: 'alice password with spaces' });
  assert.equal(c.code, 0, c.stderr);
  const d = await cli(['pub', 'logins.x', 'from a token variable'], { FLUCTUAT_TOKEN: token });
  assert.equal(d.code, 0, d.stderr);
  // Both users are in tenant acme: one channel, four messages, and their publishers.
  const sub = await cli(['sub', '--token-file', f('robot.token'), '--from', 'beginning', '--count', '4', '--json', 'logins.x']);
  assert.equal(sub.code, 0, sub.stderr);
  const msgs = sub.stdout.trim().split('\n').map((l) => JSON.parse(l) as { text: string; publisher: string });
  assert.deepEqual(msgs.map((m) => m.text), ['from a password', 'from a token', 'from the environment', 'from a token variable']);
  assert.deepEqual(msgs.map((m) => m.publisher.split('/')[0]), ['alice', 'robot', 'alice', 'robot']);
});

test('a wrong password fails with the broker\'s code; usage errors exit 2 and name the fix', async () => {
  const wrong = await cli(['pub', '--user', 'alice', '--password-file', f('wrong.pw'), 'logins.y', 'x']);
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.stderr, /AUTH_FAILED|login .* refused/);
  const none = await cli(['pub', 'logins.y', 'x']);
  assert.notEqual(none.code, 0);
  assert.match(none.stderr, /AUTH_REQUIRED|log in first/);
  for (const [args, message] of [
    [['--password-file', f('alice.pw')], /--password-file needs --user/],
    [['--user', 'alice'], /needs a password: --password-file FILE or env FLUCTUAT_PASSWORD/],
    [['--user', 'alice', '--password-file', f('missing')], /cannot read the password file .*missing: ENOENT/],
    [['--user', 'alice', '--password-file', f('alice.pw'), '--token-file', f('robot.token')], /not both/],
  ] as const) {
    const r = await cli(['pub', ...args, 'logins.y', 'x']);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
});
