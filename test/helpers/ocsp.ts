/**
 * OCSP for tests: openssl's CA database (index.txt) lines, `openssl ocsp` as a responder (a
 * child process on a free port, or offline from a request file), and a counting proxy in front
 * of a responder, so that a test can tell how many requests reached it and can restart it.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** openssl's index time: YYMMDDHHMMSSZ. */
export function opensslTime(d: Date): string {
  return d.toISOString().replace(/^\d\d(\d\d)-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d).*$/, '$1$2$3$4$5$6Z');
}

/** A line of openssl's CA database: `V`alid, or `R`evoked at a time (with a reason). */
export function indexLine(certPem: string | Buffer, revoked?: { at: Date; reason?: string }): string {
  const cert = new X509Certificate(certPem);
  const subject = `/${cert.subject.split('\n').join('/')}`;
  const when = revoked ? `${opensslTime(revoked.at)}${revoked.reason ? `,${revoked.reason}` : ''}` : '';
  return `${revoked ? 'R' : 'V'}\t${opensslTime(new Date(cert.validTo))}\t${when}\t${cert.serialNumber}\tunknown\t${subject}\n`;
}

/** What signs an answer: the CA itself, a delegated responder, or anyone (files in `dir`, without extension). */
export interface Signer {
  readonly cert: string;
  readonly key: string;
}

export const signer = (dir: string, name: string): Signer => ({ cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) });

/** `openssl ocsp` as a responder, offline: the DER answer to a DER request. `extra`: -nmin 1, -resp_no_certs, ... */
export async function answerOffline(dir: string, request: Buffer, by: Signer, extra: string[] = [], index = 'index.txt'): Promise<Buffer> {
  const tag = `${process.pid}-${Math.random().toString(36).slice(2)}`;
  const req = path.join(dir, `req-${tag}.der`);
  const resp = path.join(dir, `resp-${tag}.der`);
  fs.writeFileSync(req, request);
  try {
    await execFileP('openssl', ['ocsp', '-index', path.join(dir, index), '-CA', path.join(dir, 'ca.crt'), '-rsigner', by.cert, '-rkey', by.key, '-reqin', req, '-respout', resp, ...extra]);
    return fs.readFileSync(resp);
  } finally {
    fs.rmSync(req, { force: true });
    fs.rmSync(resp, { force: true });
  }
}

/** `openssl ocsp -port 0` (it prints `ACCEPT [::]:<port>`), answering from `index` in `dir`. */
export class OcspResponder {
  private constructor(
    readonly proc: ChildProcess,
    readonly port: number,
  ) {}

  static start(dir: string, by: Signer, index = 'index.txt', extra: string[] = []): Promise<OcspResponder> {
    const proc = spawn('openssl', ['ocsp', '-index', path.join(dir, index), '-CA', path.join(dir, 'ca.crt'), '-rsigner', by.cert, '-rkey', by.key, '-port', '0', ...extra], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new Promise((resolve, reject) => {
      let output = '';
      const guard = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`openssl ocsp did not start: ${output}`));
      }, 20_000);
      const read = (d: Buffer): void => {
        output += d.toString();
        const m = /ACCEPT .*:(\d+) PID=/.exec(output);
        if (!m) return;
        clearTimeout(guard);
        proc.stdout!.off('data', read);
        proc.stderr!.off('data', read);
        // Keep draining its output, so that it never blocks on a full pipe.
        proc.stdout!.resume();
        proc.stderr!.resume();
        resolve(new OcspResponder(proc, Number(m[1])));
      };
      proc.stdout!.on('data', read);
      proc.stderr!.on('data', read);
      proc.once('exit', (code) => {
        clearTimeout(guard);
        reject(new Error(`openssl ocsp exited with ${code}: ${output}`));
      });
    });
  }

  stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      this.proc.once('exit', () => resolve());
      this.proc.kill('SIGTERM');
    });
  }
}

/**
 * A TCP proxy on 127.0.0.1 that counts its connections (the broker opens one per OCSP request)
 * and forwards them to `target`, which a test may change (a restarted responder) or set to
 * undefined (a responder that is down: connections are closed at once).
 */
export class CountingProxy {
  connections = 0;
  target: number | undefined;
  private readonly server: net.Server;
  private readonly open = new Set<net.Socket>();

  private constructor(server: net.Server) {
    this.server = server;
  }

  static async start(target: number | undefined): Promise<CountingProxy> {
    let proxy: CountingProxy | undefined;
    const server = net.createServer((client) => {
      proxy!.connections++;
      proxy!.open.add(client);
      client.on('close', () => proxy!.open.delete(client));
      client.on('error', () => {});
      if (proxy!.target === undefined) {
        client.destroy();
        return;
      }
      const upstream = net.connect(proxy!.target, '127.0.0.1');
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      client.pipe(upstream).pipe(client);
    });
    proxy = new CountingProxy(server);
    proxy.target = target;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Stop listening (its port then refuses connections) and cut the connections in progress. */
  close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.open) s.destroy();
    return closed;
  }
}

/** A port nothing listens on (bound, then closed), for a responder that is down. */
export async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
