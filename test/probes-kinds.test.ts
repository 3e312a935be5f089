/**
 * Every probe kind against a real local target, through the bus: a broker (child process), one
 * probe in this thread, tasks sent by a swarm controller. Failure modes: refused, timeout,
 * wrong HMAC, bad parameters, unknown kind.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startDnsResponder, type DnsResponder } from '../src/probes/dns-responder.js';
import { keyedAnswer } from '../src/probes/dns-key.js';
import { Probe } from '../src/probes/probe.js';
import { loadKinds } from '../src/probes/registry.js';
import { Swarm, type Outcome } from '../src/swarm/controller.js';
import { startBroker, type RunningBroker } from './helpers/broker.js';
import { blackholeTcp, closedTcpPort, closedUdpPort, httpTarget, silentUdp, tcpListener, type HttpTarget } from './fixtures/probe-targets.js';

let broker: RunningBroker;
let probe: Probe;
let swarm: Swarm;
let http: HttpTarget;
let dns: DnsResponder;
let wrongDns: DnsResponder;
const KEY = Buffer.from('0123456789abcdef0123456789abcdef', 'hex');

before(async () => {
  await loadKinds();
  broker = await startBroker();
  probe = await Probe.start({ url: broker.url, root: 'kinds', labels: { site: 'test' }, env: { FLUCTUAT_DNS_KEY: '0123456789abcdef0123456789abcdef' } });
  swarm = await Swarm.connect({ url: broker.url, root: 'kinds' });
  http = await httpTarget();
  dns = await startDnsResponder({ zone: 'probe.test', key: KEY });
  wrongDns = await startDnsResponder({ zone: 'probe.test', key: Buffer.from('not the key') });
});

after(async () => {
  await swarm?.close();
  await probe?.stop();
  await http?.close();
  await dns?.close();
  await wrongDns?.close();
  await broker?.dispose();
});

/** One task to the probe's direct channel; its outcome. */
async function run(kind: string, params: Record<string, unknown>, timeoutMs = 5000): Promise<Outcome> {
  const report = await swarm.scatter([{ kind, params, target: probe.id }], { timeoutMs, probeTimeoutMs: Math.min(timeoutMs, 1000) });
  assert.equal(report.counts.duplicates, 0);
  return report.outcomes[0]!;
}

function value<T>(o: Outcome): T {
  assert.equal(o.status, 'ok', JSON.stringify(o.replies[0]?.result.error));
  return o.replies[0]!.result.value as T;
}

function reason(o: Outcome): string | undefined {
  assert.equal(o.status, 'failed', `expected a failure, got ${o.status}`);
  return o.replies[0]!.result.error?.reason;
}

describe('roll call', () => {
  it('finds the probe with its labels and kinds', async () => {
    const found = await swarm.rollcall({ expect: 1, waitMs: 5000 });
    assert.equal(found.length, 1);
    assert.equal(found[0]!.id, probe.id);
    assert.deepEqual(found[0]!.labels, { site: 'test' });
    assert.deepEqual([...found[0]!.kinds].sort(), ['clock', 'dns', 'http', 'percolation', 'tcp']);
    assert.equal((await swarm.rollcall({ select: (l) => l.site === 'elsewhere', waitMs: 300 })).length, 0);
  });
});

describe('clock', () => {
  it('answers with clocks between the send and the answer, and timestamps for every leg', async () => {
    const o = await run('clock', {});
    const v = value<{ wallMs: number; wallUs: number; monoUs: number; offsetMs: number }>(o);
    const r = o.replies[0]!;
    assert.ok(o.sent!.monoUs <= v.monoUs && v.monoUs <= r.recv.monoUs);
    assert.ok(Math.abs(v.wallMs - Date.now()) < 60_000);
    assert.ok(Number.isFinite(v.offsetMs));
    // Task and answer both carry the broker's receive time.
    assert.ok(r.result.t.brokerUs > 0 && r.brokerUs >= r.result.t.brokerUs);
    assert.ok(r.result.t.recv.monoUs <= r.result.t.done.monoUs);
  });
});

describe('tcp', () => {
  it('measures a connection', async () => {
    const target = await tcpListener();
    try {
      const v = value<{ latencyMs: number; port: number }>(await run('tcp', { target: `127.0.0.1:${target.port}` }));
      assert.equal(v.port, target.port);
      assert.ok(v.latencyMs >= 0);
    } finally {
      await target.close();
    }
  });
  it('reports refused', async () => {
    assert.equal(reason(await run('tcp', { host: '127.0.0.1', port: await closedTcpPort() })), 'refused');
  });
  it('reports a timeout when nobody accepts', async () => {
    const hole = await blackholeTcp();
    try {
      assert.equal(reason(await run('tcp', { target: `127.0.0.1:${hole.port}` })), 'timeout');
    } finally {
      await hole.close();
    }
  });
  it('refuses bad parameters', async () => {
    assert.equal(reason(await run('tcp', { target: 'nowhere' })), 'bad-params');
  });
});

describe('http', () => {
  it('reports status, latency and the body digest', async () => {
    const v = value<{ status: number; digest: string; bytes: number; latencyMs: number }>(await run('http', { url: `${http.url}/ok` }));
    assert.equal(v.status, 200);
    assert.equal(v.bytes, 11);
    assert.equal(v.digest, createHash('sha256').update('hello probe').digest('hex'));
  });
  it('fails on an unexpected status, keeping what it measured', async () => {
    const o = await run('http', { url: `${http.url}/fail` });
    assert.equal(reason(o), 'status');
    assert.equal((o.replies[0]!.result.value as { status: number }).status, 500);
    assert.equal(value<{ status: number }>(await run('http', { url: `${http.url}/fail`, expect: '5xx' })).status, 500);
  });
  it('reports refused and timeout', async () => {
    assert.equal(reason(await run('http', { url: `http://127.0.0.1:${await closedTcpPort()}/` })), 'refused');
    assert.equal(reason(await run('http', { url: `${http.url}/hang` })), 'timeout');
  });
});

describe('dns', () => {
  it('resolves a name through the chosen server', async () => {
    const v = value<{ answers: string[] }>(await run('dns', { name: 'www.probe.test', server: `127.0.0.1:${dns.port}` }));
    assert.deepEqual(v.answers, ['127.0.0.1']);
  });
  it('keyed: a random name answered with its HMAC', async () => {
    const v = value<{ name: string; answers: string[]; verified: boolean }>(await run('dns', { name: 'probe.test', server: `127.0.0.1:${dns.port}`, keyed: true }));
    assert.equal(v.verified, true);
    assert.match(v.name, /^k[0-9a-f]{16}\.probe\.test$/);
    assert.deepEqual(v.answers, [keyedAnswer(KEY, v.name)]);
    const again = value<{ name: string }>(await run('dns', { name: 'probe.test', server: `127.0.0.1:${dns.port}`, keyed: true }));
    assert.notEqual(again.name, v.name);
  });
  it('keyed: a wrong HMAC is a failure', async () => {
    const o = await run('dns', { name: 'probe.test', server: `127.0.0.1:${wrongDns.port}`, keyed: true });
    assert.equal(reason(o), 'hmac-mismatch');
    assert.equal((o.replies[0]!.result.value as { verified: boolean }).verified, false);
  });
  it('reports timeout, refused, and a name outside the zone', async () => {
    const silent = await silentUdp();
    try {
      assert.equal(reason(await run('dns', { name: 'a.probe.test', server: `127.0.0.1:${silent.port}` })), 'timeout');
    } finally {
      await silent.close();
    }
    assert.equal(reason(await run('dns', { name: 'a.probe.test', server: `127.0.0.1:${await closedUdpPort()}` })), 'refused');
    assert.equal(reason(await run('dns', { name: 'example.org', server: `127.0.0.1:${dns.port}` })), 'server-refused');
  });
});

describe('percolation and errors', () => {
  it('runs one seeded run', async () => {
    const v = value<{ crossed: boolean; pIndex: number; run: number }>(await run('percolation', { size: 16, p: 1, pIndex: 3, run: 7, seed: 'x' }));
    assert.deepEqual(v, { pIndex: 3, run: 7, crossed: true });
    assert.equal(value<{ crossed: boolean }>(await run('percolation', { size: 16, p: 0, pIndex: 0, run: 0, seed: 'x' })).crossed, false);
  });
  it('answers an unknown kind with unknown-kind', async () => {
    assert.equal(reason(await run('teleport', {})), 'unknown-kind');
  });
  it('counts a task sent to nobody as missing', async () => {
    const report = await swarm.scatter([{ kind: 'clock', params: {}, target: 'nobody-here' }], { timeoutMs: 300 });
    assert.equal(report.counts.missing, 1);
    assert.equal(report.outcomes[0]!.status, 'missing');
  });
});
