/** The configuration file parser: every keyword, the lexer, a table of malformed inputs, fuzzing. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { ConfigSyntaxError, Lexer } from '../src/config/lexer.js';
import { loadConfigFile, mergeOverrides, toOverrides } from '../src/config/load.js';
import { parseConfig, type ParseOptions, type ParsedConfig } from '../src/config/parser.js';
import { checkCidr, checkDuration, checkRate, checkSize } from '../src/config/schema.js';
import { makeConfig } from '../src/server/config.js';
import { tmpDir } from './helpers/broker.js';

/** Parse `text` as f.conf (in /etc), with included files from `files` (by base name). */
function parse(text: string, files: Record<string, string> = {}, extra: Partial<ParseOptions> = {}): ParsedConfig {
  return parseConfig(text, '/etc/f.conf', {
    readFile: (f) => {
      const content = files[path.basename(f)];
      if (content === undefined) throw Object.assign(new Error(`no ${f}`), { code: 'ENOENT' });
      return content;
    },
    ...extra,
  });
}

/** The message of the error that parsing `text` throws (asserting it is a positioned one). */
function error(text: string, files: Record<string, string> = {}): string {
  try {
    parse(text, files);
  } catch (err) {
    assert.ok(err instanceof ConfigSyntaxError, `not a ConfigSyntaxError: ${String(err)}`);
    return err.message;
  }
  assert.fail(`no error for ${JSON.stringify(text)}`);
}

test('lexer: words, strings, escapes, comments, continuations, CRLF', () => {
  const kinds = (text: string): string[] => {
    const l = new Lexer(text, 'f');
    const out: string[] = [];
    for (let t = l.next(); t.kind !== 'eof'; t = l.next()) out.push(t.kind === 'word' || t.kind === 'string' ? `${t.kind}:${t.text}@${t.line}:${t.column}` : `${t.kind}@${t.line}:${t.column}`);
    return out;
  };
  assert.deepEqual(kinds('listen on ::1 port 2023 # a comment "x"\n'), ['word:listen@1:1', 'word:on@1:8', 'word:::1@1:11', 'word:port@1:15', 'word:2023@1:20', 'newline@1:40']);
  assert.deepEqual(kinds('a "b \\" \\\\ c"'), ['word:a@1:1', 'string:b " \\ c@1:3']);
  assert.deepEqual(kinds('a \\\n  b\r\nc'), ['word:a@1:1', 'word:b@2:3', 'newline@2:5', 'word:c@3:1']);
  assert.deepEqual(kinds('"long \\\nstring"'), ['string:long string@1:1']);
  assert.deepEqual(kinds('x={a,b}'), ['word:x@1:1', '=@1:2', '{@1:3', 'word:a@1:4', ',@1:5', 'word:b@1:6', '}@1:7']);
  assert.deepEqual(kinds('# only a comment \\\nnext'), ['newline@1:19', 'word:next@2:1']);
});

test('every keyword sets what docs/config.md says', () => {
  const p = parse(`
listen on 127.0.0.1 port 2023
listen on [::1] tls
listen on broker.example.org port 0
data directory "data"
storage memory {
  fsync interval 20ms
  segment size 1MiB age 1h
  retain bytes 1g age 7d messages 500
  open-files 512
}
limit line 8k
limit payload 2MiB
limit history 10
limit outbound-buffer 256k per connection
limit subscriptions 5
limit inflight 7
limit inflight-bytes 2m
limit queue-backlog 9 per group
limit connections 100
limit connections 10 per address
limit connections 3 per user
limit rate 600/m burst 5
limit rate 2/s per user
limit channels 50 per tenant
limit disk 1GiB per tenant
timeout request 2s
timeout handshake 3s
timeout login 4s
timeout idle 5m
slow-consumer disconnect
clock interval 1.5s
log level warn
log audit "log/audit.log" rotate 1MiB keep 3
log syslog 192.0.2.1 tls ca "pki/collector.crt" buffer 5 buffer-bytes 1MiB facility local3
tls certificate "pki/server.crt"
tls key pki/server.key
tls ca "/pki/ca.crt"
tls crl "/pki/ca.crl"
tls client-certificate optional
tls min-version 1.3
users file "users"
plaintext-passwords allow
login backoff 100ms max 1m
default-access allow
admin group ops
certificate subject "probe 17" user probe17
allow from { 127.0.0.0/8, ::1
  2001:db8::/32 }
deny from ::ffff:10.1.0.0/112, 192.0.2.66
allow sub, pub on "probes.>" for group probes
deny { request } on svc.admin.> for user mallory
allow all on "public.*"
tenant acme {
  limit channels 10
  limit disk 1MiB
}
tenant globex
`);
  assert.deepEqual(p.listen, [
    { host: '127.0.0.1', port: 2023, tls: false },
    { host: '::1', port: 2023, tls: true },
    { host: 'broker.example.org', port: 0, tls: false },
  ]);
  assert.equal(p.storage, 'memory');
  assert.deepEqual(p.storageOptions, {
    dataDir: '/etc/data',
    fsync: 'interval',
    fsyncIntervalMs: 20,
    segmentBytes: 1024 * 1024,
    segmentAgeMs: 3_600_000,
    retainBytes: 1024 ** 3,
    retainAgeMs: 7 * 86_400_000,
    retainMessages: 500,
    maxOpenFiles: 512,
  });
  assert.deepEqual(p.session, {
    maxLine: 8192,
    maxPayload: 2 * 1024 * 1024,
    historyMax: 10,
    outboundHighWater: 256 * 1024,
    maxSubscriptions: 5,
    maxInflight: 7,
    maxInflightBytes: 2 * 1024 * 1024,
    requestTimeoutMs: 2000,
    clockIntervalMs: 1500,
  });
  const { quotas: _q, ...broker } = p.broker;
  assert.deepEqual(broker, { queueBacklog: 9, slowConsumer: 'disconnect' });
  assert.equal(p.logLevel, 'warn');
  assert.deepEqual(p.tls, {
    certificate: '/etc/pki/server.crt',
    key: '/etc/pki/server.key',
    ca: '/pki/ca.crt',
    crl: '/pki/ca.crl',
    clientCertificate: 'optional',
    minVersion: 'TLSv1.3',
    handshakeTimeoutMs: 3000,
  });
  assert.deepEqual(p.security, {
    maxConnections: 100,
    maxConnectionsPerAddress: 10,
    maxConnectionsPerUser: 3,
    publishRate: 10,
    publishBurst: 5,
    userPublishRate: 2,
    loginTimeoutMs: 4000,
    idleTimeoutMs: 300_000,
    auditFile: '/etc/log/audit.log',
    auditMaxBytes: 1024 * 1024,
    auditKeep: 3,
    syslog: { host: '192.0.2.1', port: 6514, tls: { ca: '/etc/pki/collector.crt' }, facility: 'local3', bufferEntries: 5, bufferBytes: 1024 * 1024 },
    usersFile: '/etc/users',
    allowPlaintextPasswords: true,
    backoffBaseMs: 100,
    backoffMaxMs: 60_000,
    defaultAccess: 'allow',
    adminGroup: 'ops',
    rules: [
      { effect: 'allow', ops: ['sub', 'pub'], pattern: 'probes.>', who: 'group:probes' },
      { effect: 'deny', ops: ['request'], pattern: 'svc.admin.>', who: 'user:mallory' },
      { effect: 'allow', ops: ['sub', 'pub', 'request'], pattern: 'public.*', who: 'any' },
    ],
    allowAddresses: ['127.0.0.0/8', '::1/128', '2001:db8::/32'],
    denyAddresses: ['10.1.0.0/16', '192.0.2.66/32'],
    certificateUsers: [{ subject: 'probe 17', user: 'probe17' }],
  });
  assert.deepEqual(p.broker.quotas, {
    tenants: [
      { name: 'acme', maxChannels: 10, diskQuotaBytes: 1024 * 1024 },
      { name: 'globex', maxChannels: 0, diskQuotaBytes: 0 },
    ],
    channelsPerTenant: 50,
    diskPerTenantBytes: 1024 ** 3,
  });
  assert.deepEqual(p.warnings, []);
});

test('slow-consumer block: its timeout is left to the broker default, or given', () => {
  assert.deepEqual(parse('slow-consumer block').broker, { slowConsumer: 'block' });
  assert.deepEqual(parse('slow-consumer block timeout 30s').broker, { slowConsumer: 'block', blockTimeoutMs: 30_000 });
  assert.match(error('slow-consumer block timeout 0s'), /"slow-consumer block timeout"/);
});

test('fsync interval: its duration, the acknowledgements or bytes that start a group fsync sooner, and the pace of writes nobody waits for, each optional', () => {
  const storage = (text: string): unknown => parse(`storage file {\n\t${text}\n}`).storageOptions;
  assert.deepEqual(storage('fsync interval 20ms acks 256 bytes 1MiB'), { fsync: 'interval', fsyncIntervalMs: 20, fsyncAcks: 256, fsyncBytes: 1024 * 1024 });
  assert.deepEqual(storage('fsync interval bytes 64k'), { fsync: 'interval', fsyncBytes: 64 * 1024 });
  assert.deepEqual(storage('fsync interval acks 0'), { fsync: 'interval', fsyncAcks: 0 }, '0: never sooner by count');
  assert.match(error('storage file {\n\tfsync interval acks many\n}'), /2:22: .*"fsync interval acks".*"many"/);
  assert.match(error('storage file {\n\tfsync interval 5ms acks 1 acks 2\n}'), /expected "bytes", "unacked" or "unacked-bytes" after "fsync interval", or the end of the line, found "acks"/);
  assert.deepEqual(storage('fsync interval unacked 1s unacked-bytes 2MiB'), { fsync: 'interval', fsyncUnackedMs: 1000, fsyncUnackedBytes: 2 * 1024 * 1024 });
  assert.deepEqual(storage('fsync interval 5ms unacked 0s unacked-bytes 0'), { fsync: 'interval', fsyncIntervalMs: 5, fsyncUnackedMs: 0, fsyncUnackedBytes: 0 }, '0: the interval\'s pace');
  assert.match(error('storage file {\n\tfsync interval unacked 5\n}'), /2:25: expected a duration with its unit, such as 5ms or 5s .* for "fsync interval unacked", found "5"/);
  assert.match(error('storage file {\n\tfsync interval unacked-bytes lots\n}'), /"fsync interval unacked-bytes".*"lots"/);
  assert.match(error('storage file {\n\tfsync always acks 1\n}'), /expected the end of the line after "fsync always", found "acks"/);
  // And through the command line's flags, which override the file's.
  const cfg = makeConfig(mergeOverrides(toOverrides(parse('storage file {\n\tfsync interval acks 10 bytes 1k\n}')), { storageOptions: { fsyncAcks: 20 } }));
  assert.equal(cfg.storageOptions.fsyncAcks, 20);
  assert.equal(cfg.storageOptions.fsyncBytes, 1024);
  assert.throws(() => makeConfig({ storageOptions: { fsyncAcks: -1 } }), /fsync interval acks must be a whole number >= 0, got -1/);
  assert.throws(() => makeConfig({ storageOptions: { fsyncUnackedMs: -5 } }), /fsync interval unacked must be a whole number >= 0, got -5/);
  const flags = makeConfig(mergeOverrides(toOverrides(parse('storage file {\n\tfsync interval unacked 1s\n}')), { storageOptions: { fsyncUnackedBytes: 4096 } }));
  assert.equal(flags.storageOptions.fsyncUnackedMs, 1000);
  assert.equal(flags.storageOptions.fsyncUnackedBytes, 4096);
  assert.equal(makeConfig({}).storageOptions.fsyncUnackedMs, 100, 'the default pace of writes nobody waits for');
});

test('fsync without interval, one-line blocks, an empty file', () => {
  const p = parse('storage file { fsync always }\n');
  assert.deepEqual(p.storageOptions, { fsync: 'always' });
  assert.deepEqual(parse('storage file {\n\tfsync interval\n}').storageOptions, { fsync: 'interval' });
  const empty = parse('# nothing\n\n');
  assert.deepEqual(empty.listen, []);
  assert.equal(empty.storage, undefined);
  // An empty file gives the same configuration as no file.
  assert.deepEqual(makeConfig(mergeOverrides(toOverrides(empty), {})), makeConfig({}));
});

test('macros: defined, expanded as words (several words for a list), reported at the use site', () => {
  const p = parse(['p2 = 2024', 'nets = "{ 10.0.0.0/8, 192.0.2.0/24 }"', 'alias = $p2', 'listen on 127.0.0.1 port $alias', 'allow from $nets'].join('\n'));
  assert.deepEqual(p.listen, [{ host: '127.0.0.1', port: 2024, tls: false }]);
  assert.deepEqual(p.security.allowAddresses, ['10.0.0.0/8', '192.0.2.0/24']);
  assert.equal(parse('listen on 127.0.0.1 port $p', {}, { macros: { p: '7' } }).listen[0]!.port, 7);
  assert.equal(error('p = "70000"\nlisten on 127.0.0.1 port $p'), 'f.conf:2:26: expected a port number (0-65535; 0 picks a free port) for "port", found "70000" (from macro $p)'.replace('f.conf', '/etc/f.conf'));
  assert.match(error('a = $b\n'), /^\/etc\/f\.conf:1:5: macro \$b is not defined/);
  assert.match(error('a = "$a"\nlisten on $a'), /^\/etc\/f\.conf:2:11: macro \$a expands more than 16 levels deep/);
  assert.match(error('port = 1'), /^\/etc\/f\.conf:1:1: "port" is a keyword and cannot be a macro name/);
});

test('include: statements of another file, in place; errors name the included file', () => {
  const p = parse('include "a.conf"\nlisten on ::1 port 1\ntenant t { include "t.conf" }', {
    'a.conf': 'listen on 127.0.0.1 port 2\nx = "3"',
    't.conf': 'limit channels $x',
  });
  assert.deepEqual(p.listen.map((l) => l.port), [2, 1]);
  assert.equal(p.broker.quotas!.tenants[0]!.maxChannels, 3);
  assert.deepEqual(p.files, ['/etc/f.conf', '/etc/a.conf', '/etc/t.conf']);
  assert.equal(error('include "a.conf"', { 'a.conf': '\n\nlimit line big' }), '/etc/a.conf:3:12: expected a size such as 4096, 512k, 64MiB or 1g for "limit line", found "big"');
  assert.equal(error('include "b.conf"', { 'b.conf': 'include "c.conf"', 'c.conf': 'include "b.conf"' }), '/etc/c.conf:1:9: include cycle: /etc/b.conf -> /etc/c.conf -> /etc/b.conf');
  assert.equal(error('\ninclude "missing.conf"'), '/etc/f.conf:2:9: cannot read included file /etc/missing.conf: ENOENT');
  assert.match(error('include "open.conf"\n}', { 'open.conf': 'storage file {' }), /^\/etc\/open\.conf:1:15: expected "}" to close the block opened at \/etc\/open\.conf:1 before the end of the file \(a block cannot end in another file\)/);
});

/** [input, exact message (the file is /etc/f.conf)]: what a person gets for common mistakes. */
const MALFORMED: [string, string][] = [
  ['listen on 127.0.0.1 prot 2023', '1:21: expected "port" or "tls" after the listen address, or the end of the line, found "prot" (did you mean "port"?)'],
  ['lisen on 127.0.0.1', '1:1: unknown keyword "lisen": expected one of include, listen, data, storage, limit, timeout, slow-consumer, clock, log, tls, users, login, plaintext-passwords, default-access, admin, allow, deny, certificate, tenant (did you mean "listen"?)'],
  ['listen 127.0.0.1', '1:8: expected "on" after "listen", found "127.0.0.1"'],
  ['listen on', '1:10: expected an address after "listen on", found the end of the file'],
  ['listen on 127.0.0.1 port', '1:25: expected a port number after "port", found the end of the file'],
  ['listen on 127.0.0.1 port 70000', '1:26: expected a port number (0-65535; 0 picks a free port) for "port", found "70000"'],
  ['listen on 999.1.1.1', '1:11: expected an IPv4 address, an IPv6 address or a host name for "listen on", found "999.1.1.1"'],
  ['listen on ::1 port 1\nlisten on ::1 port 1', '2:1: listen on ::1 port 1 is already declared at /etc/f.conf:1'],
  ['listen on 127.0.0.1 port 2024 tls', '1:1: listen on 127.0.0.1 port 2024 is tls, but "tls certificate" is not set: add tls certificate "/path/to/server.crt"'],
  ['tls certificate a\nlisten on ::1 tls', '2:1: listen on ::1 port 2023 is tls, but "tls key" is not set: add tls key "/path/to/server.key"'],
  ['tls client-certificate required', '1:5: "tls client-certificate required" needs "tls ca" (the CA that client certificates must chain to)'],
  ['tls client-certificate maybe', '1:24: expected "none", "optional" or "required" after "tls client-certificate", found "maybe"'],
  ['tls min-version 1.1', '1:17: expected "1.2" or "1.3" after "tls min-version", found "1.1" (did you mean "1.2"?)'],
  ['limit line 4096\nlimit payload 64XB', '2:15: expected a size such as 4096, 512k, 64MiB or 1g for "limit payload", found "64XB"'],
  ['limit line 0', '1:12: expected a value above zero for "limit line", found "0"'],
  ['limit line 4096\n\nlimit line 8192', '3:7: "limit line" is already set at /etc/f.conf:1; set it once'],
  ['limit subscriptions 5 per connection\nlimit subscriptions 6', '2:7: "limit subscriptions" is already set at /etc/f.conf:1; set it once'],
  ['limit connections 10 per tenant', '1:26: expected "address" or "user" after "limit connections ... per", found "tenant"'],
  ['limit rate 100', '1:12: expected a rate such as 1000/s, 600/m or 3600/h for "limit rate", found "100"'],
  ['limit rate 5/s per user burst 3', '1:7: "burst" applies to the per-connection rate only; the per-user bucket holds one second of its rate'],
  ['limit line 1 burst 2', '1:14: expected the end of the line after "limit line", found "burst"'],
  ['storage file {\n\tfsync interval 10\n}', '2:17: expected a duration with its unit, such as 10ms or 10s (units: ms, s, m, h, d) for "fsync interval", found "10"'],
  ['storage file {\n fsync always\n', '3:1: expected "}" to close the block opened at /etc/f.conf:1 before the end of the file'],
  ['storage file {\n listen on ::1\n}', '2:2: unknown keyword "listen" in a storage block: expected one of include, fsync, segment, retain, open-files ("listen" belongs at the top level)'],
  ['storage fiel', '1:9: expected a storage driver: file, memory, found "fiel" (did you mean "file"?)'],
  ['storage file {\n segment\n}', '2:9: expected "size" or "age" after "segment", found the end of the line'],
  ['fsync always', '1:1: unknown keyword "fsync": expected one of include, listen, data, storage, limit, timeout, slow-consumer, clock, log, tls, users, login, plaintext-passwords, default-access, admin, allow, deny, certificate, tenant'],
  ['data directory "/var/lib', '1:16: unterminated string: expected a closing \'"\' before the end of the file'],
  ['data directory "/var/lib\n"', '1:16: unterminated string: expected a closing \'"\' before the end of the line (end a line with "\\" to continue a string)'],
  ['data directory "a\\tb"', '1:18: unknown escape "\\t" in a string: expected \\" or \\\\'],
  ['listen on ::1 \\ port 1', '1:15: a "\\" outside a string must end the line (line continuation)'],
  ['timeout idle forever', '1:14: expected a duration such as 10ms, 5s, 2m, 24h or 7d for "timeout idle", found "forever"'],
  ['log level verbose', '1:11: expected "trace", "debug", "info", "warn" or "error" after "log level", found "verbose"'],
  ['log syslog 192.0.2.1 facility local9', '1:31: expected "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp", "local0", "local1", "local2", "local3", "local4", "local5", "local6" or "local7" after "facility", found "local9" (did you mean "local0"?)'],
  ['allow from 10.0.0.5/8', '1:12: expected a network without host bits set for "allow from", found "10.0.0.5/8" (did you mean 10.0.0.0/8?)'],
  ['deny from 10.0.0.0/33', '1:11: expected an IPv4 prefix length of 0 to 32 for "deny from", found "10.0.0.0/33"'],
  ['allow from {\n}', '1:12: expected an address or network in the list, found an empty list'],
  ['allow sub on "probes.>x" for group ops', '1:14: expected a channel pattern such as "probes.>" or "tasks.*.eu", found the string "probes.>x" (invalid character ">" at position 7 (allowed: letters, digits, "_", "-", "." between tokens))'],
  ['allow pub on x.y for grop ops', '1:22: expected "group", "user" or "any" after "for", found "grop" (did you mean "group"?)'],
  ['allow publish on x', '1:7: expected sub, pub, request, all, a { list } of them, or "from" after "allow", found "publish"'],
  ['allow sub x', '1:11: expected "on" after the operations, found "x"'],
  ['deny sub on x for group "-bad"', '1:25: expected a group name (1 to 64 letters, digits, "_", "." or "-", not starting with "." or "-") for "for group", found the string "-bad"'],
  ['default-access maybe', '1:16: expected "allow" or "deny" after "default-access", found "maybe"'],
  ['login backoff 1s max 10ms', '1:22: expected a longest delay of at least the first one (1s), found "10ms"'],
  ['tenant acme\ntenant acme', '2:8: tenant acme is already declared at /etc/f.conf:1'],
  ['tenant acme { limit line 5 }', '1:21: expected "channels" or "disk" after "limit", found "line"'],
  ['users "file"', '1:7: expected "file" after "users", found the string "file"'],
  ['{', '1:1: expected a keyword at the start of a statement, found "{"'],
  ['listen on ::1 port 1 tls tls', '1:26: expected the end of the line after the listen address, found "tls"'],
  ['a=1\nb=$a$a', '2:3: expected a macro name after "$" (letters, digits, "_"), found "$a$a"'],
  ['slow-consumer wait', '1:15: expected "drop", "disconnect" or "block" after "slow-consumer", found "wait"'],
  ['slow-consumer block timeout', '1:28: expected a duration after "slow-consumer block timeout", such as 10s, found the end of the file'],
  ['slow-consumer disconnect timeout 5s', '1:26: expected the end of the line after "slow-consumer", found "timeout"'],
];

test('malformed inputs: each error says where, what was expected and what was found', () => {
  for (const [input, expected] of MALFORMED) {
    assert.equal(error(input), `/etc/f.conf:${expected}`, `for ${JSON.stringify(input)}`);
  }
});

test('the pretty form shows the line and a caret under the column', () => {
  try {
    parse('limit line 4096\n\tlimit payload 64XB');
    assert.fail('no error');
  } catch (err) {
    assert.ok(err instanceof ConfigSyntaxError);
    assert.equal(err.pretty(), `${err.message}\n     limit payload 64XB\n                   ^`);
    assert.deepEqual({ file: err.at.file, line: err.at.line, column: err.at.column }, { file: '/etc/f.conf', line: 2, column: 16 });
  }
});

test('warnings: legal but probably not meant', () => {
  const p = parse('tls certificate a\ntls key b\ntls ca c\nallow sub on x');
  assert.deepEqual(p.warnings, [
    '/etc/f.conf:1:5: warning: tls files are set but no listener has "tls"',
    '/etc/f.conf:3:5: warning: "tls ca" only verifies client certificates, and "tls client-certificate" is none',
    '/etc/f.conf:1:1: warning: access rules and "default-access" apply only with "users file" (without it the server is open)',
  ]);
});

test('values: sizes, durations, rates, networks', () => {
  const v = <T>(r: { ok: true; value: T } | { ok: false }): T | undefined => (r.ok ? r.value : undefined);
  assert.equal(v(checkSize('512k')), 512 * 1024);
  assert.equal(v(checkSize('10GB')), 10 * 1024 ** 3);
  assert.equal(v(checkSize('7b')), 7);
  assert.equal(v(checkSize('1ib')), undefined);
  assert.equal(v(checkSize('-1')), undefined);
  assert.equal(v(checkDuration('1.5s')), 1500);
  assert.equal(v(checkDuration('7d')), 7 * 86_400_000);
  assert.equal(v(checkDuration('5')), undefined);
  assert.equal(v(checkRate('3600/h')), 1);
  assert.equal(v(checkRate('0/s')), undefined);
  const cidr = (t: string): string | undefined => v(checkCidr(t))?.cidr;
  assert.equal(cidr('192.0.2.7'), '192.0.2.7/32');
  assert.equal(cidr('0.0.0.0/0'), '0.0.0.0/0');
  assert.equal(cidr('::'), '::/128');
  assert.equal(cidr('2001:DB8:0:0:0:0:0:0/32'), '2001:db8::/32');
  assert.equal(cidr('fe80::1:0:0:1'), 'fe80::1:0:0:1/128');
  assert.equal(cidr('::ffff:192.0.2.1'), '192.0.2.1/32');
  assert.equal(cidr('::ffff:10.0.0.0/104'), '10.0.0.0/8');
  assert.equal(cidr('::ffff:0:0/96'), '0.0.0.0/0');
  assert.equal(cidr('2001:db8::1/64'), undefined);
  assert.equal(cidr('1.2.3'), undefined);
  assert.equal(cidr('::1/129'), undefined);
});

test('mergeOverrides: the command line wins setting by setting; lists replace; unset values never override', () => {
  const file = toOverrides(parse('listen on ::1 port 1\nlimit line 100\nlimit payload 200\nallow from 10.0.0.0/8\nstorage memory'));
  const merged = mergeOverrides(file, {
    session: { maxPayload: 300, maxLine: undefined as unknown as number },
    security: { usersFile: null, allowAddresses: [], denyAddresses: ['192.0.2.1'] },
    storage: undefined as unknown as string,
  });
  const c = makeConfig(merged);
  assert.deepEqual(c.listen, [{ host: '::1', port: 1, tls: false }]);
  assert.equal(c.session.maxLine, 100);
  assert.equal(c.session.maxPayload, 300);
  assert.equal(c.storage, 'memory');
  assert.deepEqual(c.security.allowAddresses, ['10.0.0.0/8']);
  assert.deepEqual(c.security.denyAddresses, ['192.0.2.1']);
  assert.equal(c.security.usersFile, null);
  const cli = makeConfig(mergeOverrides(file, { listen: [{ host: '127.0.0.1', port: 9 }] }));
  assert.deepEqual(cli.listen, [{ host: '127.0.0.1', port: 9 }]);
});

test('loadConfigFile: relative paths against the file, TLS files checked at their line', () => {
  const dir = tmpDir('fluctuat-config-');
  try {
    fs.mkdirSync(path.join(dir, 'conf.d'));
    fs.writeFileSync(path.join(dir, 'main.conf'), 'include "conf.d/tls.conf"\nlisten on 127.0.0.1 port 0 tls\ndata directory "d"\n');
    fs.writeFileSync(path.join(dir, 'conf.d', 'tls.conf'), 'tls certificate "missing.crt"\ntls key "missing.key"\n');
    const file = path.join(dir, 'main.conf');
    assert.throws(
      () => loadConfigFile(file),
      (e: ConfigSyntaxError) => e.message === `${path.join(dir, 'conf.d', 'tls.conf')}:1:17: cannot read the tls certificate file ${path.join(dir, 'conf.d', 'missing.crt')}: ENOENT`,
    );
    const loaded = loadConfigFile(file, { checkFiles: false });
    assert.equal(loaded.storageOptions?.dataDir, path.join(dir, 'd'));
    assert.equal(loaded.tls?.certificate, path.join(dir, 'conf.d', 'missing.crt'));
    assert.throws(() => loadConfigFile(path.join(dir, 'nope.conf')), /nope\.conf: cannot read the configuration file: ENOENT/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('fuzz: any input gives a configuration or a positioned error, never a crash', () => {
  const words = ['listen', 'on', 'port', 'tls', '127.0.0.1', '::1', '2023', 'limit', 'line', 'rate', 'per', 'user', 'burst', '10/s', '4k', 'storage',
    'file', 'memory', '{', '}', ',', '=', '"x"', '"', '\\', '\\\n', '\n', '#', '$m', 'm', 'allow', 'deny', 'sub', 'from', 'for', 'group', 'g', 'tenant',
    'include', 'timeout', 'idle', '5s', 'log', 'syslog', 'audit', 'fsync', 'interval', 'tls', 'certificate', 'key', 'ca', 'client-certificate', 'required'];
  const text = fc.oneof(
    fc.array(fc.constantFrom(...words), { maxLength: 30 }).map((w) => w.join(' ')),
    fc.string({ maxLength: 200 }),
    fc.uint8Array({ maxLength: 100 }).map((b) => Buffer.from(b).toString('latin1')),
  );
  fc.assert(
    fc.property(text, (input) => {
      const lines = input.split('\n').length;
      try {
        parse(input, { 'x': 'listen on ::1' });
      } catch (err) {
        if (!(err instanceof ConfigSyntaxError)) throw err;
        assert.ok(err.at.line >= 1 && err.at.line <= lines + 1, `line ${err.at.line} of ${lines}`);
        assert.ok(err.at.column >= 1);
        assert.match(err.message, /^\/etc\/f\.conf:\d+:\d+: \S/);
      }
    }),
    { numRuns: 3000 },
  );
});
