import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { writeUsers } from '../src/security/users-file.js';
import { createCa, createServerCert, loadCa } from '../src/certs/generate.js';
import { formatSyslog, headerField, SyslogForwarder, type SyslogFacility } from '../src/security/syslog.js';
import type { Log } from '../src/storage/engine.js';
import { tmpDir } from './helpers/broker.js';
import { startInProcess, type InProcessBroker } from './helpers/inproc.js';
import { RawClient, until } from './helpers/raw.js';

// ------------------------------------------------------------------ a strict RFC 5424 collector

interface SdElement {
  id: string;
  params: [string, string][];
}

interface SyslogMessage {
  pri: number;
  version: number;
  timestamp: string;
  hostname: string;
  appName: string;
  procId: string;
  msgId: string;
  sd: SdElement[];
  /** MSG without its BOM. */
  msg: string;
  /** Which connection of the collector it came on (0, 1, ...). */
  connection: number;
}

const SD_NAME = /^[\x21-\x7e]{1,32}$/;

/** Parse one SYSLOG-MSG by the RFC 5424 ABNF; throws on anything that does not conform. */
function parseSyslog(bytes: Buffer, connection: number): SyslogMessage {
  const text = bytes.toString('utf8');
  const h = /^<(\d{1,3})>([1-9]\d{0,2}) (\S+) (\S+) (\S+) (\S+) (\S+) /.exec(text);
  if (!h) throw new Error(`bad header: ${text.slice(0, 120)}`);
  const [, pri, version, timestamp, hostname, appName, procId, msgId] = h;
  for (const [field, max] of [[hostname, 255], [appName, 48], [procId, 128], [msgId, 32]] as const) {
    assert.match(field!, /^[\x21-\x7e]+$/);
    assert.ok(field!.length <= max, `${field} longer than ${max}`);
  }
  const name = (at: number): string => {
    const n = /^[^ =\]"]*/.exec(text.slice(at))![0];
    assert.match(n, SD_NAME, `SD-NAME at ${at} in ${text}`);
    return n;
  };
  let i = h[0].length;
  const sd: SdElement[] = [];
  if (text[i] === '-') i++;
  else {
    assert.equal(text[i], '[', 'STRUCTURED-DATA');
    while (text[i] === '[') {
      const id = name(++i);
      i += id.length;
      const params: [string, string][] = [];
      while (text[i] === ' ') {
        const n = name(++i);
        i += n.length;
        assert.equal(text.slice(i, i + 2), '="', `="" after ${n}`);
        i += 2;
        let value = '';
        for (;;) {
          const c = text[i];
          if (c === undefined) throw new Error('unterminated PARAM-VALUE');
          if (c === '\\' && (text[i + 1] === '"' || text[i + 1] === '\\' || text[i + 1] === ']')) {
            value += text[i + 1];
            i += 2;
          } else if (c === '"') {
            i++;
            break;
          } else if (c === ']') {
            throw new Error(`unescaped "]" in a PARAM-VALUE: ${text}`);
          } else {
            value += c;
            i++;
          }
        }
        params.push([n, value]);
      }
      assert.equal(text[i], ']', `end of SD-ELEMENT at ${i} in ${text}`);
      i++;
      sd.push({ id, params });
    }
  }
  let msg = '';
  if (i < text.length) {
    assert.equal(text[i], ' ', 'SP before MSG');
    const at = Buffer.byteLength(text.slice(0, i + 1));
    assert.ok(bytes.subarray(at, at + 3).equals(Buffer.from([0xef, 0xbb, 0xbf])), 'MSG starts with a UTF-8 BOM');
    msg = text.slice(i + 2);
  }
  return { pri: Number(pri), version: Number(version), timestamp: timestamp!, hostname: hostname!, appName: appName!, procId: procId!, msgId: msgId!, sd, msg, connection };
}

function param(m: SyslogMessage, id: string, name: string): string | undefined {
  return m.sd.find((e) => e.id === id)?.params.find(([n]) => n === name)?.[1];
}

/** A TCP syslog collector that reads octet-counted frames (RFC 6587 §3.4.1). */
class Collector {
  readonly messages: SyslogMessage[] = [];
  readonly sockets = new Set<net.Socket>();
  private connections = 0;
  /** When set, new connections are not read (their frames pile up in the kernel). */
  stall = false;
  /** TLS handshakes that failed (wrong CA on the forwarder's side, ...). */
  tlsErrors = 0;
  private server!: net.Server;

  private constructor(private readonly tlsOptions?: tls.TlsOptions) {}

  /** Plain TCP, or TLS (RFC 5425) when given a certificate and key. */
  static async start(port = 0, tlsOptions?: tls.TlsOptions): Promise<Collector> {
    const c = new Collector(tlsOptions);
    await c.listen(port);
    return c;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  private listen(port: number): Promise<void> {
    if (this.tlsOptions) {
      this.server = tls.createServer(this.tlsOptions, (socket) => this.accept(socket));
      this.server.on('tlsClientError', () => this.tlsErrors++);
    } else {
      this.server = net.createServer((socket) => this.accept(socket));
    }
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => resolve());
    });
  }

  private accept(socket: net.Socket): void {
    const connection = this.connections++;
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => {});
    if (this.stall) {
      socket.pause();
      return;
    }
    let buf = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const sp = buf.indexOf(0x20);
        if (sp < 0) break;
        const len = buf.subarray(0, sp).toString('latin1');
        assert.match(len, /^[1-9]\d*$/, 'MSG-LEN');
        if (buf.length < sp + 1 + Number(len)) break;
        this.messages.push(parseSyslog(buf.subarray(sp + 1, sp + 1 + Number(len)), connection));
        buf = buf.subarray(sp + 1 + Number(len));
      }
    });
    // A forwarder that half-closes gets our close once everything was read.
    socket.on('end', () => socket.end());
  }

  /** Stop listening and cut every connection (a crashed collector). */
  async stop(reset = false): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) (reset ? s.resetAndDestroy() : s.destroy());
    await closed;
  }

  /** Listen again on the same port. */
  restart(port: number): Promise<void> {
    return this.listen(port);
  }

  events(): string[] {
    return this.messages.map((m) => m.msgId);
  }
}

// ------------------------------------------------------------------ fixtures

const dir = tmpDir('fluctuat-syslog-');
const usersFile = path.join(dir, 'users');
const quiet: Log = { info() {}, warn() {}, error() {}, debug() {} };

before(() => writeUsers(usersFile, []));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const fast = { reconnectBaseMs: 10, reconnectMaxMs: 100 };

/** A broker forwarding its accounting to a collector on `port` (and to `auditFile`, if given). */
function forwardingBroker(port: number, facility: SyslogFacility, auditFile?: string): Promise<InProcessBroker> {
  return startInProcess({
    security: {
      usersFile,
      ...(auditFile === undefined ? {} : { auditFile }),
      backoffBaseMs: 1,
      backoffMaxMs: 1,
      syslog: { host: '127.0.0.1', port, facility, bufferEntries: 1000, bufferBytes: 1 << 20, ...fast },
    },
  });
}

async function failLogin(port: number, user: string): Promise<void> {
  const c = await RawClient.connect(port);
  c.send(`login ${user} y`);
  await c.waitFor((f) => f.line.startsWith('-ERR AUTH_'));
  await c.close();
}

function auditLines(file: string): string[] {
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter((l) => l !== '') : [];
}

/** Wait until the broker has audited the end of `logins` connections. */
function settled(file: string, logins: number): Promise<void> {
  return until(() => auditLines(file).filter((l) => (JSON.parse(l) as { event: string }).event === 'disconnect').length === logins, `${logins} disconnect entries`);
}

// ------------------------------------------------------------------ tests

test('a failed login reaches the collector as an octet-counted RFC 5424 message with structured data (no audit file needed)', async () => {
  const collector = await Collector.start();
  let broker: InProcessBroker | undefined;
  try {
    broker = await forwardingBroker(collector.port, 'authpriv');
    await failLogin(broker.port, 'x');
    await until(() => collector.events().includes('disconnect'), 'the disconnect entry');
    const failed = collector.messages.find((m) => m.msgId === 'login-failed')!;
    assert.ok(failed, collector.events().join(','));
    assert.equal(failed.pri, 10 * 8 + 4, 'authpriv.warning');
    assert.equal(failed.version, 1);
    assert.equal(failed.hostname, headerField(os.hostname(), 255));
    assert.equal(failed.appName, 'fluctuat');
    assert.equal(failed.procId, String(process.pid));
    assert.deepEqual(failed.sd.map((e) => e.id), ['fluctuat@32473', 'meta']);
    const entry = JSON.parse(failed.msg) as Record<string, unknown>;
    assert.equal(entry.event, 'login-failed');
    assert.equal(entry.user, 'x');
    assert.equal(failed.timestamp, entry.time, 'TIMESTAMP is the entry time');
    // Every field of the entry is a PARAM, with its value as text.
    const params = failed.sd[0]!.params;
    assert.deepEqual(params.map(([n]) => n), Object.keys(entry));
    for (const [n, v] of params) assert.equal(v, typeof entry[n] === 'string' ? entry[n] : JSON.stringify(entry[n]), n);
    assert.equal(param(failed, 'fluctuat@32473', 'address'), '127.0.0.1');
    assert.equal(param(failed, 'fluctuat@32473', 'reason'), 'bad credentials');
    const connect = collector.messages.find((m) => m.msgId === 'connect')!;
    assert.equal(connect.pri, 10 * 8 + 6, 'authpriv.info');
    // sequenceId counts 1, 2, 3... in order of sending.
    assert.deepEqual(collector.messages.map((m) => Number(param(m, 'meta', 'sequenceId'))), collector.messages.map((_, i) => i + 1));
    assert.equal(broker.server.syslog!.dropped, 0);
  } finally {
    await broker?.close();
    await collector.stop();
  }
});

test('a hostile user name cannot forge a structured-data element or split a field', async () => {
  const collector = await Collector.start();
  const auditFile = path.join(dir, 'forge.log');
  let broker: InProcessBroker | undefined;
  // The line protocol splits words on spaces, so the spaces travel as NBSP; the characters
  // that matter to RFC 5424 (" ] [ = \) are there as they are.
  const hostile = ['root from 8.8.8.8"] [forged@1 a="b', 'root\\"]\\', 'a=b]"[meta sequenceId="1"]'].map((u) => u.replace(/ /g, '\u00a0'));
  try {
    broker = await forwardingBroker(collector.port, 'local0', auditFile);
    for (const user of hostile) await failLogin(broker.port, user);
    await settled(auditFile, hostile.length);
    await until(() => collector.messages.length === auditLines(auditFile).length, 'every entry');
    for (const m of collector.messages) {
      assert.deepEqual(m.sd.map((e) => e.id), ['fluctuat@32473', 'meta'], 'exactly our two elements');
      assert.ok(!m.sd.some((e) => e.params.some(([n]) => n === 'a' || n.startsWith('forged'))));
      assert.equal(m.sd[1]!.params.length, 1);
    }
    const users = collector.messages.filter((m) => m.msgId === 'login-failed').map((m) => param(m, 'fluctuat@32473', 'user'));
    assert.deepEqual(users, hostile, 'each name is one PARAM-VALUE, exact after unescaping');
    // MSG is the audit line itself, byte for byte, in the order of the file.
    assert.deepEqual(collector.messages.map((m) => m.msg), auditLines(auditFile));
    assert.equal(collector.messages[0]!.pri, 16 * 8 + 6, 'local0.info');
  } finally {
    await broker?.close();
    await collector.stop();
  }
});

test('PARAM-NAMEs are restricted and values escaped whatever the entry holds', () => {
  const line = JSON.stringify({ 'a b': 1, 'a_b': 2, 'x=y': 'v', ']"': null, ['k'.repeat(40)]: { n: [1] }, ctl: 'l1\nl2\r\u0000\u2028', event: 'denied', time: 'not a time' }) + '\n';
  const m = parseSyslog(formatSyslog(line, 7, { facility: 'auth', hostname: 'h', appName: 'fluctuat', procId: '1', sdId: 'fluctuat@32473' }), 0);
  assert.equal(m.pri, 4 * 8 + 5, 'auth.notice for a denial');
  const names = m.sd[0]!.params.map(([n]) => n);
  for (const n of names) assert.match(n, SD_NAME);
  assert.equal(new Set(names).size, names.length, 'no two params share a name');
  assert.equal(param(m, 'fluctuat@32473', 'ctl'), 'l1\uFFFDl2\uFFFD\uFFFD\uFFFD', 'no control character reaches the collector');
  assert.equal(param(m, 'fluctuat@32473', '__'), 'null');
  assert.equal(param(m, 'meta', 'sequenceId'), '7');
  assert.match(m.timestamp, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/, 'an invalid time is replaced by the current one');
  assert.equal(m.msg, line.trimEnd(), 'MSG is the exact line');
});

test('while the collector is down entries are buffered, and they all arrive in order when it returns on the same port', async () => {
  const collector = await Collector.start();
  const port = collector.port;
  const auditFile = path.join(dir, 'down.log');
  let broker: InProcessBroker | undefined;
  try {
    broker = await forwardingBroker(port, 'authpriv', auditFile);
    const forwarder = broker.server.syslog!;
    await failLogin(broker.port, 'before');
    await settled(auditFile, 1);
    await until(() => collector.messages.length === auditLines(auditFile).length && forwarder.stats().inflight === 0, 'the first entries');
    await collector.stop();
    // Only once the forwarder knows the collector is gone: before that, the kernel would accept
    // the bytes for a dead connection (the documented loss window).
    await until(() => !forwarder.stats().connected, 'the forwarder to notice');
    for (let i = 0; i < 5; i++) await failLogin(broker.port, `during-${i}`);
    await settled(auditFile, 6);
    const expected = auditLines(auditFile);
    assert.equal(forwarder.stats().queued + collector.messages.length, expected.length, 'the missing entries wait in the buffer');
    await collector.restart(port);
    await until(() => collector.messages.length >= expected.length, 'the buffered entries');
    assert.deepEqual(collector.messages.map((m) => m.msg), expected, 'all of them, once each, in order');
    assert.deepEqual(collector.messages.map((m) => Number(param(m, 'meta', 'sequenceId'))), expected.map((_, i) => i + 1));
    assert.ok(collector.messages.some((m) => m.connection === 1), 'the rest came on the new connection');
    assert.equal(forwarder.dropped, 0);
  } finally {
    await broker?.close();
    await collector.stop();
  }
});

test('beyond the bound the oldest entries are dropped, counted, logged and announced first', async () => {
  const collector = await Collector.start();
  const port = collector.port;
  const warnings: { obj: object; msg: string | undefined }[] = [];
  const log: Log = { ...quiet, warn: (obj, msg) => warnings.push({ obj, msg }) };
  const forwarder = new SyslogForwarder({ host: '127.0.0.1', port, facility: 'local3', bufferEntries: 5, bufferBytes: 1 << 20, ...fast }, log);
  const line = (i: number): string => JSON.stringify({ level: 'info', time: new Date().toISOString(), n: i, event: 'connect' }) + '\n';
  try {
    forwarder.send(line(0));
    await until(() => collector.messages.length === 1, 'the first entry');
    await collector.stop();
    await until(() => !forwarder.stats().connected, 'the forwarder to notice');
    for (let i = 1; i <= 20; i++) forwarder.send(line(i));
    assert.equal(forwarder.dropped, 15);
    assert.equal(forwarder.stats().queued, 5);
    assert.ok(warnings.some((w) => w.msg?.includes('buffer full')), 'the first drop is logged');
    await collector.restart(port);
    await until(() => collector.messages.length === 1 + 1 + 5, 'the notice and the survivors');
    const [notice, ...survivors] = collector.messages.slice(1);
    assert.equal(notice!.msgId, 'syslog-dropped');
    assert.equal(notice!.pri, 19 * 8 + 4, 'local3.warning');
    assert.equal(param(notice!, 'fluctuat@32473', 'dropped'), '15');
    assert.equal((JSON.parse(notice!.msg) as { dropped: number }).dropped, 15);
    assert.deepEqual(survivors.map((m) => (JSON.parse(m.msg) as { n: number }).n), [16, 17, 18, 19, 20], 'the newest survive, in order');
    assert.ok(warnings.some((w) => w.msg?.includes('lost') && (w.obj as { lost: number }).lost === 15), 'the loss is logged with its count');
    // Lost entries show as a gap in sequenceId: 1, then the notice (22), then 17..21.
    assert.deepEqual(collector.messages.map((m) => Number(param(m, 'meta', 'sequenceId'))), [1, 22, 17, 18, 19, 20, 21]);
    // A byte bound works the same way.
    const small = new SyslogForwarder({ host: '127.0.0.1', port: 1, facility: 'user', bufferEntries: 1000, bufferBytes: 1000, ...fast }, quiet);
    for (let i = 0; i < 50; i++) small.send(line(i));
    assert.ok(small.stats().bufferedBytes <= 1000 && small.stats().queued > 0);
    assert.equal(small.dropped + small.stats().queued, 50);
    await small.close(0);
    assert.equal(small.dropped, 50, 'what never left is counted at close');
  } finally {
    await forwarder.close();
    await collector.stop();
  }
});

test('entries not confirmed written when the connection dies are sent again, in order; the unconfirmed window is the only loss', async () => {
  const collector = await Collector.start();
  collector.stall = true; // the first connection is never read: the kernel buffers fill up
  const forwarder = new SyslogForwarder(
    { host: '127.0.0.1', port: collector.port, facility: 'user', bufferEntries: 1_000_000, bufferBytes: 1 << 30, ...fast },
    quiet,
  );
  const line = (i: number): string => JSON.stringify({ level: 'info', time: new Date().toISOString(), n: i, pad: 'p'.repeat(200), event: 'connect' }) + '\n';
  let n = 0;
  try {
    await until(() => forwarder.stats().connected, 'the connection');
    // Send until writes back up, i.e. some entries are written but not confirmed.
    while (forwarder.stats().queued === 0) {
      assert.ok(n < 2_000_000, 'the socket never backed up');
      for (let i = 0; i < 1000; i++) forwarder.send(line(++n));
      await new Promise((r) => setImmediate(r));
    }
    for (let i = 0; i < 100; i++) forwarder.send(line(++n));
    assert.ok(forwarder.stats().inflight > 0 && forwarder.stats().queued > 0);
    collector.stall = false;
    const port = collector.port;
    await collector.stop(true); // RST: what the kernel buffers hold for the collector is gone
    await until(() => !forwarder.stats().connected, 'the forwarder to notice');
    const confirmed = forwarder.stats().sent;
    await collector.restart(port);
    await until(() => collector.messages.length > 0 && (JSON.parse(collector.messages.at(-1)!.msg) as { n: number }).n === n, 'the last entry', 60_000);
    const got = collector.messages.map((m) => (JSON.parse(m.msg) as { n: number }).n);
    const first = got[0]!;
    assert.deepEqual(got, Array.from({ length: n - first + 1 }, (_, i) => first + i), 'contiguous and in order from the first resent entry');
    // What was lost is exactly what had been confirmed written on the dead connection (the
    // kernel had it, the reset discarded it): nothing unconfirmed was lost. The collector sees
    // the loss as sequenceIds starting above 1.
    assert.equal(first - 1, confirmed, `lost ${first - 1}, confirmed before the reset ${confirmed}`);
    assert.equal(Number(param(collector.messages[0]!, 'meta', 'sequenceId')), first);
    assert.ok(forwarder.stats().resent > 0, 'some entries were resent');
    assert.equal(forwarder.dropped, 0);
  } finally {
    await forwarder.close();
    await collector.stop();
  }
});

test('over TLS the forwarder verifies the collector against its CA file, and buffers rather than talk to an impostor', async () => {
  const ca = await createCa({ commonName: 'syslog test CA' });
  const other = await createCa({ commonName: 'another CA' });
  const server = await createServerCert(await loadCa(ca), { commonName: '127.0.0.1' });
  const caFile = path.join(dir, 'ca.pem');
  const otherFile = path.join(dir, 'other.pem');
  fs.writeFileSync(caFile, ca.cert);
  fs.writeFileSync(otherFile, other.cert);
  const collector = await Collector.start(0, { cert: server.cert, key: server.key });
  const line = JSON.stringify({ level: 'info', time: new Date().toISOString(), user: 'u', event: 'login' }) + '\n';
  const good = new SyslogForwarder({ host: '127.0.0.1', port: collector.port, facility: 'auth', tls: { ca: caFile }, bufferEntries: 10, bufferBytes: 1 << 20, ...fast }, quiet);
  const wrong = new SyslogForwarder({ host: '127.0.0.1', port: collector.port, facility: 'auth', tls: { ca: otherFile }, bufferEntries: 10, bufferBytes: 1 << 20, ...fast }, quiet);
  try {
    good.send(line);
    wrong.send(line);
    await until(() => collector.messages.length === 1 && collector.tlsErrors > 0, 'the good entry and the refused handshake');
    assert.equal(collector.messages[0]!.msgId, 'login');
    assert.equal(param(collector.messages[0]!, 'fluctuat@32473', 'user'), 'u');
    assert.equal(wrong.stats().connected, false);
    assert.equal(wrong.stats().queued, 1, 'kept, not sent to a collector it cannot verify');
  } finally {
    await good.close();
    await wrong.close(0);
    await collector.stop();
  }
});
