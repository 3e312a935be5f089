// The broker's heap pad (native/record-crc.c `heapPad`, src/native/addon.ts `padHeap`): glibc
// takes the setting, bad values are refused before anything opens, and the broker says what it
// applied. Whether it makes socket reads cheaper is a benchmark's question (npm run bench:relay).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { DEFAULT_HEAP_PAD, padHeap, recordCrcAddon, checksumImplementation } from '../src/native/addon.js';
import { ROOT, startBroker } from './helpers/broker.js';
import { assertConsoleExample, assertStartRefused } from './helpers/startup.js';

const run = promisify(execFile);
const addon = recordCrcAddon;
const noAddon = addon === null ? `the addon is not loaded here: ${checksumImplementation()}` : false;
const glibc = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime;

test('heapPad: glibc takes the pad; a value out of range is a RangeError', { skip: noAddon }, () => {
  if (glibc) assert.equal(addon!.heapPad(DEFAULT_HEAP_PAD), true, `mallopt(M_TOP_PAD) refused on glibc ${glibc}`);
  else assert.equal(addon!.heapPad(DEFAULT_HEAP_PAD), false);
  for (const bad of [-1, 2 ** 31, Number.NaN]) assert.throws(() => addon!.heapPad(bad), RangeError, String(bad));
  assert.throws(() => (addon!.heapPad as (v: unknown) => boolean)('16m'), RangeError);
  assert.throws(() => (addon!.heapPad as () => boolean)(), RangeError);
});

test('padHeap: 16 MiB unless FLUCTUAT_HEAP_PAD says otherwise; 0 leaves glibc alone; garbage throws', { skip: noAddon }, () => {
  const applied = glibc ? /^16777216 bytes kept free/ : /not glibc/;
  assert.match(padHeap({}), applied);
  assert.match(padHeap({ FLUCTUAT_HEAP_PAD: '' }), applied);
  assert.match(padHeap({ FLUCTUAT_HEAP_PAD: '1048576' }), glibc ? /^1048576 bytes kept free/ : /not glibc/);
  assert.match(padHeap({ FLUCTUAT_HEAP_PAD: '0' }), /glibc's own \(FLUCTUAT_HEAP_PAD=0\)/);
  for (const bad of ['16m', '-1', '1.5', '2147483648', 'abc']) {
    assert.throws(() => padHeap({ FLUCTUAT_HEAP_PAD: bad }), (err: Error) => err instanceof RangeError && err.message.includes(`FLUCTUAT_HEAP_PAD=${bad}:`), bad);
  }
  // Back to the default for the rest of this process.
  padHeap({});
});

test('serve: a bad FLUCTUAT_HEAP_PAD stops the start with its name; a good one is in the startup log', async () => {
  await assertStartRefused({ FLUCTUAT_HEAP_PAD: '64k' }, /cannot start: FLUCTUAT_HEAP_PAD=64k: expected a whole number of bytes/);

  const broker = await startBroker({ storage: 'memory', env: { FLUCTUAT_HEAP_PAD: '8388608' } });
  try {
    const line = broker.logs.find((l) => l.msg === 'heap pad for socket reads');
    assert.ok(line, `a heap pad line in ${JSON.stringify(broker.logs.map((l) => l.msg))}`);
    if (noAddon) assert.match(String(line.heapPad), /native addon/);
    else assert.match(String(line.heapPad), glibc ? /^8388608 bytes kept free/ : /not glibc/);
  } finally {
    await broker.dispose();
  }
});

test('the console example in docs/operations.md prints what it shows', { skip: noAddon || (!glibc && 'not glibc') }, () =>
  assertConsoleExample('### Memory kept for socket reads', 2),
);

/** Minor page faults of a child that allocates, fills and frees 2,000 blocks of 1 MiB. */
async function faultsOfLargeBlocks(pad: boolean): Promise<number> {
  const script = `
    const addon = require(${JSON.stringify(path.join(ROOT, 'native', 'build', 'Release', 'record_crc.node'))});
    if (${pad}) addon.heapPad(16 * 1024 * 1024);
    const before = process.resourceUsage().minorPageFault;
    const keep = [];
    for (let i = 0; i < 2000; i++) {
      keep.push(Buffer.allocUnsafeSlow(1024 * 1024).fill(1));
      if (keep.length > 8) keep.shift();
      if (i % 50 === 0) globalThis.gc();
    }
    console.log(process.resourceUsage().minorPageFault - before);`;
  const { stdout } = await run(process.execPath, ['--expose-gc', '-e', script]);
  return Number(stdout.trim());
}

// Setting the pad turns off glibc's sliding mmap threshold; left at 128 KiB, every such block
// was mapped afresh (~256 faults each, ~512,000 here) and the file log's replays ran at half
// speed. heapPad fixes the threshold at 32 MiB: no more faults than glibc's own behaviour.
test('heapPad keeps blocks of 1 MiB in the heap: no more page faults than without it', { skip: noAddon || (!glibc && 'not glibc') }, async () => {
  const without = await faultsOfLargeBlocks(false);
  const withPad = await faultsOfLargeBlocks(true);
  assert.ok(without > 0 && withPad > 0, `faults counted: ${without}, ${withPad}`);
  assert.ok(withPad < 2 * without, `with the pad ${withPad} minor faults, without ${without}`);
});
