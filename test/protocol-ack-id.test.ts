import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { PACKED_MAX, ackIdText, packAckId, writePackedAckId } from '../src/protocol/ack-id.js';
import { startInProcess } from './helpers/inproc.js';
import { RawClient } from './helpers/raw.js';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-'.split('');
const id = (min: number, max: number) => fc.array(fc.constantFrom(...ALPHABET), { minLength: min, maxLength: max }).map((cs) => cs.join(''));

test('every ack id of up to 8 characters packs into an exact integer below 2^51 and writes back byte for byte', () => {
  const out = Buffer.alloc(40, 0x2e);
  fc.assert(
    fc.property(id(1, PACKED_MAX), fc.nat(8), (text, at) => {
      const line = Buffer.from(`PUB x ${text} - 5`);
      const packed = packAckId(line, 6, 6 + text.length);
      assert.ok(Number.isSafeInteger(packed) && packed >= 0 && packed < 2 ** 51, `${text} → ${packed}`);
      const end = writePackedAckId(out, at, packed);
      assert.equal(out.toString('latin1', at, end), text);
      assert.equal(ackIdText(packed), text);
    }),
    { numRuns: 3000 },
  );
  // The corners: the alphabet's first and last codes, leading zeros, the longest.
  for (const text of ['A', '-', '0', '007', '--------', 'AAAAAAAA', 'p1', '12345678']) {
    assert.equal(ackIdText(packAckId(Buffer.from(text), 0, text.length)), text);
  }
});

test('distinct ids pack to distinct numbers (ids that differ in length or in one character)', () => {
  fc.assert(
    fc.property(id(1, PACKED_MAX), id(1, PACKED_MAX), (a, b) => {
      fc.pre(a !== b);
      assert.notEqual(packAckId(Buffer.from(a), 0, a.length), packAckId(Buffer.from(b), 0, b.length));
    }),
    { numRuns: 3000 },
  );
  const all = new Set(['A', 'AA', 'AAA', 'B', 'BA', 'AB'].map((t) => packAckId(Buffer.from(t), 0, t.length)));
  assert.equal(all.size, 6);
});

test('ids that are empty, longer than 8 or hold a byte outside [A-Za-z0-9_-] do not pack', () => {
  for (const text of ['', '123456789', 'a'.repeat(32), 'a.b', 'a b', 'ñ', 'a\u0000']) {
    const buf = Buffer.from(text);
    assert.equal(packAckId(buf, 0, buf.length), -1, JSON.stringify(text));
  }
  assert.equal(ackIdText('a-long-ack-id-kept-as-a-string'), 'a-long-ack-id-kept-as-a-string');
  assert.equal(ackIdText(''), '');
});

for (const storage of ['memory', 'file'] as const) {
  test(`${storage} storage: ACK and ERR lines give back every ack id as it was sent, short (packed) or long`, async () => {
    const broker = await startInProcess({ storage, session: { maxPayload: 1024 } });
    try {
      const c = await RawClient.machine(broker.port);
      const ids = ['A', '0', '007', 'p1', 'a', '--', '_-_', 'Zz9', '12345678', '123456789', 'abcdefgh', 'abcdefghi', 'x'.repeat(32), 'k1'];
      // 'A' packs to 0, which must still be acknowledged. One write: the fast parser reads
      // them all ('-' alone means no ack id); and one id through the full parser (extra
      // spaces are not routine).
      c.send(ids.map((a, i) => `PUB ack.ids ${a} - ${String(i).length}\n${i}`).join('\n') + '\n');
      c.send('PUB  ack.ids  viaFull  -  2\nxx\n');
      for (const [i, a] of ids.entries()) await c.waitFor((f) => f.line === `ACK ${a} ${i + 1}`);
      await c.waitFor((f) => f.line === `ACK viaFull ${ids.length + 1}`);
      // Refused before storage (payload too large) and after a bad channel name: the ERR names the id.
      c.send('PUB ack.ids tooBig1 - 2000\n' + 'z'.repeat(2000) + '\n');
      await c.waitFor((f) => f.line.startsWith('ERR tooBig1 PAYLOAD_TOO_LARGE '));
      c.send('PUB ack.ids longer-than-eight-too-big - 2000\n' + 'z'.repeat(2000) + '\n');
      await c.waitFor((f) => f.line.startsWith('ERR longer-than-eight-too-big PAYLOAD_TOO_LARGE '));
      const acks = c.lines().filter((l) => l.startsWith('ACK '));
      assert.equal(acks.length, ids.length + 1, acks.join('\n'));
      await c.close();
    } finally {
      await broker.close();
    }
  });
}
