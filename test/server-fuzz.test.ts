import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { parseHuman, parseMachine } from '../src/protocol/commands.js';
import { startInProcess } from './helpers/inproc.js';
import { RawClient } from './helpers/raw.js';

/** Lines that would change the session itself (close it, switch mode, wait on a request) are not fuzzed. */
function harmless(line: Buffer, human: boolean): boolean {
  // A refused PUB whose size is readable has its payload skipped: it would swallow the sentinel.
  if (!human && /^PUB\s+\S+\s+\S+\s+\S+\s+\d{1,12}\s*$/.test(line.toString('latin1'))) return false;
  try {
    const cmd = (human ? parseHuman : parseMachine)(line);
    return !['quit', 'mode', 'req', 'pub', 'sub', 'unsub', 'name', 'help', 'ping'].includes(cmd.verb);
  } catch {
    return true;
  }
}

function expectsError(line: Buffer, human: boolean): boolean {
  try {
    (human ? parseHuman : parseMachine)(line);
    return false;
  } catch {
    return true;
  }
}

test('random and malformed lines never crash the broker; each bad line gets exactly one error', async () => {
  const broker = await startInProcess({ session: { maxLine: 256 } });
  try {
    for (const human of [true, false]) {
      const c = human ? await RawClient.connect(broker.port) : await RawClient.machine(broker.port);
      const errorPrefix = human ? '-ERR ' : 'ERR ';
      let sentinel = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
            fc.string({ maxLength: 80 }).map((s) => Buffer.from(s)),
            fc.constantFrom('pub', 'sub', 'PUB', 'SUB', 'channels', 'CHANNELS', 'help', 'ping').chain((verb) =>
              fc.array(fc.oneof(fc.constantFrom('a', 'a.b', '*', '>', 'a..', '-', '0', '99999999', 'from=x', 'queue=', 'from=last:2'), fc.string({ maxLength: 6 })), { maxLength: 5 })
                .map((args) => Buffer.from([verb, ...args].join(' '))),
            ),
          ),
          async (raw) => {
            // One line: no newline inside; lines that would end the session are skipped.
            const line = Buffer.from(raw.filter((b) => b !== 0x0a));
            const trimmed = line.length && line[line.length - 1] === 0x0d ? line.subarray(0, -1) : line;
            if (trimmed.length <= 256 && !harmless(trimmed, human)) return;
            const bad = trimmed.length > 256 || expectsError(trimmed, human);
            const mark = `z${++sentinel}`;
            const from = c.frames.length;
            c.send(Buffer.concat([line, Buffer.from(human ? `\nping ${mark}\n` : `\nPING ${mark}\n`)]));
            await c.waitFor((f) => f.line.startsWith(human ? 'pong ' : `PONG ${mark} `), 10_000, from);
            const answers = c.frames.slice(from).map((f) => f.line);
            const errors = answers.filter((l) => l.startsWith(errorPrefix));
            assert.equal(errors.length, bad ? 1 : 0, `line ${JSON.stringify(line.toString('latin1'))} got ${JSON.stringify(answers)}`);
            c.frames.length = 0;
          },
        ),
        { numRuns: 2500, seed: Number(process.env.FUZZ_SEED ?? Date.now()) },
      );
      await c.close();
    }
    // Random binary garbage, including sized frames with wrong sizes, on fresh connections.
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uint8Array({ minLength: 1, maxLength: 2000 }), { minLength: 1, maxLength: 5 }), fc.boolean(), async (chunks, machine) => {
        const c = machine ? await RawClient.machine(broker.port) : await RawClient.connect(broker.port);
        for (const chunk of chunks) c.send(Buffer.from(chunk));
        c.send(machine ? '\n\nPING end\n' : '\n\nping\n');
        await c.close();
      }),
      { numRuns: 300 },
    );
    // The broker is still up and serving.
    const ok = await RawClient.machine(broker.port);
    ok.pub('after.fuzz', 'still here', 'a');
    await ok.waitFor((f) => f.line === 'ACK a 1');
    await ok.close();
  } finally {
    await broker.close();
  }
});
