/**
 * Entry point of a probe worker: the same file is started as a worker thread
 * (`new Worker(...)`) or as a child process (`fork(...)`), and serves host.ts's protocol over
 * whichever channel it has.
 */
import { isMainThread, parentPort } from 'node:worker_threads';
import { serveHost, type FromHost, type ToHost } from './host.js';

if (!isMainThread && parentPort) {
  const port = parentPort;
  serveHost({
    send: (msg: FromHost) => port.postMessage(msg),
    on: (cb) => port.on('message', (m: ToHost) => cb(m)),
    onParentGone: () => {}, // a worker thread dies with its process
    done: () => port.close(),
  });
} else if (process.send) {
  const send = process.send.bind(process);
  serveHost({
    send: (msg: FromHost) => {
      if (process.connected) send(msg);
    },
    on: (cb) => process.on('message', (m: ToHost) => cb(m)),
    onParentGone: (cb) => process.once('disconnect', cb),
    done: () => {
      if (process.connected) process.disconnect();
    },
  });
} else {
  process.stderr.write('host-entry: start me as a worker thread or with child_process.fork()\n');
  process.exitCode = 2;
}
