/**
 * Open descriptors of a file-storage broker with many channels:
 * `node dist/bench/open-files.js [channels=100000] [ulimit -n=0: unchanged]`.
 * Starts `fluctuat serve` (under `ulimit -n` when given), publishes one acknowledged 16 B
 * message to each of `channels` new channels (256 in flight), samples the broker process's
 * descriptors (/proc) and prints them with the pool bound the engine chose.
 */
import fs from 'node:fs';
import { startBroker } from '../test/helpers/broker.js';
import { RawClient } from '../test/helpers/raw.js';

const N = Number(process.argv[2] ?? 100_000);
const limit = Number(process.argv[3] ?? 0);
const broker = await startBroker({ args: ['--max-connections', '100'], ...(limit ? { openFilesLimit: limit } : {}) });

/** The network-facing child when serve runs privilege-separated (as root), else serve itself. */
function brokerPid(): number {
  for (const p of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (new RegExp(`^PPid:\\s+${broker.proc.pid}$`, 'm').test(fs.readFileSync(`/proc/${p}/status`, 'utf8'))) return Number(p);
    } catch {
      // the process ended meanwhile
    }
  }
  return broker.proc.pid!;
}
const pid = brokerPid();
const fds = (): number => fs.readdirSync(`/proc/${pid}/fd`).length;

const c = await RawClient.machine(broker.port);
let acked = 0;
let errors = 0;
c.socket.on('data', () => {
  for (const f of c.frames.splice(0)) {
    if (f.line.startsWith('ACK ')) acked++;
    else if (f.line.startsWith('ERR ') && ++errors <= 3) console.log(f.line);
  }
});
const payload = Buffer.alloc(16, 0x63);
const t0 = Date.now();
let sent = 0;
let maxFds = 0;
while (acked + errors < N) {
  while (sent < N && sent - acked - errors < 256) c.pub(`bench.c${sent++}.x`, payload, `k${sent}`);
  await new Promise((r) => setTimeout(r, 5));
  if (sent % 5000 < 256) maxFds = Math.max(maxFds, fds());
}
maxFds = Math.max(maxFds, fds());
const started = broker.logs.find((l) => l.msg === 'storage: file engine started');
console.log(
  JSON.stringify({
    channels: N,
    acked,
    errors,
    seconds: (Date.now() - t0) / 1000,
    brokerFdsAtEnd: fds(),
    brokerFdsMaxSampled: maxFds,
    maxOpenFiles: started?.maxOpenFiles,
    openFilesLimit: fs.readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'))?.replace(/\s+/g, ' '),
  }),
);
await c.close();
await broker.dispose();
