#!/usr/bin/env node
// Thin launcher: the CLI is compiled to dist/ by `npm run build`.
// `serve` first starts again, in this same process, with what the broker needs from its first
// instruction (an old-generation floor for V8, libuv's thread pool of 16 for group commit):
// src/server/start-flags.ts says why. It returns only when it goes on without them, and the
// broker's startup line then says why.
if (process.argv[2] === 'serve') (await import('../dist/src/server/start-flags.js')).restartWithStartFlags();
const { main } = await import('../dist/src/cli/main.js');
process.exitCode = await main(process.argv);
