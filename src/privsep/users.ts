import fs from 'node:fs';

/** uid and gid of a system user, from /etc/passwd (Node has no getpwnam). */
export function lookupUser(name: string): { uid: number; gid: number; home: string } {
  const text = fs.readFileSync('/etc/passwd', 'utf8');
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f.length >= 7) return { uid: Number(f[2]), gid: Number(f[3]), home: f[5]! };
  }
  throw new Error(`no system user "${name}" in /etc/passwd (create one, or pass --user)`);
}

/** Give a directory tree to a user, so the unprivileged broker can write its data. */
export function chownTree(dir: string, uid: number, gid: number): void {
  fs.mkdirSync(dir, { recursive: true });
  const walk = (p: string): void => {
    fs.lchownSync(p, uid, gid);
    if (fs.lstatSync(p).isDirectory()) for (const e of fs.readdirSync(p)) walk(`${p}/${e}`);
  };
  walk(dir);
}
