import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Log } from '../storage/engine.js';
import type { ServerConfig } from '../server/config.js';
import { logTlsReloadFailure, readTlsMaterial, tlsServerOptions } from '../server/tls.js';
import { IpcChannel } from './ipc.js';
import { AUTH_TO_PARENT, BROKER_TO_PARENT } from './roles.js';
import { chownTree, lookupUser } from './users.js';
import { withStartFlags } from '../server/start-flags.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export interface Separated {
  readonly brokerPid: number;
  readonly authPid: number | null;
  rotate(): Promise<void>;
  /** Read the TLS files again (as root) and hand them to the broker; false when they are bad (logged). */
  reloadTls(): Promise<boolean>;
  stop(): Promise<void>;
  /** Resolves with the broker child's exit code when it ends. */
  readonly exited: Promise<number>;
}

/**
 * Binds a port for the broker. Until the broker holds it, this process listens on it too, and
 * connections it accepts meanwhile are kept unread (pauseOnConnect) for the broker to adopt.
 */
function bind(host: string, port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer({ pauseOnConnect: true });
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

function absolute(p: string | null): string | null {
  return p === null ? null : path.resolve(p);
}

/**
 * The privileged parent: binds the ports, reads the TLS keys, starts the authentication
 * process (which alone reads the users file) and the broker as `user`, hands the broker its
 * sockets by descriptor passing, and relays credential checks between them. It keeps no
 * network connection of its own.
 */
export async function runSeparated(input: ServerConfig, user: string, logLevel: string, log: Log): Promise<Separated> {
  const { uid, gid } = lookupUser(user);
  // Children start elsewhere: make every path absolute first.
  const config: ServerConfig = {
    ...input,
    storageOptions: { ...input.storageOptions, dataDir: path.resolve(input.storageOptions.dataDir) },
    security: { ...input.security, usersFile: absolute(input.security.usersFile), auditFile: absolute(input.security.auditFile) },
  };
  chownTree(config.storageOptions.dataDir, uid, gid);
  if (config.security.auditFile) {
    fs.mkdirSync(path.dirname(config.security.auditFile), { recursive: true });
    fs.appendFileSync(config.security.auditFile, '');
    fs.chownSync(config.security.auditFile, uid, gid);
  }
  const servers = await Promise.all(config.listen.map((l) => bind(l.host, l.port)));
  // From here until the sockets are handed over, a client that connects is accepted here: it
  // goes to the broker once it runs, instead of waiting for an answer that never comes.
  const early: { index: number; socket: net.Socket }[] = [];
  servers.forEach((server, index) => server.on('connection', (socket: net.Socket) => early.push({ index, socket })));
  const tlsOptions = config.tls && config.listen.some((l) => l.tls) ? tlsServerOptions(config.tls) : undefined;

  let auth: ChildProcess | null = null;
  let authCh: IpcChannel | null = null;
  if (config.security.usersFile) {
    auth = fork(path.join(HERE, 'auth-main.js'), [config.security.usersFile, config.security.adminGroup], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    authCh = new IpcChannel('auth', auth, AUTH_TO_PARENT, (type) => log.warn({ type }, 'refused a message from the auth process'));
  }
  const broker = fork(path.join(HERE, 'broker-main.js'), [], {
    execArgv: withStartFlags(process.execArgv),
    uid,
    gid,
    cwd: '/',
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<number>((resolve) => broker.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1))));
  const brokerCh = new IpcChannel('broker', broker, BROKER_TO_PARENT, (type) => log.warn({ type }, 'refused a message from the broker'));
  const relay = (type: string) => (body: unknown) => {
    if (!authCh) throw new Error('this server has no users');
    return authCh.query(type, body);
  };
  brokerCh.handle('verify-password', relay('verify-password')).handle('verify-token', relay('verify-token')).handle('verify-certificate', relay('verify-certificate'));

  for (const [index, server] of servers.entries()) {
    // The raw handle, not the net.Server: Node listens on a server it receives at once, and
    // what that server accepted before the broker's own listener took over was dropped
    // unanswered. A raw handle leaves new connections in the kernel's queue until then.
    await brokerCh.send('listen', { index }, (server as unknown as { _handle: unknown })._handle);
    // The broker holds a duplicate of the descriptor now; the parent accepts nothing.
    server.close();
  }
  try {
    await brokerCh.query('start', { config, tlsOptions, logLevel }, 30_000);
  } catch (err) {
    // A broker that cannot start must not linger holding the sockets.
    broker.kill('SIGKILL');
    auth?.kill('SIGKILL');
    brokerCh.close();
    authCh?.close();
    throw err;
  }
  for (const { index, socket } of early.splice(0)) {
    // Sent, the socket is closed here (the broker has its own descriptor).
    await brokerCh.send('adopt', { index }, socket).catch((err: unknown) => {
      log.warn({ err, address: socket.remoteAddress }, 'could not hand an early connection to the broker');
      socket.destroy();
    });
  }
  log.info({ brokerPid: broker.pid, authPid: auth?.pid ?? null, user, uid, gid }, 'privilege separation: broker running unprivileged');
  return {
    brokerPid: broker.pid!,
    authPid: auth?.pid ?? null,
    exited,
    async rotate() {
      await brokerCh.query('rotate', null);
    },
    async reloadTls() {
      if (!tlsOptions || !config.tls) return false;
      let fresh;
      try {
        fresh = readTlsMaterial(config.tls);
      } catch (err) {
        logTlsReloadFailure(log, err);
        return false;
      }
      // The broker applies it and logs the outcome (it keeps the old context if TLS refuses).
      return brokerCh.query<boolean>('reload-tls', { material: fresh });
    },
    async stop() {
      // The broker may be stopping or gone already: a signal to the whole process group (a
      // terminal's ^C, a service manager's stop) reaches it too, and it stops on its own.
      // Past the 30 s a clean stop may take, SIGKILL: SIGTERM only asks the child to stop cleanly.
      await Promise.race([brokerCh.query('stop', null, 30_000).catch(() => broker.kill('SIGKILL')), exited]);
      await exited;
      brokerCh.close();
      authCh?.close();
      auth?.kill('SIGTERM');
    },
  };
}
