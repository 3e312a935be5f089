import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { SubjectIndex } from '../src/core/subject-index.js';
import { matches } from '../src/protocol/names.js';

test('the index agrees with the reference matcher on random patterns and channels', () => {
  const token = fc.constantFrom('a', 'b', 'c');
  const channel = fc.array(token, { minLength: 1, maxLength: 4 }).map((t) => t.join('.'));
  const pattern = fc
    .tuple(fc.array(fc.constantFrom('a', 'b', 'c', '*'), { minLength: 1, maxLength: 4 }), fc.boolean())
    .map(([t, rest]) => (rest ? [...t.slice(0, -1), '>'] : t).join('.'));
  fc.assert(
    fc.property(fc.array(pattern, { maxLength: 12 }), fc.array(channel, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 6 }), (patterns, channels, removals) => {
      const index = new SubjectIndex<number>();
      const live = new Map<number, string>();
      patterns.forEach((p, i) => {
        index.add(p, i);
        live.set(i, p);
      });
      for (const r of removals) {
        if (patterns.length === 0) break;
        const i = r % patterns.length;
        assert.equal(index.remove(patterns[i]!, i), live.delete(i));
      }
      for (const c of channels) {
        const got = [...index.match(c)].sort((x, y) => x - y);
        const want = [...live].filter(([, p]) => matches(p, c)).map(([i]) => i).sort((x, y) => x - y);
        assert.deepEqual(got, want, `channel ${c}`);
      }
      assert.equal(index.size, live.size);
    }),
    { numRuns: 2000 },
  );
});
