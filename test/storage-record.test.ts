import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { crc32 } from '../src/storage/filelog/crc.js';
import { segmentBase, segmentFileName, isChannelName } from '../src/storage/filelog/layout.js';
import {
  HEADER_BYTES,
  MAGIC_BYTES,
  decodeRecord,
  headerProblem,
  recordLength,
  recordProblem,
} from '../src/storage/filelog/record.js';
import { ChunkPool, Stage } from '../src/storage/filelog/stage.js';
import { newMessage, payloadOf, storedMessage, type StoredMessage } from '../src/storage/engine.js';

function message(offset: number, payload: Buffer, publisher = 'probe-7', reply = ''): StoredMessage {
  return storedMessage('c', offset, 1_700_000_000_000.25 + offset, publisher, reply, payload);
}

/** Encodes messages through the stage exactly as a write would, into one contiguous buffer. */
function encode(messages: StoredMessage[]): Buffer {
  const stage = new Stage(new ChunkPool());
  for (const m of messages) stage.add(newMessage(m.timestamp, m.publisher, m.reply, payloadOf(m)), m.offset, undefined);
  return Buffer.concat(stage.take().iovecs);
}

test('crc32 agrees with zlib for every size and when chained', () => {
  const data = Buffer.alloc(5000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7919 + 13) & 0xff;
  for (const len of [0, 1, 7, 8, 9, 31, 64, 383, 384, 385, 1000, 4999]) {
    assert.equal(crc32(data, 1, 1 + len), zlibCrc32(data.subarray(1, 1 + len)), `length ${len}`);
  }
  const seed = zlibCrc32(data.subarray(0, 100));
  assert.equal(crc32(data, 100, 150, seed), zlibCrc32(data.subarray(0, 150)));
  assert.equal(crc32(data, 100, 1100, seed), zlibCrc32(data.subarray(0, 1100)));
});

test('records round-trip: small, empty, binary and large (not inlined) payloads, UTF-8 names', () => {
  const big = Buffer.alloc(10_000, 0xab);
  const messages = [
    message(1, Buffer.from('hello')),
    message(2, Buffer.alloc(0)),
    message(3, Buffer.from([0, 10, 13, 255, 0])),
    message(4, big, 'ünïcödé publisher', '_INBOX.reply.42'),
    message(5, Buffer.from('after the big one')),
  ];
  const buf = encode(messages);
  let at = 0;
  for (const m of messages) {
    assert.equal(headerProblem(buf, at), null);
    const length = recordLength(buf, at);
    assert.equal(recordProblem(buf, at, length, m.offset), null);
    const back = decodeRecord(buf, at, length, 'c');
    const { data: _d, start: _s, end: _e, ...fields } = back;
    const { data: _md, start: _ms, end: _me, ...expected } = m;
    assert.deepEqual(fields, expected);
    assert.deepEqual(payloadOf(back), payloadOf(m));
    at += length;
  }
  assert.equal(at, buf.length);
  assert.deepEqual(buf.subarray(0, 4), MAGIC_BYTES);
});

test('a record is exactly header + names + payload bytes', () => {
  const buf = encode([message(1, Buffer.from('0123456789'), 'abc', 'de')]);
  assert.equal(buf.length, HEADER_BYTES + 3 + 2 + 10);
  assert.equal(recordLength(buf, 0), buf.length);
});

test('damage is named: magic, length, checksum, offset', () => {
  const good = encode([message(9, Buffer.from('payload'))]);
  const length = good.length;

  const magic = Buffer.from(good);
  magic[0] = 0;
  assert.match(headerProblem(magic, 0) ?? '', /bad magic/);

  const len = Buffer.from(good);
  len.writeUInt32LE(3, 4);
  assert.match(headerProblem(len, 0) ?? '', /bad record length 3/);

  for (const i of [12, 20, 28, HEADER_BYTES, length - 1]) {
    const flipped = Buffer.from(good);
    flipped[i]! ^= 0x01;
    assert.match(recordProblem(flipped, 0, length, 9) ?? '', /checksum mismatch/, `byte ${i}`);
  }
  assert.match(recordProblem(good, 0, length, 8) ?? '', /offset 9 where 8 was expected/);
  assert.equal(recordProblem(good, 0, length, 0), null, 'offset not checked when 0 is expected');
});

test('names that are too long are refused before anything is staged', () => {
  const stage = new Stage(new ChunkPool());
  assert.throws(() => stage.add(newMessage(1, 'p'.repeat(70_000), '', Buffer.from('x')), 1, undefined), RangeError);
  assert.equal(stage.empty, true);
});

test('segment and channel names', () => {
  assert.equal(segmentFileName(42), '00000000000000000042.seg');
  assert.equal(segmentBase('00000000000000000042.seg'), 42);
  for (const bad of ['42.seg', '00000000000000000000.seg', '0000000000000000004x.seg', '00000000000000000042.seg.bak']) {
    assert.equal(segmentBase(bad), 0, bad);
  }
  for (const ok of ['this', 'probes.eu.clock', 'a_b-c.D9']) assert.ok(isChannelName(ok), ok);
  for (const bad of ['', '.', '..', 'a..b', '.a', 'a.', 'a/b', 'a b', 'x'.repeat(256)]) assert.ok(!isChannelName(bad), bad);
});
