/** `fluctuat check-config` and `fluctuat serve --config`, as processes. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { BIN, startBroker, tmpDir } from './helpers/broker.js';

const run = promisify(execFile);
const dir = tmpDir('fluctuat-config-cli-');
after(() => fs.rmSync(dir, { recursive: true, force: true }));

async function fluctuat(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { cwd: dir, encoding: 'utf8' });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('check-config: 0 for a good file; 1 with file:line:col, the line and a caret for a bad one', async () => {
  fs.writeFileSync(path.join(dir, 'good.conf'), 'listen on 127.0.0.1 port 2023\nstorage memory\nlimit line 8k\n');
  const good = await fluctuat('check-config', 'good.conf');
  assert.equal(good.code, 0);
  assert.equal(good.stdout, 'good.conf: configuration OK (1 file read)\n');
  assert.equal(good.stderr, '');

  fs.writeFileSync(path.join(dir, 'bad.conf'), '# a comment\nlisten on 127.0.0.1 prot 2023\n');
  const bad = await fluctuat('check-config', 'bad.conf');
  assert.equal(bad.code, 1);
  assert.equal(bad.stdout, '');
  assert.deepEqual(bad.stderr.split('\n'), [
    'bad.conf:2:21: expected "port" or "tls" after the listen address, or the end of the line, found "prot" (did you mean "port"?)',
    '    listen on 127.0.0.1 prot 2023',
    '                        ^',
    '',
  ]);

  const missing = await fluctuat('check-config', 'missing.conf');
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^missing\.conf: cannot read the configuration file: ENOENT\n$/);
  assert.equal((await fluctuat('check-config')).code, 2);
});

test('check-config: -D defines macros, --print shows the configuration with defaults, warnings do not fail', async () => {
  fs.writeFileSync(path.join(dir, 'macro.conf'), 'listen on 127.0.0.1 port $port\nallow sub on "x.>"\n');
  const undefinedMacro = await fluctuat('check-config', 'macro.conf');
  assert.equal(undefinedMacro.code, 1);
  assert.match(undefinedMacro.stderr, /^macro\.conf:1:26: macro \$port is not defined/);
  const printed = await fluctuat('check-config', '-D', 'port=2999', '--print', 'macro.conf');
  assert.equal(printed.code, 0, printed.stderr);
  const config = JSON.parse(printed.stdout) as { listen: unknown[]; session: { maxLine: number }; security: { rules: unknown[] } };
  assert.deepEqual(config.listen, [{ host: '127.0.0.1', port: 2999, tls: false }]);
  assert.equal(config.session.maxLine, 4096);
  assert.equal(config.security.rules.length, 1);
  assert.match(printed.stderr, /^macro\.conf:1:1: warning: access rules and "default-access" apply only with "users file"/);
});

/** The INFO frame of a machine-mode session on a plaintext port. */
function info(port: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write('mode machine\n'));
    let text = '';
    s.on('data', (d) => {
      text += d.toString();
      const line = text.split('\n').find((l) => l.startsWith('INFO '));
      if (line) {
        s.end('QUIT\n');
        resolve(JSON.parse(line.slice(5)) as Record<string, unknown>);
      }
    });
    s.on('error', reject);
  });
}

test('serve --config: the file sets the broker up, flags given on the command line win', async () => {
  fs.writeFileSync(path.join(dir, 'serve.conf'), 'listen on 127.0.0.1 port 0\nlimit line 2048\nlimit payload 1000\nlimit history 7\n');
  const broker = await startBroker({ config: path.join(dir, 'serve.conf'), storage: 'memory', args: ['--max-payload', '5000'] });
  try {
    const i = await info(broker.port);
    assert.equal(i.maxLine, 2048); // from the file
    assert.equal(i.historyMax, 7); // from the file
    assert.equal(i.maxPayload, 5000); // the flag wins over the file
  } finally {
    await broker.dispose();
  }
});

test('serve --config with an error: exit 2 and the positioned message, nothing started', async () => {
  fs.writeFileSync(path.join(dir, 'broken.conf'), 'limit line 1MiB\nlimit payload lots\n');
  const r = await fluctuat('serve', '--config', 'broken.conf', '--storage', 'memory');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^fluctuat serve: broken\.conf:2:15: expected a size such as 4096, 512k, 64MiB or 1g for "limit payload", found "lots"\n/);
});

test('every serve flag that the file can also set is known to --config, so its default cannot hide the file', async () => {
  const { Command } = await import('commander');
  const { serveCommand } = await import('../src/cli/serve.js');
  const { FILE_SETTABLE_FLAGS } = await import('../src/config/load.js');
  const program = new Command();
  serveCommand(program, () => {});
  const serve = program.commands.find((c) => c.name() === 'serve')!;
  const serveOnly = new Set(['config', 'user', 'privsep']);
  for (const option of serve.options) {
    const key = option.attributeName();
    assert.ok(FILE_SETTABLE_FLAGS.has(key) || serveOnly.has(key), `serve flag ${option.long} is neither file-settable (config/load.ts) nor serve-only`);
  }
});
