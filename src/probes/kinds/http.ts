/** `http`: status, latency and a digest of the body of one request (fetch). */
import { createHash } from 'node:crypto';
import { check, networkReason, ProbeError, registerKind, type Params } from '../registry.js';
import { monoUs } from '../time.js';

interface HttpParams extends Params {
  url: string;
  method: string;
  /** Status codes that count as success: `2xx`, `200`, `200-299`, `200,301`. */
  expect: string;
  /** Largest body read, bytes (the digest covers what was read). */
  maxBytes: number;
}

export interface HttpValue {
  readonly url: string;
  readonly status: number;
  /** Time to the response headers, ms. */
  readonly headersMs: number;
  /** Time to the end of the body, ms. */
  readonly latencyMs: number;
  readonly bytes: number;
  /** sha256 of the body, hex. */
  readonly digest: string;
}

function statusMatcher(expect: string): (status: number) => boolean {
  const parts = expect.split(',').map((p) => p.trim());
  const tests = parts.map((p) => {
    let m = /^([1-5])xx$/i.exec(p);
    if (m) return (s: number) => Math.floor(s / 100) === Number(m![1]);
    m = /^(\d{3})-(\d{3})$/.exec(p);
    if (m) return (s: number) => s >= Number(m![1]) && s <= Number(m![2]);
    m = /^(\d{3})$/.exec(p);
    if (m) return (s: number) => s === Number(m![1]);
    throw new ProbeError('bad-params', `http: expect must be like 2xx, 200, 200-299 or 200,301; got ${JSON.stringify(expect)}`);
  });
  return (s) => tests.some((t) => t(s));
}

registerKind<HttpParams, HttpValue>({
  name: 'http',
  description: 'fetch a URL and report status, latency and a sha256 of the body (url=..., expect=2xx)',
  positional: 'url',
  parse(params) {
    const url = check.string('http', params, 'url');
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new ProbeError('bad-params', `http: not a URL: ${JSON.stringify(url)}`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new ProbeError('bad-params', `http: only http: and https: URLs, got ${parsed.protocol}`);
    const method = check.string('http', params, 'method', 'GET').toUpperCase();
    if (!['GET', 'HEAD'].includes(method)) throw new ProbeError('bad-params', 'http: method must be GET or HEAD');
    const expect = check.string('http', params, 'expect', '2xx,3xx');
    statusMatcher(expect);
    return { url, method, expect, maxBytes: check.number('http', params, 'maxBytes', 1 << 20, 0, 1 << 30) };
  },
  async run({ url, method, expect, maxBytes }, ctx) {
    const start = monoUs();
    let response: Response;
    try {
      response = await fetch(url, { method, signal: ctx.signal, redirect: 'manual' });
    } catch (err) {
      throw failure(url, err, ctx.signal, ctx.timeoutMs);
    }
    const headersMs = (monoUs() - start) / 1000;
    const hash = createHash('sha256');
    let bytes = 0;
    try {
      if (response.body) {
        for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
          const take = Math.min(chunk.length, maxBytes - bytes);
          if (take > 0) hash.update(chunk.subarray(0, take));
          bytes += take;
          if (bytes >= maxBytes) break;
        }
      }
    } catch (err) {
      throw failure(url, err, ctx.signal, ctx.timeoutMs);
    }
    const latencyMs = (monoUs() - start) / 1000;
    const value: HttpValue = { url, status: response.status, headersMs, latencyMs, bytes, digest: hash.digest('hex') };
    if (!statusMatcher(expect)(response.status)) {
      throw new ProbeError('status', `http ${url}: status ${response.status}, expected ${expect}`, { value });
    }
    return value;
  },
});

function failure(url: string, err: unknown, signal: AbortSignal, timeoutMs: number): ProbeError {
  if (signal.aborted) return new ProbeError('timeout', `http ${url}: no answer within ${timeoutMs} ms`, { cause: err });
  const cause = (err as { cause?: unknown }).cause ?? err;
  return new ProbeError(networkReason(cause), `http ${url}: ${(cause as Error).message ?? String(cause)}`, { cause: err });
}
