/**
 * OCSP without a broker: the requests src/server/ocsp.ts makes (compared with openssl's), the
 * answers of a real `openssl ocsp` (run offline on those requests) it believes and those it
 * must not, the checker's cache, shared requests, policy and re-checks, the HTTP transport,
 * the `tls ocsp` configuration keywords, and that none of it loads reflect-metadata.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { createCa, createClientCert, createOcspResponderCert, loadCa, type Pem } from '../src/certs/generate.js';
import { ConfigSyntaxError } from '../src/config/lexer.js';
import { toOverrides } from '../src/config/load.js';
import { parseConfig } from '../src/config/parser.js';
import { makeConfig } from '../src/server/config.js';
import { caCertificates, OCSP_REASONS, OCSP_RESPONDER_HOLD_MS, OcspChecker, OcspError, ocspRequest, ocspSubject, postOcsp, readOcspResponse, type OcspSubject, type OcspTransport } from '../src/server/ocsp.js';
import { ROOT, tmpDir } from './helpers/broker.js';
import { answerOffline, closedPort, indexLine, signer, type Signer } from './helpers/ocsp.js';

const execFileP = promisify(execFile);
const dir = tmpDir('fluctuat-ocsp-unit-');
const file = (name: string): string => path.join(dir, name);
const quiet = { info() {}, warn() {}, error() {}, debug() {} };

function write(name: string, pem: Pem): void {
  fs.writeFileSync(file(`${name}.crt`), pem.cert);
  fs.writeFileSync(file(`${name}.key`), pem.key, { mode: 0o600 });
}

const cert = (name: string): X509Certificate => new X509Certificate(fs.readFileSync(file(`${name}.crt`)));
let cas: X509Certificate[];
const subjectOf = (name: string): OcspSubject => ocspSubject(cert(name), cas);
const CA = signer(dir, 'ca');

/** Our request for `name`, answered offline by openssl signing as `by`, then read back. */
async function roundTrip(name: string, by: Signer, extra: string[] = [], check: Partial<{ now: Date; maxAgeMs: number; as: string; nonce: boolean }> = {}) {
  const request = ocspRequest(subjectOf(name), check.nonce === false ? undefined : Buffer.alloc(16, 7));
  const der = await answerOffline(dir, request.der, by, extra);
  return readOcspResponse(der, { subject: subjectOf(check.as ?? name), nonce: request.nonce, now: check.now ?? new Date(), maxAgeMs: check.maxAgeMs ?? 3_600_000 });
}

function rejects(p: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  return assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof OcspError, `not an OcspError: ${String(err)}`);
    assert.equal(err.code, code);
    assert.match(err.message, message);
    return true;
  });
}

before(async () => {
  const ca = await createCa({ commonName: 'OCSP unit CA' });
  const signerCa = await loadCa(ca);
  write('ca', ca);
  write('ocsp', await createOcspResponderCert(signerCa, { commonName: 'unit responder' }));
  write('other-ca', await createCa({ commonName: 'another CA' }));
  for (const name of ['alice', 'bob', 'carol', 'dave']) write(name, await createClientCert(signerCa, { commonName: name, ocspUrl: 'http://127.0.0.1:8888/' }));
  write('noaia', await createClientCert(signerCa, { commonName: 'noaia' }));
  const rsa = await createCa({ commonName: 'RSA CA', keyType: 'rsa-2048' });
  fs.mkdirSync(file('rsa'));
  fs.writeFileSync(file('rsa/ca.crt'), rsa.cert);
  fs.writeFileSync(file('rsa/ca.key'), rsa.key, { mode: 0o600 });
  fs.writeFileSync(file('rsa/erin.crt'), (await createClientCert(await loadCa(rsa), { commonName: 'erin' })).cert);
  fs.writeFileSync(file('rsa/index.txt'), indexLine(fs.readFileSync(file('rsa/erin.crt'))));
  // carol is in no line: unknown. bob is revoked.
  const pem = (n: string): Buffer => fs.readFileSync(file(`${n}.crt`));
  fs.writeFileSync(file('index.txt'), [indexLine(pem('alice')), indexLine(pem('bob'), { at: new Date('2026-01-02T03:04:05Z'), reason: 'keyCompromise' }), indexLine(pem('dave')), indexLine(pem('noaia'))].join(''));
  cas = caCertificates(fs.readFileSync(file('ca.crt')));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('requests and answers', () => {
  test('the request has the CertID openssl makes for the same certificate (SHA-1 issuer name and key hashes, serial) and a nonce', async () => {
    const ours = ocspRequest(subjectOf('alice'), Buffer.alloc(16, 9));
    fs.writeFileSync(file('ours.der'), ours.der);
    await execFileP('openssl', ['ocsp', '-issuer', file('ca.crt'), '-cert', file('alice.crt'), '-reqout', file('theirs.der'), '-no_nonce']);
    const text = async (f: string): Promise<string> => (await execFileP('openssl', ['ocsp', '-reqin', file(f), '-req_text'])).stdout;
    const id = (t: string): string => /Certificate ID:[\s\S]*?Serial Number: \S+/.exec(t)![0];
    const oursText = await text('ours.der');
    assert.equal(id(oursText), id(await text('theirs.der')));
    assert.match(id(oursText), new RegExp(`Serial Number: ${cert('alice').serialNumber}`));
    assert.match(oursText, /OCSP Nonce: \s+0410(09){16}/);
  });

  test('openssl\'s answers: good signed by the CA, good signed by a delegated responder, revoked with its time and reason, unknown; an RSA CA', async () => {
    const good = await roundTrip('alice', CA);
    assert.equal(good.status, 'good');
    assert.equal(good.signer, 'CA');
    assert.equal(good.nextUpdate, undefined);
    const delegated = await roundTrip('alice', signer(dir, 'ocsp'), ['-nmin', '10']);
    assert.equal(delegated.status, 'good');
    assert.equal(delegated.signer, 'CN=unit responder');
    assert.ok(delegated.nextUpdate && delegated.nextUpdate.getTime() > Date.now());
    const revoked = await roundTrip('bob', CA);
    assert.equal(revoked.status, 'revoked');
    assert.equal(revoked.revokedAt?.toISOString(), '2026-01-02T03:04:05.000Z');
    assert.equal(revoked.revocationReason, 'keyCompromise');
    assert.equal((await roundTrip('carol', CA)).status, 'unknown');

    const rsaSubject = ocspSubject(new X509Certificate(fs.readFileSync(file('rsa/erin.crt'))), caCertificates(fs.readFileSync(file('rsa/ca.crt'))));
    const request = ocspRequest(rsaSubject, Buffer.alloc(16, 1));
    const der = await answerOffline(file('rsa'), request.der, signer(file('rsa'), 'ca'));
    assert.equal(readOcspResponse(der, { subject: rsaSubject, nonce: request.nonce, now: new Date(), maxAgeMs: 60_000 }).status, 'good');
  });

  test('answers not to believe: a foreign signer, a CA-issued certificate not for OCSP signing, a changed signature', async () => {
    await rejects(roundTrip('alice', signer(dir, 'other-ca')), 'OCSP_INVALID', /^the OCSP response is signed by "CN=another CA", whose certificate the certificate's CA \("CN=OCSP unit CA"\) did not issue$/);
    await rejects(roundTrip('alice', signer(dir, 'other-ca'), ['-resp_no_certs']), 'OCSP_INVALID', /signature does not verify with the key of the certificate's CA \("CN=OCSP unit CA"\), and it carries no responder certificate$/);
    await rejects(roundTrip('alice', signer(dir, 'dave')), 'OCSP_INVALID', /signed by "CN=dave", whose certificate is not for OCSP signing \(no id-kp-OCSPSigning extended key usage\)$/);
    const request = ocspRequest(subjectOf('alice'), Buffer.alloc(16, 7));
    const der = await answerOffline(dir, request.der, CA, ['-resp_no_certs']);
    der[der.length - 2]! ^= 0x01; // in the signature, the last field
    assert.throws(() => readOcspResponse(der, { subject: subjectOf('alice'), nonce: request.nonce, now: new Date(), maxAgeMs: 60_000 }), /signature does not verify with the key of the certificate's CA/);
  });

  test('answers not to believe: about another certificate, with another nonce, stale, not yet valid, too old without nonce or nextUpdate', async () => {
    await rejects(roundTrip('alice', CA, [], { as: 'dave' }), 'OCSP_INVALID', new RegExp(`is not about this certificate \\(serial ${cert('dave').serialNumber} of "CN=OCSP unit CA"\\)`));
    const request = ocspRequest(subjectOf('alice'), Buffer.alloc(16, 7));
    const der = await answerOffline(dir, request.der, CA);
    const read = (o: { nonce?: Buffer | undefined; now?: Date; maxAgeMs?: number }) => () => readOcspResponse(der, { subject: subjectOf('alice'), nonce: 'nonce' in o ? o.nonce : request.nonce, now: o.now ?? new Date(), maxAgeMs: o.maxAgeMs ?? 60_000 });
    assert.throws(read({ nonce: ocspRequest(subjectOf('alice'), Buffer.alloc(16, 8)).nonce }), /echoes another nonce than the request's \(a replayed answer\?\)/);
    assert.throws(read({ now: new Date(Date.now() - 3_600_000) }), /is not valid yet \(thisUpdate .*\): the responder's clock or the broker's is wrong/);
    // Five minutes of clock skew are allowed, as by OpenSSL.
    assert.equal(read({ now: new Date(Date.now() - 60_000) })().status, 'good');
    const nextUpdate = await roundTrip('alice', CA, ['-nmin', '1']);
    assert.ok(nextUpdate.nextUpdate);
    await rejects(roundTrip('alice', CA, ['-nmin', '1'], { now: new Date(Date.now() + 3_600_000) }), 'OCSP_INVALID', /is stale \(its nextUpdate, .*, is past\)/);
    // Without a nonce and a nextUpdate, only `cache` bounds the age of an answer.
    assert.equal((await roundTrip('alice', CA, [], { nonce: false, now: new Date(Date.now() + 30_000), maxAgeMs: 60_000 })).status, 'good');
    await rejects(roundTrip('alice', CA, [], { nonce: false, now: new Date(Date.now() + 3_600_000), maxAgeMs: 60_000 }), 'OCSP_INVALID', /is too old: no nonce, no nextUpdate/);
  });

  test('an error status is OCSP_UNAVAILABLE; bytes that are no OCSP response are OCSP_INVALID', () => {
    const expect = { subject: subjectOf('alice'), nonce: undefined, now: new Date(), maxAgeMs: 60_000 };
    assert.throws(() => readOcspResponse(Buffer.from('30030a0103', 'hex'), expect), (e: unknown) => e instanceof OcspError && e.code === 'OCSP_UNAVAILABLE' && /answered "tryLater" instead of a status/.test(e.message));
    assert.throws(() => readOcspResponse(Buffer.from('30030a0106', 'hex'), expect), /answered "unauthorized"/);
    assert.throws(() => readOcspResponse(Buffer.from('not an OCSP response'), expect), (e: unknown) => e instanceof OcspError && e.code === 'OCSP_INVALID' && /is not a DER OCSPResponse/.test(e.message));
  });

  test('the issuer must be among the CA certificates; the AIA OCSP URL is read from the certificate', () => {
    assert.throws(() => ocspSubject(cert('alice'), caCertificates(fs.readFileSync(file('other-ca.crt')))), /finds no issuer of the certificate among the tls ca certificates/);
    assert.equal(subjectOf('alice').aiaUrl, 'http://127.0.0.1:8888/');
    assert.equal(subjectOf('noaia').aiaUrl, undefined);
    // A bundle: the CA may be anywhere in it.
    const bundle = caCertificates([fs.readFileSync(file('other-ca.crt')), fs.readFileSync(file('ca.crt'), 'utf8')]);
    assert.equal(ocspSubject(cert('alice'), bundle).issuer.subject, 'CN=OCSP unit CA');
  });
});

describe('the checker', () => {
  /** openssl, offline, as the responder: counts requests; `fail` makes it unreachable. */
  function responder(extra: string[] = []): { transport: OcspTransport; requests: () => number; fail: (on: boolean) => void } {
    let requests = 0;
    let failing = false;
    return {
      transport: async (_url, body) => {
        requests++;
        if (failing) throw new OcspError('OCSP_UNAVAILABLE', 'the OCSP responder could not be reached (ECONNREFUSED)');
        return answerOffline(dir, body, CA, extra);
      },
      requests: () => requests,
      fail: (on) => (failing = on),
    };
  }
  const settings = { onFailure: 'refuse' as const, timeoutMs: 1000, cacheMaxAgeMs: 60_000 };

  test('concurrent checks of one certificate share one request; later ones use the cache until it expires', async () => {
    const r = responder();
    let now = Date.now();
    const checker = new OcspChecker(settings, { log: quiet, transport: r.transport, now: () => now });
    checker.setCa(fs.readFileSync(file('ca.crt')));
    const verdicts = await Promise.all(Array.from({ length: 5 }, () => checker.admit(cert('alice'))));
    assert.ok(verdicts.every((v) => v.verdict.accept));
    assert.equal(r.requests(), 1);
    assert.equal((await checker.admit(cert('alice'))).verdict.accept, true);
    assert.equal(r.requests(), 1);
    assert.deepEqual(
      { ...checker.figures() },
      { ocspChecks: 6, ocspRequests: 1, ocspCacheHits: 1, ocspShared: 4, ocspFailures: 0, ocspResponderDown: 0, ocspRevoked: 0, ocspRefused: 0, ocspCached: 1 },
    );
    now += 61_000; // past `cache`: asked again
    await checker.admit(cert('alice'));
    assert.equal(r.requests(), 2);
    checker.close();
  });

  test('an answer\'s nextUpdate ends its caching before `cache` does; the cache is bounded', async () => {
    const r = responder(['-nmin', '1']);
    let now = Date.now();
    const checker = new OcspChecker({ ...settings, cacheMaxAgeMs: 3_600_000 }, { log: quiet, transport: r.transport, now: () => now, cacheEntries: 2 });
    checker.setCa(fs.readFileSync(file('ca.crt')));
    await checker.admit(cert('alice'));
    now += 30_000;
    await checker.admit(cert('alice'));
    assert.equal(r.requests(), 1);
    now += 60_000; // past nextUpdate (1 minute)
    await checker.admit(cert('alice'));
    assert.equal(r.requests(), 2);
    checker.close();
    // At most `cacheEntries` answers: the oldest goes first.
    const bounded = responder();
    const small = new OcspChecker(settings, { log: quiet, transport: bounded.transport, cacheEntries: 2 });
    small.setCa(fs.readFileSync(file('ca.crt')));
    for (const n of ['alice', 'bob', 'dave']) await small.admit(cert(n));
    assert.equal(small.figures().ocspCached, 2);
    await small.admit(cert('dave'));
    assert.equal(bounded.requests(), 3, 'dave is still cached');
    await small.admit(cert('alice'));
    assert.equal(bounded.requests(), 4, 'alice, the oldest, was not');
    small.close();
  });

  test('revoked is refused whatever the policy; unknown and failures follow it, and are not cached; an unreachable responder is not asked again for a while', async () => {
    const r = responder();
    let now = Date.now();
    const refuse = new OcspChecker(settings, { log: quiet, transport: r.transport, now: () => now });
    const accept = new OcspChecker({ ...settings, onFailure: 'accept' }, { log: quiet, transport: r.transport, now: () => now });
    for (const c of [refuse, accept]) c.setCa(fs.readFileSync(file('ca.crt')));
    for (const c of [refuse, accept]) {
      assert.deepEqual(pick((await c.admit(cert('bob'))).verdict), { accept: false, reason: 'OCSP_REVOKED', message: 'the certificate is revoked (ocsp)' });
    }
    assert.deepEqual(pick((await refuse.admit(cert('carol'))).verdict), { accept: false, reason: 'OCSP_UNKNOWN', message: 'the OCSP responder does not know the certificate (status unknown)' });
    assert.deepEqual(pick((await accept.admit(cert('carol'))).verdict), { accept: true, warning: { reason: 'OCSP_UNKNOWN', message: 'the OCSP responder does not know the certificate (status unknown)' } });
    const before = r.requests();
    await refuse.admit(cert('carol'));
    assert.equal(r.requests(), before + 1, 'unknown is not cached');
    r.fail(true);
    const down = 'its revocation status could not be checked: the OCSP responder could not be reached (ECONNREFUSED)';
    assert.deepEqual(pick((await refuse.admit(cert('dave'))).verdict), { accept: false, reason: 'OCSP_UNAVAILABLE', message: down });
    assert.deepEqual(pick((await accept.admit(cert('dave'))).verdict), { accept: true, warning: { reason: 'OCSP_UNAVAILABLE', message: down } });
    // Unreachable: the next checks, of any certificate, fail at once without asking it...
    const asked = r.requests();
    r.fail(false);
    const held = (await refuse.admit(cert('alice'))).verdict;
    assert.equal(r.requests(), asked, 'the responder was not asked');
    assert.deepEqual(pick(held), { accept: false, reason: 'OCSP_UNAVAILABLE', message: `${down}; not asked again for ${OCSP_RESPONDER_HOLD_MS / 1000} s` });
    assert.equal(refuse.figures().ocspResponderDown, 1);
    // ...until the hold is over; the failure itself was not cached for the certificate.
    now += OCSP_RESPONDER_HOLD_MS;
    assert.equal((await refuse.admit(cert('dave'))).verdict.accept, true, 'a failure is not cached');
    assert.equal(r.requests(), asked + 1);
    // No responder to ask: neither an AIA URL nor `tls ocsp responder`.
    assert.deepEqual(pick((await refuse.admit(cert('noaia'))).verdict), {
      accept: false,
      reason: 'OCSP_UNAVAILABLE',
      message: 'its revocation status could not be checked: the certificate names no OCSP responder (no AIA OCSP URL) and "tls ocsp responder" is not set',
    });
    const overridden = new OcspChecker({ ...settings, responder: 'http://127.0.0.1:1/' }, { log: quiet, transport: async (url, body) => (assert.equal(url, 'http://127.0.0.1:1/'), r.transport(url, body, 1000)) });
    overridden.setCa(fs.readFileSync(file('ca.crt')));
    assert.equal((await overridden.admit(cert('noaia'))).verdict.accept, true);
    for (const c of [refuse, accept, overridden]) c.close();
  });

  test('recheckAll asks again about watched and cached certificates: a revocation is reported, a failure keeps the cached answer', async () => {
    const index = file('index.txt');
    const original = fs.readFileSync(index, 'utf8');
    const r = responder();
    const revoked: string[] = [];
    const checker = new OcspChecker(settings, { log: quiet, transport: r.transport, onRevoked: (s) => revoked.push(s.serial) });
    checker.setCa(fs.readFileSync(file('ca.crt')));
    try {
      const alice = await checker.admit(cert('alice'));
      await checker.admit(cert('dave'));
      const unwatch = checker.watch(alice.subject!);
      r.fail(true);
      assert.deepEqual(await checker.recheckAll(), { checked: 2, revoked: 0, failed: 2 });
      assert.equal((await checker.admit(cert('dave'))).verdict.accept, true, 'the cached answer stays');
      r.fail(false);
      fs.writeFileSync(index, original.replace(/^V(\t\S+\t)\t(.*CN=alice)$/m, (_, expiry: string, rest: string) => `R${expiry}260101000000Z\t${rest}`));
      assert.deepEqual(await checker.recheckAll(), { checked: 2, revoked: 1, failed: 0 });
      assert.deepEqual(revoked, [cert('alice').serialNumber]);
      assert.equal((await checker.admit(cert('alice'))).verdict.accept, false, 'new connections see the revocation');
      unwatch();
    } finally {
      fs.writeFileSync(index, original);
      checker.close();
    }
  });
});

/** The verdict without its log details. */
function pick(v: { accept: boolean; reason?: string; message?: string; warning?: unknown }): Record<string, unknown> {
  const { accept, reason, message, warning } = v;
  return { accept, ...(reason === undefined ? {} : { reason, message }), ...(warning === undefined ? {} : { warning }) };
}

describe('the HTTP transport', () => {
  test('POSTs application/ocsp-request; a refused connection, an HTTP error, silence and a flood are OCSP_UNAVAILABLE', async () => {
    let seen: { method?: string; type?: string; body?: Buffer } = {};
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen = { method: req.method!, type: req.headers['content-type']!, body: Buffer.concat(chunks) };
        if (req.url === '/ok') res.end(Buffer.from('answer'));
        else if (req.url === '/error') res.writeHead(500).end();
        else if (req.url === '/flood') res.end(Buffer.alloc(300 * 1024));
        // /silent: never answers
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      assert.equal((await postOcsp(`${base}/ok`, Buffer.from('request'), 5000)).toString(), 'answer');
      assert.deepEqual(seen, { method: 'POST', type: 'application/ocsp-request', body: Buffer.from('request') });
      await rejects(postOcsp(`${base}/error`, Buffer.from('x'), 5000), 'OCSP_UNAVAILABLE', /^the OCSP responder answered HTTP 500$/);
      await rejects(postOcsp(`${base}/silent`, Buffer.from('x'), 200), 'OCSP_UNAVAILABLE', /^the OCSP responder did not answer within 200 ms$/);
      await rejects(postOcsp(`${base}/flood`, Buffer.from('x'), 5000), 'OCSP_UNAVAILABLE', /^the OCSP responder sent more than 262144 bytes$/);
      await rejects(postOcsp(`http://127.0.0.1:${await closedPort()}/`, Buffer.from('x'), 5000), 'OCSP_UNAVAILABLE', /^the OCSP responder could not be reached \(ECONNREFUSED\)$/);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

describe('configuration', () => {
  const parse = (text: string) => parseConfig(text, 'fluctuat.conf', { readFile: () => assert.fail('no includes') });
  const base = 'listen on 127.0.0.1 port 2024 tls\ntls certificate s.crt\ntls key s.key\ntls ca ca.crt\n';
  const error = (text: string): string => {
    try {
      parse(text);
    } catch (err) {
      if (err instanceof ConfigSyntaxError) return err.message;
      throw err;
    }
    return assert.fail('no error');
  };

  test('tls ocsp on, with defaults (refuse, 2s, 1h) or every setting', () => {
    const plain = makeConfig(toOverrides(parse(`${base}tls client-certificate required\ntls ocsp on\n`)));
    assert.deepEqual(plain.tls?.ocsp, { onFailure: 'refuse', timeoutMs: 2000, cacheMaxAgeMs: 3_600_000 });
    const all = parse(`${base}tls client-certificate optional\ntls ocsp on\ntls ocsp responder "http://127.0.0.1:8888"\ntls ocsp on-failure accept\ntls ocsp timeout 500ms\ntls ocsp cache 10m\n`);
    assert.deepEqual(all.warnings, []);
    assert.deepEqual(makeConfig(toOverrides(all)).tls?.ocsp, { responder: 'http://127.0.0.1:8888/', onFailure: 'accept', timeoutMs: 500, cacheMaxAgeMs: 600_000 });
    assert.equal(makeConfig(toOverrides(parse(`${base}tls client-certificate required\ntls ocsp off\n`))).tls?.ocsp, undefined);
  });

  test('errors with file:line:column, and a warning for settings while tls ocsp is off', () => {
    assert.equal(error(`${base}tls ocsp on\n`), 'fluctuat.conf:5:5: "tls ocsp on" checks client certificates, but "tls client-certificate" is none (the default): set tls client-certificate optional or required');
    assert.equal(error(`${base}tls client-certificate none\ntls ocsp timeout 1s\n`), 'fluctuat.conf:6:5: "tls ocsp timeout" checks client certificates, but "tls client-certificate" is none: set tls client-certificate optional or required');
    const required = `${base}tls client-certificate required\n`;
    assert.equal(error(`${required}tls ocsp responder "ldap://x"\n`), 'fluctuat.conf:6:20: expected an http:// or https:// URL such as "http://127.0.0.1:8888" for "tls ocsp responder", found the string "ldap://x"');
    assert.equal(error(`${required}tls ocsp timeout 2\n`), 'fluctuat.conf:6:18: expected a duration with its unit, such as 2ms or 2s (units: ms, s, m, h, d) for "tls ocsp timeout", found "2"');
    assert.equal(error(`${required}tls ocsp on-failure ignore\n`), 'fluctuat.conf:6:21: expected "refuse" or "accept" after "tls ocsp on-failure", found "ignore"');
    assert.equal(error(`${required}tls ocsp maybe\n`), 'fluctuat.conf:6:10: expected "on", "off", "responder", "on-failure", "timeout" or "cache" after "tls ocsp", found "maybe"');
    assert.equal(error(`${required}tls ocsp on\ntls ocsp off\n`), 'fluctuat.conf:7:5: "tls ocsp" is already set at fluctuat.conf:6; set it once');
    assert.deepEqual(parse(`${required}tls ocsp cache 5m\n`).warnings, ['fluctuat.conf:6:5: warning: "tls ocsp cache" has no effect: "tls ocsp" is off (add tls ocsp on)']);
  });
});

test('the broker\'s modules, the command line\'s included, load neither reflect-metadata nor @peculiar/x509', async () => {
  // @peculiar/x509 cannot load without reflect-metadata (tsyringe needs it), which defines Reflect.getMetadata.
  const script = `await import(${JSON.stringify(path.join(ROOT, 'dist/src/cli/main.js'))}); await import(${JSON.stringify(path.join(ROOT, 'dist/src/server/server.js'))}); console.log(typeof Reflect.getMetadata);`;
  const { stdout } = await execFileP(process.execPath, ['--input-type=module', '-e', script]);
  assert.equal(stdout.trim(), 'undefined');
  const generator = `await import(${JSON.stringify(path.join(ROOT, 'dist/src/certs/generate.js'))}); console.log(typeof Reflect.getMetadata);`;
  assert.equal((await execFileP(process.execPath, ['--input-type=module', '-e', generator])).stdout.trim(), 'function', 'the check itself works');
});

test('docs/security.md and docs/protocol.md name every OCSP refusal reason', () => {
  for (const doc of ['security.md', 'protocol.md']) {
    const text = fs.readFileSync(path.join(ROOT, 'docs', doc), 'utf8');
    for (const reason of OCSP_REASONS) assert.ok(text.includes(reason), `docs/${doc} does not name ${reason}`);
  }
});
