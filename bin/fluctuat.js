#!/usr/bin/env node
// Thin launcher: the CLI is compiled to dist/ by `npm run build`.
// Each channel's fsync runs on libuv's thread pool (4 threads by default); size it before
// anything touches the file system, so many channels can group-commit at once.
process.env.UV_THREADPOOL_SIZE ??= '16';
const { main } = await import('../dist/src/cli/main.js');
process.exitCode = await main(process.argv);
