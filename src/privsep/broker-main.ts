/**
 * The network-facing broker, running as an unprivileged user. It gets its configuration, its
 * listening sockets and its TLS material from the parent, and asks the parent (which asks the
 * authentication process) to check credentials. It cannot read the users file or the keys.
 */
import net from 'node:net';
import type tls from 'node:tls';
import { pino } from 'pino';
import type { Identity } from '../security/access.js';
import type { Authenticator } from '../security/authenticator.js';
import type { ServerConfig } from '../server/config.js';
import { FluctuatServer } from '../server/server.js';
import type { TlsMaterial } from '../server/tls.js';
import { IpcChannel } from './ipc.js';
import { PARENT_TO_BROKER, type StartMessage } from './roles.js';

process.title = 'fluctuat: broker';
const handles: unknown[] = [];
let server: FluctuatServer | null = null;

const parent: IpcChannel = new IpcChannel('parent', process, PARENT_TO_BROKER);

class ParentAuthenticator implements Authenticator {
  password(user: string, password: string): Promise<Identity | null> {
    return parent.query<Identity | null>('verify-password', { user, password });
  }
  token(token: string): Promise<Identity | null> {
    return parent.query<Identity | null>('verify-token', { token });
  }
  certificate(user: string): Promise<Identity | null> {
    return parent.query<Identity | null>('verify-certificate', { user });
  }
}

parent
  .handle('listen', (body, handle) => {
    // The raw descriptor (privsep/parent.ts says why), listened on by the broker's own server.
    handles[(body as { index: number }).index] = handle;
  })
  .handle('start', async (body) => {
    const m = body as StartMessage;
    const config = m.config as ServerConfig;
    const log = pino({ level: m.logLevel, base: { pid: process.pid, role: 'broker' } });
    server = await FluctuatServer.start(config, log, {
      authenticator: config.security.usersFile ? new ParentAuthenticator() : null,
      handles,
      ...(m.tlsOptions ? { tlsOptions: m.tlsOptions as tls.TlsOptions } : {}),
    });
    log.info({ uid: process.getuid?.(), gid: process.getgid?.() }, 'broker running unprivileged');
    return server.addresses();
  })
  // A connection the parent accepted while this process was starting (privsep/parent.ts).
  .handle('adopt', (body, handle) => {
    if (server && handle instanceof net.Socket) server.adopt((body as { index: number }).index, handle);
    else if (handle instanceof net.Socket) handle.destroy();
  })
  .handle('rotate', () => server?.rotate())
  // The parent read (as root) and checked the new certificate, key, CA and CRL.
  .handle('reload-tls', (body) => server?.reloadTls((body as { material: TlsMaterial }).material) ?? false)
  .handle('stop', async () => {
    await stopOnce();
    setImmediate(() => process.exit(0));
  });

let stopping: Promise<void> | null = null;
/** Stops the server once, whoever asks first: the parent, or a signal. */
function stopOnce(): Promise<void> {
  return (stopping ??= server?.close() ?? Promise.resolve());
}

// A terminal's ^C and a service manager's stop signal the whole process group (or cgroup), this
// process with the parent: stop cleanly as the parent would ask (staged writes flushed, the
// clean-shutdown record written) instead of dying of the signal under it.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    void stopOnce().then(
      () => setImmediate(() => process.exit(0)),
      () => setImmediate(() => process.exit(70)),
    );
  });
}

// The parent died (even by SIGKILL): stop at once, as a crash would; acknowledged data is
// already with the OS.
process.on('disconnect', () => process.exit(70));
