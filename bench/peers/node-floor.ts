/**
 * The Node floor: the least a Node.js broker of fluctuat's machine protocol can do, as a
 * benchmark peer for latency. One process, Node's `net` streams as every Node server reads
 * them, no storage, no acknowledgements, no limits: `mode` is answered with `INFO`, `SUB` with
 * `OK`, and each `PUB` is written at once to the channel's subscribers as a `MSG`. What
 * fluctuat's latency adds to this is fluctuat's; what this adds to NATS's is Node's. Prints
 * {"port":N} on stdout; started and stopped by bench/lib/targets.ts.
 */
import net from 'node:net';

interface Subscriber {
  socket: net.Socket;
  sid: string;
}

const NL = 0x0a;
const channels = new Map<string, Subscriber[]>();

const server = net.createServer({ noDelay: true }, (socket) => {
  let pending: Buffer | null = null;
  /** The PUB whose payload is awaited: its channel and size. */
  let pub: { channel: string; size: number } | null = null;
  socket.on('data', (chunk: Buffer) => {
    const buf = pending === null ? chunk : Buffer.concat([pending, chunk]);
    pending = null;
    let pos = 0;
    for (;;) {
      if (pub !== null) {
        if (buf.length - pos < pub.size + 1) break;
        const payload = buf.subarray(pos, pos + pub.size);
        pos += pub.size + 1;
        for (const s of channels.get(pub.channel) ?? []) {
          // One write per delivery, as a plain relay does it: head, payload and newline corked together.
          s.socket.cork();
          s.socket.write(`MSG ${s.sid} ${pub.channel} 0 0 - - ${pub.size}\n`);
          s.socket.write(payload);
          s.socket.write('\n');
          process.nextTick(() => s.socket.uncork());
        }
        pub = null;
        continue;
      }
      const nl = buf.indexOf(NL, pos);
      if (nl < 0) break;
      const words = buf.toString('latin1', pos, nl).trim().split(' ');
      pos = nl + 1;
      if (words[0] === 'mode') socket.write('INFO {"server":"node-floor"}\n');
      else if (words[0] === 'SUB' && words.length >= 3) {
        const list = channels.get(words[2]!) ?? [];
        channels.set(words[2]!, list);
        list.push({ socket, sid: words[1]! });
        socket.write(`OK ${words[1]}\n`);
      } else if (words[0] === 'PUB' && words.length === 5) pub = { channel: words[1]!, size: Number(words[4]) };
      else socket.write(`ERR - UNKNOWN the Node floor speaks mode, SUB and PUB only\n`);
    }
    if (pos < buf.length) pending = buf.subarray(pos);
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    for (const list of channels.values()) {
      const i = list.findIndex((s) => s.socket === socket);
      if (i >= 0) list.splice(i, 1);
    }
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: (server.address() as net.AddressInfo).port }) + '\n');
});
const stop = (): void => process.exit(0);
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
