#!/usr/bin/env node
// npm's install step: builds the record-checksum addon (native/record-crc.c) with node-gyp.
// The broker runs without it (src/native/addon.ts finds none: the file log falls back to JavaScript,
// durable publishes of 16 B cost ~10% more CPU, of 256 B ~30%), so a failed build warns and does not
// fail the install. FLUCTUAT_NATIVE_REQUIRED=1 makes it fail instead (CI: the fast path must exist).
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
// npm hands install scripts its bundled node-gyp; outside npm, one on PATH.
const gyp = process.env.npm_config_node_gyp;
const [cmd, args] = gyp ? [process.execPath, [gyp, 'rebuild']] : ['node-gyp', ['rebuild']];
const run = spawnSync(cmd, args, { cwd: here, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
if (run.status === 0) {
  console.log('fluctuat: built the native record checksums (native/build/Release/record_crc.node)');
} else {
  const why = run.error?.message ?? (run.stderr || run.stdout).trim().split('\n').slice(-8).join('\n');
  console.warn(`fluctuat: could not build the native record checksums; the broker uses JavaScript ones.\n${why}`);
  if (process.env.FLUCTUAT_NATIVE_REQUIRED === '1') process.exit(1);
}
