import { X509Certificate } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { Broker } from '../core/broker.js';
import type { Log, StorageEngine } from '../storage/engine.js';
import { getDriver } from '../storage/registry.js';
import '../storage/builtin.js';
import type { ListenAddress, ServerConfig } from './config.js';
import { Session } from './session.js';
import { ErrorCode } from '../protocol/errors.js';
import { readBudget } from './read-budget.js';
import { createTlsListener, logTlsReloaded, logTlsReloadFailure, readTlsMaterial, tlsServerOptions, type CertificateVerdict, type PeerCertificate, type TlsMaterial } from './tls.js';
import type { OcspChecker, OcspSubject } from './ocsp.js';
import { FileAudit, nullAudit } from '../security/audit.js';
import { SyslogForwarder } from '../security/syslog.js';
import { FileAuthenticator, type Authenticator } from '../security/authenticator.js';
import { Guard, type TransportInfo } from '../security/guard.js';
import { LoopHealth } from './loop-health.js';
import { padHeap } from '../native/addon.js';
import { tuneScavenger } from './scavenger.js';
import { describeOldSpaceFloor } from './start-flags.js';

/**
 * Wires a broker to its storage engine (chosen by name) and its listeners. The only place
 * where concrete drivers are loaded (through storage/builtin).
 */
/** What a privilege-separated broker child is handed instead of doing it itself. */
export interface StartDeps {
  readonly authenticator?: Authenticator | null;
  /** Listening sockets, one per `config.listen` entry, bound by the privileged parent. */
  readonly handles?: readonly unknown[];
  readonly tlsOptions?: tls.TlsOptions;
}

/** How long a shutdown waits for clients to take what was queued for them before cutting their connections. */
const SHUTDOWN_GRACE_MS = 3_000;

export class FluctuatServer {
  private readonly listeners: net.Server[] = [];
  private readonly sessions = new Set<Session>();
  private nextId = 0;
  private closing: Promise<void> | null = null;
  private readonly timers: NodeJS.Timeout[] = [];
  /** The event loop's delay, busy share and GC pauses, in `stats`. */
  private readonly loopHealth = new LoopHealth();

  readonly guard: Guard;
  /** OCSP checking of client certificates (`tls ocsp on`), or null. */
  readonly ocsp: OcspChecker | null;
  /** The OCSP subject of a TLS socket being admitted, then of its session (to close it when revoked). */
  private readonly ocspSubjects = new WeakMap<object, OcspSubject>();
  /** Forwarding of the accounting log to a syslog collector (security.syslog), if configured. */
  readonly syslog: SyslogForwarder | null;

  private constructor(
    readonly config: ServerConfig,
    readonly broker: Broker,
    readonly engine: StorageEngine,
    private readonly log: Log,
    private readonly deps: StartDeps,
    /** ocsp.ts's checker, loaded only with `tls ocsp on` (below). */
    Checker: typeof OcspChecker | null,
  ) {
    const sec = config.security;
    const audit = sec.auditFile || sec.syslog ? new FileAudit({ file: sec.auditFile, maxBytes: sec.auditMaxBytes, keep: sec.auditKeep }) : nullAudit;
    const forwarder = (this.syslog = sec.syslog ? new SyslogForwarder(sec.syslog, log) : null);
    if (forwarder && audit instanceof FileAudit) audit.sinks.push((line) => forwarder.send(line));
    const authenticator = deps.authenticator !== undefined ? deps.authenticator : sec.usersFile ? new FileAuthenticator(sec.usersFile, sec.adminGroup) : null;
    this.guard = new Guard(sec, authenticator, audit, log);
    if (deps.tlsOptions) this.tlsOptions = deps.tlsOptions;
    const ocsp = config.tls?.ocsp;
    this.ocsp = ocsp && Checker
      ? new Checker(ocsp, {
          log,
          onRevoked: (subject) => this.dropRevoked((s) => this.ocspSubjects.get(s)?.key === subject.key, 'ocsp'),
        })
      : null;
  }

  /**
   * Start a broker. `deps` is for the privilege-separated child: listening sockets bound by
   * the parent (one per `config.listen` entry), TLS material it read, and an authenticator
   * that asks the separate authentication process.
   */
  static async start(config: ServerConfig, log: Log, deps: StartDeps = {}): Promise<FluctuatServer> {
    // First: a bad FLUCTUAT_HEAP_PAD, FLUCTUAT_PARALLEL_SCAVENGE or FLUCTUAT_OLD_SPACE_FLOOR stops the start before anything opens.
    const heapPad = padHeap();
    const scavenger = tuneScavenger();
    const oldSpaceFloor = describeOldSpaceFloor();
    const engine = getDriver(config.storage).create(config.storageOptions, log);
    const broker = new Broker(engine, config.broker, log);
    await broker.start();
    // Loaded only when used: its ASN.1 libraries are ~1.7 MB of heap, which every major
    // collection marks (a busy broker at 16 KiB ran one every few ms before the old
    // generation's floor, start-flags.ts; docs/performance.md, "Overload").
    const Checker = config.tls?.ocsp ? (await import('./ocsp.js')).OcspChecker : null;
    const server = new FluctuatServer(config, broker, engine, log, deps, Checker);
    log.info({ heapPad }, 'heap pad for socket reads');
    log.info({ scavenger }, 'young-generation garbage collection');
    log.info({ oldSpaceFloor }, 'old-generation floor');
    server.startClockProbes();
    const health = server.loopHealth.start();
    broker.addGauges(() => health.figures());
    const budget = readBudget(config.session.turnReadBytes);
    broker.addGauges(() => ({ readYields: budget.yields }));
    const ocsp = server.ocsp;
    if (ocsp) broker.addGauges(() => ocsp.figures());
    try {
      for (const [i, address] of config.listen.entries()) await server.listen(address, deps.handles?.[i]);
    } catch (err) {
      await server.close();
      throw err;
    }
    return server;
  }

  addresses(): ListenAddress[] {
    return this.listeners.map((l) => {
      const a = l.address() as net.AddressInfo;
      return l instanceof tls.Server ? { host: a.address, port: a.port, tls: true } : { host: a.address, port: a.port };
    });
  }

  get connections(): number {
    return this.sessions.size;
  }

  /**
   * Attach a connected stream as a client connection (TCP, TLS, WebSocket). Connection limits
   * and address lists apply here; a refused connection gets one error line and is closed.
   */
  attach(socket: net.Socket, transport: TransportInfo): Session | null {
    const refusal = this.guard.admit(transport);
    if (refusal) {
      socket.end(`-ERR ${refusal.code} ${refusal.reason}\n`);
      socket.destroySoon?.();
      return null;
    }
    const remote = `${transport.address}:${transport.port}`;
    const session = new Session(++this.nextId, socket, this.broker, this.config.session, this.log, remote, this.sessions, this.guard, transport);
    this.sessions.add(session);
    socket.once('close', () => this.sessions.delete(session));
    return session;
  }

  /** Probe every machine-mode connection's clock, now and then every `clockIntervalMs`. */
  private startClockProbes(): void {
    const timer = setInterval(() => {
      for (const s of this.sessions) s.probeClock();
    }, this.config.session.clockIntervalMs);
    timer.unref();
    this.timers.push(timer);
  }

  /**
   * SIGHUP: the TLS listeners take new certificate, key, CA and CRL files for the connections
   * that come next; established ones keep theirs, except a connection whose client certificate
   * the new CRL revokes, which is closed with CERT_REFUSED. `material` is what the privileged
   * parent read; without it the files are read here. Bad files: the old context stays, an
   * error is logged, and the result is false.
   */
  reloadTls(material?: TlsMaterial): boolean {
    const servers = this.listeners.filter((l): l is tls.Server => l instanceof tls.Server);
    if (!this.config.tls || servers.length === 0) return false;
    try {
      material ??= readTlsMaterial(this.config.tls);
      // A context TLS refuses must not replace a working one: build it before touching any listener.
      tls.createSecureContext(material.options);
      for (const s of servers) s.setSecureContext(material.options);
    } catch (err) {
      logTlsReloadFailure(this.log, err);
      return false;
    }
    this.tlsOptions = material.options;
    logTlsReloaded(this.log, this.config.tls, material);
    if (material.crl) {
      const revoked = new Set(material.crl.revoked);
      this.dropRevoked((_, serial) => revoked.has(serial), 'tls crl reloaded');
    }
    if (this.ocsp) {
      this.ocsp.setCa(material.options.ca);
      void this.ocsp.recheckAll();
    }
    return true;
  }

  /**
   * Revocation takes effect now, not at the client's next connection (the audit log's
   * `disconnect` says why): the CRL's on reload, OCSP's on a re-check. `source` names it.
   */
  private dropRevoked(isRevoked: (session: Session, serial: string) => boolean, source: string): void {
    for (const s of this.sessions) {
      const serial = s.transport.peerSerial;
      if (serial === undefined || !isRevoked(s, serial)) continue;
      s.disconnect(ErrorCode.CERT_REFUSED, `client certificate ${serial} revoked (${source}); disconnected`);
    }
  }

  async rotate(): Promise<void> {
    await this.engine.rotate();
    this.log.info({}, 'segments rotated');
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const t of this.timers) clearInterval(t);
      this.loopHealth.stop();
      this.ocsp?.close();
      // Stop accepting first; a listener's close callback waits for its connections to end.
      const closed = Promise.all(this.listeners.map((l) => new Promise<void>((resolve) => l.close(() => resolve()))));
      for (const s of this.sessions) s.disconnect('SHUTTING_DOWN', 'the broker is shutting down');
      // A client that stopped reading keeps its connection open for ever (end() waits until the
      // queued bytes are taken): after a grace period, cut those. Acknowledged data is in storage.
      const cut = setTimeout(() => {
        for (const s of this.sessions) s.destroy();
      }, SHUTDOWN_GRACE_MS);
      await closed;
      clearTimeout(cut);
      await this.broker.close();
      await this.guard.audit.close();
      await this.syslog?.close();
    })();
    return this.closing;
  }

  private tlsOptions: tls.TlsOptions | undefined;

  /** A TLS client whose certificate (if any) was accepted; a verified one logs it in. */
  private attachTls(socket: tls.TLSSocket, peer: PeerCertificate | undefined): void {
    // An OCSP check that ended while the server was closing: nobody would disconnect it.
    if (this.closing) {
      socket.destroy();
      return;
    }
    const transport = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0, secure: true };
    const session = this.attach(socket, {
      ...transport,
      ...(peer?.subject !== undefined ? { peerIdentity: peer.subject } : {}),
      ...(peer?.serialNumber ? { peerSerial: peer.serialNumber } : {}),
    });
    const subject = this.ocspSubjects.get(socket);
    if (session && subject && this.ocsp) {
      // Followed while it is open: checked again when its answer expires, and on SIGHUP.
      this.ocspSubjects.set(session, subject);
      socket.once('close', this.ocsp.watch(subject));
    }
    if (session && peer?.subject !== undefined) session.loginByCertificate(peer.subject);
  }

  /** `tls ocsp on`: the responder's say on a certificate OpenSSL verified. */
  private async checkOcsp(ocsp: OcspChecker, socket: tls.TLSSocket): Promise<CertificateVerdict> {
    const detailed = socket.getPeerCertificate(true);
    const cert = new X509Certificate(detailed.raw);
    // The chain OpenSSL built, for a certificate under an intermediate the client sent.
    const up = detailed.issuerCertificate as tls.DetailedPeerCertificate | undefined;
    const chainIssuer = up?.raw && !up.raw.equals(detailed.raw) ? new X509Certificate(up.raw) : undefined;
    const { subject, verdict } = await ocsp.admit(cert, chainIssuer);
    if (subject) this.ocspSubjects.set(socket, subject);
    return verdict;
  }

  private ocspCheck(): (socket: tls.TLSSocket) => Promise<CertificateVerdict> {
    const ocsp = this.ocsp!;
    ocsp.setCa(this.tlsOptions?.ca);
    return (socket) => this.checkOcsp(ocsp, socket);
  }

  /** A connection accepted for listener `index` elsewhere (the privileged parent, before this process listened). */
  adopt(index: number, socket: net.Socket): void {
    const listener = this.listeners[index];
    if (listener) listener.emit('connection', socket);
    else socket.destroy();
  }

  private listen(address: ListenAddress, handle?: unknown): Promise<void> {
    const server = address.tls
      ? createTlsListener(
          this.config.tls!,
          (this.tlsOptions ??= tlsServerOptions(this.config.tls!)),
          this.log,
          (socket, peer) => this.attachTls(socket, peer),
          // A refused certificate is a failed login by certificate, for the accounting log too.
          (r) => this.guard.audit.record('login-failed', { method: 'certificate', subject: r.subject ?? null, address: r.address, port: r.port, reason: r.reason, fingerprint256: r.fingerprint256 ?? null }),
          this.ocsp ? this.ocspCheck() : undefined,
        )
      : net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
          this.attach(socket, { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0, secure: false });
        });
    // A hard cap on the sockets a listener holds, counting those the guard has not seen yet: TLS
    // handshakes and certificate checks in progress (up to `timeout handshake` each). Above the
    // guard's own limit, so that a client over it still gets the guard's error line first.
    const { maxConnections } = this.guard.options;
    server.maxConnections = maxConnections + Math.max(16, Math.ceil(maxConnections / 10));
    server.on('drop', (d?: { remoteAddress?: string; remotePort?: number }) => {
      this.guard.counters.refusedConnections++;
      this.log.debug({ address: d?.remoteAddress, port: d?.remotePort, limit: server.maxConnections }, 'connection dropped: the listener holds its most sockets');
    });
    this.listeners.push(server);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      const onListening = (): void => {
        server.off('error', reject);
        const a = server.address() as net.AddressInfo;
        this.log.info(address.tls ? { host: a.address, port: a.port, tls: true } : { host: a.address, port: a.port }, 'listening');
        resolve();
      };
      if (handle) server.listen(handle as net.Server, onListening);
      else server.listen(address.port, address.host, onListening);
    });
  }
}
