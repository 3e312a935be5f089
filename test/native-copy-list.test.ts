// Copies noted now and made later in one native call (src/native/copy-list.ts): every noted
// copy is made, byte for byte as Buffer#copy would.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { checksumImplementation } from '../src/native/addon.js';
import { CopyList } from '../src/native/copy-list.js';

const noAddon = CopyList.native ? false : `the addon is not loaded here: ${checksumImplementation()}`;

const pattern = (n: number, seed: number): Buffer => {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 131 + seed * 17) & 0xff;
  return b;
};

test('a copy list makes every noted copy, across more sources than one native call takes and more copies than its first table', { skip: noAddon }, () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ source: fc.integer({ min: 0, max: 599 }), from: fc.integer({ min: 0, max: 200 }), n: fc.integer({ min: 0, max: 300 }) }), { minLength: 1, maxLength: 900 }),
      fc.boolean(),
      (copies, sameSourceRuns) => {
        const sources = Array.from({ length: 600 }, (_, i) => pattern(500, i));
        const list = new CopyList();
        const dst = Buffer.alloc(copies.reduce((n, c) => n + c.n, 0));
        const expected = Buffer.alloc(dst.length);
        let at = 0;
        copies.forEach((c, i) => {
          // Runs of one source, as a chunk's payloads, or a new source for every copy.
          const src = sources[sameSourceRuns ? Math.floor(i / 7) % 600 : c.source]!;
          src.copy(expected, at, c.from, c.from + c.n);
          assert.equal(list.note(dst, at, src, c.from, c.from + c.n), at + c.n);
          at += c.n;
        });
        list.make();
        assert.equal(list.pending, 0);
        assert.deepEqual(dst, expected);
      },
    ),
    { numRuns: 60 },
  );
});

test('a copy list noted for another destination makes the pending copies first, each into its own buffer', { skip: noAddon }, () => {
  const src = pattern(400, 3);
  const [a, b] = [Buffer.alloc(300), Buffer.alloc(300)];
  const list = new CopyList();
  list.note(a, 0, src, 0, 100);
  list.note(a, 100, src, 200, 300);
  assert.equal(list.pending, 2);
  list.note(b, 10, src, 50, 250);
  assert.equal(list.pending, 1, "a's copies were made when b's came");
  assert.deepEqual(a.subarray(0, 200), Buffer.concat([src.subarray(0, 100), src.subarray(200, 300)]));
  assert.ok(b.every((x) => x === 0), "b's copy waits for make");
  list.make();
  assert.deepEqual(b.subarray(10, 210), src.subarray(50, 250));
});
