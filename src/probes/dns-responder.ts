/**
 * The test DNS responder shipped with fluctuat (UDP). For names under its zone it answers:
 *   TXT  → the HMAC of the name (see dns-key.ts), so keyed `dns` probes can prove a real lookup;
 *   A    → a fixed address (127.0.0.1 by default);
 *   other types → no data (NOERROR, empty answer).
 * Names outside the zone get REFUSED: it is an authority for one zone, not a resolver.
 */
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';
import { canonicalName, keyedAnswer } from './dns-key.js';

export interface DnsResponderOptions {
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  zone: string;
  key: Buffer;
  /** The A record for every name of the zone (default 127.0.0.1). */
  address?: string;
  /** Answer TTL, seconds (default 0: nothing to cache). */
  ttl?: number;
}

export interface DnsResponder {
  readonly host: string;
  readonly port: number;
  /** Queries answered, by outcome. */
  readonly counts: { answered: number; refused: number; malformed: number };
  close(): Promise<void>;
}

const RCODE_REFUSED = 5;
const RCODE_FORMERR = 1;

export async function startDnsResponder(options: DnsResponderOptions): Promise<DnsResponder> {
  const host = options.host ?? '127.0.0.1';
  const zone = canonicalName(options.zone);
  const address = options.address ?? '127.0.0.1';
  const ttl = options.ttl ?? 0;
  const socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  const counts = { answered: 0, refused: 0, malformed: 0 };
  const inZone = (name: string): boolean => name === zone || name.endsWith(`.${zone}`);

  socket.on('message', (buf, rinfo) => {
    let query: dnsPacket.DecodedPacket;
    try {
      query = dnsPacket.decode(buf);
    } catch {
      counts.malformed++;
      if (buf.length >= 2) {
        // Answer FORMERR with the query id so the client does not wait for nothing.
        const reply = Buffer.alloc(12);
        buf.copy(reply, 0, 0, 2);
        reply.writeUInt16BE(0x8000 | RCODE_FORMERR, 2);
        socket.send(reply, rinfo.port, rinfo.address);
      }
      return;
    }
    const questions = query.questions ?? [];
    const answers: dnsPacket.Answer[] = [];
    let refused = questions.length === 0;
    for (const q of questions) {
      const name = canonicalName(q.name);
      if (!inZone(name)) {
        refused = true;
        continue;
      }
      if (q.type === 'TXT') answers.push({ type: 'TXT', name: q.name, ttl, class: 'IN', data: keyedAnswer(options.key, name) });
      else if (q.type === 'A') answers.push({ type: 'A', name: q.name, ttl, class: 'IN', data: address });
    }
    if (refused) counts.refused++;
    else counts.answered++;
    const reply = dnsPacket.encode({
      type: 'response',
      id: query.id ?? 0,
      flags: (refused ? RCODE_REFUSED : 0) | dnsPacket.AUTHORITATIVE_ANSWER | ((query.flags ?? 0) & dnsPacket.RECURSION_DESIRED),
      questions,
      answers: refused ? [] : answers,
    });
    socket.send(reply, rinfo.port, rinfo.address);
  });

  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(options.port ?? 0, host, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  socket.on('error', () => {});
  return {
    host,
    port: socket.address().port,
    counts,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
