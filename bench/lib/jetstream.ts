/**
 * JetStream streams for the durable-publish comparison, made and removed with the `nats`
 * client (speed does not matter here; the measured publishes use the hand-written writer).
 * A stream is named after this process so that two benchmarks never share one, is capped in
 * size, and is deleted right after its measurement.
 */
import { DiscardPolicy, RetentionPolicy, StorageType, connect } from 'nats';

export interface JsStream {
  name: string;
  subject: string;
  remove(): Promise<void>;
}

export async function createStream(port: number, id: string, maxBytes: number): Promise<JsStream> {
  const nc = await connect({ servers: `127.0.0.1:${port}`, name: 'fluctuat-bench' });
  try {
    const jsm = await nc.jetstreamManager();
    const name = `FLUCTUAT_BENCH_${process.pid}_${id}`.replace(/[^A-Za-z0-9_-]/g, '_');
    const subject = `benchjs.${process.pid}.${id}`;
    await jsm.streams.add({ name, subjects: [subject], storage: StorageType.File, retention: RetentionPolicy.Limits, discard: DiscardPolicy.Old, max_bytes: maxBytes, num_replicas: 1 });
    return {
      name,
      subject,
      remove: async () => {
        const c = await connect({ servers: `127.0.0.1:${port}`, name: 'fluctuat-bench' });
        try {
          await (await c.jetstreamManager()).streams.delete(name);
        } finally {
          await c.close();
        }
      },
    };
  } finally {
    await nc.close();
  }
}

/** Whether the NATS server on `port` has JetStream enabled. */
export async function hasJetStream(port: number): Promise<boolean> {
  try {
    const nc = await connect({ servers: `127.0.0.1:${port}`, name: 'fluctuat-bench', timeout: 2000 });
    try {
      await (await nc.jetstreamManager()).getAccountInfo();
      return true;
    } finally {
      await nc.close();
    }
  } catch {
    return false;
  }
}
