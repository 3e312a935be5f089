/** The periodic scheduler (EWMA-adapted intervals) and its state log: rotation, re-seeding, replay. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { PresenceTracker } from '../src/swarm/presence.js';
import { decide, initialState, scheduleConfig, type Observation, type TargetState } from '../src/swarm/schedule.js';
import { readStateLog, replayStateLog, StateLog } from '../src/swarm/statelog.js';
import type { Presence } from '../src/probes/protocol.js';
import { parseLabels, parseSelector } from '../src/probes/protocol.js';
import { linearFit, percentile, quantiles } from '../src/swarm/stats.js';

const cfg = scheduleConfig(1000, { alpha: 0.3 });

/** Simulate a target whose runs take `latency` ms plus `overhead` ms of controller time. */
function simulate(n: number, latency: (i: number) => number, ok: (i: number) => boolean = () => true, overhead = 0): { state: TargetState; delays: number[]; whys: string[] } {
  let state = initialState('t', cfg);
  let now = 0;
  const delays: number[] = [];
  const whys: string[] = [];
  for (let i = 0; i < n; i++) {
    now += latency(i) + overhead;
    const d = decide(state, { atMs: now, ok: ok(i), latencyMs: ok(i) ? latency(i) : null }, cfg);
    state = d.state;
    delays.push(d.delayMs);
    whys.push(d.why);
    now += d.delayMs;
  }
  return { state, delays, whys };
}

describe('adaptive schedule', () => {
  it('converges on the wanted period whatever each run costs', () => {
    const { state, whys } = simulate(60, () => 120, () => true, 30);
    assert.ok(Math.abs(state.ewmaIntervalMs! - 1000) < 10, `ewma interval ${state.ewmaIntervalMs}`);
    assert.equal(whys[whys.length - 1], 'on-time');
  });
  it('backs off exponentially on failures and recovers', () => {
    const { delays, whys } = simulate(12, () => 10, (i) => i < 4 || i >= 8);
    assert.equal(whys[4], 'backoff-1');
    assert.ok(delays[5]! > delays[4]! && delays[6]! > delays[5]!);
    assert.ok(delays[11]! < delays[7]!);
  });
  it('never runs faster than the target answers', () => {
    const { delays } = simulate(20, () => 3000);
    for (const d of delays.slice(3)) assert.ok(d >= 2000, String(d));
  });
  it('is pure: the same observations give the same decisions', () => {
    const obs: Observation[] = Array.from({ length: 30 }, (_, i) => ({ atMs: i * 1013.7, ok: i % 7 !== 3, latencyMs: 5 + (i % 5) }));
    const fold = (): string => {
      let s = initialState('x', cfg);
      return obs.map((o) => JSON.stringify((s = decide(s, o, cfg).state))).join('|');
    };
    assert.equal(fold(), fold());
  });
});

describe('state log', () => {
  it('rotates, re-seeds each target with its last state, and replays every decision', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fluctuat-statelog-'));
    try {
      const file = path.join(dir, 'state.log');
      const log = new StateLog(file, cfg, 2000, 2);
      const states = new Map<string, TargetState>();
      for (let i = 0; i < 60; i++) {
        const target = `probe-${i % 3}`;
        const prev = states.get(target) ?? initialState(target, cfg);
        const obs: Observation = { atMs: 1000 * i + (i % 3), ok: i % 11 !== 5, latencyMs: i % 11 === 5 ? null : 2 + (i % 4) };
        const d = decide(prev, obs, cfg);
        states.set(target, d.state);
        log.write(target, obs, d);
      }
      log.close();
      assert.ok(fs.existsSync(`${file}.1`) && fs.existsSync(`${file}.2`) && !fs.existsSync(`${file}.3`));
      const records = readStateLog(file);
      assert.equal(records[0]!.type, 'config');
      assert.deepEqual(
        records.filter((r) => r.type === 'seed').map((r) => (r.type === 'seed' ? r.state.target : '')).sort(),
        ['probe-0', 'probe-1', 'probe-2'],
      );
      const replay = replayStateLog(records);
      assert.ok(replay.decisions > 0);
      assert.deepEqual(replay.mismatches, []);
      for (const [target, last] of Object.entries(replay.last)) assert.deepEqual(last.state, states.get(target));
      // A tampered decision is found.
      const lines = fs.readFileSync(file, 'utf8').trimEnd().split('\n');
      const lastLine = JSON.parse(lines[lines.length - 1]!) as { delayMs: number };
      lastLine.delayMs += 1;
      lines[lines.length - 1] = JSON.stringify(lastLine);
      fs.writeFileSync(file, lines.join('\n') + '\n');
      assert.equal(replayStateLog(readStateLog(file)).mismatches.length, 1);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('presence, labels and statistics', () => {
  const p = (id: string, event: Presence['event']): Presence => ({ v: 1, event, id, host: 'h', pid: 1, threadId: 0, mode: 'thread', kinds: ['clock'], labels: {}, wallMs: 0, heartbeatMs: 1000 });
  it('tracks joins, departures and expiry by last-seen time', () => {
    const t = new PresenceTracker(3);
    assert.equal(t.update(p('a', 'up'), 0), 'joined');
    assert.equal(t.update(p('b', 'up'), 0), 'joined');
    assert.equal(t.update(p('a', 'alive'), 2500), undefined);
    assert.equal(t.update(p('b', 'down'), 2600), 'left');
    assert.deepEqual(t.expire(3500), []);
    assert.deepEqual(t.expire(5600).map((x) => x.id), ['a']);
    assert.equal(t.probes.length, 0);
  });
  it('selects by labels', () => {
    const labels = parseLabels(['region=eu,zone=a', 'canary=']);
    assert.deepEqual(labels, { region: 'eu', zone: 'a', canary: '' });
    assert.equal(parseSelector('region=eu')(labels), true);
    assert.equal(parseSelector('region=us|eu,zone=a')(labels), true);
    assert.equal(parseSelector('!canary')(labels), false);
    assert.equal(parseSelector('region=us')(labels), false);
    assert.equal(parseSelector(undefined)(labels), true);
    assert.throws(() => parseLabels(['no-equals']), TypeError);
  });
  it('computes percentiles and a linear fit', () => {
    const v = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.equal(percentile(v, 0.5), 50);
    assert.equal(percentile(v, 0.99), 99);
    assert.equal(quantiles(v)!.max, 100);
    const fit = linearFit([0, 1, 2, 3], [1, 3, 5, 7.5])!;
    assert.ok(Math.abs(fit.slope - 2.15) < 1e-9);
    assert.ok(fit.r2 > 0.99 && fit.maxResidual > 0);
  });
});
