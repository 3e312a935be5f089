/**
 * Scatter-gather accounting with hand-made responders that misbehave on purpose (through the
 * public client only): an answer twice (duplicate), an answer after the deadline (late), no
 * answer (missing); and paced sending, windows, queue spreading.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, type Client } from '../src/client/index.js';
import { channels, parseTask, PROTOCOL_VERSION, type TaskResult } from '../src/probes/protocol.js';
import { stamp } from '../src/probes/time.js';
import { Swarm } from '../src/swarm/controller.js';
import { summarize } from '../src/swarm/summary.js';
import { startBroker, type RunningBroker } from './helpers/broker.js';

let broker: RunningBroker;
let swarm: Swarm;
let responder: Client;

before(async () => {
  broker = await startBroker();
  swarm = await Swarm.connect({ url: broker.url, root: 'acct' });
  responder = await connect(broker.url, { name: 'fake-probe' });
});
after(async () => {
  await swarm?.close();
  await responder?.close();
  await broker?.dispose();
});

/** A fake probe on `<root>.direct.<id>` that answers each task `times` times after `delayMs`. */
async function fake(id: string, times: number, delayMs: number): Promise<() => Promise<void>> {
  const sub = responder.subscribe(channels.direct('acct', id), (msg) => {
    const recv = stamp();
    const task = parseTask(msg.text);
    if (typeof task === 'string') return;
    const result: TaskResult = { v: PROTOCOL_VERSION, task: task.id, probe: id, kind: task.kind, ok: true, value: { latencyMs: 1 }, t: { brokerUs: msg.time, recv, done: stamp() }, offsetMs: 0 };
    setTimeout(() => {
      for (let i = 0; i < times; i++) void msg.respond(JSON.stringify(result));
    }, delayMs);
  });
  await sub.ready;
  return () => sub.unsubscribe();
}

describe('scatter-gather', () => {
  it('counts duplicates, late and missing answers per probe', async () => {
    // Margins wide enough for a CI machine running two test files on 2 cores: an answer
    // at once must land inside 500 ms, and the slow one's 1 s inside the 2 s of grace after it.
    const stops = [await fake('twice', 2, 0), await fake('slow', 1, 1000), await fake('good', 1, 0)];
    try {
      const report = await swarm.scatter(
        [
          { kind: 'clock', params: {}, target: 'twice' },
          { kind: 'clock', params: {}, target: 'slow' },
          { kind: 'clock', params: {}, target: 'good' },
          { kind: 'clock', params: {}, target: 'absent' },
        ],
        { timeoutMs: 500, graceMs: 2000 },
      );
      assert.deepEqual(report.counts, { tasks: 4, answered: 2, ok: 2, failed: 0, late: 1, missing: 1, duplicates: 1, unsent: 0 });
      assert.deepEqual(
        report.outcomes.map((o) => o.status),
        ['ok', 'late', 'ok', 'missing'],
      );
      const s = summarize('clock', report);
      assert.equal(s.perProbe.twice!.duplicates, 1);
      assert.equal(s.perProbe.slow!.late, 1);
      assert.equal(s.perProbe.absent!.missing, 1);
      assert.deepEqual(s.failures, { late: 1, missing: 1 });
      assert.equal(s.measuredMs!.n, 3); // late answers count in the latencies: they are the tail
    } finally {
      for (const stop of stops) await stop();
    }
  });
  it('paces sends and bounds the tasks in flight', async () => {
    const stop = await fake('paced', 1, 20);
    try {
      const specs = Array.from({ length: 20 }, () => ({ kind: 'clock', params: {}, target: 'paced' }));
      const report = await swarm.scatter(specs, {
        window: 3,
        sendAtMs: (i) => i * 5,
      });
      // Sent in order, each no earlier than its slot.
      const sends = report.outcomes.map((o) => o.sent!.monoUs);
      for (let i = 1; i < sends.length; i++) {
        assert.ok(sends[i]! >= sends[i - 1]!);
        assert.ok(sends[i]! - report.startedMonoUs >= i * 5000 - 1000);
      }
      // With a window of 3 no fourth task is sent before one of the first three settled.
      for (let i = 3; i < 20; i++) {
        const settledBefore = report.outcomes.filter((o) => o.replies[0] && o.replies[0].recv.monoUs <= sends[i]!).length;
        assert.ok(settledBefore >= i - 2, `task ${i} sent with ${i - settledBefore} in flight`);
      }
      assert.equal(report.counts.ok, 20);
    } finally {
      await stop();
    }
  });
  it('fails a task whose publish is refused instead of waiting for it', async () => {
    const report = await swarm.scatter([{ kind: 'clock', params: {}, target: 'bad id with spaces' }], { timeoutMs: 5000 });
    assert.equal(report.counts.unsent, 1);
    assert.match(report.outcomes[0]!.sendError!, /publish-failed: BAD_CHANNEL/);
  });
});
