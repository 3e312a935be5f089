import type { AccessRule } from './access.js';
import type { SyslogFacility } from './syslog.js';

/** RFC 5424 forwarding of the accounting log over TCP (security/syslog.ts). */
export interface SyslogOptions {
  readonly host: string;
  readonly port: number;
  readonly facility: SyslogFacility;
  /** TLS to the collector; `ca`: PEM file its certificate must chain to (default: Node's CAs). */
  readonly tls?: { readonly ca?: string };
  /** Entries and bytes kept while the collector is unreachable; beyond either the oldest are dropped, counted and announced. */
  readonly bufferEntries: number;
  readonly bufferBytes: number;
  /** Reconnection backoff: first delay and cap (defaults 250 ms and 30 s). */
  readonly reconnectBaseMs?: number;
  readonly reconnectMaxMs?: number;
}

/** `certificate subject <cn> user <name>`: a client certificate's common name mapped to a user. */
export interface CertificateUser {
  /** Client certificate subject common name. */
  readonly subject: string;
  readonly user: string;
}

/** Everything security-related the broker enforces; part of ServerConfig. */
export interface SecurityOptions {
  /** The users file; null = an open server (no login, no tenants, everything allowed). */
  readonly usersFile: string | null;
  /** Accept passwords on plaintext listeners that are not loopback (off: refused). */
  readonly allowPlaintextPasswords: boolean;
  /** Unauthenticated connections are closed after this long. */
  readonly loginTimeoutMs: number;
  /** Connections silent this long are closed (0 = never). */
  readonly idleTimeoutMs: number;
  readonly rules: readonly AccessRule[];
  /** What happens when no rule matches: deny on a configured server. */
  readonly defaultAccess: 'allow' | 'deny';
  /** Members of this group may list and disconnect clients and see everyone's statistics. */
  readonly adminGroup: string;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  /** The accounting log (JSON lines); null = none. */
  readonly auditFile: string | null;
  readonly auditMaxBytes: number;
  readonly auditKeep: number;
  /** Forward the accounting log as RFC 5424 syslog over TCP; null = don't. Works without auditFile. */
  readonly syslog: SyslogOptions | null;
  readonly maxConnections: number;
  readonly maxConnectionsPerAddress: number;
  readonly maxConnectionsPerUser: number;
  /** Token bucket per connection and per user: messages per second and burst (0 = unlimited). */
  readonly publishRate: number;
  readonly publishBurst: number;
  readonly userPublishRate: number;
  /** CIDR lists (IPv4 and IPv6); a non-empty allow list admits only its addresses. */
  readonly allowAddresses: readonly string[];
  readonly denyAddresses: readonly string[];
  /** A verified client certificate logs in as its mapped user here, else as its common name. */
  readonly certificateUsers: readonly CertificateUser[];
}

export const defaultSecurityOptions: SecurityOptions = Object.freeze({
  usersFile: null,
  allowPlaintextPasswords: false,
  loginTimeoutMs: 10_000,
  idleTimeoutMs: 0,
  rules: [],
  defaultAccess: 'deny',
  adminGroup: 'admin',
  backoffBaseMs: 250,
  backoffMaxMs: 30_000,
  auditFile: null,
  auditMaxBytes: 64 * 1024 * 1024,
  auditKeep: 5,
  syslog: null,
  maxConnections: 10_000,
  maxConnectionsPerAddress: 1_000,
  maxConnectionsPerUser: 1_000,
  publishRate: 0,
  publishBurst: 0,
  userPublishRate: 0,
  allowAddresses: [],
  denyAddresses: [],
  certificateUsers: [],
});
