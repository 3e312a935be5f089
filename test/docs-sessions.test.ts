import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT } from './helpers/broker.js';
import { startInProcess } from './helpers/inproc.js';
import { RawClient, until } from './helpers/raw.js';

/** The ```session blocks of a document: client lines start with "> ", the rest are answers. */
function sessions(file: string): { sends: string[]; expect: string[] }[][] {
  const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
  return [...text.matchAll(/```session\n([\s\S]*?)```/g)].map((m) => {
    const steps: { sends: string[]; expect: string[] }[] = [];
    for (const line of m[1]!.trimEnd().split('\n')) {
      if (line.startsWith('> ')) {
        const last = steps.at(-1);
        // Consecutive client lines (a PUB header and its payload) go out together.
        if (last && last.expect.length === 0) last.sends.push(line.slice(2));
        else steps.push({ sends: [line.slice(2)], expect: [] });
      } else steps.at(-1)!.expect.push(line);
    }
    return steps;
  });
}

/** Clock times, µs timestamps and ISO times differ from run to run. */
function normalise(line: string): string {
  return line
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z/g, '<iso>')
    .replace(/\b\d\d:\d\d:\d\d\b/g, '<clock>')
    .replace(/\b\d{13,}\b/g, '<µs>')
    .replace(/"(rttUs|offsetUs)":-?\d+/g, '"$1":<µs>')
    .replace(/(127\.0\.0\.1|::1):\d+/g, '$1:<port>');
}

for (const doc of ['docs/protocol.md']) {
  test(`every session in ${doc} runs as written`, async () => {
    const blocks = sessions(doc);
    assert.ok(blocks.length >= 3);
    for (const steps of blocks) {
      const broker = await startInProcess();
      try {
        const c = await RawClient.connect(broker.port);
        for (const step of steps) {
          const from = c.frames.length;
          c.send(step.sends.join('\n'));
          // A MSG frame is one frame for two lines (header and payload).
          const count = (): number => c.frames.slice(from).reduce((n, f) => n + (f.payload ? 2 : 1), 0);
          await until(() => count() >= step.expect.length, `${step.expect.length} answers to ${JSON.stringify(step.sends)}`, 5000);
          await new Promise((r) => setTimeout(r, 30)); // nothing more may come
          const got = c.frames.slice(from).flatMap((f) => (f.payload ? [f.line, f.payload.toString()] : [f.line]));
          assert.deepEqual(got.map(normalise), step.expect.map(normalise), `after ${JSON.stringify(step.sends)}`);
        }
        await c.close();
      } finally {
        await broker.close();
      }
    }
  });
}
