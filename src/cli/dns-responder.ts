import fs from 'node:fs';
import type { Command } from 'commander';
import { parseKey } from '../probes/dns-key.js';
import { startDnsResponder } from '../probes/dns-responder.js';
import { integer } from './options.js';

interface ResponderOptions {
  listen: string;
  zone: string;
  key?: string;
  keyFile?: string;
  address: string;
  ttl: number;
}

/** `fluctuat dns-responder`: the keyed test DNS responder for `dns keyed=true` probes. */
export function dnsResponderCommand(program: Command, done: (p: Promise<number>) => void): void {
  program
    .command('dns-responder')
    .description('answer DNS queries for a test zone: TXT = HMAC of the name (for keyed dns probes), A = a fixed address')
    .option('-l, --listen <host:port>', 'UDP address to listen on', '127.0.0.1:5353')
    .option('-z, --zone <zone>', 'the zone it is the authority for', 'probe.test')
    .option('--key <key>', 'HMAC key: hex, base64:..., or text (env FLUCTUAT_DNS_KEY)')
    .option('--key-file <file>', 'read the HMAC key from a file')
    .option('--address <ip>', 'A record for names of the zone', '127.0.0.1')
    .option('--ttl <seconds>', 'answer TTL', integer('--ttl'), 0)
    .action((o: ResponderOptions) => done(respond(o)));
}

async function respond(o: ResponderOptions): Promise<number> {
  const keyText = o.keyFile ? fs.readFileSync(o.keyFile, 'utf8').trim() : (o.key ?? process.env.FLUCTUAT_DNS_KEY);
  if (!keyText) {
    process.stderr.write('fluctuat dns-responder: give --key, --key-file or FLUCTUAT_DNS_KEY\n');
    return 2;
  }
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(o.listen) ?? /^([^:]+):(\d+)$/.exec(o.listen);
  if (!m) {
    process.stderr.write(`fluctuat dns-responder: --listen is host:port, got ${JSON.stringify(o.listen)}\n`);
    return 2;
  }
  let responder;
  try {
    responder = await startDnsResponder({ host: m[1]!, port: Number(m[2]), zone: o.zone, key: parseKey(keyText), address: o.address, ttl: o.ttl });
  } catch (err) {
    process.stderr.write(`fluctuat dns-responder: cannot listen on ${o.listen}: ${(err as Error).message}\n`);
    return 69;
  }
  process.stdout.write(JSON.stringify({ msg: 'listening', host: responder.host, port: responder.port, zone: o.zone }) + '\n');
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await responder.close();
  process.stdout.write(JSON.stringify({ msg: 'stopped', ...responder.counts }) + '\n');
  return 0;
}
