import net from 'node:net';
import type { Log } from '../storage/engine.js';
import { AccessPolicy, type Identity, type Operation } from './access.js';
import type { Audit } from './audit.js';
import type { Authenticator } from './authenticator.js';
import { LoginBackoff } from './backoff.js';
import type { SecurityOptions } from './options.js';
import { TokenBucket } from './token-bucket.js';

/** How a connection reached us. */
export interface TransportInfo {
  readonly address: string;
  readonly port: number;
  /** TLS listener. */
  readonly secure: boolean;
  /** Subject (CN) of a verified client certificate, when there is one. */
  readonly peerIdentity?: string;
  /** Serial number of a verified client certificate (upper-case hex), to drop it when revoked. */
  readonly peerSerial?: string;
}

/** The identity of everyone on an open server (no users file): one namespace, all rights. */
export const OPEN_IDENTITY: Identity = Object.freeze({ user: 'anonymous', groups: [], tenant: '', admin: true, method: 'anonymous' });

/** `::ffff:1.2.3.4` is 1.2.3.4: lists and counters see one address, whatever the socket family. */
export function normaliseAddress(address: string): { address: string; family: 'ipv4' | 'ipv6' } {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return { address: mapped[1]!, family: 'ipv4' };
  return { address, family: net.isIPv6(address) ? 'ipv6' : 'ipv4' };
}

function blockList(cidrs: readonly string[]): net.BlockList {
  const list = new net.BlockList();
  for (const cidr of cidrs) {
    const [addr, bits] = cidr.split('/') as [string, string | undefined];
    const { address, family } = normaliseAddress(addr);
    if (!net.isIP(address)) throw new Error(`"${cidr}" is not an address or CIDR block`);
    if (bits === undefined) list.addAddress(address, family);
    else list.addSubnet(address, Number(bits), family);
  }
  return list;
}

/**
 * The server's security decisions in one place: who may connect, log in, and do what, with the
 * counters and the accounting log that go with them. Sessions ask; the guard answers.
 */
export class Guard {
  readonly open: boolean;
  readonly policy: AccessPolicy;
  /** Per user from the first failure; per address after a few, so a shared NAT is not locked out by one typo. */
  readonly userBackoff: LoginBackoff;
  readonly addressBackoff: LoginBackoff;
  private readonly allow: net.BlockList | null;
  private readonly deny: net.BlockList;
  private readonly perAddress = new Map<string, number>();
  private readonly perUser = new Map<string, number>();
  private readonly userBuckets = new Map<string, TokenBucket>();
  private connections = 0;
  private readonly certificateUsers: ReadonlyMap<string, string>;
  readonly counters = { refusedConnections: 0, loginFailures: 0, logins: 0, denied: 0, rateLimited: 0, timeouts: 0 };

  constructor(
    readonly options: SecurityOptions,
    readonly authenticator: Authenticator | null,
    readonly audit: Audit,
    readonly log: Log,
  ) {
    this.open = options.usersFile === null;
    this.policy = new AccessPolicy(options.rules, this.open ? 'allow' : options.defaultAccess);
    this.userBackoff = new LoginBackoff({ baseMs: options.backoffBaseMs, maxMs: options.backoffMaxMs });
    this.addressBackoff = new LoginBackoff({ baseMs: options.backoffBaseMs, maxMs: options.backoffMaxMs, free: 5 });
    this.allow = options.allowAddresses.length ? blockList(options.allowAddresses) : null;
    this.deny = blockList(options.denyAddresses);
    this.certificateUsers = new Map(options.certificateUsers.map((m) => [m.subject, m.user]));
  }

  /** The user a verified client certificate logs in as: its mapping, else its common name. */
  certificateUser(subject: string): string {
    return this.certificateUsers.get(subject) ?? subject;
  }

  /** A new connection: null when admitted (and counted), else the reason it is refused. */
  admit(t: TransportInfo): { code: string; reason: string } | null {
    const { address, family } = normaliseAddress(t.address);
    let refusal: { code: string; reason: string } | null = null;
    if (this.deny.check(address, family) || (this.allow && !this.allow.check(address, family))) {
      refusal = { code: 'ADDRESS_REFUSED', reason: `connections from ${address} are not allowed` };
    } else if (this.connections >= this.options.maxConnections) {
      refusal = { code: 'TOO_MANY_CONNECTIONS', reason: `the broker has ${this.connections} connections, its limit (max-connections)` };
    } else if ((this.perAddress.get(address) ?? 0) >= this.options.maxConnectionsPerAddress) {
      refusal = { code: 'TOO_MANY_CONNECTIONS', reason: `${address} has ${this.perAddress.get(address)} connections, the limit per address` };
    }
    if (refusal) {
      this.counters.refusedConnections++;
      this.audit.record('limit', { kind: 'connection', address, port: t.port, code: refusal.code, reason: refusal.reason });
      return refusal;
    }
    this.connections++;
    this.perAddress.set(address, (this.perAddress.get(address) ?? 0) + 1);
    this.audit.record('connect', { address, port: t.port, tls: t.secure });
    return null;
  }

  released(t: TransportInfo, identity: Identity | null): void {
    const { address } = normaliseAddress(t.address);
    this.connections--;
    const n = (this.perAddress.get(address) ?? 1) - 1;
    if (n > 0) this.perAddress.set(address, n);
    else this.perAddress.delete(address);
    if (identity && !this.open) {
      const u = (this.perUser.get(identity.user) ?? 1) - 1;
      if (u > 0) this.perUser.set(identity.user, u);
      else this.perUser.delete(identity.user);
    }
  }

  /** A user logged in on a connection: false when that user is at the per-user limit. */
  loginAllowed(identity: Identity): boolean {
    const n = this.perUser.get(identity.user) ?? 0;
    if (n >= this.options.maxConnectionsPerUser) return false;
    this.perUser.set(identity.user, n + 1);
    return true;
  }

  /** Milliseconds before this user/address may try again. */
  loginWait(user: string, address: string): number {
    return Math.max(user ? this.userBackoff.wait([user]) : 0, this.addressBackoff.wait([normaliseAddress(address).address]));
  }

  /** A failed login: the delay imposed on the next attempt. */
  loginFailed(user: string, address: string): { delay: number; failures: number } {
    this.counters.loginFailures++;
    const a = normaliseAddress(address).address;
    const delay = Math.max(user ? this.userBackoff.failed([user]) : 0, this.addressBackoff.failed([a]));
    return { delay, failures: user ? this.userBackoff.failures(user) : this.addressBackoff.failures(a) };
  }

  loginSucceeded(user: string, address: string): void {
    this.counters.logins++;
    this.userBackoff.succeeded([user]);
    this.addressBackoff.succeeded([normaliseAddress(address).address]);
  }

  /** Passwords travel in clear only over TLS or loopback, unless explicitly allowed. */
  passwordAllowed(t: TransportInfo): boolean {
    if (t.secure || this.options.allowPlaintextPasswords) return true;
    const { address } = normaliseAddress(t.address);
    return address === '::1' || address.startsWith('127.');
  }

  check(who: Identity, op: Operation, target: string): boolean {
    if (this.open) return true;
    // Reply inboxes: anyone may publish to one; subscribing needs its exact (random) name.
    if (target.startsWith('_INBOX.')) return op !== 'sub' || !/^_INBOX\.[*>]/.test(target);
    return this.policy.check(who, op, target).allowed;
  }

  /** The per-user bucket (shared by the user's connections), or null when unlimited. */
  userBucket(user: string): TokenBucket | null {
    const rate = this.options.userPublishRate;
    if (rate <= 0) return null;
    let b = this.userBuckets.get(user);
    if (!b) this.userBuckets.set(user, (b = new TokenBucket(rate, this.options.publishBurst || rate)));
    return b;
  }
}
