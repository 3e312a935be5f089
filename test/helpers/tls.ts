// TLS test tools shared by the TLS suites: gen-cert, openssl s_client, and waiting for a
// broker's log line or an accounting-log entry.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { BIN, type RunningBroker } from './broker.js';

const execFileP = promisify(execFile);

/** `fluctuat gen-cert ...` in `dir`; the files it wrote. */
export async function genCert(dir: string, ...args: string[]): Promise<string[]> {
  const { stdout } = await execFileP(process.execPath, [BIN, 'gen-cert', ...args, '--dir', dir], { encoding: 'utf8' });
  return stdout.trim().split('\n');
}

/** openssl s_client from `dir` (ca.crt, and `<cert>.crt`/`.key` when given): everything it printed. */
export function sClient(dir: string, port: number, cert: string | undefined, input: string): Promise<string> {
  const args = ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', 'ca.crt', '-verify_return_error', '-quiet'];
  if (cert) args.push('-cert', `${cert}.crt`, '-key', `${cert}.key`);
  return new Promise((resolve, reject) => {
    const p = spawn('openssl', args, { cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    p.stdout.on('data', (d: Buffer) => (output += d.toString()));
    p.stderr.on('data', (d: Buffer) => (output += d.toString()));
    p.on('error', reject);
    // Guards a bug only: the broker ends the connection after `quit` or a refusal.
    const guard = setTimeout(() => p.kill('SIGKILL'), 20_000);
    p.on('close', () => {
      clearTimeout(guard);
      resolve(output);
    });
    // A client refused during the handshake may exit before it reads its input: EPIPE is expected then.
    p.stdin.on('error', () => {});
    p.stdin.end(input);
  });
}

/** The client library's TLS files for `name`'s certificate in `dir`. */
export function tlsFiles(dir: string, name: string): { caFile: string; certFile: string; keyFile: string } {
  return { caFile: path.join(dir, 'ca.crt'), certFile: path.join(dir, `${name}.crt`), keyFile: path.join(dir, `${name}.key`) };
}

/** The first of the broker's log lines (from `from` on) that matches, waiting up to 10 s. */
export async function logged(broker: RunningBroker, pred: (l: Record<string, unknown>) => boolean, from = 0): Promise<Record<string, unknown>> {
  for (let i = 0; i < 500; i++) {
    const line = broker.logs.slice(from).find(pred);
    if (line) return line;
    await new Promise((r) => setTimeout(r, 20));
  }
  return assert.fail(`no such log line; last: ${JSON.stringify(broker.logs.slice(-3))}`);
}

/** The first entry of the accounting log `file` that matches, waiting up to 10 s. */
export async function auditEntry(file: string, pred: (e: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  for (let i = 0; i < 500; i++) {
    const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    const hit = text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).find(pred);
    if (hit) return hit;
    await new Promise((r) => setTimeout(r, 20));
  }
  return assert.fail('no such audit entry');
}
