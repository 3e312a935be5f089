import type { Identity } from './access.js';
import { sameDigest, tokenDigest, verifyPassword } from './passwords.js';
import { readUsers, type UserEntry } from './users-file.js';

/**
 * Checks credentials against the users file. An interface, so that verification can move to
 * a separate process that alone can read the file (privilege separation).
 */
export interface Authenticator {
  password(user: string, password: string): Promise<Identity | null>;
  token(token: string): Promise<Identity | null>;
  /** The user a verified client certificate maps to (the TLS layer verified it): its identity, or null if unknown. */
  certificate(user: string): Promise<Identity | null>;
}

export const DEFAULT_TENANT = 'default';

export function identityOf(entry: UserEntry, method: Identity['method'], adminGroup: string): Identity {
  return {
    user: entry.name,
    groups: entry.groups,
    tenant: entry.tenant || DEFAULT_TENANT,
    admin: entry.groups.includes(adminGroup),
    method,
  };
}

/** Reads the users file on each attempt (it is small), so `fluctuat user` changes apply at once. */
export class FileAuthenticator implements Authenticator {
  constructor(
    private readonly file: string,
    private readonly adminGroup: string,
  ) {}

  async password(user: string, password: string): Promise<Identity | null> {
    const entry = readUsers(this.file).get(user);
    // Verify against a dummy hash for unknown users too, so timing does not reveal who exists.
    const ok = await verifyPassword(password, entry?.hash ?? DUMMY_HASH);
    return ok && entry ? identityOf(entry, 'password', this.adminGroup) : null;
  }

  async token(token: string): Promise<Identity | null> {
    const digest = tokenDigest(token);
    for (const entry of readUsers(this.file).values()) {
      if (entry.tokens.some((t) => sameDigest(t, digest))) return identityOf(entry, 'token', this.adminGroup);
    }
    return null;
  }

  async certificate(user: string): Promise<Identity | null> {
    const entry = readUsers(this.file).get(user);
    return entry ? identityOf(entry, 'certificate', this.adminGroup) : null;
  }
}

// scrypt of a random password; never matches anything.
const DUMMY_HASH = 'scrypt$16384$8$1$0Cv3X3y8H1o0r2QXWZQn4w==$1Zg8VjR0yYV3o9F0mQm7v2n6mJx2y9Q3kqkq2H8yY0Q=';
