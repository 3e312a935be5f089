import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ErrorCode } from '../src/protocol/errors.js';
import { HUMAN_HELP } from '../src/protocol/commands.js';
import { ROOT } from './helpers/broker.js';

const protocol = fs.readFileSync(path.join(ROOT, 'docs', 'protocol.md'), 'utf8');

test('docs/protocol.md lists every error code', () => {
  for (const code of Object.values(ErrorCode)) assert.ok(protocol.includes(`| \`${code}\` |`), `${code} is not documented`);
});

test('docs/protocol.md documents every human command', () => {
  for (const verb of Object.keys(HUMAN_HELP)) assert.ok(protocol.includes(`| \`${verb}`), `${verb} is not documented`);
});

test('the README starts with the two commands, and .ci/run runs the README test command', () => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const ci = fs.readFileSync(path.join(ROOT, '.ci', 'run'), 'utf8');
  const block = /```sh\n([^`]*)```/.exec(readme)![1]!;
  assert.match(block, /npm run serve/);
  assert.match(block, /npm test/);
  assert.match(ci, /^npm test$/m);
});
