/**
 * One load-generator connection to one broker, in its own protocol: connect, handshake,
 * subscribe, and the pre-encoded publish frames. Used inside worker threads (bench/lib/worker.ts)
 * and by the scale runner.
 */
import net from 'node:net';
import tls from 'node:tls';
import { FluctuatReader, MqttReader, NatsReader, RedisReader, fluctuat, mqtt, nats, redis, type Proto, type Reader, type WireEvent } from './wire.js';

export interface Endpoint {
  proto: Proto;
  host: string;
  port: number;
  /** TLS: connect with TLS, trusting this CA (PEM), or any certificate when `insecure`. */
  tls?: { ca?: string; insecure?: boolean; servername?: string } | undefined;
  /** Redis: a stream of the topic's name, appended to (XADD) and read (XREAD), instead of pub/sub. */
  stream?: boolean;
}

let clientSeq = 0;

export class Conn {
  readonly reader: Reader;
  private waiters: { event: WireEvent; resolve: (detail: string) => void; reject: (e: Error) => void }[] = [];
  private constructor(
    readonly ep: Endpoint,
    readonly socket: net.Socket,
    readonly topic: string,
  ) {
    this.reader = makeReader(ep, topic);
    this.reader.onEvent = (e, detail) => {
      if (e === 'ping' && ep.proto === 'nats') socket.write(nats.pong);
      // A stream reader asks for the next entries once a reply's are in.
      if (e === 'batch') socket.write(redis.xread(topic, detail));
      if (e === 'error') {
        for (const w of this.waiters.splice(0)) w.reject(new Error(`${ep.proto}: ${detail}`));
        return;
      }
      const i = this.waiters.findIndex((w) => w.event === e);
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(detail);
    };
    socket.on('data', (d: Buffer) => this.reader.push(d));
    socket.on('error', (err) => {
      for (const w of this.waiters.splice(0)) w.reject(err);
    });
    socket.on('close', () => {
      for (const w of this.waiters.splice(0)) w.reject(new Error(`${ep.proto}: connection closed`));
    });
  }

  /** Connect and complete the protocol's handshake. `topic` is what this connection uses. */
  static async open(ep: Endpoint, topic: string, timeoutMs = 10_000): Promise<Conn> {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      const s = ep.tls
        ? tls.connect({ socket: noDelay(net.connect(ep.port, ep.host)), ca: ep.tls.ca, rejectUnauthorized: !ep.tls.insecure, servername: ep.tls.servername ?? 'localhost' }, () => resolve(s))
        : net.connect(ep.port, ep.host, () => resolve(s));
      s.once('error', onError);
      s.setTimeout(timeoutMs, () => s.destroy(new Error(`connect to ${ep.host}:${ep.port} timed out`)));
    });
    socket.setTimeout(0);
    socket.setNoDelay(true);
    const c = new Conn(ep, socket, topic);
    switch (ep.proto) {
      case 'fluctuat': {
        const ready = c.wait('ready', timeoutMs);
        socket.write(fluctuat.hello());
        await ready;
        break;
      }
      case 'nats': {
        const pong = c.wait('subscribed', timeoutMs);
        socket.write(nats.connect());
        await pong;
        break;
      }
      case 'redis': {
        const pong = c.wait('ready', timeoutMs);
        socket.write(redis.ping());
        await pong;
        break;
      }
      case 'mqtt': {
        const ack = c.wait('ready', timeoutMs);
        socket.write(mqtt.connect(`fb-${process.pid}-${++clientSeq}-${Math.random().toString(36).slice(2, 8)}`));
        await ack;
        break;
      }
    }
    return c;
  }

  wait(event: WireEvent, timeoutMs = 10_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error(`${this.ep.proto}: no ${event} within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = (d: string): void => {
        clearTimeout(t);
        resolve(d);
      };
      this.waiters.push({ event, resolve: done, reject: (e) => (clearTimeout(t), reject(e)) });
    });
  }

  /** Subscribe to this connection's topic; resolves once the broker confirmed it. */
  async subscribe(from = 'new', timeoutMs = 10_000): Promise<void> {
    if (this.ep.stream) {
      // A stream is read, not subscribed to: every run uses a new key, so reading it from its
      // beginning misses nothing and there is no confirmation to wait for.
      this.socket.write(redis.xread(this.topic, '0-0'));
      return;
    }
    const ok = this.wait('subscribed', timeoutMs);
    switch (this.ep.proto) {
      case 'fluctuat':
        this.socket.write(fluctuat.subscribe('s', this.topic, from));
        break;
      case 'nats':
        this.socket.write(nats.subscribe(this.topic, '1'));
        break;
      case 'redis':
        this.socket.write(redis.subscribe(this.topic));
        break;
      case 'mqtt':
        this.socket.write(mqtt.subscribe(this.topic));
        break;
    }
    await ok;
  }

  /** A publish frame for this connection's topic, and where its payload starts in it. */
  publishFrame(payload: Buffer, opts: { ack?: string | null; reply?: string | null } = {}): { frame: Buffer; payloadAt: number } {
    switch (this.ep.proto) {
      case 'fluctuat':
        return fluctuat.publish(this.topic, payload, opts.ack ?? null);
      case 'nats':
        return nats.publish(this.topic, payload, opts.reply ?? null);
      case 'redis':
        return this.ep.stream ? redis.xadd(this.topic, payload) : redis.publish(this.topic, payload);
      case 'mqtt':
        return mqtt.publish(this.topic, payload);
    }
  }

  write(b: Buffer): boolean {
    return this.socket.write(b);
  }

  close(): void {
    this.socket.destroy();
  }
}

function makeReader(ep: Endpoint, topic: string): Reader {
  switch (ep.proto) {
    case 'fluctuat':
      return new FluctuatReader();
    case 'nats':
      return new NatsReader();
    case 'redis':
      return new RedisReader(topic, ep.stream === true);
    case 'mqtt':
      return new MqttReader();
  }
}

/** The topic name for a benchmark id in each protocol's syntax. */
export function topicFor(proto: Proto, id: string): string {
  return proto === 'mqtt' ? `bench/${id}` : `bench.${id}`;
}

/** Nagle off on the TCP socket itself, before TLS wraps it. */
function noDelay(s: net.Socket): net.Socket {
  s.setNoDelay(true);
  return s;
}
