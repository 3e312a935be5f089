/**
 * A broker for the torture test, started the way a user would: `fluctuat serve` as a child
 * process on a free loopback port, with a scratch data directory. The torture test talks to it
 * only over the wire, with the public client library.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

/** bin/fluctuat.js, from dist/src/torture/ or src/torture/. */
export const BIN = (() => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const up of ['../../../bin/fluctuat.js', '../../bin/fluctuat.js']) {
    const p = path.resolve(here, up);
    if (fs.existsSync(p)) return p;
  }
  return path.resolve(here, '../../../bin/fluctuat.js');
})();

export interface ChildBroker {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly dataDir: string;
  stop(): Promise<void>;
}

export async function startChildBroker(options: { dataDir?: string; args?: readonly string[]; timeoutMs?: number } = {}): Promise<ChildBroker> {
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'fluctuat-torture-'));
  const proc: ChildProcess = spawn(process.execPath, [BIN, 'serve', '--listen', '127.0.0.1:0', '--data', dataDir, ...(options.args ?? [])], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const lines = readline.createInterface({ input: proc.stdout! });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the broker did not listen within ${options.timeoutMs ?? 15000} ms: ${stderr}`)), options.timeoutMs ?? 15_000);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the broker exited with ${code} before listening: ${stderr}`));
    });
    lines.on('line', (line) => {
      let entry: { msg?: unknown; port?: unknown };
      try {
        entry = JSON.parse(line) as typeof entry;
      } catch {
        return;
      }
      if (entry.msg === 'listening' && typeof entry.port === 'number') {
        clearTimeout(timer);
        resolve(entry.port);
      }
    });
  }).catch(async (err: unknown) => {
    proc.kill('SIGKILL');
    await exited;
    if (ownDir) fs.rmSync(dataDir, { recursive: true, force: true });
    throw err;
  });
  lines.on('line', () => {}); // keep draining the log
  return {
    url: `fluctuat://127.0.0.1:${port}`,
    port,
    pid: proc.pid ?? 0,
    dataDir,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
        proc.kill('SIGTERM');
        await exited;
        clearTimeout(timer);
      }
      if (ownDir) fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
