/** `tcp`: time to establish a TCP connection to host:port. */
import net from 'node:net';
import { check, networkReason, ProbeError, registerKind, type Params } from '../registry.js';
import { monoUs } from '../time.js';

interface TcpParams extends Params {
  host: string;
  port: number;
}

export interface TcpValue {
  readonly host: string;
  readonly port: number;
  /** Connection time, ms. */
  readonly latencyMs: number;
  /** The address actually connected to. */
  readonly address: string;
}

registerKind<TcpParams, TcpValue>({
  name: 'tcp',
  description: 'connect to host:port and report the connection time (target=host:port)',
  positional: 'target',
  parse(params) {
    if (typeof params.target === 'string') return check.hostPort('tcp', params.target);
    return { host: check.string('tcp', params, 'host'), port: check.number('tcp', params, 'port', undefined, 1, 65535) };
  },
  run: ({ host, port }, ctx) =>
    new Promise<TcpValue>((resolve, reject) => {
      const start = monoUs();
      const socket = net.connect({ host, port });
      const fail = (err: ProbeError): void => {
        ctx.signal.removeEventListener('abort', onAbort);
        socket.destroy();
        reject(err);
      };
      const onAbort = (): void => fail(new ProbeError('timeout', `tcp ${host}:${port}: no connection within ${ctx.timeoutMs} ms`));
      if (ctx.signal.aborted) return onAbort();
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      socket.once('connect', () => {
        const latencyMs = (monoUs() - start) / 1000;
        ctx.signal.removeEventListener('abort', onAbort);
        const address = `${socket.remoteAddress ?? host}:${socket.remotePort ?? port}`;
        socket.destroy();
        resolve({ host, port, latencyMs, address });
      });
      socket.once('error', (err) => fail(new ProbeError(networkReason(err), `tcp ${host}:${port}: ${err.message}`, { cause: err })));
    }),
});
