import net from 'node:net';
import { Framer } from '../../src/protocol/framer.js';

/** One frame received from the broker: a line, or a MSG line with its payload. */
export interface Frame {
  line: string;
  payload?: Buffer;
}

/**
 * A bare TCP connection that speaks the protocol by hand, for tests that must see the exact
 * bytes (no client library in between).
 */
export class RawClient {
  readonly frames: Frame[] = [];
  private waiters: { test: (f: Frame) => boolean; resolve: (f: Frame) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }[] = [];
  private framer: Framer;
  private pendingMsg: string | null = null;
  closed = false;

  private constructor(readonly socket: net.Socket) {
    this.framer = new Framer(
      {
        onLine: (buf, start, end) => {
          const text = buf.toString('utf8', start, end);
          const m = /^MSG \S+ \S+ \S+ \S+ \S+ \S+ (\d+)$/.exec(text);
          if (m) {
            this.pendingMsg = text;
            this.framer.expectPayload(Number(m[1]));
            return;
          }
          this.push({ line: text });
        },
        onPayload: (buf, start, end) => {
          this.push({ line: this.pendingMsg!, payload: Buffer.from(buf.subarray(start, end)) });
          this.pendingMsg = null;
        },
        onError: (code, message) => this.push({ line: `FRAMING ${code} ${message}` }),
      },
      { maxLine: 1 << 20, maxPayload: 1 << 30 },
    );
    socket.on('data', (d: Buffer) => this.framer.push(d));
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiters) w.reject(new Error(`connection closed while waiting; got: ${JSON.stringify(this.frames.slice(-5).map((f) => f.line))}`));
      this.waiters = [];
    });
    socket.on('error', () => {});
  }

  /** Wrap an already connected socket. */
  static wrap(socket: net.Socket): RawClient {
    return new RawClient(socket);
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, host, () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  /** Connect and switch to machine mode (waits for INFO). */
  static async machine(port: number): Promise<RawClient> {
    const c = await RawClient.connect(port);
    c.send('mode machine');
    await c.waitFor((f) => f.line.startsWith('INFO '));
    return c;
  }

  send(line: string | Buffer): void {
    this.socket.write(typeof line === 'string' ? line + '\n' : line);
  }

  pub(channel: string, payload: string | Buffer, ackId = '-', reply = '-'): void {
    const p = typeof payload === 'string' ? Buffer.from(payload) : payload;
    this.socket.write(Buffer.concat([Buffer.from(`PUB ${channel} ${ackId} ${reply} ${p.length}\n`), p, Buffer.from('\n')]));
  }

  private push(f: Frame): void {
    this.frames.push(f);
    this.waiters = this.waiters.filter((w) => {
      if (!w.test(f)) return true;
      clearTimeout(w.timer);
      w.resolve(f);
      return false;
    });
  }

  /** The first frame, already received or still to come, that passes the test. */
  waitFor(test: (f: Frame) => boolean, timeoutMs = 10_000, from = 0): Promise<Frame> {
    const seen = this.frames.slice(from).find(test);
    if (seen) return Promise.resolve(seen);
    if (this.closed) return Promise.reject(new Error('connection closed'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.timer !== timer);
        reject(new Error(`timed out; last frames: ${JSON.stringify(this.frames.slice(-5).map((f) => f.line))}`));
      }, timeoutMs);
      this.waiters.push({ test, resolve, reject, timer });
    });
  }

  /** Wait for the next frame that passes the test, ignoring what came before. */
  next(test: (f: Frame) => boolean, timeoutMs?: number): Promise<Frame> {
    return this.waitFor(test, timeoutMs, this.frames.length);
  }

  lines(): string[] {
    return this.frames.map((f) => f.line);
  }

  /** Resolves once the broker has closed the connection. */
  closedByPeer(): Promise<void> {
    return new Promise((resolve) => (this.closed ? resolve() : this.socket.once('close', () => resolve())));
  }

  /** The broker's counters (machine mode; `STATS` needs an admin or an open broker). */
  async stats(): Promise<Record<string, number>> {
    this.send('STATS');
    const f = await this.next((x) => x.line.startsWith('STATS '));
    return JSON.parse(f.line.slice(6)) as Record<string, number>;
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.destroy();
    });
  }
}

/** A machine-mode subscriber that stops reading once subscribed (`SUB <sid> <rest>`): the kernel's buffers fill, then the broker's outbound bound. */
export async function stalledSubscriber(port: number, sid: string, rest: string): Promise<RawClient> {
  const c = await RawClient.machine(port);
  c.send(`SUB ${sid} ${rest}`);
  await c.waitFor((f) => f.line === `OK ${sid}`);
  c.socket.pause();
  return c;
}

/** Poll until a condition holds; fail with a message after the timeout (`what` may be computed then, to say what was seen). */
export async function until(condition: () => boolean, what: string | (() => string), timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
