import net from 'node:net';
import { Broker } from '../core/broker.js';
import type { Log, StorageEngine } from '../storage/engine.js';
import { getDriver } from '../storage/registry.js';
import '../storage/builtin.js';
import type { ListenAddress, ServerConfig } from './config.js';
import { Session } from './session.js';
import { FileAudit, nullAudit } from '../security/audit.js';
import { FileAuthenticator } from '../security/authenticator.js';
import { Guard, type TransportInfo } from '../security/guard.js';

/**
 * Wires a broker to its storage engine (chosen by name) and its listeners. The only place
 * where concrete drivers are loaded (through storage/builtin).
 */
export class FluctuatServer {
  private readonly listeners: net.Server[] = [];
  private readonly sessions = new Set<Session>();
  private nextId = 0;
  private closing: Promise<void> | null = null;
  private readonly timers: NodeJS.Timeout[] = [];

  readonly guard: Guard;

  private constructor(
    readonly config: ServerConfig,
    readonly broker: Broker,
    readonly engine: StorageEngine,
    private readonly log: Log,
  ) {
    const sec = config.security;
    const audit = sec.auditFile ? new FileAudit({ file: sec.auditFile, maxBytes: sec.auditMaxBytes, keep: sec.auditKeep }) : nullAudit;
    const authenticator = sec.usersFile ? new FileAuthenticator(sec.usersFile, sec.adminGroup) : null;
    this.guard = new Guard(sec, authenticator, audit, log);
  }

  static async start(config: ServerConfig, log: Log): Promise<FluctuatServer> {
    const engine = getDriver(config.storage).create(config.storageOptions, log);
    const broker = new Broker(engine, config.broker, log);
    await broker.start();
    const server = new FluctuatServer(config, broker, engine, log);
    server.startClockProbes();
    try {
      for (const address of config.listen) await server.listen(address);
    } catch (err) {
      await server.close();
      throw err;
    }
    return server;
  }

  addresses(): ListenAddress[] {
    return this.listeners.map((l) => {
      const a = l.address() as net.AddressInfo;
      return { host: a.address, port: a.port };
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

  async rotate(): Promise<void> {
    await this.engine.rotate();
    this.log.info({}, 'segments rotated');
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const t of this.timers) clearInterval(t);
      // Stop accepting first; a listener's close callback waits for its connections to end.
      const closed = Promise.all(this.listeners.map((l) => new Promise<void>((resolve) => l.close(() => resolve()))));
      for (const s of this.sessions) s.disconnect('SHUTTING_DOWN', 'the broker is shutting down');
      await closed;
      await this.broker.close();
      await this.guard.audit.close();
    })();
    return this.closing;
  }

  private listen(address: ListenAddress): Promise<void> {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
      this.attach(socket, { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0, secure: false });
    });
    this.listeners.push(server);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(address.port, address.host, () => {
        server.off('error', reject);
        const a = server.address() as net.AddressInfo;
        this.log.info({ host: a.address, port: a.port }, 'listening');
        resolve();
      });
    });
  }
}
