import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { BIN, ROOT, startBroker } from './helpers/broker.js';
import { RawClient } from './helpers/raw.js';

const doc = fs.readFileSync(path.join(ROOT, 'docs', 'operations.md'), 'utf8');
const shell = [...doc.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) => m[1]!.trimEnd().split('\n'));
const fluctuat = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });

test('docs/operations.md: every fluctuat command line it shows names a real command and real flags', () => {
  const lines = shell.filter((l) => l.startsWith('node bin/fluctuat.js '));
  assert.ok(lines.length >= 5);
  for (const line of lines) {
    const words = line.replace(/#.*$/, '').trim().split(/\s+/).slice(2);
    const help = fluctuat([words[0]!, '--help']);
    assert.equal(help.status, 0, `fluctuat ${words[0]} --help`);
    for (const flag of words.filter((w) => w.startsWith('--'))) assert.ok(help.stdout.includes(flag), `${line}: ${flag} is not an option of ${words[0]}`);
  }
});

test('docs/operations.md: the check examples run as shown on data a broker wrote', async () => {
  const broker = await startBroker();
  try {
    const c = await RawClient.connect(broker.port);
    c.send('pub probes.results rtt=12ms');
    await c.waitFor((f) => f.line.endsWith('published probes.results #1'));
    c.send('pub probes.results rtt=15ms');
    await c.waitFor((f) => f.line.endsWith('published probes.results #2'));
    await c.close();
    await broker.stop();
    const checks = shell.filter((l) => l.startsWith('node bin/fluctuat.js check '));
    assert.equal(checks.length, 3);
    for (const line of checks) {
      const [command, comment] = line.split(/\s+#\s+/);
      const args = command!.trim().split(/\s+/).slice(2).map((w) => (w === '/var/lib/fluctuat' ? broker.dataDir : w));
      const run = fluctuat(args);
      assert.equal(run.status, 0, `${line}: ${run.stderr}`);
      if (args.includes('--json')) assert.deepEqual(JSON.parse(run.stdout), { channels: 1, segments: 1, records: 2, problems: [], orphans: [], repaired: [] });
      else if (!args.includes('--repair')) assert.equal(run.stdout.trim(), comment);
    }
  } finally {
    await broker.dispose();
  }
});

test('docs/operations.md: its links point at headings that exist', () => {
  const slug = (h: string): string => h.toLowerCase().replace(/[^\w\s-]/g, '').trim().replace(/\s+/g, '-');
  const links = [...doc.matchAll(/\]\(([\w.-]+\.md)#([\w-]+)\)/g)];
  assert.ok(links.length >= 5);
  for (const [, file, anchor] of links) {
    const target = fs.readFileSync(path.join(ROOT, 'docs', file!), 'utf8');
    const anchors = [...target.matchAll(/^#+ (.+)$/gm)].map((m) => slug(m[1]!.replace(/`/g, '')));
    assert.ok(anchors.includes(anchor!), `${file}#${anchor} has no heading`);
  }
});
