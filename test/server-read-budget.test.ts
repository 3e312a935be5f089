// The read budget (src/server/read-budget.ts): connections that read past it in one event-loop
// turn wait for the next, and nothing they send is lost, reordered or stuck, also when the
// in-flight bound pauses the same connections.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { ReadBudget } from '../src/server/read-budget.js';
import { inputWaiting } from '../src/loop/input-backlog.js';
import { startBroker } from './helpers/broker.js';
import { RawClient, until } from './helpers/raw.js';

test('readers waiting for the next turn\'s budget are input waiting (the file log then writes large batches on the thread pool)', async () => {
  const budget = new ReadBudget(1000);
  assert.equal(inputWaiting(), false);
  assert.equal(budget.spend(1500), false);
  let resumed = 0;
  budget.wait(() => resumed++);
  budget.wait(() => resumed++);
  assert.equal(inputWaiting(), true, 'two readers wait');
  await nextTurn();
  assert.equal(resumed, 2);
  assert.equal(inputWaiting(), false, 'renewed: nobody waits');
});

test('a read budget is spent across reads until it runs out; waiters resume in the next turn, in order, with a fresh budget', async () => {
  const b = new ReadBudget(100);
  assert.equal(b.spend(60), true);
  assert.equal(b.spend(40), true, 'exactly the budget is still within it');
  assert.equal(b.spend(1), false);
  const order: string[] = [];
  b.wait(() => order.push('a'));
  b.wait(() => order.push('b'));
  assert.equal(order.length, 0, 'not in the turn that spent it');
  assert.equal(b.yields, 2);
  await nextTurn();
  assert.deepEqual(order, ['a', 'b']);
  assert.equal(b.spend(100), true, 'a fresh budget');
  b.wait(() => order.push('c'));
  await nextTurn();
  assert.deepEqual(order, ['a', 'b', 'c']);
});

for (const storage of ['file', 'memory'] as const) {
  test(`${storage} storage: four publishers sending at once past a tiny read budget and in-flight bound: every message arrives, each publisher's in order`, async (t) => {
    const broker = await startBroker({ storage, args: ['--read-per-turn', '4096', '--max-inflight', '64'] });
    t.after(() => broker.stop());
    const sub = await RawClient.machine(broker.port);
    t.after(() => sub.socket.destroy());
    sub.send('SUB s flood');
    await sub.waitFor((f) => f.line === 'OK s');
    const PUBS = 4;
    const N = 1500;
    const payload = (p: number, i: number): Buffer => {
      const b = Buffer.alloc(200 + ((i * 53 + p * 11) % 500), 0x61 + p);
      b.write(`${p}:${i}:`, 'latin1');
      return b;
    };
    const pubs = await Promise.all(Array.from({ length: PUBS }, () => RawClient.machine(broker.port)));
    t.after(() => pubs.forEach((p) => p.socket.destroy()));
    // Each publisher's whole stream in one write: ~700 KB that the broker reads in one go
    // unless the budget stops it.
    pubs.forEach((c, p) => c.send(Buffer.concat(Array.from({ length: N }, (_, i) => [Buffer.from(`PUB flood - - ${payload(p, i).length}\n`), payload(p, i), Buffer.from('\n')]).flat())));
    const deliveries = (): Buffer[] => sub.frames.flatMap((f) => (f.payload ? [f.payload] : []));
    await until(() => deliveries().length >= PUBS * N, `${PUBS * N} deliveries`, 60_000);
    const next = new Array<number>(PUBS).fill(0);
    for (const d of deliveries()) {
      const [p, i] = d.toString('latin1', 0, 16).split(':').map(Number) as [number, number];
      assert.equal(i, next[p], `publisher ${p}'s messages in order`);
      assert.deepEqual(d, payload(p, i), `publisher ${p}'s message ${i} intact`);
      next[p]!++;
    }
    assert.deepEqual(next, new Array<number>(PUBS).fill(N));
    const stats = await sub.stats();
    assert.ok(stats.readYields! > 0, `connections waited for a later turn (readYields ${stats.readYields})`);
  });
}
