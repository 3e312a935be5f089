import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { parseHuman, parseMachine } from '../src/protocol/commands.js';
import { ProtocolError } from '../src/protocol/errors.js';
import { matches, nameProblem } from '../src/protocol/names.js';
import { parsePosition } from '../src/protocol/position.js';

const b = (s: string): Buffer => Buffer.from(s);

test('human commands parse into typed commands', () => {
  assert.deepEqual(parseHuman(b('pub this  hello  world ')), { verb: 'pubtext', channel: 'this', text: b('hello  world ') });
  assert.deepEqual(parseHuman(b('sub probes.*.clock from=last:5')), {
    verb: 'sub', sid: 'probes.*.clock', pattern: 'probes.*.clock', from: { kind: 'last', count: 5 }, queue: '',
  });
  assert.deepEqual(parseHuman(b('sub tasks.> queue=workers')), { verb: 'sub', sid: 'tasks.>', pattern: 'tasks.>', from: undefined, queue: 'workers' });
  assert.deepEqual(parseHuman(b('unsub this')), { verb: 'unsub', sid: 'this' });
  assert.deepEqual(parseHuman(b('  ')), { verb: 'empty' });
  assert.deepEqual(parseHuman(b('quit')), { verb: 'quit' });
});

test('machine commands parse into typed commands', () => {
  assert.deepEqual(parseMachine(b('PUB a.b 17 _INBOX.x.1 5')), { verb: 'pub', channel: 'a.b', ackId: '17', reply: '_INBOX.x.1', size: 5 });
  assert.deepEqual(parseMachine(b('PUB a - - 0')), { verb: 'pub', channel: 'a', ackId: '', reply: '', size: 0 });
  assert.deepEqual(parseMachine(b('SUB s1 a.> from=after:41')), { verb: 'sub', sid: 's1', pattern: 'a.>', from: { kind: 'offset', offset: 42 }, queue: '' });
  assert.deepEqual(parseMachine(b('PING t1 123')), { verb: 'ping', token: 't1', clientTime: '123' });
});

/** Each malformed line, the error code it must get, and a word its message must contain. */
const MALFORMED: [mode: 'human' | 'machine', line: string, code: string, mentions: string][] = [
  ['human', 'frobnicate', 'UNKNOWN_COMMAND', 'expected one of'],
  ['human', 'pub', 'BAD_ARGUMENTS', 'usage'],
  ['human', 'pub a..b x', 'BAD_CHANNEL', 'empty token'],
  ['human', 'pub a.* x', 'BAD_CHANNEL', 'wildcard'],
  ['human', 'pub caf\u00e9 x', 'BAD_CHANNEL', 'invalid character'],
  ['human', 'sub', 'BAD_ARGUMENTS', 'usage'],
  ['human', 'sub a.>.b', 'BAD_PATTERN', 'last token'],
  ['human', 'sub a*', 'BAD_PATTERN', 'invalid character'],
  ['human', 'sub a from=yesterday', 'BAD_POSITION', 'expected'],
  ['human', 'sub a from=offset:x', 'BAD_POSITION', 'whole number'],
  ['human', 'sub a size=3', 'BAD_ARGUMENTS', 'usage'],
  ['human', 'sub a queue=w from=beginning', 'BAD_ARGUMENTS', 'queue'],
  ['human', 'unsub a b', 'BAD_ARGUMENTS', 'unexpected'],
  ['human', 'mode turbo', 'BAD_ARGUMENTS', 'machine'],
  ['human', 'PUB a - - 1', 'UNKNOWN_COMMAND', 'expected one of'],
  ['machine', 'pub a x', 'UNKNOWN_COMMAND', 'PUB'],
  ['machine', 'PUB a', 'BAD_ARGUMENTS', 'ack-id'],
  ['machine', 'PUB a 1 -', 'BAD_ARGUMENTS', 'size'],
  ['machine', 'PUB a 1 - x', 'BAD_SIZE', 'decimal'],
  ['machine', 'PUB a 1 - -5', 'BAD_SIZE', 'decimal'],
  ['machine', 'PUB a !! - 5', 'BAD_ARGUMENTS', 'ack-id'],
  ['machine', 'PUB a 1 b.* 5', 'BAD_CHANNEL', 'wildcard'],
  ['machine', 'PUB a 1 - 5 6', 'BAD_ARGUMENTS', 'unexpected'],
  ['machine', 'SUB', 'BAD_ARGUMENTS', 'sid'],
  ['machine', 'SUB s1', 'BAD_ARGUMENTS', 'pattern'],
  ['machine', 'SUB s1 a from=last:', 'BAD_POSITION', 'whole number'],
  ['machine', 'UNSUB', 'BAD_ARGUMENTS', 'sid'],
];

test('every malformed line gets the right code and a message that says what was expected', () => {
  for (const [mode, line, code, mentions] of MALFORMED) {
    const parse = mode === 'human' ? parseHuman : parseMachine;
    assert.throws(
      () => parse(b(line)),
      (err: unknown) => err instanceof ProtocolError && err.code === code && err.message.includes(mentions),
      `${mode} ${JSON.stringify(line)} should fail with ${code} mentioning "${mentions}"`,
    );
  }
});

test('property: random bytes either parse or throw a ProtocolError, never anything else', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 120 }), fc.boolean(), (bytes, human) => {
      const line = Buffer.from(bytes);
      try {
        (human ? parseHuman : parseMachine)(line);
      } catch (err) {
        assert.ok(err instanceof ProtocolError, String(err));
        assert.ok(!/[\r\n]/.test(err.message));
      }
    }),
    { numRuns: 5000 },
  );
});

test('channel names and patterns', () => {
  for (const ok of ['a', 'a.b.c', 'probe-1.eu_west', 'A9']) assert.equal(nameProblem(ok, false), null, ok);
  for (const bad of ['', '.', 'a.', '.a', 'a b', 'a/b', 'x'.repeat(256)]) assert.notEqual(nameProblem(bad, false), null, bad);
  for (const ok of ['*', '>', 'a.*', 'a.>', '*.b.>', 'a.*.c']) assert.equal(nameProblem(ok, true), null, ok);
  for (const bad of ['a>', 'a.>.b', '**', 'a.*b']) assert.notEqual(nameProblem(bad, true), null, bad);
  assert.ok(matches('a.*', 'a.b'));
  assert.ok(!matches('a.*', 'a.b.c'));
  assert.ok(matches('a.>', 'a.b.c'));
  assert.ok(!matches('a.>', 'a'));
  assert.ok(matches('*.b', 'x.b'));
});

test('positions', () => {
  assert.deepEqual(parsePosition('beginning'), { kind: 'beginning' });
  assert.deepEqual(parsePosition('new'), { kind: 'new' });
  assert.deepEqual(parsePosition('offset:7'), { kind: 'offset', offset: 7 });
  assert.deepEqual(parsePosition('after:7'), { kind: 'offset', offset: 8 });
  assert.deepEqual(parsePosition('last:3'), { kind: 'last', count: 3 });
  assert.deepEqual(parsePosition('time:2026-01-01T00:00:00Z'), { kind: 'time', time: Date.UTC(2026, 0, 1) });
  assert.deepEqual(parsePosition('time:1700000000000'), { kind: 'time', time: 1700000000000 });
});

test('human rendering escapes control bytes, C1 controls and invalid UTF-8, and keeps valid text', async () => {
  const { escapeText } = await import('../src/protocol/encode.js');
  assert.equal(escapeText(b('plain text')), 'plain text');
  assert.equal(escapeText(b('a\nb\r\tc\\d')), 'a\\nb\\r\\tc\\\\d');
  assert.equal(escapeText(b('\u001b[31mred')), '\\x1b[31mred');
  assert.equal(escapeText(b('caf\u00e9 \u2603 \u{1f600}')), 'caf\u00e9 \u2603 \u{1f600}');
  assert.equal(escapeText(Buffer.from([0xc2, 0x9b, 0x41])), '\\xc2\\x9bA');
  assert.equal(escapeText(Buffer.from([0xff, 0xc3, 0x28, 0xed, 0xa0, 0x80])), '\\xff\\xc3(\\xed\\xa0\\x80');
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      const out = escapeText(bytes);
      assert.ok(!/[\u0000-\u001f\u007f-\u009f]/.test(out), JSON.stringify(out));
    }),
    { numRuns: 3000 },
  );
});
