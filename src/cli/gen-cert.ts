import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import type { Revocation } from '../certs/crl.js';
import type { CertOptions, LoadedCa, Pem } from '../certs/generate.js';
import { KEY_TYPES, REVOCATION_REASONS, type KeyType, type RevocationReason } from '../certs/names.js';

// Loaded when a gen-cert command runs: they bring @peculiar/x509 and reflect-metadata, which the
// broker's process (this CLI, with --no-privsep or when not root) must not load.
const certs = (): Promise<typeof import('../certs/generate.js')> => import('../certs/generate.js');
const crls = (): Promise<typeof import('../certs/crl.js')> => import('../certs/crl.js');

/** A usage problem found here (a file that exists, a CA that cannot be read): one line, exit 1. */
class GenCertError extends Error {
  override name = 'GenCertError';
}

interface Common {
  dir: string;
  days?: number;
  notBefore?: Date;
  notAfter?: Date;
  keyType: KeyType;
  org?: string;
  force: boolean;
}

interface Issued extends Common {
  caCert?: string;
  caKey?: string;
  out?: string;
  ocspUrl?: string;
}

function date(value: string): Date {
  const d = new Date(/^\d{4}-\d{2}-\d{2}$/.test(value) ? `${value}T00:00:00Z` : value);
  if (Number.isNaN(d.getTime())) throw new InvalidArgumentError(`"${value}" is not a date (2026-11-23 or 2026-11-23T08:00:00Z)`);
  return d;
}

function days(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError('--days must be a whole number >= 1');
  return Number(value);
}

function commonOptions(c: Command): Command {
  return c
    .option('--dir <dir>', 'directory for the files', '.')
    .option('--days <n>', 'validity in days from --not-before (default: CA 3650, others 825)', days)
    .option('--not-before <date>', 'start of validity (default: now minus 5 minutes)', date)
    .option('--not-after <date>', 'end of validity (overrides --days; a past date makes an expired certificate, for tests)', date)
    .addOption(new Option('--key-type <type>', 'key algorithm').choices([...KEY_TYPES]).default('ec-p256'))
    .option('--org <name>', 'subject organisation (O=)')
    .option('--force', 'overwrite existing files', false);
}

function issuedOptions(c: Command): Command {
  return commonOptions(c)
    .option('--ca-cert <file>', 'CA certificate (default: <dir>/ca.crt)')
    .option('--ca-key <file>', 'CA key (default: <dir>/ca.key)')
    .option('--out <name>', 'file base name: <dir>/<name>.crt and <dir>/<name>.key');
}

/** --ocsp-url on the certificates a broker's clients and servers present. */
function ocspUrlOption(c: Command): Command {
  return c.option('--ocsp-url <url>', 'OCSP responder URL to put in the certificate (authorityInfoAccess), which a broker with "tls ocsp on" asks');
}

function certOptions(commonName: string, o: Common & { ocspUrl?: string }): CertOptions {
  const opts: { -readonly [K in keyof CertOptions]: CertOptions[K] } = { commonName, keyType: o.keyType };
  if (o.ocspUrl !== undefined) opts.ocspUrl = o.ocspUrl;
  if (o.days !== undefined) opts.days = o.days;
  if (o.notBefore) opts.notBefore = o.notBefore;
  if (o.notAfter) opts.notAfter = o.notAfter;
  if (o.org) opts.subject = { O: o.org };
  return opts;
}

/** Write certificate (0644) and key (0600); refuse to overwrite without --force. */
function write(o: Common, base: string, pem: Pem): string[] {
  fs.mkdirSync(o.dir, { recursive: true });
  const crt = path.join(o.dir, `${base}.crt`);
  const key = path.join(o.dir, `${base}.key`);
  const flag = o.force ? 'w' : 'wx';
  for (const f of [crt, key]) {
    if (!o.force && fs.existsSync(f)) throw new GenCertError(`${f} exists; use --force to overwrite it`);
  }
  fs.writeFileSync(key, pem.key, { mode: 0o600, flag });
  fs.chmodSync(key, 0o600);
  fs.writeFileSync(crt, pem.cert, { mode: 0o644, flag });
  return [crt, key];
}

async function readCa(o: Issued): Promise<LoadedCa> {
  const certFile = o.caCert ?? path.join(o.dir, 'ca.crt');
  const keyFile = o.caKey ?? path.join(o.dir, 'ca.key');
  let cert: string;
  let key: string;
  try {
    cert = fs.readFileSync(certFile, 'utf8');
    key = fs.readFileSync(keyFile, 'utf8');
  } catch (err) {
    throw new GenCertError(`cannot read the CA (${certFile}, ${keyFile}): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; make one with "fluctuat gen-cert ca"`, { cause: err });
  }
  return (await certs()).loadCa({ cert, key });
}

async function run(what: () => Promise<string[]>): Promise<number> {
  try {
    const files = await what();
    for (const f of files) process.stdout.write(`${f}\n`);
    return 0;
  } catch (err) {
    // CertError (src/certs) is matched by name: its module is loaded only when needed.
    if (err instanceof GenCertError || (err as Error).name === 'CertError' || (err as NodeJS.ErrnoException).code !== undefined) {
      process.stderr.write(`fluctuat gen-cert: ${(err as Error).message}\n`);
      return 1;
    }
    throw err;
  }
}

/**
 * `fluctuat gen-cert ca|server|client|crl|ocsp-responder`: a private CA and the certificates a TLS deployment
 * needs, made in-process (src/certs), never by running openssl.
 */
export function genCertCommand(program: Command, done: (p: Promise<number>) => void): void {
  const gen = program
    .command('gen-cert')
    .description('make a CA, server certificates and client certificates for TLS (PEM files)');

  commonOptions(gen.command('ca').description('a certificate authority: <dir>/ca.crt and <dir>/ca.key'))
    .option('--name <cn>', 'CA common name', 'fluctuat CA')
    .action((o: Common & { name: string }) => done(run(async () => write(o, 'ca', await (await certs()).createCa(certOptions(o.name, o))))));

  ocspUrlOption(issuedOptions(gen.command('server').description('a server certificate signed by the CA, for host names and IP addresses')))
    .option('--host <name>', 'DNS name in the certificate, repeatable (the first is the common name)', (v: string, prev: string[]) => [...prev, v], [])
    .option('--ip <address>', 'IP address in the certificate, repeatable', (v: string, prev: string[]) => [...prev, v], [])
    .action((o: Issued & { host: string[]; ip: string[] }) =>
      done(
        run(async () => {
          const hosts = o.host.length > 0 ? o.host : o.ip.length > 0 ? [] : ['localhost'];
          const ips = o.host.length === 0 && o.ip.length === 0 ? ['127.0.0.1', '::1'] : o.ip;
          const cn = hosts[0] ?? ips[0]!;
          const ca = await readCa(o);
          return write(o, o.out ?? 'server', await (await certs()).createServerCert(ca, { ...certOptions(cn, o), dnsNames: hosts, ipAddresses: ips }));
        }),
      ),
    );

  gen
    .command('crl')
    .description('a certificate revocation list signed by the CA (<dir>/ca.crl); the revocations of an existing one are kept')
    .option('--dir <dir>', 'directory of the CA and the CRL', '.')
    .option('--ca-cert <file>', 'CA certificate (default: <dir>/ca.crt)')
    .option('--ca-key <file>', 'CA key (default: <dir>/ca.key)')
    .option('--revoke <cert-file>', 'revoke this certificate (PEM, issued by the CA), repeatable', (v: string, prev: string[]) => [...prev, v], [])
    .option('--serial <hex>', 'revoke this serial number, repeatable', (v: string, prev: string[]) => [...prev, v], [])
    .addOption(new Option('--reason <reason>', 'why the certificates given here are revoked (default: unspecified, left out)').choices([...REVOCATION_REASONS]))
    .option('--days <n>', 'days until the next update; past it the broker refuses every client (default 30)', days)
    .option('--out <file>', 'the CRL file (default: <dir>/ca.crl)')
    .action((o: Issued & { revoke: string[]; serial: string[]; reason?: RevocationReason }) =>
      done(
        run(async () => {
          const ca = await readCa(o);
          const { createCrl, normalSerial, readCrl, serialOf } = await crls();
          const out = o.out ?? path.join(o.dir, 'ca.crl');
          const revoked: Revocation[] = fs.existsSync(out) ? await readCrl(ca, fs.readFileSync(out, 'utf8')) : [];
          const why = o.reason ? { reason: o.reason } : {};
          for (const f of o.revoke) revoked.push({ serial: await serialOf(ca, fs.readFileSync(f, 'utf8'), f), ...why });
          for (const s of o.serial) revoked.push({ serial: normalSerial(s), ...why });
          fs.mkdirSync(path.dirname(out), { recursive: true });
          // Written whole, then renamed: a broker reloading on SIGHUP never reads half a CRL.
          fs.writeFileSync(`${out}.tmp`, await createCrl(ca, { revoked, ...(o.days === undefined ? {} : { days: o.days }) }), { mode: 0o644 });
          fs.renameSync(`${out}.tmp`, out);
          return [out];
        }),
      ),
    );

  ocspUrlOption(issuedOptions(gen.command('client').description('a client certificate signed by the CA; its common name is the client identity')))
    .requiredOption('--name <cn>', 'common name: the identity the broker sees')
    .action((o: Issued & { name: string }) =>
      done(
        run(async () => {
          const ca = await readCa(o);
          return write(o, o.out ?? o.name.replace(/[^A-Za-z0-9_.-]/g, '_'), await (await certs()).createClientCert(ca, certOptions(o.name, o)));
        }),
      ),
    );

  issuedOptions(gen.command('ocsp-responder').description('a delegated OCSP responder certificate signed by the CA (OCSPSigning; default 90 days): for openssl ocsp -rsigner'))
    .option('--name <cn>', 'common name', 'fluctuat OCSP responder')
    .action((o: Issued & { name: string }) =>
      done(
        run(async () => {
          const ca = await readCa(o);
          return write(o, o.out ?? 'ocsp', await (await certs()).createOcspResponderCert(ca, certOptions(o.name, o)));
        }),
      ),
    );
}
