/**
 * Minimal, hand-written protocol writers and readers for the load generator: fluctuat machine
 * mode, NATS core (and JetStream publish acks), Redis RESP pub/sub (and streams: XADD, XREAD) and
 * MQTT 3.1.1 QoS 0.
 *
 * Why not the libraries (`nats`, `ioredis`, `mqtt`)? They allocate an object, a string or a
 * promise per message and parse every field; measured on this machine they top out well below
 * what NATS and Redis deliver (the `mqtt` client's mqtt-packet parser alone is close to
 * Mosquitto's rate), so the generator would measure itself. Here a publisher writes
 * pre-encoded batches and a subscriber reads each frame's control line only to find its size,
 * then jumps over the payload (or looks at its first 8 bytes, the send time, in latency runs).
 * The same design is used for every broker, so no broker gets a faster generator than another.
 * The `nats` client is still used where speed does not matter (creating JetStream streams).
 *
 * Pure: no sockets, no timers. A reader is fed chunks and counts what it sees.
 */

export type Proto = 'fluctuat' | 'nats' | 'redis' | 'mqtt';

/** What a reader saw besides deliveries: handshake answers, errors. */
export type WireEvent = 'ready' | 'subscribed' | 'live' | 'ping' | 'error' | 'info' | 'batch';

export abstract class Reader {
  /** Deliveries (MSG, PUBLISH, Redis "message", Redis stream entries). */
  messages = 0;
  /** Messages the broker says it dropped (fluctuat DROP). */
  drops = 0;
  /** Publish acknowledgements (fluctuat ACK, Redis integer replies and XADD's entry ids, JetStream acks). */
  acks = 0;
  errors = 0;
  lastError = '';
  /** Set to read each delivery's payload; frames are then only complete once the payload is in. */
  onPayload: ((buf: Buffer, start: number, len: number) => void) | null = null;
  onEvent: ((event: WireEvent, detail: string) => void) | null = null;
  private stash: Buffer | null = null;
  private skip = 0;

  push(chunk: Buffer): void {
    let buf = chunk;
    let pos = 0;
    if (this.skip > 0) {
      if (chunk.length <= this.skip) {
        this.skip -= chunk.length;
        return;
      }
      pos = this.skip;
      this.skip = 0;
    }
    if (this.stash !== null) {
      buf = Buffer.concat([this.stash, pos === 0 ? chunk : chunk.subarray(pos)]);
      pos = 0;
      this.stash = null;
    }
    const end = buf.length;
    while (pos < end) {
      const next = this.frame(buf, pos, end);
      if (next < 0) {
        this.stash = buf.subarray(pos);
        return;
      }
      if (next > end) {
        this.skip = next - end;
        return;
      }
      pos = next;
    }
  }

  /**
   * Read one frame at `pos`. Returns the offset after it, which may lie past `end` when the
   * rest is a payload nobody wants to see (it is then skipped), or -1 if more bytes are needed.
   */
  protected abstract frame(buf: Buffer, pos: number, end: number): number;

  protected event(e: WireEvent, detail = ''): void {
    if (e === 'error') {
      this.errors++;
      this.lastError = detail;
    }
    this.onEvent?.(e, detail);
  }
}

const NL = 0x0a;
const CR = 0x0d;
const SP = 0x20;

/** Decimal digits ending just before `stop`, read backwards up to a space. */
function sizeBefore(buf: Buffer, stop: number): number {
  let i = stop - 1;
  let size = 0;
  let mul = 1;
  while (i >= 0 && buf[i] !== SP) {
    size += (buf[i]! - 48) * mul;
    mul *= 10;
    i--;
  }
  return size;
}

// ---------------------------------------------------------------------------------------------
// fluctuat machine mode (docs/protocol.md)

export const fluctuat = {
  hello: (): Buffer => Buffer.from('mode machine\n'),
  subscribe: (sid: string, channel: string, from = 'new'): Buffer => Buffer.from(`SUB ${sid} ${channel} from=${from}\n`),
  /** One PUB frame; `ack` is an ack id or null for none. */
  publish(channel: string, payload: Buffer, ack: string | null = null): { frame: Buffer; payloadAt: number } {
    const head = Buffer.from(`PUB ${channel} ${ack ?? '-'} - ${payload.length}\n`);
    return { frame: Buffer.concat([head, payload, Buffer.from('\n')]), payloadAt: head.length };
  },
};

export class FluctuatReader extends Reader {
  protected frame(buf: Buffer, pos: number, end: number): number {
    const nl = buf.indexOf(NL, pos);
    if (nl < 0) return -1;
    const c0 = buf[pos];
    if (c0 === 0x4d /* M */ && buf[pos + 1] === 0x53 /* S */) {
      const size = sizeBefore(buf, nl);
      const stop = nl + 1 + size + 1;
      if (this.onPayload !== null) {
        if (stop > end) return -1;
        this.onPayload(buf, nl + 1, size);
      }
      this.messages++;
      return stop;
    }
    if (c0 === 0x41 /* A */) {
      this.acks++;
      return nl + 1;
    }
    const line = buf.toString('latin1', pos, nl);
    if (line.startsWith('DROP ')) this.drops += Number(line.slice(line.lastIndexOf(' ') + 1));
    else if (line.startsWith('LIVE ')) this.event('live', line);
    else if (line.startsWith('OK ')) this.event('subscribed', line);
    else if (line.startsWith('INFO ')) this.event('ready', line);
    else if (line.startsWith('ERR ')) this.event('error', line);
    else if (line.startsWith('PING ')) this.event('ping', line);
    else if (line.startsWith('GAP ')) this.event('error', line);
    return nl + 1;
  }
}

// ---------------------------------------------------------------------------------------------
// NATS core protocol (https://docs.nats.io/reference/reference-protocols/nats-protocol)

export const nats = {
  connect: (): Buffer => Buffer.from('CONNECT {"verbose":false,"pedantic":false,"headers":false,"lang":"fluctuat-bench","version":"1"}\r\nPING\r\n'),
  subscribe: (subject: string, sid: string): Buffer => Buffer.from(`SUB ${subject} ${sid}\r\nPING\r\n`),
  publish(subject: string, payload: Buffer, reply: string | null = null): { frame: Buffer; payloadAt: number } {
    const head = Buffer.from(`PUB ${subject} ${reply === null ? '' : reply + ' '}${payload.length}\r\n`);
    return { frame: Buffer.concat([head, payload, Buffer.from('\r\n')]), payloadAt: head.length };
  },
  pong: Buffer.from('PONG\r\n'),
};

export class NatsReader extends Reader {
  /** JetStream: deliveries are publish acks (JSON); count them as acks, and errors apart. */
  jetstreamAcks = false;
  protected frame(buf: Buffer, pos: number, end: number): number {
    const nl = buf.indexOf(NL, pos);
    if (nl < 0) return -1;
    const c0 = buf[pos];
    if (c0 === 0x4d /* M */ && buf[pos + 1] === 0x53 /* S */) {
      const size = sizeBefore(buf, nl - 1);
      const start = nl + 1;
      const stop = start + size + 2;
      if (this.jetstreamAcks) {
        if (stop > end) return -1;
        // {"stream":"X","seq":N} on success, {"error":{...}} on failure.
        if (buf[start + 2] === 0x65 /* e */) this.event('error', buf.toString('utf8', start, start + size));
        else this.acks++;
        return stop;
      }
      if (this.onPayload !== null) {
        if (stop > end) return -1;
        this.onPayload(buf, start, size);
      }
      this.messages++;
      return stop;
    }
    const line = buf.toString('latin1', pos, nl > pos && buf[nl - 1] === CR ? nl - 1 : nl);
    if (line === 'PING') this.event('ping');
    else if (line === 'PONG') this.event('subscribed');
    else if (line.startsWith('INFO')) this.event('info', line);
    else if (line.startsWith('-ERR')) this.event('error', line);
    return nl + 1;
  }
}

// ---------------------------------------------------------------------------------------------
// Redis RESP2 pub/sub, and streams (XADD, XREAD) for a Redis with an append-only file (the durable peer)

function resp(...args: (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = typeof a === 'string' ? Buffer.from(a) : a;
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

export const redis = {
  ping: (): Buffer => resp('PING'),
  subscribe: (channel: string): Buffer => resp('SUBSCRIBE', channel),
  publish(channel: string, payload: Buffer): { frame: Buffer; payloadAt: number } {
    const frame = resp('PUBLISH', channel, payload);
    return { frame, payloadAt: frame.length - 2 - payload.length };
  },
  /**
   * An append to stream `key`, trimmed (approximately, as Redis users do) to about what the
   * benchmark's fluctuat keeps per channel (`--retain-bytes 64m`); the reply, the new entry's
   * id, is the acknowledgement.
   */
  xadd(key: string, payload: Buffer): { frame: Buffer; payloadAt: number } {
    const keep = Math.max(1000, Math.floor(STREAM_KEEP_BYTES / Math.max(16, payload.length)));
    const frame = resp('XADD', key, 'MAXLEN', '~', String(keep), '*', 'p', payload);
    return { frame, payloadAt: frame.length - 2 - payload.length };
  },
  /** The next entries of stream `key` after entry `after`, waiting for them if there are none. */
  xread: (key: string, after: string): Buffer => resp('XREAD', 'COUNT', String(STREAM_READ_COUNT), 'BLOCK', '0', 'STREAMS', key, after),
};

/** What a benchmark stream keeps, as fluctuat's throughput broker keeps 64 MiB per channel. */
const STREAM_KEEP_BYTES = 64 * 1024 * 1024;
/** Entries per XREAD: enough that a read's round trip is spread over many messages. */
const STREAM_READ_COUNT = 512;

export class RedisReader extends Reader {
  /** `*3\r\n$7\r\nmessage\r\n$<n>\r\n<channel>\r\n$` : the fixed start of a delivery. */
  private readonly prefix: Buffer;
  /** Stream mode (XREAD replies): entries of the current reply still to come. */
  private entriesLeft = 0;
  /** Stream mode: the id of the last entry read, where the next XREAD starts. */
  lastId = '0-0';
  /** @param stream read XREAD replies of stream `channel` instead of pub/sub deliveries */
  constructor(
    channel: string,
    private readonly stream = false,
  ) {
    super();
    const ch = Buffer.from(channel);
    this.prefix = Buffer.concat([Buffer.from(`*3\r\n$7\r\nmessage\r\n$${ch.length}\r\n`), ch, Buffer.from('\r\n$')]);
  }
  /** Whether `buf` holds the delivery prefix at `pos` (the caller checked the length). */
  private startsDelivery(buf: Buffer, pos: number): boolean {
    // A JS loop, not buf.compare: the native call cost ~50 ns a delivery, 70% of this reader's
    // time, and made the generator a bottleneck for Redis on one core that it was not for the others.
    const prefix = this.prefix;
    for (let k = prefix.length - 1; k >= 0; k--) if (buf[pos + k] !== prefix[k]) return false;
    return true;
  }
  protected frame(buf: Buffer, pos: number, end: number): number {
    if (this.stream) return this.entriesLeft > 0 ? this.entry(buf, pos, end) : this.streamReply(buf, pos, end);
    const plen = this.prefix.length;
    if (buf[pos] === 0x2a /* * */ && end - pos > plen && this.startsDelivery(buf, pos)) {
      let i = pos + plen;
      let size = 0;
      while (i < end && buf[i] !== CR) size = size * 10 + buf[i++]! - 48;
      if (i + 1 >= end) return -1;
      return this.delivered(buf, i + 2, size, end);
    }
    return this.value(buf, pos, end, true);
  }

  /**
   * A delivery whose `size` payload bytes start at `start`, then CRLF: counted, its payload
   * shown to onPayload (which needs it whole). Returns the offset after it, or -1.
   */
  private delivered(buf: Buffer, start: number, size: number, end: number): number {
    const stop = start + size + 2;
    if (this.onPayload !== null) {
      if (stop > end) return -1;
      this.onPayload(buf, start, size);
    }
    this.messages++;
    return stop;
  }
  /**
   * The head of an XREAD reply, `*1 *2 $<n> <key> *<entries>`, read as one frame so that each
   * entry is a frame of its own (a reply of 512 16 KiB entries is not gathered into one buffer).
   * A null reply (no entries) ends the batch at once.
   */
  private streamReply(buf: Buffer, pos: number, end: number): number {
    if (buf[pos] !== 0x2a /* * */) return this.value(buf, pos, end, true); // +PONG, -ERR
    const head = buf.indexOf(NL, pos);
    if (head < 0) return -1;
    if (buf[pos + 1] === 0x2d /* *-1 */) {
      this.event('batch', this.lastId);
      return head + 1;
    }
    const pair = buf.indexOf(NL, head + 1); // *2
    if (pair < 0) return -1;
    const keyLen = buf.indexOf(NL, pair + 1); // $<n>, then the key's bytes, which may hold anything
    if (keyLen < 0) return -1;
    const afterKey = keyLen + 1 + Number(buf.toString('latin1', pair + 2, keyLen - 1)) + 2;
    if (afterKey >= end) return -1;
    const count = buf.indexOf(NL, afterKey); // *<entries>
    if (count < 0) return -1;
    this.entriesLeft = Number(buf.toString('latin1', afterKey + 1, count - 1));
    if (this.entriesLeft === 0) this.event('batch', this.lastId);
    return count + 1;
  }

  /** One entry, `*2 $<n> <id> *2 $1 p $<size> <payload>`: a message. */
  private entry(buf: Buffer, pos: number, end: number): number {
    // `end` is the buffer's length (Reader.push), so indexOf finds nothing past it.
    let nl = buf.indexOf(NL, pos); // *2
    if (nl < 0) return -1;
    const idHead = nl + 1;
    nl = buf.indexOf(NL, idHead); // $<n>
    if (nl < 0) return -1;
    const idAt = nl + 1;
    const idLen = Number(buf.toString('latin1', idHead + 1, nl - 1));
    let p = idAt + idLen + 2;
    for (let k = 0; k < 3; k++) {
      // *2, $1, p
      nl = buf.indexOf(NL, p);
      if (nl < 0) return -1;
      p = nl + 1;
    }
    nl = buf.indexOf(NL, p); // $<size>
    if (nl < 0) return -1;
    let size = 0;
    for (let i = p + 1; buf[i] !== CR; i++) size = size * 10 + buf[i]! - 48;
    const stop = this.delivered(buf, nl + 1, size, end);
    if (stop < 0) return -1;
    if (--this.entriesLeft === 0) {
      // The reply's last entry: the next read starts after it.
      this.lastId = buf.toString('latin1', idAt, idAt + idLen);
      this.event('batch', this.lastId);
    }
    return stop;
  }

  /** Any other RESP value (replies, subscribe confirmations): parsed in full. */
  private value(buf: Buffer, pos: number, end: number, top: boolean): number {
    const nl = buf.indexOf(NL, pos);
    if (nl < 0) return -1;
    const t = buf[pos];
    if (t === 0x3a /* : */) {
      if (top) this.acks++;
      return nl + 1;
    }
    if (t === 0x2b /* + */) {
      if (top) this.event('ready', buf.toString('latin1', pos + 1, nl - 1));
      return nl + 1;
    }
    if (t === 0x2d /* - */) {
      this.event('error', buf.toString('latin1', pos + 1, nl - 1));
      return nl + 1;
    }
    if (t === 0x24 /* $ */) {
      const n = Number(buf.toString('latin1', pos + 1, nl - 1));
      const stop = n < 0 ? nl + 1 : nl + 1 + n + 2;
      if (stop > end) return -1;
      if (top && n >= 0) this.acks++; // XADD's entry id
      return stop;
    }
    if (t === 0x2a /* * */) {
      const n = Number(buf.toString('latin1', pos + 1, nl - 1));
      let p = nl + 1;
      const first = p;
      for (let k = 0; k < n; k++) {
        p = this.value(buf, p, end, false);
        if (p < 0) return -1;
      }
      if (top && n >= 1) {
        // "subscribe" confirmation, or a "message" for another channel.
        const kind = buf.toString('latin1', buf.indexOf(NL, first) + 1, buf.indexOf(NL, first) + 10);
        if (kind.startsWith('subscribe')) this.event('subscribed');
        else if (kind.startsWith('message')) this.messages++;
      }
      return p;
    }
    this.event('error', `unexpected RESP byte ${t}`);
    return nl + 1;
  }
}

// ---------------------------------------------------------------------------------------------
// MQTT 3.1.1, QoS 0 (OASIS mqtt-v3.1.1)

function remainingLength(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}

function mqttString(s: string): Buffer {
  const b = Buffer.from(s);
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length);
  return Buffer.concat([len, b]);
}

export const mqtt = {
  /** CONNECT, clean session, keep-alive 0 (none: runs are short and we never idle). */
  connect(clientId: string): Buffer {
    const body = Buffer.concat([mqttString('MQTT'), Buffer.from([4, 0x02, 0, 0]), mqttString(clientId)]);
    return Buffer.concat([Buffer.from([0x10]), remainingLength(body.length), body]);
  },
  subscribe(topic: string): Buffer {
    const body = Buffer.concat([Buffer.from([0, 1]), mqttString(topic), Buffer.from([0])]);
    return Buffer.concat([Buffer.from([0x82]), remainingLength(body.length), body]);
  },
  publish(topic: string, payload: Buffer): { frame: Buffer; payloadAt: number } {
    const body = Buffer.concat([mqttString(topic), payload]);
    const head = Buffer.concat([Buffer.from([0x30]), remainingLength(body.length)]);
    return { frame: Buffer.concat([head, body]), payloadAt: head.length + body.length - payload.length };
  },
};

export class MqttReader extends Reader {
  protected frame(buf: Buffer, pos: number, end: number): number {
    const b0 = buf[pos]!;
    let i = pos + 1;
    let len = 0;
    let mul = 1;
    let b: number;
    do {
      if (i >= end) return -1;
      b = buf[i++]!;
      len += (b & 0x7f) * mul;
      mul *= 128;
    } while (b & 0x80);
    const stop = i + len;
    const type = b0 >> 4;
    if (type === 3) {
      if (this.onPayload !== null) {
        if (stop > end) return -1;
        const topicLen = (buf[i]! << 8) | buf[i + 1]!;
        const start = i + 2 + topicLen + ((b0 >> 1) & 3 ? 2 : 0);
        this.onPayload(buf, start, stop - start);
      }
      this.messages++;
      return stop;
    }
    if (stop > end) return -1;
    if (type === 2) {
      if (buf[i + 1] === 0) this.event('ready');
      else this.event('error', `CONNACK refused, code ${buf[i + 1]}`);
    } else if (type === 9) {
      if (buf[i + 2] === 0x80) this.event('error', 'SUBACK failure');
      else this.event('subscribed');
    }
    return stop;
  }
}
