/**
 * The broker connection options that every client command (pub, sub, probe, swarm) shares:
 * the URL, TLS and login. Secrets come from files or the environment, never from the command
 * line, where `ps` shows them to everyone. One place, so that they mean the same everywhere and map onto the client
 * library's own options (`ConnectOptions.tls`, docs/client.md).
 */
import fs from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import type { ConnectOptions, TlsOptions } from '../client/index.js';

// An empty FLUCTUAT_URL counts as unset.
export const URL_DEFAULT = process.env.FLUCTUAT_URL || 'fluctuat://127.0.0.1:2023';

export interface ConnectionCliOptions {
  url: string;
  tls?: boolean;
  ca?: string;
  cert?: string;
  key?: string;
  servername?: string;
  user?: string;
  passwordFile?: string;
  tokenFile?: string;
}

/** -u/--url and the TLS flags. */
export function addConnectionOptions(command: Command): Command {
  return command
    .option('-u, --url <url>', 'broker URL: fluctuat://host:port, or tls://host:port for TLS (env FLUCTUAT_URL)', URL_DEFAULT)
    .option('--tls', 'TLS, verifying the broker against the system CAs (implied by tls:// and by --ca, --cert, --key, --servername)')
    .option('--ca <file>', 'TLS: CA certificate(s) the broker\'s certificate must chain to (PEM)')
    .option('--cert <file>', 'TLS: client certificate (PEM); its common name is the identity the broker logs in')
    .option('--key <file>', 'TLS: the client certificate\'s private key (PEM)')
    .option('--servername <name>', 'TLS: the name the broker\'s certificate must carry (default: the URL\'s host)')
    .option('--user <name>', 'log in as this user (env FLUCTUAT_USER); the password from --password-file or env FLUCTUAT_PASSWORD')
    .option('--password-file <file>', 'file whose first line is the password for --user')
    .option('--token-file <file>', 'log in with the program token in this file (or env FLUCTUAT_TOKEN)');
}

/** The client library options the flags ask for; usage errors as InvalidArgumentError. */
export function clientOptions(o: ConnectionCliOptions): Omit<ConnectOptions, 'name'> {
  if ((o.cert === undefined) !== (o.key === undefined)) throw new InvalidArgumentError('--cert and --key go together: the client certificate and its private key');
  const files: TlsOptions = {
    ...(o.ca === undefined ? {} : { caFile: o.ca }),
    ...(o.cert === undefined ? {} : { certFile: o.cert }),
    ...(o.key === undefined ? {} : { keyFile: o.key }),
    ...(o.servername === undefined ? {} : { servername: o.servername }),
  };
  const tls = Object.keys(files).length > 0 ? files : o.tls ? true : undefined;
  // TLS flags never upgrade a plaintext URL silently (nor does the library): say what to type.
  if (tls && /^(fluctuat|tcp):\/\//i.test(o.url)) {
    throw new InvalidArgumentError(`TLS flags need a TLS URL, and ${o.url} is plaintext: use -u tls://host:port (or FLUCTUAT_URL)`);
  }
  return { ...(tls ? { tls } : {}), ...credentials(o) };
}

function firstLine(file: string, what: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(`cannot read the ${what} file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const line = text.split(/\r?\n/)[0] ?? '';
  if (line === '') throw new InvalidArgumentError(`the ${what} file ${file} is empty`);
  return line;
}

/** --user with --password-file or FLUCTUAT_PASSWORD; --token-file or FLUCTUAT_TOKEN. */
function credentials(o: ConnectionCliOptions): Pick<ConnectOptions, 'user' | 'password' | 'token'> {
  const user = o.user ?? (process.env.FLUCTUAT_USER || undefined);
  const token = o.tokenFile !== undefined ? firstLine(o.tokenFile, 'token') : process.env.FLUCTUAT_TOKEN || undefined;
  if (o.passwordFile !== undefined && user === undefined) throw new InvalidArgumentError('--password-file needs --user (or FLUCTUAT_USER)');
  if (user === undefined) return token === undefined ? {} : { token };
  if (o.tokenFile !== undefined) throw new InvalidArgumentError('give --user (with a password) or --token-file, not both');
  const password = o.passwordFile !== undefined ? firstLine(o.passwordFile, 'password') : process.env.FLUCTUAT_PASSWORD || undefined;
  if (password === undefined) throw new InvalidArgumentError(`--user ${user} needs a password: --password-file FILE or env FLUCTUAT_PASSWORD`);
  return { user, password };
}

/** Run `body` with the client options; a usage error is one line on stderr and exit status 2. */
export async function withClientOptions(command: string, o: ConnectionCliOptions, body: (options: Omit<ConnectOptions, 'name'>) => Promise<number>): Promise<number> {
  let options;
  try {
    options = clientOptions(o);
  } catch (err) {
    process.stderr.write(`fluctuat ${command}: ${(err as Error).message}\n`);
    return 2;
  }
  return body(options);
}
