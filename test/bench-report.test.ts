/** The benchmark's ratios: fluctuat ÷ peer is taken pass by pass, then the median. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Outcome } from '../bench/lib/gen.js';
import { pairedRatio, summarise, tables } from '../bench/lib/report.js';
import { allScenarios } from '../bench/lib/scenarios.js';

const scenario = (id: string) => allScenarios().find((s) => s.id === id)!;

function outcome(rate: number, pass: number | undefined, p99 = 0, bound = false, more: Partial<Outcome> = {}): Outcome {
  return {
    rate, sent: 0, delivered: 0, drops: 0, lost: 0, errors: 0, errorSamples: [], generatorCpu: 0.5, generatorBusiest: bound ? 0.99 : 0.3, generatorBound: bound, brokerCpu: null, backpressure: 0,
    brokerRssStart: null, brokerRssPeak: null, disconnects: 0, ...more,
    ...(p99 ? { latency: { p50: 1, p99, p999: p99, max: p99, count: 1 } } : {}),
    ...(pass === undefined ? {} : { pass }),
  };
}

test('paired ratios: the median of each pass\'s ratio, not the ratio of the medians', () => {
  const s = scenario('tput-1x1-16');
  // A busy second pass slowed the peer; the medians alone would say 200/300 = 0.67.
  const f = summarise(s, 'fluctuat', [outcome(100, 0), outcome(200, 1), outcome(300, 2)], []);
  const p = summarise(s, 'redis', [outcome(50, 0), outcome(400, 1), outcome(300, 2)], []);
  assert.equal(f.median / p.median, 200 / 300);
  assert.equal(pairedRatio(s, f, p), 1); // 2, 0.5 and 1
});

test('paired ratios: latency scenarios pair the p99s; a pass one side lacks is left out; no common pass falls back to the medians', () => {
  const lat = scenario('lat-20k');
  const f = summarise(lat, 'fluctuat', [outcome(20_000, 0, 400), outcome(20_000, 1, 900), outcome(20_000, 2, 300)], []);
  const p = summarise(lat, 'nats', [outcome(20_000, 0, 200), outcome(20_000, 2, 300)], []);
  assert.equal(pairedRatio(lat, f, p), 1.5); // passes 0 and 2: 2 and 1
  const s = scenario('tput-1x8-16');
  const a = summarise(s, 'fluctuat', [outcome(300, undefined)], []);
  const b = summarise(s, 'redis', [outcome(100, undefined)], []);
  assert.equal(pairedRatio(s, a, b), 3);
  assert.equal(pairedRatio(s, a, summarise(s, 'nats', [], ['failed'])), null);
});

test('a cell whose generator set the rate in some runs says so, in the text and the Markdown', () => {
  const s = scenario('tput-1x1-256');
  const f = summarise(s, 'fluctuat', [outcome(100, 0), outcome(110, 1)], []);
  const r = summarise(s, 'redis', [outcome(90, 0, 0, true), outcome(95, 1)], []);
  assert.equal(r.generatorBound, 1);
  assert.equal(f.generatorBound, 0);
  assert.equal(r.generatorBusiest, (0.99 + 0.3) / 2);
  const { text, markdown } = tables([s], [f, r], ['fluctuat', 'redis']);
  const line = (all: string, who: string) => all.split('\n').find((l) => l.includes('tput-1x1-256') && l.includes(who))!;
  assert.match(line(text, 'Redis'), /65%.*generator-bound in 1 of 2 runs$/);
  assert.doesNotMatch(line(text, 'fluctuat'), /generator-bound/);
  assert.match(line(markdown, 'Redis'), /\| 50% \| 65% \| .*generator-bound in 1 of 2 runs \|$/);
});

test('overload cells show the broker\'s peak memory (median over runs) and a subscriber the broker cut off', () => {
  const s = scenario('flood-8x1-256');
  assert.equal(s.group, 'overload');
  const MiB = 1024 * 1024;
  const f = summarise(s, 'fluctuat', [outcome(400_000, 0, 0, false, { brokerRssPeak: 90 * MiB }), outcome(420_000, 1, 0, false, { brokerRssPeak: 110 * MiB }), outcome(410_000, 2, 0, false, { brokerRssPeak: 100 * MiB })], []);
  const r = summarise(s, 'redis', [0, 1, 2].map((pass) => outcome(0, pass, 0, false, { lost: 1000, disconnects: 1, brokerRssPeak: 40 * MiB })), []);
  assert.equal(f.brokerRssPeak, 100 * MiB);
  assert.equal(r.disconnects, 3);
  const { text, markdown } = tables([s], [f, r], ['fluctuat', 'redis']);
  const line = (all: string, who: string) => all.split('\n').find((l) => l.includes('flood-8x1-256') && l.includes(who))!;
  assert.match(line(text, 'fluctuat'), /100 MiB\s+0\s+0\s+0$/);
  assert.match(line(text, 'Redis'), /40 MiB\s+3000\s+0\s+0\s+the broker disconnected 3 subscribers \(3 runs\)$/);
  assert.match(line(markdown, 'Redis'), /\| 40 MiB \| 3000 \| 0 \| 0 \| the broker disconnected 3 subscribers \(3 runs\) \|$/);
});
