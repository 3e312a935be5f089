import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import { BIN, startBroker, type RunningBroker } from './helpers/broker.js';

let broker: RunningBroker;
before(async () => {
  broker = await startBroker();
});
after(async () => {
  await broker.dispose();
});

function cli(args: string[], stdin?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, FLUCTUAT_URL: broker.url } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
    if (stdin !== undefined) p.stdin.end(stdin);
    else p.stdin.end();
  });
}

test('fluctuat pub prints the acknowledged offset; lines from stdin are each a message', async () => {
  const one = await cli(['pub', 'cli.chan', 'hello', 'world']);
  assert.equal(one.code, 0, one.stderr);
  assert.equal(one.stdout, 'cli.chan #1\n');
  const many = await cli(['pub', 'cli.chan'], 'a\nb\nc\n');
  assert.equal(many.code, 0, many.stderr);
  assert.equal(many.stdout, 'cli.chan: 3 messages acknowledged\n');
});

test('fluctuat sub --from beginning --count prints messages (human and JSON) and exits 0', async () => {
  const human = await cli(['sub', 'cli.chan', '--from', 'beginning', '--count', '4']);
  assert.equal(human.code, 0, human.stderr);
  assert.deepEqual(human.stdout.trim().split('\n').map((l) => l.replace(/ at \d\d:\d\d:\d\d:/, ':')), [
    'pubsub on cli.chan: hello world',
    'pubsub on cli.chan: a',
    'pubsub on cli.chan: b',
    'pubsub on cli.chan: c',
  ]);
  const json = await cli(['sub', 'cli.*', '--from', 'offset:2', '--count', '1', '--json']);
  assert.equal(json.code, 0, json.stderr);
  const msg = JSON.parse(json.stdout) as { channel: string; offset: number; text: string; time: number };
  assert.equal(msg.channel, 'cli.chan');
  assert.equal(msg.offset, 2);
  assert.equal(msg.text, 'a');
});

test('CLI errors: bad channel, unreachable broker, bad position, unknown command', async () => {
  const bad = await cli(['pub', 'bad..name', 'x']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /BAD_CHANNEL|empty token/);
  const down = await cli(['pub', 'x', 'y', '--url', 'fluctuat://127.0.0.1:1']);
  assert.equal(down.code, 1);
  assert.match(down.stderr, /ECONNREFUSED|connect/i);
  const pos = await cli(['sub', 'x', '--from', 'yesterday']);
  assert.notEqual(pos.code, 0);
  assert.match(pos.stderr, /position|from/i);
  const unknown = await cli(['frobnicate']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command/);
});

test('fluctuat --help lists every command; a mistyped one gets a suggestion and exit 2; --version prints the version', async () => {
  const help = await cli(['--help']);
  assert.equal(help.code, 0, help.stderr);
  const listed = [...help.stdout.slice(help.stdout.indexOf('Commands:')).matchAll(/^ {2}([a-z-]+)\b/gm)].map((m) => m[1]);
  assert.deepEqual(listed, ['serve', 'check', 'pub', 'sub', 'check-config', 'gen-cert', 'user', 'probe', 'swarm', 'torture', 'dns-responder', 'help']);
  const typo = await cli(['servr']);
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /unknown command 'servr'\n\(Did you mean serve\?\)/);
  const version = await cli(['--version']);
  assert.equal(version.stdout.trim(), '0.1.0');
  // A command named first loads on its own and still has its whole help.
  const pubHelp = await cli(['pub', '--help']);
  assert.equal(pubHelp.code, 0, pubHelp.stderr);
  assert.match(pubHelp.stdout, /^Usage: fluctuat pub /m);
});
