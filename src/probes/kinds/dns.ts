/**
 * `dns`: resolve a name through a chosen resolver. In keyed mode the name is random under a
 * zone served by the shipped responder (`fluctuat dns-responder`), which answers TXT queries
 * with an HMAC of the name: the probe checks it, so a cache cannot fake the answer.
 */
import { Resolver } from 'node:dns/promises';
import { canonicalName, keyedAnswer, parseKey, randomName } from '../dns-key.js';
import { check, ProbeError, registerKind, type Params } from '../registry.js';
import { monoUs } from '../time.js';

const TYPES = ['A', 'AAAA', 'TXT', 'CNAME', 'MX', 'NS'] as const;
type RecordType = (typeof TYPES)[number];

interface DnsParams extends Params {
  /** The name to resolve (plain mode) or the zone (keyed mode). */
  name: string;
  /** `host:port` of the resolver; the system's resolvers when absent. */
  server: string | undefined;
  type: RecordType;
  keyed: boolean;
  /** HMAC key (hex, base64:..., or text); else the probe's FLUCTUAT_DNS_KEY. */
  key: string | undefined;
}

export interface DnsValue {
  readonly name: string;
  readonly type: RecordType;
  readonly server: string;
  readonly latencyMs: number;
  readonly answers: readonly string[];
  /** Keyed mode: the answer matched the HMAC of the name. */
  readonly verified?: boolean;
}

function reason(code: unknown): string {
  switch (code) {
    case 'ECONNREFUSED':
      return 'refused';
    case 'ETIMEOUT':
    case 'ECANCELLED':
      return 'timeout';
    case 'ENOTFOUND':
      return 'nxdomain';
    case 'ENODATA':
      return 'nodata';
    case 'ESERVFAIL':
      return 'servfail';
    case 'EREFUSED':
      return 'server-refused';
    default:
      return 'error';
  }
}

registerKind<DnsParams, DnsValue>({
  name: 'dns',
  description: 'resolve name through server=host:port (keyed=true: a random name under the zone, answer checked against an HMAC)',
  positional: 'name',
  parse(params) {
    const name = canonicalName(check.string('dns', params, 'name'));
    const server = check.optionalString('dns', params, 'server');
    if (server !== undefined) check.hostPort('dns', server);
    const keyed = check.boolean('dns', params, 'keyed', false);
    const type = check.string('dns', params, 'type', keyed ? 'TXT' : 'A').toUpperCase() as RecordType;
    if (!TYPES.includes(type)) throw new ProbeError('bad-params', `dns: type must be one of ${TYPES.join(', ')}`);
    if (keyed && type !== 'TXT') throw new ProbeError('bad-params', 'dns: keyed mode asks for TXT records');
    return { name, server, type, keyed, key: check.optionalString('dns', params, 'key') };
  },
  async run(p, ctx) {
    let key: Buffer | undefined;
    if (p.keyed) {
      const text = p.key ?? ctx.env.FLUCTUAT_DNS_KEY;
      if (text === undefined || text === '') throw new ProbeError('bad-params', 'dns: keyed mode needs key=... or FLUCTUAT_DNS_KEY in the probe\'s environment');
      key = parseKey(text);
    }
    const name = p.keyed ? randomName(p.name) : p.name;
    const resolver = new Resolver({ timeout: Math.max(50, Math.floor(ctx.timeoutMs)), tries: 1 });
    if (p.server !== undefined) resolver.setServers([p.server]);
    const server = p.server ?? resolver.getServers().join(',');
    const onAbort = (): void => resolver.cancel();
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    const start = monoUs();
    let answers: string[];
    try {
      answers = await resolve(resolver, name, p.type);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      throw new ProbeError(ctx.signal.aborted ? 'timeout' : reason(code), `dns ${name} ${p.type} via ${server}: ${(err as Error).message}`, { cause: err });
    } finally {
      ctx.signal.removeEventListener('abort', onAbort);
    }
    const latencyMs = (monoUs() - start) / 1000;
    if (!key) return { name, type: p.type, server, latencyMs, answers };
    const expected = keyedAnswer(key, name);
    const verified = answers.includes(expected);
    const value: DnsValue = { name, type: p.type, server, latencyMs, answers, verified };
    if (!verified) {
      throw new ProbeError('hmac-mismatch', `dns ${name} via ${server}: answer ${JSON.stringify(answers.join(' ').slice(0, 80))} is not the HMAC of the name`, { value });
    }
    return value;
  },
});

async function resolve(resolver: Resolver, name: string, type: RecordType): Promise<string[]> {
  switch (type) {
    case 'A':
      return resolver.resolve4(name);
    case 'AAAA':
      return resolver.resolve6(name);
    case 'TXT':
      return (await resolver.resolveTxt(name)).map((chunks) => chunks.join(''));
    case 'CNAME':
      return resolver.resolveCname(name);
    case 'NS':
      return resolver.resolveNs(name);
    case 'MX':
      return (await resolver.resolveMx(name)).map((r) => `${r.priority} ${r.exchange}`);
  }
}
