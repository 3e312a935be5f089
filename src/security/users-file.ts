import fs from 'node:fs';

/**
 * The users file: one user per line, colon-separated like /etc/passwd, `#` comments.
 *
 *   name:scrypt$N$r$p$salt$hash:group,group:tenant:sha256:tokendigest,sha256:...
 *
 * Empty tenant = the default tenant. Managed by `fluctuat user add|del|passwd|list|token`.
 * Written atomically (temporary file + rename) with mode 0600.
 */
export interface UserEntry {
  readonly name: string;
  readonly hash: string;
  readonly groups: readonly string[];
  readonly tenant: string;
  readonly tokens: readonly string[];
}

export const USER_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

export class UsersFileError extends Error {
  override name = 'UsersFileError';
}

export function parseUsers(text: string, file = 'users'): Map<string, UserEntry> {
  const users = new Map<string, UserEntry>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const f = line.split(':');
    if (f.length < 4) throw new UsersFileError(`${file}:${i + 1}: expected name:hash:groups:tenant[:tokens], found ${f.length} fields`);
    const [name, hash, groups, tenant] = f as [string, string, string, string];
    // Token digests contain a colon themselves (sha256:<hex>): the rest of the line is theirs.
    const tokens = f.slice(4).join(':');
    if (!USER_NAME.test(name)) throw new UsersFileError(`${file}:${i + 1}: bad user name ${JSON.stringify(name)}`);
    if (users.has(name)) throw new UsersFileError(`${file}:${i + 1}: user ${name} appears twice`);
    users.set(name, {
      name,
      hash,
      groups: groups ? groups.split(',') : [],
      tenant,
      tokens: tokens ? tokens.split(',') : [],
    });
  });
  return users;
}

export function formatUsers(users: Iterable<UserEntry>): string {
  const lines = ['# fluctuat users: name:password-hash:groups:tenant:token-digests'];
  for (const u of users) lines.push([u.name, u.hash, u.groups.join(','), u.tenant, u.tokens.join(',')].join(':'));
  return lines.join('\n') + '\n';
}

export function readUsers(file: string): Map<string, UserEntry> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw new UsersFileError(`cannot read users file ${file}: ${(err as Error).message}`, { cause: err });
  }
  return parseUsers(text, file);
}

export function writeUsers(file: string, users: Iterable<UserEntry>): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, formatUsers(users), { mode: 0o600 });
  fs.renameSync(tmp, file);
}
