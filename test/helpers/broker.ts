import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const BIN = path.join(ROOT, 'bin', 'fluctuat.js');

export interface BrokerOptions {
  storage?: 'file' | 'memory';
  dataDir?: string;
  args?: string[];
  /** Keep the same port across restart() (default true). */
  samePort?: boolean;
  /** `--config FILE`; its listeners replace `--listen` (the port is the first listener's). */
  config?: string;
  /** Wait for this many `listening` log lines (default 1); read them from `logs`. */
  listeners?: number;
  /** Run the broker under `ulimit -n` of this many descriptors (through bash). */
  openFilesLimit?: number;
  /** Set in the broker's environment on top of this process's (e.g. FLUCTUAT_NATIVE=0). */
  env?: Record<string, string>;
}

export interface RunningBroker {
  url: string;
  host: string;
  port: number;
  dataDir: string;
  proc: ChildProcess;
  /** Every log line the broker printed (JSON). */
  logs: Record<string, unknown>[];
  stop(): Promise<void>;
  /** SIGKILL: no chance to flush anything. */
  kill(): Promise<void>;
  /** Start again on the same data dir (and port). */
  restart(): Promise<void>;
  /** Stop and remove the data dir. */
  dispose(): Promise<void>;
}

export function tmpDir(prefix = 'fluctuat-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Start `fluctuat serve` as a child process on a free loopback port. */
export async function startBroker(options: BrokerOptions = {}): Promise<RunningBroker> {
  const dataDir = options.dataDir ?? tmpDir();
  const logs: Record<string, unknown>[] = [];
  let port = 0;
  const launch = async (): Promise<ChildProcess> => {
    const listen = options.config ? ['--config', options.config] : ['--listen', `127.0.0.1:${port}`];
    const args = [BIN, 'serve', ...listen, '--data', dataDir, '--storage', options.storage ?? 'file', ...(options.args ?? [])];
    // Its own process group: kill() takes the privilege-separated children down with it,
    // like a machine crash would.
    const [cmd, argv] = options.openFilesLimit
      ? ['bash', ['-c', `ulimit -n ${options.openFilesLimit} && exec "$0" "$@"`, process.execPath, ...args]]
      : [process.execPath, args];
    const env = options.env ? { ...process.env, ...options.env } : process.env;
    const proc = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env });
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const lines = readline.createInterface({ input: proc.stdout! });
    const listening: number[] = [];
    port = await new Promise<number>((resolve, reject) => {
      const onExit = (code: number | null): void => reject(new Error(`broker exited with ${code} before listening: ${stderr}`));
      proc.once('exit', onExit);
      lines.on('line', (line) => {
        let entry: Record<string, unknown>;
        try {
          entry = JSON.parse(line) as Record<string, unknown>;
        } catch {
          return;
        }
        logs.push(entry);
        if (entry.msg === 'listening') {
          listening.push(entry.port as number);
          if (listening.length < (options.listeners ?? 1)) return;
          proc.off('exit', onExit);
          resolve(listening[0]!);
        }
      });
    });
    return proc;
  };
  const broker: RunningBroker = {
    url: '',
    host: '127.0.0.1',
    port: 0,
    dataDir,
    proc: await launch(),
    logs,
    async stop() {
      await terminate(broker.proc, 'SIGTERM');
    },
    async kill() {
      await terminate(broker.proc, 'SIGKILL');
    },
    async restart() {
      if (options.samePort === false) port = 0;
      broker.proc = await launch();
      broker.port = port;
      broker.url = `fluctuat://127.0.0.1:${port}`;
    },
    async dispose() {
      await terminate(broker.proc, 'SIGTERM');
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
  broker.port = port;
  broker.url = `fluctuat://127.0.0.1:${port}`;
  return broker;
}

function terminate(proc: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    proc.once('exit', () => {
      // SIGKILL went to the whole group; make sure no child still holds the port.
      if (signal === 'SIGKILL') void groupGone(proc.pid!).then(resolve);
      else resolve();
    });
    if (signal === 'SIGKILL') process.kill(-proc.pid!, 'SIGKILL');
    else proc.kill(signal);
  });
}

async function groupGone(pgid: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      process.kill(-pgid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}
