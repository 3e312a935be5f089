import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Framer, LASTING_PAYLOAD, type FrameHandler } from '../src/protocol/framer.js';

type Event = ['line', string] | ['payload', string] | ['error', string];

/** A framer that records what it sees; PUB lines announce a payload of their last word. */
function recorder(maxLine = 64, maxPayload = 1024): { framer: Framer; events: Event[] } {
  const events: Event[] = [];
  const handler: FrameHandler = {
    onLine(buf, start, end) {
      const text = buf.toString('latin1', start, end);
      events.push(['line', text]);
      const m = /^PUB \S+ (\d+)$/.exec(text);
      if (m) framer.expectPayload(Number(m[1]), Number(m[1]) > maxPayload);
    },
    onPayload(buf, start, end) {
      events.push(['payload', buf.toString('latin1', start, end)]);
    },
    onError(code) {
      events.push(['error', code]);
    },
  };
  const framer = new Framer(handler, { maxLine, maxPayload });
  return { framer, events };
}

function feedWhole(input: string, maxLine?: number): Event[] {
  const r = recorder(maxLine);
  r.framer.push(Buffer.from(input, 'latin1'));
  return r.events;
}

function feedBytewise(input: string, maxLine?: number): Event[] {
  const r = recorder(maxLine);
  const b = Buffer.from(input, 'latin1');
  for (let i = 0; i < b.length; i++) r.framer.push(b.subarray(i, i + 1));
  return r.events;
}

test('lines with \\n and \\r\\n, split at every byte, give the same events', () => {
  const input = 'sub this\r\npub this nada\nping\n\n';
  const expected: Event[] = [['line', 'sub this'], ['line', 'pub this nada'], ['line', 'ping'], ['line', '']];
  assert.deepEqual(feedWhole(input), expected);
  assert.deepEqual(feedBytewise(input), expected);
});

test('a sized payload is binary-safe: newlines inside it do not end it', () => {
  const input = 'PUB a 5\na\nb\r\n\nPING\n';
  const expected: Event[] = [['line', 'PUB a 5'], ['payload', 'a\nb\r\n'], ['line', 'PING']];
  assert.deepEqual(feedWhole(input), expected);
  assert.deepEqual(feedBytewise(input), expected);
});

test('an empty payload and a payload ended by \\r\\n', () => {
  assert.deepEqual(feedWhole('PUB a 0\n\nPUB a 2\nhi\r\nX\n'), [
    ['line', 'PUB a 0'], ['payload', ''], ['line', 'PUB a 2'], ['payload', 'hi'], ['line', 'X'],
  ]);
});

test('a payload not followed by a newline is BAD_FRAME: the frame is discarded and the framer resynchronises', () => {
  const expected: Event[] = [['line', 'PUB a 2'], ['error', 'BAD_FRAME'], ['line', 'NEXT']];
  assert.deepEqual(feedWhole('PUB a 2\nhiXYZ\nNEXT\n'), expected);
  assert.deepEqual(feedBytewise('PUB a 2\nhiXYZ\nNEXT\n'), expected);
});

test('an overlong line is refused as soon as it passes the limit, even across split reads', () => {
  const long = 'x'.repeat(200);
  const expected: Event[] = [['error', 'LINE_TOO_LONG'], ['line', 'ok']];
  assert.deepEqual(feedWhole(`${long}\nok\n`), expected);
  assert.deepEqual(feedBytewise(`${long}\nok\n`), expected);
  // Split reads: the error comes before the newline ever arrives, and nothing is buffered.
  const r = recorder(64);
  for (let i = 0; i < 1000; i++) r.framer.push(Buffer.from('y'.repeat(100)));
  assert.deepEqual(r.events, [['error', 'LINE_TOO_LONG']]);
  r.framer.push(Buffer.from('\nping\n'));
  assert.deepEqual(r.events, [['error', 'LINE_TOO_LONG'], ['line', 'ping']]);
});

test('an oversize payload is skipped without being delivered', () => {
  const big = 'z'.repeat(2000);
  assert.deepEqual(feedWhole(`PUB a 2000\n${big}\nPING\n`), [['line', 'PUB a 2000'], ['line', 'PING']]);
  assert.deepEqual(feedBytewise(`PUB a 2000\n${big}\nPING\n`), [['line', 'PUB a 2000'], ['line', 'PING']]);
});

test('property: any chunking of any input yields the same events as one push', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          fc.string({ maxLength: 80 }).map((s) => s.replace(/\n/g, ' ') + '\n'),
          fc.uint8Array({ maxLength: 40 }).map((b) => `PUB c ${b.length}\n${Buffer.from(b).toString('latin1')}\n`),
          fc.uint8Array({ maxLength: 100 }).map((b) => Buffer.from(b).toString('latin1')),
        ),
        { maxLength: 20 },
      ),
      fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 20 }),
      (parts, cuts) => {
        const input = Buffer.from(parts.join(''), 'latin1');
        const whole = recorder();
        whole.framer.push(input);
        const split = recorder();
        let i = 0;
        let k = 0;
        while (i < input.length) {
          const n = cuts[k++ % cuts.length]!;
          split.framer.push(input.subarray(i, i + n));
          i += n;
        }
        assert.deepEqual(split.events, whole.events);
        for (const [kind, text] of whole.events) if (kind === 'line') assert.ok(text.length <= 64);
      },
    ),
    { numRuns: 3000 },
  );
});

test('property: a payload handed out lasting (every large one) keeps its bytes: a view kept past the call still holds them after any later input', () => {
  const sizes = [0, 1, LASTING_PAYLOAD - 1, LASTING_PAYLOAD, LASTING_PAYLOAD + 1, 3 * LASTING_PAYLOAD + 7];
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.constantFrom(...sizes), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
      fc.array(fc.integer({ min: 1, max: 40_000 }), { minLength: 1, maxLength: 8 }),
      (payloads, cuts) => {
        const frames = payloads.map(([size, fill]) => Buffer.concat([Buffer.from(`PUB c ${size}\n`), Buffer.alloc(size, fill), Buffer.from('\nline\n')]));
        const input = Buffer.concat(frames);
        const kept: { view: Buffer; size: number; fill: number }[] = [];
        let next = 0;
        const framer: Framer = new Framer(
          {
            onLine(buf, start, end) {
              const m = /^PUB c (\d+)$/.exec(buf.toString('latin1', start, end));
              if (m) framer.expectPayload(Number(m[1]));
            },
            onPayload(buf, start, end, lasting) {
              const [size, fill] = payloads[next++]!;
              if (size >= LASTING_PAYLOAD) assert.ok(lasting, `payload of ${size} bytes`);
              // Keep a view when lasting, as the broker does; otherwise the bytes must be copied now.
              kept.push({ view: lasting ? buf.subarray(start, end) : Buffer.from(buf.subarray(start, end)), size, fill });
            },
            onError(code, message) {
              assert.fail(`${code} ${message}`);
            },
          },
          { maxLine: 64, maxPayload: 1 << 20 },
        );
        // Each pushed chunk is a fresh buffer, as a socket read is.
        let i = 0;
        let k = 0;
        while (i < input.length) {
          const n = cuts[k++ % cuts.length]!;
          framer.push(Buffer.from(input.subarray(i, i + n)));
          i += n;
        }
        assert.equal(kept.length, payloads.length);
        for (const { view, size, fill } of kept) assert.ok(view.equals(Buffer.alloc(size, fill)), `payload of ${size} bytes filled with ${fill} changed`);
      },
    ),
    { numRuns: 300 },
  );
});
