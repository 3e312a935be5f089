import path from 'node:path';
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import { pino } from 'pino';
import { makeConfig, parseListen, ConfigError, type ListenAddress } from '../server/config.js';
import { defaultSessionOptions as session } from '../server/session.js';
import { runSeparated } from '../privsep/parent.js';
import { defaultStorageOptions as storage, type FsyncPolicy } from '../storage/engine.js';
import { SLOW_CONSUMER_POLICIES, type SlowConsumerPolicy } from '../core/broker.js';
import { bytes, duration, integer } from './options.js';
import { parseSyslogAddress, SYSLOG_DEFAULTS, SYSLOG_FACILITY_NAMES, type SyslogFacility } from '../security/syslog.js';
import { explicitOptions, loadConfigFile, mergeOverrides, type LoadedConfig } from '../config/load.js';
import { ConfigSyntaxError } from '../config/lexer.js';
import { OCSP_DEFAULTS, type OcspFailurePolicy } from '../config/schema.js';

interface ServeOptions {
  config?: string;
  listen: ListenAddress[];
  data: string;
  storage: string;
  fsync: FsyncPolicy;
  fsyncInterval: number;
  fsyncAcks: number;
  fsyncBytes: number;
  fsyncUnacked: number;
  fsyncUnackedBytes: number;
  segmentSize: number;
  segmentAge: number;
  retainBytes: number;
  retainAge: number;
  retainMessages: number;
  openFiles: number;
  maxLine: number;
  maxPayload: number;
  historyMax: number;
  outboundBuffer: number;
  maxInflight: number;
  maxInflightBytes: number;
  readPerTurn: number;
  maxSubscriptions: number;
  clockInterval: number;
  slowConsumer: SlowConsumerPolicy;
  slowConsumerTimeout: number;
  logLevel: string;
  users?: string;
  user: string;
  privsep: boolean;
  defaultAccess: 'allow' | 'deny';
  auditLog?: string;
  auditSyslog?: { host: string; port: number };
  auditSyslogFacility?: SyslogFacility;
  allowPlaintextPasswords: boolean;
  loginTimeout: number;
  idleTimeout: number;
  maxConnections: number;
  maxConnectionsPerAddress: number;
  publishRate: number;
  allow: string[];
  deny: string[];
  tlsCrl?: string;
  tlsOcsp?: OcspFailurePolicy;
}

export function serveCommand(program: Command, done: (p: Promise<number>) => void): void {
  program
    .command('serve')
    .description('run the broker (default: 127.0.0.1:2023, channels in ./data as segment files)')
    .option('-c, --config <file>', 'configuration file (docs/config.md); flags given here override it')
    .option('-l, --listen <host:port>', 'address to listen on, repeatable', (v: string, prev: ListenAddress[]) => [...prev, parseListen(v)], [])
    .option('-d, --data <dir>', 'data directory', './data')
    .addOption(new Option('--storage <driver>', 'storage driver').default('file'))
    .addOption(new Option('--fsync <policy>', 'when a publish is acknowledged').choices(['always', 'interval', 'never']).default('interval'))
    .option('--fsync-interval <duration>', 'group commit interval', duration, storage.fsyncIntervalMs)
    .option('--fsync-acks <n>', 'interval: acknowledgements waiting that start the group fsync sooner (0 = never sooner)', integer('--fsync-acks'), storage.fsyncAcks)
    .option('--fsync-bytes <bytes>', 'interval: their payload bytes that do the same (0 = never sooner)', bytes, storage.fsyncBytes)
    .option('--fsync-unacked <duration>', 'interval: the group fsync\'s pace while no acknowledgement waits for it (0s = the interval\'s)', duration, storage.fsyncUnackedMs)
    .option('--fsync-unacked-bytes <bytes>', 'interval: bytes written since the last fsync that bring back the interval\'s pace (0 = always)', bytes, storage.fsyncUnackedBytes)
    .option('--segment-size <bytes>', 'rotate segments at this size', bytes, 64 * 1024 * 1024)
    .option('--segment-age <duration>', 'rotate segments at this age', duration, 24 * 3600 * 1000)
    .option('--retain-bytes <bytes>', 'per-channel retention by size (0 = keep all; memory: 16 MiB)', bytes, 0)
    .option('--retain-age <duration>', 'per-channel retention by age (0 = keep all)', duration, 0)
    .option('--retain-messages <n>', 'per-channel retention by count (0 = keep all; memory: 10,000)', integer('--retain-messages'), 0)
    .option('--open-files <n>', 'segment files kept open at once (0 = half the open-file limit)', integer('--open-files'), 0)
    .option('--max-line <bytes>', 'longest command line', bytes, session.maxLine)
    .option('--max-payload <bytes>', 'largest message', bytes, session.maxPayload)
    .option('--history-max <n>', 'messages replayed by a human "sub" without from=', integer('--history-max', 1), session.historyMax)
    .option('--outbound-buffer <bytes>', 'per-connection outbound bound before a subscriber counts as slow', bytes, session.outboundHighWater)
    .option('--max-inflight <n>', 'unacknowledged publishes per connection before reading pauses', integer('--max-inflight', 1), session.maxInflight)
    .option('--max-inflight-bytes <bytes>', 'their payload bytes per connection before reading pauses', bytes, session.maxInflightBytes)
    .option('--read-per-turn <bytes>', 'bytes all connections read in one event-loop turn before those still reading wait for the next', bytes, session.turnReadBytes)
    .option('--clock-interval <duration>', 'how often to probe each machine-mode client\'s clock', duration, session.clockIntervalMs)
    .option('--max-subscriptions <n>', 'subscriptions per connection', integer('--max-subscriptions', 1), session.maxSubscriptions)
    .addOption(new Option('--slow-consumer <policy>', 'what happens to a slow subscriber of a memory channel (block: its publishers wait; block also holds file channels before size retention overtakes a subscriber)').choices(SLOW_CONSUMER_POLICIES).default('drop'))
    .option('--slow-consumer-timeout <duration>', 'with block: disconnect a subscriber that keeps publishers waiting this long', duration, 10_000)
    .option('--users <file>', 'users file: enables login, tenants and access rules (deny by default)')
    .addOption(new Option('--default-access <effect>', 'with --users: what no rule decides (rules come from the configuration file)').choices(['allow', 'deny']).default('deny'))
    .option('--audit-log <file>', 'accounting log, one JSON object per line, rotated by size')
    .option('--audit-syslog <host:port>', 'also forward the accounting log as RFC 5424 syslog over TCP (octet counting)', syslogAddress)
    .addOption(new Option('--audit-syslog-facility <facility>', 'syslog facility of the forwarded entries').choices(SYSLOG_FACILITY_NAMES).default(SYSLOG_DEFAULTS.facility))
    .option('--allow-plaintext-passwords', 'accept passwords on plaintext listeners that are not loopback', false)
    .option('--login-timeout <duration>', 'close connections that have not logged in after this long', duration, 10_000)
    .option('--idle-timeout <duration>', 'close connections silent this long (0 = never)', duration, 0)
    .option('--max-connections <n>', 'connections in total', integer('--max-connections', 1), 10_000)
    .option('--max-connections-per-address <n>', 'connections per client address', integer('--max-connections-per-address', 1), 1_000)
    .option('--publish-rate <n>', 'messages per second per connection (0 = unlimited)', integer('--publish-rate'), 0)
    .option('--allow <cidr>', 'admit only these addresses (repeatable)', (v: string, prev: string[]) => [...prev, v], [])
    .option('--deny <cidr>', 'refuse these addresses (repeatable)', (v: string, prev: string[]) => [...prev, v], [])
    .option('--tls-crl <file>', 'certificate revocation list (PEM) for client certificates; needs TLS in --config (tls crl)')
    .addOption(
      new Option('--tls-ocsp <on-failure>', "check client certificates with their OCSP responders; when no answer comes: refuse or accept; needs TLS with client certificates in --config (tls ocsp on)").choices(['refuse', 'accept']),
    )
    .option('--user <name>', 'started as root: run the network-facing broker as this user', 'nobody')
    .option('--no-privsep', 'started as root: stay in one process (not recommended)')
    .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error']).default('info'))
    .action((o: ServeOptions, cmd: Command) => done(serve(o, cmd)));
}

async function serve(o: ServeOptions, cmd?: Command): Promise<number> {
  // With --config, only the flags given on the command line override the file: the others
  // (commander's defaults) are left out, and the file's values or makeConfig's defaults hold.
  let file: LoadedConfig | undefined;
  if (o.config) {
    try {
      file = loadConfigFile(o.config);
    } catch (err) {
      if (!(err instanceof ConfigSyntaxError) && !(err instanceof ConfigError)) throw err;
      process.stderr.write(`fluctuat serve: ${err instanceof ConfigSyntaxError ? err.pretty() : err.message}\n`);
      return 2;
    }
    for (const w of file.warnings) process.stderr.write(`fluctuat serve: ${w}\n`);
    o = explicitOptions(o, (k) => cmd?.getOptionValueSource(k));
  }
  for (const [flag, given] of [['--tls-crl', o.tlsCrl], ['--tls-ocsp', o.tlsOcsp]] as const) {
    if (given && !file?.tls) {
      process.stderr.write(`fluctuat serve: ${flag} needs a TLS listener: tls certificate, key and ca in the --config file\n`);
      return 2;
    }
  }
  const log = pino({ level: o.logLevel ?? file?.logLevel ?? 'info', base: { pid: process.pid } });
  let config;
  try {
    config = makeConfig(mergeOverrides(file, {
      listen: o.listen,
      storage: o.storage,
      storageOptions: {
        dataDir: o.data,
        fsync: o.fsync,
        fsyncIntervalMs: o.fsyncInterval,
        fsyncAcks: o.fsyncAcks,
        fsyncBytes: o.fsyncBytes,
        fsyncUnackedMs: o.fsyncUnacked,
        fsyncUnackedBytes: o.fsyncUnackedBytes,
        segmentBytes: o.segmentSize,
        segmentAgeMs: o.segmentAge,
        retainBytes: o.retainBytes,
        retainAgeMs: o.retainAge,
        retainMessages: o.retainMessages,
        maxOpenFiles: o.openFiles,
      },
      session: {
        maxLine: o.maxLine,
        maxPayload: o.maxPayload,
        historyMax: o.historyMax,
        outboundHighWater: o.outboundBuffer,
        maxInflight: o.maxInflight,
        maxInflightBytes: o.maxInflightBytes,
        turnReadBytes: o.readPerTurn,
        maxSubscriptions: o.maxSubscriptions,
        clockIntervalMs: o.clockInterval,
      },
      broker: { slowConsumer: o.slowConsumer, blockTimeoutMs: o.slowConsumerTimeout },
      ...(file?.tls && (o.tlsCrl || o.tlsOcsp)
        ? {
            tls: {
              ...file.tls,
              ...(o.tlsCrl ? { crl: path.resolve(o.tlsCrl) } : {}),
              // The file's responder, timeout and cache, if it has `tls ocsp` settings; the flag's policy.
              ...(o.tlsOcsp ? { ocsp: { ...OCSP_DEFAULTS, ...file.tls.ocsp, onFailure: o.tlsOcsp } } : {}),
            },
          }
        : {}),
      security: {
        usersFile: o.users ?? null,
        defaultAccess: o.defaultAccess,
        auditFile: o.auditLog ?? null,
        syslog: o.auditSyslog
          ? { ...o.auditSyslog, facility: o.auditSyslogFacility ?? SYSLOG_DEFAULTS.facility, bufferEntries: SYSLOG_DEFAULTS.bufferEntries, bufferBytes: SYSLOG_DEFAULTS.bufferBytes }
          : null,
        allowPlaintextPasswords: o.allowPlaintextPasswords,
        loginTimeoutMs: o.loginTimeout,
        idleTimeoutMs: o.idleTimeout,
        maxConnections: o.maxConnections,
        maxConnectionsPerAddress: o.maxConnectionsPerAddress,
        publishRate: o.publishRate,
        allowAddresses: o.allow,
        denyAddresses: o.deny,
      },
    }));
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`fluctuat serve: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  let server: { rotate(): Promise<void>; reloadTls(): Promise<boolean>; close(): Promise<void> };
  let exited: Promise<number> | null = null;
  try {
    if (process.getuid?.() === 0 && o.privsep) {
      const separated = await runSeparated(config, o.user, o.logLevel ?? config.logLevel, log);
      server = { rotate: () => separated.rotate(), reloadTls: () => separated.reloadTls(), close: () => separated.stop() };
      exited = separated.exited;
    } else {
      // Loaded here: a privilege-separating parent never runs the broker itself, so it need not hold it.
      const { FluctuatServer } = await import('../server/server.js');
      const single = await FluctuatServer.start(config, log);
      if (process.getuid?.() === 0) log.warn({}, 'running as root in one process (--no-privsep): the network-facing broker has every privilege');
      else log.info({ uid: process.getuid?.() }, 'running in one process: not started as root, so no privilege separation');
      server = { rotate: () => single.rotate(), reloadTls: async () => single.reloadTls(), close: () => single.close() };
    }
  } catch (err) {
    process.stderr.write(`fluctuat serve: cannot start: ${(err as Error).message}\n`);
    return 69;
  }
  // A broker child that dies on its own takes the service down: exit and say so. (When we
  // stopped it, its end is the shutdown going as planned.)
  let stopping = false;
  void exited?.then((code) => {
    if (stopping && code === 0) return;
    log.error({ code }, 'the broker process ended');
    process.exit(code === 0 ? 0 : 70);
  });
  return new Promise<number>((resolve) => {
    // SIGHUP: rotate the segments, and read the TLS files again (connections stay up).
    process.on('SIGHUP', () => {
      server.rotate().catch((err: unknown) => log.error({ err }, 'rotation failed'));
      if (config.tls) server.reloadTls().catch((err: unknown) => log.error({ err }, 'tls reload failed'));
    });
    const stop = (signal: string): void => {
      stopping = true;
      log.info({ signal }, 'shutting down');
      server.close().then(
        () => resolve(0),
        (err: unknown) => {
          log.error({ err }, 'shutdown failed');
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

function syslogAddress(value: string): { host: string; port: number } {
  try {
    return parseSyslogAddress(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}
