/** `npm run bench` run for real into a fresh --out directory (benchmark tests). */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from './broker.js';
import { runNode } from './child.js';

export interface BenchRun<R> {
  stdout: string;
  /** latest.json */
  result: R;
  /** latest.md */
  markdown: string;
  /** What the run wrote into its --out directory. */
  files: string[];
}

/**
 * Runs `node dist/bench/run.js <args> --out <fresh dir>` with the BENCH_* variables of `env`,
 * checks that it exited 0, and returns what it printed and wrote; the directory is removed.
 */
export async function runBench<R>(args: string[], env: Record<string, string> = {}): Promise<BenchRun<R>> {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'fluctuat-bench-test-'));
  try {
    const { code, stdout, stderr } = await runNode([path.join(ROOT, 'dist/bench/run.js'), ...args, '--out', out], { env: { ...process.env, ...env }, cwd: ROOT, timeoutMs: 120_000 });
    assert.equal(code, 0, `bench failed:\n${stdout}\n${stderr}`);
    return {
      stdout,
      result: JSON.parse(fs.readFileSync(path.join(out, 'latest.json'), 'utf8')) as R,
      markdown: fs.readFileSync(path.join(out, 'latest.md'), 'utf8'),
      files: fs.readdirSync(out),
    };
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}
