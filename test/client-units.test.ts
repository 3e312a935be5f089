/** Pure parts of the client: rendering, names and positions, human commands, options. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { escapeText, renderDelivery, renderDebug, clock, isInfoLine } from '../src/client/render.js';
import { checkChannel, checkId, checkPattern, formatPosition, isPlainChannel, parsePosition } from '../src/client/names.js';
import { parseHumanCommand, toPosition } from '../src/client/human.js';
import { backoffDelay, parseUrl, resolveOptions } from '../src/client/options.js';
import { ClientErrorCode, FluctuatError } from '../src/client/errors.js';
import { Subscription, type SubscriptionOwner } from '../src/client/subscription.js';
import { Message } from '../src/client/message.js';

test('escapeText: the backslash escapes of the broker, one message is one line', () => {
  assert.equal(escapeText(Buffer.from('plain text')), 'plain text');
  assert.equal(escapeText(Buffer.from('a\nb\tc\\d\re')), 'a\\nb\\tc\\\\d\\re');
  assert.equal(escapeText(Buffer.from([0x00, 0x1b, 0x7f])), '\\x00\\x1b\\x7f');
  assert.equal(escapeText(Buffer.from('héllo wörld ✓ 🌊')), 'héllo wörld ✓ 🌊');
  assert.equal(escapeText(Buffer.alloc(0)), '');
  for (let b = 0; b < 256; b++) {
    const out = escapeText(Buffer.from([b]));
    assert.ok(!/[\x00-\x1f\x7f]/.test(out), `byte ${b} rendered as ${JSON.stringify(out)}`);
  }
});

test('renderDelivery and renderDebug use the human-mode line shapes', () => {
  const t = new Date(2026, 10, 23, 14, 18, 11, 250).getTime();
  assert.equal(clock(t), '14:18:11');
  assert.equal(renderDelivery('this', t * 1000, undefined, Buffer.from('hello')), 'pubsub on this at 14:18:11: hello');
  assert.equal(renderDelivery('job', t * 1000, '_INBOX.x.1', Buffer.from('a\nb')), 'pubsub on job at 14:18:11 (reply to _INBOX.x.1): a\\nb');
  assert.equal(renderDebug('subscribing this', t), '# [D]:14:18:11: subscribing this');
  assert.ok(isInfoLine('# [I] creating x'));
  assert.ok(isInfoLine('# [D]:14:18:11: published x #1'));
  assert.ok(!isInfoLine('# [W] dropped 3 messages on x (slow consumer)'));
  assert.ok(!isInfoLine('-ERR BAD_CHANNEL nope'));
  assert.ok(!isInfoLine('pubsub on x at 14:18:11: # [D] not info'));
});

test('channel and pattern checks refuse anything that could break a frame', () => {
  checkChannel('this');
  checkChannel('probes.eu-west.clock_1');
  checkPattern('probes.*.clock');
  checkPattern('probes.>');
  checkPattern('*');
  for (const bad of ['', 'a b', 'a\nPUB x', 'a..b', '.a', 'a.', 'a.*', 'a.>', 'é']) {
    assert.throws(() => checkChannel(bad), (e: FluctuatError) => e.code === 'BAD_CHANNEL', bad);
  }
  for (const bad of ['', 'a b', 'a.>.b', 'a.**', 'a\n', '>x']) {
    assert.throws(() => checkPattern(bad), (e: FluctuatError) => e.code === 'BAD_PATTERN', bad);
  }
  assert.throws(() => checkChannel('a'.repeat(256)), /255 bytes/);
  assert.throws(() => checkChannel(Array(33).fill('a').join('.')), /32 tokens/);
  for (const bad of ['', 'a b', 'x'.repeat(33), 'é', 'a.b']) assert.throws(() => checkId(bad, 'identity'), /BAD_ARGUMENTS|bad identity/);
  checkId('probe-7_x', 'identity');
  assert.ok(isPlainChannel('a.b.c'));
  assert.ok(!isPlainChannel('a.*.c'));
  assert.ok(!isPlainChannel('a.>'));
  assert.ok(!isPlainChannel('*'));
});

test('positions: every kind, as text and as an object, round-trips to the wire form', () => {
  const cases: [Parameters<typeof parsePosition>[0], string][] = [
    ['beginning', 'beginning'],
    ['new', 'new'],
    ['offset:7', 'offset:7'],
    ['after:0', 'after:0'],
    ['last:10', 'last:10'],
    ['time:1700000000000', 'time:1700000000000'],
    ['time:2026-11-23T08:00:00Z', 'time:2026-11-23T08:00:00Z'],
    [{ beginning: true }, 'beginning'],
    [{ new: true }, 'new'],
    [{ offset: 3 }, 'offset:3'],
    [{ after: 41 }, 'after:41'],
    [{ last: 5 }, 'last:5'],
    [{ time: 1700000000000 }, 'time:1700000000000'],
    [{ time: new Date(1700000000000) }, 'time:1700000000000'],
    [{ time: '2026-11-23T08:00:00.5+01:00' }, 'time:2026-11-23T08:00:00.5+01:00'],
  ];
  for (const [input, wire] of cases) assert.equal(formatPosition(parsePosition(input)), wire, JSON.stringify(input));
  for (const bad of ['', 'start', 'offset:0', 'offset:-1', 'after:x', 'last:', 'time:yesterday', 'time:2026-11-23', 'offset:1.5']) {
    assert.throws(() => parsePosition(bad), (e: FluctuatError) => e.code === 'BAD_POSITION', bad);
  }
  assert.throws(() => parsePosition({ offset: 0 }), /BAD_POSITION|integer/);
  assert.throws(() => parsePosition({ after: 1, last: 2 } as never), /exactly one key/);
});

test('send() reads human commands with the parser of the broker', () => {
  assert.deepEqual(parseHumanCommand('sub this'), { verb: 'sub', sid: 'this', pattern: 'this', from: undefined, queue: '' });
  const sub = parseHumanCommand('sub probes.> from=after:4\r');
  assert.equal(sub.verb, 'sub');
  assert.deepEqual(sub.verb === 'sub' && sub.from && toPosition(sub.from), { kind: 'offset', offset: 5 });
  const pub = parseHumanCommand('pub this hello  world ');
  assert.equal(pub.verb, 'pubtext');
  assert.equal(pub.verb === 'pubtext' && pub.text.toString(), 'hello  world ');
  const errors: [string, string][] = [
    ['sub', 'BAD_ARGUMENTS'],
    ['sub a b', 'BAD_ARGUMENTS'],
    ['sub a from=nowhere', 'BAD_POSITION'],
    ['sub a.>.b', 'BAD_PATTERN'],
    ['sub a from=beginning queue=g', 'BAD_ARGUMENTS'],
    ['pub a.* x', 'BAD_CHANNEL'],
    ['frobnicate', 'UNKNOWN_COMMAND'],
  ];
  for (const [line, code] of errors) {
    const cmd = parseHumanCommand(line);
    assert.equal(cmd.verb, 'error', line);
    assert.equal(cmd.verb === 'error' && cmd.code, code, line);
  }
});

test('urls and options are validated once, with clear errors', () => {
  assert.deepEqual(parseUrl('fluctuat://127.0.0.1:4000'), { host: '127.0.0.1', port: 4000 });
  assert.deepEqual(parseUrl('tcp://localhost'), { host: 'localhost', port: 2023 });
  assert.deepEqual(parseUrl('fluctuat://[::1]:9'), { host: '::1', port: 9 });
  assert.deepEqual(parseUrl('example.org:7'), { host: 'example.org', port: 7 });
  for (const bad of ['', 'http://x:1', 'fluctuat://:1', 'fluctuat://h:1/path']) {
    assert.throws(() => parseUrl(bad), (e: FluctuatError) => e.code === ClientErrorCode.BAD_OPTION, bad);
  }
  const o = resolveOptions('fluctuat://h', { name: 'p1', maxBuffered: 3 });
  assert.equal(o.name, 'p1');
  assert.equal(o.maxBuffered, 3);
  assert.equal(o.reconnect, true);
  assert.ok(Object.isFrozen(o));
  assert.throws(() => resolveOptions('fluctuat://h', { maxBufered: 3 } as never), /unknown option "maxBufered"/);
  assert.throws(() => resolveOptions('fluctuat://h', { maxBuffered: -1 }), /maxBuffered/);
  assert.throws(() => resolveOptions('fluctuat://h', { name: 'a b' }), /name/);
  assert.throws(() => resolveOptions('fluctuat://h', { name: 'a.b' }), /name/);
  assert.throws(() => resolveOptions('fluctuat://h', { backoffInitialMs: 10, backoffMaxMs: 5 }), /backoffMaxMs/);
});

test('backoff is capped, exponential and jittered within [cap/2, cap]', () => {
  assert.equal(backoffDelay(0, 100, 5000, () => 0), 50);
  assert.equal(backoffDelay(0, 100, 5000, () => 1), 100);
  assert.equal(backoffDelay(3, 100, 5000, () => 1), 800);
  assert.equal(backoffDelay(20, 100, 5000, () => 1), 5000);
  assert.equal(backoffDelay(1000, 100, 5000, () => 0), 2500);
});

const owner: SubscriptionOwner = {
  unsubscribe: async () => {},
  suspend: () => {},
  resume: () => {},
  dropped: () => {},
};

function sub(pattern: string, from: Parameters<typeof parsePosition>[0] = 'new', queue?: string): Subscription {
  return new Subscription(owner, pattern, parsePosition(from), queue, () => {}, { collect: false, maxTrackedChannels: 3, maxQueued: 10 });
}

test('resume positions: after the last offset on a channel, by time with de-duplication on a pattern', () => {
  const never = sub('a', 'last:5');
  assert.equal(formatPosition(never.resumePosition(1000)), 'last:5'); // never confirmed: asked again as is

  const plain = sub('a', 'beginning');
  plain.onOk();
  assert.equal(formatPosition(plain.resumePosition(1000)), 'beginning'); // nothing seen yet
  plain.onLive('a', 12);
  assert.equal(formatPosition(plain.resumePosition(1000)), 'after:12');
  assert.ok(plain.accept('a', 13, 1));
  assert.ok(!plain.accept('a', 13, 1), 'a duplicate is dropped');
  assert.ok(!plain.accept('a', 2, 1));
  assert.equal(formatPosition(plain.resumePosition(1000)), 'after:13');
  plain.onGap('a', 20);
  assert.equal(formatPosition(plain.resumePosition(1000)), 'after:20');

  const fresh = sub('a', 'new');
  fresh.onOk();
  fresh.startTimeUs = 5_000_000_000;
  assert.equal(formatPosition(fresh.resumePosition(1000)), 'time:4999000');

  const wild = sub('a.*', 'new');
  wild.onOk();
  assert.ok(wild.accept('a.x', 1, 10_000_000));
  assert.ok(wild.accept('a.y', 5, 12_000_000));
  assert.ok(!wild.accept('a.x', 1, 10_000_000));
  assert.ok(wild.accept('a.x', 2, 13_000_000));
  assert.equal(formatPosition(wild.resumePosition(1000)), 'time:12000');
  assert.equal(formatPosition(wild.resumePosition(0)), 'time:13000');
  // the per-channel map is bounded (3 here): the oldest channel is forgotten first
  assert.ok(wild.accept('a.z', 1, 14_000_000));
  assert.ok(wild.accept('a.w', 1, 15_000_000));
  assert.equal(wild.seen.size, 3);
  assert.ok(!wild.seen.has('a.x'));

  const group = sub('a', 'beginning', 'g');
  group.onOk();
  group.accept('a', 4, 1);
  assert.equal(formatPosition(group.resumePosition(1000)), 'new');

  const inbox = sub('_INBOX.abc.>');
  inbox.onOk();
  assert.equal(formatPosition(inbox.resumePosition(1000)), 'new');
  assert.ok(inbox.accept('_INBOX.abc.1', 0, 1));
  assert.ok(inbox.accept('_INBOX.abc.1', 0, 1), 'offset 0 is never a duplicate');
});

test('Message: text getter, respond without reply rejects with NO_REPLY', async () => {
  const calls: unknown[] = [];
  const responder = { publish: async (channel: string, data: unknown) => (calls.push([channel, data]), { offset: 0 }) };
  const m = new Message('a', 1, 2, 'p', undefined, Buffer.from('hé'), responder);
  assert.equal(m.text, 'hé');
  await assert.rejects(m.respond('x'), (e: FluctuatError) => e.code === ClientErrorCode.NO_REPLY);
  const r = new Message('a', 1, 2, 'p', '_INBOX.q.1', Buffer.from('x'), responder);
  await r.respond('ok');
  assert.deepEqual(calls, [['_INBOX.q.1', 'ok']]);
});

test('docs/client.md lists every client error code', () => {
  const doc = readFileSync(new URL('../../docs/client.md', import.meta.url), 'utf8');
  for (const code of Object.values(ClientErrorCode)) assert.ok(doc.includes(`\`${code}\``), `docs/client.md does not list ${code}`);
});

test('the client library imports nothing from the server side, even transitively at run time', () => {
  const srcDir = new URL('../../src/client/', import.meta.url);
  for (const file of readdirSync(srcDir).filter((f) => f.endsWith('.ts'))) {
    const src = readFileSync(new URL(file, srcDir), 'utf8');
    for (const m of src.matchAll(/from '([^']+)'/g)) {
      const spec = m[1]!;
      if (spec.startsWith('..')) assert.ok(spec.startsWith('../protocol/'), `src/client/${file} imports ${spec}`);
    }
  }
  // What actually loads: follow the compiled imports from the package entry point.
  const seen = new Set<string>();
  const queue = [fileURLToPath(new URL('../src/client/index.js', import.meta.url))];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const js = readFileSync(file, 'utf8');
    for (const m of js.matchAll(/(?:from|import)\s*'(\.[^']+)'/g)) queue.push(path.resolve(path.dirname(file), m[1]!));
  }
  const loaded = [...seen].map((f) => path.relative(fileURLToPath(new URL('..', import.meta.url)), f));
  assert.ok(loaded.some((f) => f.startsWith('src/protocol/')), JSON.stringify(loaded));
  for (const f of loaded) assert.ok(/^src\/(client|protocol)\//.test(f), `the client loads ${f}`);
});
