/** docs/config.md stays true: its full example parses, every keyword is documented, its error examples are real. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ConfigSyntaxError } from '../src/config/lexer.js';
import { toOverrides } from '../src/config/load.js';
import { KEYWORDS, parseConfig } from '../src/config/parser.js';
import { makeConfig } from '../src/server/config.js';
import { ROOT } from './helpers/broker.js';

const doc = fs.readFileSync(path.join(ROOT, 'docs', 'config.md'), 'utf8');

function between(start: string, end: string): string {
  const a = doc.indexOf(start);
  const b = doc.indexOf(end, a);
  assert.ok(a >= 0 && b > a, `docs/config.md has no ${start} ... ${end} section`);
  return /```\w*\n([\s\S]*?)```/.exec(doc.slice(a, b))![1]!;
}

const noFiles = { readFile: (f: string): string => assert.fail(`the example includes ${f}`) };

test('the full example in docs/config.md parses, without warnings, into a valid configuration', () => {
  const example = between('<!-- full-example -->', '<!-- /full-example -->');
  const parsed = parseConfig(example, '/etc/fluctuat/fluctuat.conf', noFiles);
  assert.deepEqual(parsed.warnings, []);
  const config = makeConfig(toOverrides(parsed));
  assert.equal(config.listen.length, 3);
  assert.deepEqual(config.listen[2], { host: '0.0.0.0', port: 2024, tls: true });
  assert.equal(config.tls?.clientCertificate, 'required');
  assert.equal(config.tls?.certificate, '/etc/fluctuat/pki/server.crt');
  assert.equal(config.storageOptions.retainAgeMs, 30 * 86_400_000);
  assert.equal(config.security.usersFile, '/etc/fluctuat/users');
  assert.equal(config.security.rules.length, 4);
  assert.equal(config.broker.quotas.tenants.length, 2);
  assert.equal(config.broker.quotas.channelsPerTenant, 10_000);
  assert.deepEqual(config.security.certificateUsers, [{ subject: 'probe-17.eu', user: 'probe17' }]);
  assert.equal(config.tls?.crl, '/etc/fluctuat/pki/ca.crl');
  assert.deepEqual(config.tls?.ocsp, { onFailure: 'refuse', timeoutMs: 2000, cacheMaxAgeMs: 3_600_000 });
  assert.deepEqual(config.security.syslog, { host: '127.0.0.1', port: 6514, tls: { ca: '/etc/fluctuat/pki/collector-ca.crt' }, facility: 'authpriv', bufferEntries: 10000, bufferBytes: 16 * 1024 * 1024 });
});

test('every keyword of every block is in a docs/config.md table, and every limit and timeout', () => {
  const cells = new Set([...doc.matchAll(/^\| `([^`]+)`/gm)].map((m) => m[1]!));
  const documented = (k: string): boolean => [...cells].some((c) => c === k || c.startsWith(`${k} `));
  const all = new Set<string>([...KEYWORDS.top, ...KEYWORDS.storage, ...KEYWORDS.tenant]);
  all.delete('include'); // documented under Syntax
  all.delete('allow');
  all.delete('deny');
  for (const k of all) assert.ok(documented(k), `keyword "${k}" has no row in docs/config.md`);
  assert.ok(documented('allow\\|deny'), 'the access rules have no row');
  for (const l of ['line', 'payload', 'history', 'outbound-buffer', 'subscriptions', 'inflight', 'inflight-bytes', 'queue-backlog', 'connections', 'rate', 'channels', 'disk']) {
    assert.ok(documented(`limit ${l}`), `"limit ${l}" has no row`);
  }
  for (const t of ['request', 'handshake', 'login', 'idle']) assert.ok(documented(`timeout ${t}`), `"timeout ${t}" has no row`);
  for (const t of ['certificate', 'key', 'ca', 'crl', 'client-certificate', 'min-version']) assert.ok(documented(`tls ${t}`), `"tls ${t}" has no row`);
  for (const t of ['on', 'responder', 'on-failure', 'timeout', 'cache']) assert.ok(documented(`tls ocsp ${t}`), `"tls ocsp ${t}" has no row`);
  for (const t of ['level', 'audit', 'syslog']) assert.ok(documented(`log ${t}`), `"log ${t}" has no row`);
  assert.match(doc, /hand-written/);
});

/** The input behind each error line shown in docs/config.md. */
const ERROR_INPUTS = [
  'limit payload 64XB',
  'storage file {\n\tfsync interval 10\n}',
  'allow from 10.0.0.5/8',
  'listen on 127.0.0.1 port 2024 tls',
  'tls client-certificate required',
  'listen on 127.0.0.1 port 2024 tls\ntls certificate s.crt\ntls key s.key\ntls ca ca.crt\ntls ocsp on',
  'limit line 4096\n\nlimit line 8192',
  'p = "70000"\nlisten on 127.0.0.1 port $p',
  'storage file {\n listen on ::1\n}',
];

test('the error messages shown in docs/config.md are the ones the parser gives', () => {
  const shown = between('<!-- errors -->', '<!-- /errors -->').trim().split('\n');
  const actual = ERROR_INPUTS.map((input) => {
    try {
      parseConfig(input, 'fluctuat.conf', noFiles);
    } catch (err) {
      if (err instanceof ConfigSyntaxError) return err.message;
      throw err;
    }
    return assert.fail(`no error for ${JSON.stringify(input)}`);
  });
  assert.deepEqual(shown, actual);
});
