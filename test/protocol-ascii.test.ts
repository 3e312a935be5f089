import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { copyAll, copyBytes, decimalLength, writeDecimal } from '../src/protocol/ascii.js';
import { machineDelivery } from '../src/protocol/encode.js';
import { storedMessage } from '../src/storage/engine.js';

test('writeDecimal and decimalLength agree with String() for every integer up to 2^53', () => {
  const buf = Buffer.alloc(32, 0x78);
  fc.assert(
    fc.property(fc.oneof(fc.nat(), fc.maxSafeNat(), fc.constantFrom(0, 9, 10, 99_999_999, 100_000_000, 2 ** 31, 2 ** 53 - 1)), fc.nat(8), (n, at) => {
      const end = writeDecimal(buf, at, n);
      assert.equal(buf.toString('latin1', at, end), String(n));
      assert.equal(decimalLength(n), String(n).length);
    }),
    { numRuns: 2000 },
  );
});

test('the shared delivery bytes are the documented frame after the sid, tenant prefix removed', () => {
  const msg = storedMessage('_T.acme.probes.rtt', 42, 1_763_900_000_123.456, 'alice/p1', '_T.acme._INBOX.x.1', Buffer.from('hello'));
  assert.equal(machineDelivery(msg).toString('latin1'), ' probes.rtt 42 1763900000123456 alice/p1 _INBOX.x.1 5\nhello\n');
  assert.equal(machineDelivery({ ...msg, reply: '', offset: 0 }).toString('latin1'), ' probes.rtt 0 1763900000123456 alice/p1 - 5\nhello\n');
});

test('consecutive deliveries that share some of time, publisher and reply are each encoded whole (the encoder keeps what repeats)', () => {
  const stamps = [1_763_900_000_123.456, 1_763_900_000_123.457, 5];
  const publishers = ['alice/p1', 'bob', 'x'.repeat(300), ''];
  const replies = ['', '_INBOX.a', 'r'.repeat(200)];
  const message = fc.record({
    t: fc.nat(stamps.length - 1),
    p: fc.nat(publishers.length - 1),
    r: fc.nat(replies.length - 1),
    offset: fc.nat(),
    payload: fc.uint8Array({ maxLength: 40 }),
  });
  fc.assert(
    fc.property(fc.array(message, { minLength: 1, maxLength: 30 }), (messages) => {
      for (const m of messages) {
        // The payload as a range of a larger buffer, as the drivers hand it over.
        const around = Buffer.concat([Buffer.alloc(m.offset % 7, 0xee), Buffer.from(m.payload), Buffer.alloc(3, 0xee)]);
        const start = m.offset % 7;
        const msg = { channel: 'probes.rtt', offset: m.offset, timestamp: stamps[m.t]!, publisher: publishers[m.p]!, reply: replies[m.r]!, data: around, start, end: start + m.payload.length };
        const head = ` probes.rtt ${m.offset} ${Math.round(msg.timestamp * 1000)} ${msg.publisher} ${msg.reply || '-'} ${m.payload.length}\n`;
        assert.deepEqual(machineDelivery(msg), Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(m.payload), Buffer.from('\n')]));
      }
    }),
    { numRuns: 500 },
  );
});

test('copyAll and copyBytes copy exactly the bytes asked for, at every size around their loop/native thresholds', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(40), fc.nat(200), fc.nat(200), (bytes, at, a, b) => {
      const src = Buffer.from(bytes);
      const from = Math.min(a, b, src.length);
      const to = Math.min(Math.max(a, b), src.length);
      const out = Buffer.alloc(300, 0xee);
      const expected = Buffer.alloc(300, 0xee);
      assert.equal(copyAll(out, at, src), at + src.length);
      src.copy(expected, at);
      assert.deepEqual(out, expected);
      assert.equal(copyBytes(out, 1, src, from, to), 1 + to - from);
      src.copy(expected, 1, from, to);
      assert.deepEqual(out, expected);
    }),
    { numRuns: 2000 },
  );
});
