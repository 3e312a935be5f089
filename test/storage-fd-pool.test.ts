import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FdPool, type PooledFile } from '../src/storage/filelog/fd-pool.js';

/** A descriptor as the pool sees it: evictable while idle; its close goes through the pool. */
function file(pool: FdPool, name: string, closedNames: string[]): PooledFile {
  const f: PooledFile = {
    evictable: true,
    close: async () => {
      pool.closing(f);
      closedNames.push(name);
      await Promise.resolve();
      pool.closed();
    },
  };
  return f;
}

async function open(pool: FdPool, f: PooledFile): Promise<void> {
  await pool.reserve();
  pool.opened(f);
}

test('fd pool: a full pool evicts the least recently used descriptor; touching the newest again changes nothing', async () => {
  const closed: string[] = [];
  const pool = new FdPool(3);
  const [a, b, c] = ['a', 'b', 'c'].map((n) => file(pool, n, closed)) as [PooledFile, PooledFile, PooledFile];
  await open(pool, a);
  await open(pool, b);
  await open(pool, c);
  pool.touch(c); // already the newest
  pool.touch(a); // now b, c, a
  pool.touch(a);
  const d = file(pool, 'd', closed);
  await open(pool, d); // waits for b's close
  assert.deepEqual(closed, ['b']);
  pool.touch(c); // a, d, c
  const e = file(pool, 'e', closed);
  await open(pool, e);
  assert.deepEqual(closed, ['b', 'a']);
  // The newest closed: a touch of it moves nothing back in, and the next touch still counts.
  await e.close();
  pool.touch(e);
  assert.equal(pool.size, 2);
  pool.touch(d); // c, d
  await open(pool, file(pool, 'f', closed));
  await open(pool, file(pool, 'g', closed));
  assert.deepEqual(closed, ['b', 'a', 'e', 'c']);
  assert.equal(pool.waits, 3);
  assert.equal(pool.evictions, 3);
});
