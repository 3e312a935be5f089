// Checks shared by the broker's start-time settings read from the environment
// (FLUCTUAT_HEAP_PAD, FLUCTUAT_PARALLEL_SCAVENGE): a bad value stops the start, and the console
// example in docs/operations.md prints what it shows.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { BIN, ROOT, tmpDir } from './broker.js';
import { runNode } from './child.js';

const run = promisify(execFile);

/** `fluctuat serve` with `env` added must refuse to start (exit 69) with `message` on stderr, listening nowhere. */
export async function assertStartRefused(env: Record<string, string>, message: RegExp): Promise<void> {
  const dir = tmpDir();
  try {
    const bad = await runNode([BIN, 'serve', '--listen', '127.0.0.1:0', '--storage', 'memory', '--data', path.join(dir, 'data')], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      timeoutMs: 20_000,
    });
    assert.equal(bad.code, 69, `exit code; stderr: ${bad.stderr}`);
    assert.match(bad.stderr, message);
    assert.doesNotMatch(bad.stdout, /"msg":"listening"/, 'nothing listened');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Runs each `$ command` of the first console block under `heading` in docs/operations.md and
 * checks that it prints exactly the line after it; `commands` is how many the block holds.
 */
export async function assertConsoleExample(heading: string, commands: number): Promise<void> {
  const doc = fs.readFileSync(path.join(ROOT, 'docs', 'operations.md'), 'utf8');
  const at = doc.indexOf(heading);
  assert.ok(at >= 0, `no section ${heading}`);
  const lines = /```console\n([^`]*)```/.exec(doc.slice(at))![1]!.trimEnd().split('\n');
  assert.equal(lines.length, 2 * commands);
  for (let i = 0; i < lines.length; i += 2) {
    const command = lines[i]!.replace(/^\$ /, '');
    const { stdout } = await run('bash', ['-c', command], { cwd: ROOT });
    assert.equal(stdout.trim(), lines[i + 1], command);
  }
}
