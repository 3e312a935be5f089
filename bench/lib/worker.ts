/**
 * A load-generator worker thread: one connection, one role. Publishers and subscribers run in
 * separate threads so that one event loop never measures itself. Counters that the others need
 * (sent, delivered, dropped, acked) live in a SharedArrayBuffer (see `Slot`), which gives an
 * end-to-end flow control that is the same for every broker: a publisher keeps at most `window`
 * messages between "sent" and "delivered to the slowest subscriber". Without it, an unthrottled
 * publisher measures how fast a broker can queue, not deliver: Redis then disconnects its
 * subscriber at 32 MB of backlog, Aedes grows without bound (issue 5), and fluctuat drops.
 *
 * Messages from the main thread: `go` (start time and duration), `finish` (report and close).
 */
import { setImmediate as yieldLoop } from 'node:timers/promises';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import * as hdr from 'hdr-histogram-js';
import { Conn, type Endpoint } from './conn.js';

export const MAX_SUBS = 64;
/** Int32 slots of the shared control block. */
export const Slot = {
  SEQ: 0, // bumped (and notified) whenever a subscriber counted something
  SENT: 1, // messages written by all publishers
  STOP: 2, // set by main: publishers stop now
  ACKED: 3, // durable publishes acknowledged
  DELIVERED: 8, // + subscriber index
  DROPPED: 8 + MAX_SUBS, // + subscriber index
  SIZE: 8 + 2 * MAX_SUBS,
} as const;

export type Mode = 'throughput' | 'latency' | 'durable' | 'replay';

export interface WorkerSpec {
  endpoint: Endpoint;
  role: 'pub' | 'sub';
  mode: Mode;
  topic: string;
  size: number;
  /** Subscriber index (0..nsubs-1); publishers: their own index. */
  index: number;
  nsubs: number;
  /** Messages in flight: end to end (throughput) or unacknowledged (durable). */
  window: number;
  /** Latency publisher: messages per second. */
  rate: number;
  /** Durable publisher: publish exactly this many then stop (0 = until the deadline). */
  count: number;
  /** Durable publisher on NATS: JetStream, acks come back on this reply subject. */
  jetstreamReply: string | null;
  /** Replay subscriber: how many messages the channel holds. */
  expect: number;
  sab: SharedArrayBuffer;
}

export type FromMain = { type: 'go'; t0: number; warmupMs: number; durationMs: number } | { type: 'finish' };

export interface WorkerResult {
  type: 'done';
  role: 'pub' | 'sub';
  index: number;
  sent: number;
  messages: number;
  drops: number;
  acks: number;
  errors: number;
  lastError: string;
  /** Latency subscriber: µs. */
  latency?: { p50: number; p99: number; p999: number; max: number; count: number };
  /** Replay subscriber: ms from SUB to the last message. */
  replayMs?: number;
  /** Publisher: writes that met a full socket buffer. */
  backpressure: number;
  /** The broker closed this connection before the run finished it. */
  disconnected: boolean;
}

type ToMain = { type: 'ready' } | { type: 'error'; message: string } | WorkerResult;

const hr = (): number => Number(process.hrtime.bigint());

// Atomics.waitAsync is in Node 20's V8 but not in TypeScript's ES2022 lib.
const waitAsync = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number, t: number): { async: boolean; value: Promise<string> | string } }).waitAsync;

async function main(spec: WorkerSpec): Promise<void> {
  const port = parentPort!;
  const ctl = new Int32Array(spec.sab);
  const send = (m: ToMain): void => port.postMessage(m);
  const conn = await Conn.open(spec.endpoint, spec.topic);
  let backpressure = 0;
  let sent = 0;
  let replayMs: number | undefined;
  let histogram: hdr.Histogram | null = null;
  let warmEnd = Infinity;
  let finished = false;
  let disconnected = false;
  conn.socket.on('close', () => {
    if (!finished) disconnected = true;
  });

  // Wake-ups for a publisher that waits for its own socket's data (acks).
  let dataWaiter: (() => void) | null = null;
  conn.socket.on('data', () => {
    if (dataWaiter) {
      const w = dataWaiter;
      dataWaiter = null;
      w();
    }
  });
  const nextData = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const t = setTimeout(() => {
        dataWaiter = null;
        resolve();
      }, ms);
      dataWaiter = () => {
        clearTimeout(t);
        resolve();
      };
    });

  const r = conn.reader;
  if (spec.role === 'sub') {
    const i = spec.index;
    const d = Slot.DELIVERED + i;
    const dr = Slot.DROPPED + i;
    if (spec.mode === 'latency') {
      histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
      let recvAt = 0;
      r.onPayload = (buf, start, len) => {
        if (len < 8) return;
        const sentAt = buf.readDoubleLE(start);
        if (sentAt >= warmEnd) histogram!.recordValue(Math.max(1, Math.round((recvAt - sentAt) / 1000)));
      };
      conn.socket.prependListener('data', () => {
        recvAt = hr();
      });
    }
    conn.socket.on('data', () => {
      Atomics.store(ctl, d, r.messages);
      Atomics.store(ctl, dr, r.drops);
      Atomics.add(ctl, Slot.SEQ, 1);
      Atomics.notify(ctl, Slot.SEQ);
    });
    if (spec.mode !== 'replay') await conn.subscribe('new');
  } else if (spec.jetstreamReply !== null) {
    const ok = conn.wait('subscribed');
    conn.socket.write(`SUB ${spec.jetstreamReply} 9\r\nPING\r\n`);
    await ok;
    (r as import('./wire.js').NatsReader).jetstreamAcks = true;
  }

  const minDelivered = (): number => {
    let m = Infinity;
    for (let k = 0; k < spec.nsubs; k++) {
      const v = Atomics.load(ctl, Slot.DELIVERED + k) + Atomics.load(ctl, Slot.DROPPED + k);
      if (v < m) m = v;
    }
    return m;
  };

  const drain = (): Promise<void> => new Promise((resolve) => conn.socket.once('drain', () => resolve()));

  async function throughputPub(deadline: number): Promise<void> {
    const payload = Buffer.alloc(spec.size, 0x78);
    const { frame } = conn.publishFrame(payload);
    const B = Math.max(1, Math.min(Math.floor(spec.window / 4), Math.floor(65536 / frame.length)));
    const batch = Buffer.concat(Array.from({ length: B }, () => frame));
    let lastYield = hr();
    for (;;) {
      const now = hr();
      if (now >= deadline || Atomics.load(ctl, Slot.STOP)) return;
      const seq = Atomics.load(ctl, Slot.SEQ);
      // Reserve, then check: publishers in other threads reserve too, so a check before adding
      // let eight of them overshoot the window together (past a broker's outbound bound).
      if (Atomics.add(ctl, Slot.SENT, B) + B - minDelivered() > spec.window) {
        Atomics.sub(ctl, Slot.SENT, B);
        const w = waitAsync(ctl, Slot.SEQ, seq, 5);
        if (w.async) await w.value;
        continue;
      }
      sent += B;
      if (!conn.write(batch)) {
        backpressure++;
        await drain();
        lastYield = hr();
      } else if (now - lastYield > 1e6) {
        await yieldLoop(); // let this thread read what its socket received (Redis replies)
        lastYield = hr();
      }
    }
  }

  async function latencyPub(t0: number, deadline: number): Promise<void> {
    const payload = Buffer.alloc(Math.max(8, spec.size), 0x79);
    const { frame, payloadAt } = conn.publishFrame(payload);
    const len = frame.length;
    const intervalNs = 1e9 / spec.rate;
    const total = Math.floor(((deadline - t0) / 1e9) * spec.rate);
    // A private futex for sub-millisecond sleeps: this thread blocks, it does not spin.
    const sleeper = new Int32Array(new SharedArrayBuffer(4));
    let lastYield = hr();
    while (sent < total && !Atomics.load(ctl, Slot.STOP)) {
      const now = hr();
      const due = Math.min(total, Math.floor((now - t0) / intervalNs) + 1);
      if (due > sent) {
        const k = due - sent;
        const buf = Buffer.allocUnsafe(k * len);
        for (let j = 0; j < k; j++) {
          frame.copy(buf, j * len);
          buf.writeDoubleLE(now, j * len + payloadAt);
        }
        if (!conn.write(buf)) backpressure++;
        sent = due;
        Atomics.add(ctl, Slot.SENT, k);
        // Let the loop turn before sleeping: a TLS socket completes a write a turn later and
        // holds the next one until then, so a thread that blocks in Atomics.wait would delay
        // every message by up to the 5 ms between yields (that was the "TLS latency").
        await yieldLoop();
        lastYield = hr();
      } else {
        const waitMs = (t0 + sent * intervalNs - now) / 1e6;
        if (waitMs > 0.02) Atomics.wait(sleeper, 0, 0, Math.min(waitMs, 2));
      }
      if (now - lastYield > 5e6) {
        await yieldLoop();
        lastYield = hr();
      }
    }
  }

  async function durablePub(deadline: number): Promise<void> {
    const payload = Buffer.alloc(spec.size, 0x7a);
    const { frame } = conn.publishFrame(payload, { ack: 'a', reply: spec.jetstreamReply });
    const B = Math.max(1, Math.min(Math.floor(spec.window / 8), Math.floor(65536 / frame.length)));
    const batch = Buffer.concat(Array.from({ length: B }, () => frame));
    const limit = spec.count > 0 ? spec.count : Infinity;
    for (;;) {
      Atomics.store(ctl, Slot.ACKED, r.acks);
      if (r.acks >= limit) return;
      if (hr() >= deadline || Atomics.load(ctl, Slot.STOP) || r.errors > 0) break;
      const k = Math.min(B, limit - sent);
      if (k <= 0 || sent + k - r.acks > spec.window) {
        await nextData(50);
        continue;
      }
      sent += k;
      if (!conn.write(k === B ? batch : batch.subarray(0, k * frame.length))) {
        backpressure++;
        await drain();
      }
    }
    // Wait (bounded) for the acks of what is still in flight, so unacknowledged means lost.
    const until = hr() + 10e9;
    while (r.acks < sent && r.errors === 0 && hr() < until) await nextData(100);
    Atomics.store(ctl, Slot.ACKED, r.acks);
  }

  async function replaySub(): Promise<void> {
    const t = hr();
    await conn.subscribe('beginning', 60_000);
    while (r.messages < spec.expect && r.errors === 0 && !Atomics.load(ctl, Slot.STOP)) await nextData(1000);
    replayMs = (hr() - t) / 1e6;
  }

  const report = (): void => {
    const latency = histogram
      ? {
          p50: histogram.getValueAtPercentile(50),
          p99: histogram.getValueAtPercentile(99),
          p999: histogram.getValueAtPercentile(99.9),
          max: histogram.maxValue,
          count: histogram.totalCount,
        }
      : undefined;
    send({
      type: 'done',
      role: spec.role,
      index: spec.index,
      sent,
      messages: r.messages,
      drops: r.drops,
      acks: r.acks,
      errors: r.errors,
      lastError: r.lastError,
      backpressure,
      disconnected,
      ...(latency ? { latency } : {}),
      ...(replayMs !== undefined ? { replayMs } : {}),
    });
  };

  port.on('message', (m: FromMain) => {
    if (m.type === 'go') {
      warmEnd = m.t0 + m.warmupMs * 1e6;
      const deadline = m.t0 + (m.warmupMs + m.durationMs) * 1e6;
      let job: Promise<void> | null = null;
      if (spec.role === 'pub') {
        const wait = Math.max(0, (m.t0 - hr()) / 1e6);
        job = new Promise<void>((res) => setTimeout(res, wait)).then(() =>
          spec.mode === 'latency' ? latencyPub(m.t0, deadline) : spec.mode === 'durable' ? durablePub(deadline) : throughputPub(deadline),
        );
      } else if (spec.mode === 'replay') job = replaySub();
      job?.then(
        () => {
          if (spec.role === 'pub' || spec.mode === 'replay') report();
        },
        (err: unknown) => send({ type: 'error', message: String((err as Error).stack ?? err) }),
      );
    } else if (m.type === 'finish' && !finished) {
      finished = true;
      if (spec.role === 'sub' && spec.mode !== 'replay') report();
      setTimeout(() => {
        conn.close();
        port.close();
      }, 20);
    }
  });
  send({ type: 'ready' });
}

// The main thread imports this module for its types and slot numbers only.
if (!isMainThread) {
  main(workerData as WorkerSpec).catch((err: unknown) => {
    parentPort!.postMessage({ type: 'error', message: String((err as Error).stack ?? err) });
  });
}
