import type { Command } from 'commander';
import { hashPassword, newToken } from '../security/passwords.js';
import { USER_NAME, readUsers, writeUsers, type UserEntry } from '../security/users-file.js';

interface FileOption {
  file: string;
}

/** Read a password: the first line of stdin (never from the command line, where ps shows it). */
async function readPassword(): Promise<string> {
  let text = '';
  for await (const chunk of process.stdin) {
    text += String(chunk);
    if (text.includes('\n')) break;
  }
  const password = text.split('\n')[0]!.replace(/\r$/, '');
  if (password.length < 8) throw new Error('the password must have at least 8 characters (read from standard input)');
  return password;
}

function fail(message: string): number {
  process.stderr.write(`fluctuat user: ${message}\n`);
  return 1;
}

function list(text: string | undefined): string[] {
  return text ? text.split(',').map((s) => s.trim()).filter(Boolean) : [];
}

export function userCommand(program: Command, done: (p: Promise<number>) => void): void {
  const user = program.command('user').description('manage the users file (scrypt password hashes, groups, tenant, tokens)');
  const file = (c: Command): Command => c.option('-f, --file <path>', 'users file', './users');

  file(user.command('add').description('add a user; the password is read from standard input'))
    .argument('<name>')
    .option('-g, --groups <list>', 'comma-separated groups')
    .option('-t, --tenant <name>', 'tenant (namespace); default: the default tenant', '')
    .action((name: string, o: FileOption & { groups?: string; tenant: string }) =>
      done(
        (async () => {
          if (!USER_NAME.test(name)) return fail(`bad user name ${JSON.stringify(name)}: letters, digits, "_", ".", "-"`);
          if (o.tenant && !/^[A-Za-z0-9_-]{1,64}$/.test(o.tenant)) return fail(`bad tenant ${JSON.stringify(o.tenant)}`);
          const users = readUsers(o.file);
          if (users.has(name)) return fail(`user ${name} exists (use passwd to change the password)`);
          const entry: UserEntry = { name, hash: await hashPassword(await readPassword()), groups: list(o.groups), tenant: o.tenant, tokens: [] };
          users.set(name, entry);
          writeUsers(o.file, users.values());
          process.stdout.write(`added ${name}\n`);
          return 0;
        })(),
      ),
    );

  /** An existing user's entry, replaced by what `change` returns (null deletes it). */
  const edit = (name: string, o: FileOption, change: (entry: UserEntry) => Promise<{ entry: UserEntry | null; say: string }>): Promise<number> =>
    (async () => {
      const users = readUsers(o.file);
      const entry = users.get(name);
      if (!entry) return fail(`no user ${name} in ${o.file}`);
      const result = await change(entry);
      if (result.entry) users.set(name, result.entry);
      else users.delete(name);
      writeUsers(o.file, users.values());
      process.stdout.write(`${result.say}\n`);
      return 0;
    })();

  file(user.command('del').description('delete a user'))
    .argument('<name>')
    .action((name: string, o: FileOption) => done(edit(name, o, async () => ({ entry: null, say: `deleted ${name}` }))));

  file(user.command('passwd').description("change a user's password (read from standard input)"))
    .argument('<name>')
    .action((name: string, o: FileOption) =>
      done(edit(name, o, async (entry) => ({ entry: { ...entry, hash: await hashPassword(await readPassword()) }, say: `password changed for ${name}` }))),
    );

  file(user.command('token').description('create a token for a program; it is printed once, only its digest is kept'))
    .argument('<name>')
    .action((name: string, o: FileOption) =>
      done(
        edit(name, o, async (entry) => {
          const { token, digest } = newToken();
          return { entry: { ...entry, tokens: [...entry.tokens, digest] }, say: token };
        }),
      ),
    );

  file(user.command('list').description('list users with their groups, tenant and token count'))
    .option('--json', 'as JSON', false)
    .action((o: FileOption & { json: boolean }) =>
      done(
        (async () => {
          const rows = [...readUsers(o.file).values()].map((u) => ({ name: u.name, groups: u.groups, tenant: u.tenant || 'default', tokens: u.tokens.length }));
          if (o.json) process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
          else for (const r of rows) process.stdout.write(`${r.name}\tgroups=${r.groups.join(',') || '-'}\ttenant=${r.tenant}\ttokens=${r.tokens}\n`);
          return 0;
        })(),
      ),
    );
}
