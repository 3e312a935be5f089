import { Command, CommanderError } from 'commander';
import { VERSION } from '../version.js';

/** Adds one command to the program; `done` receives what its action returns. */
type Register = (program: Command, done: (p: Promise<number>) => void) => void;

/**
 * Each command's module, in the order `--help` lists them, loaded only when needed: all of them
 * cost ~300 ms and ~20 MB to load, so `fluctuat pub x hi` would start slowly, and the
 * privilege-separating parent of `serve` would hold the whole program for nothing.
 */
const COMMANDS: Readonly<Record<string, () => Promise<Register>>> = {
  serve: async () => (await import('./serve.js')).serveCommand,
  check: async () => (await import('./check.js')).checkCommand,
  pub: async () => (await import('./pubsub.js')).pubCommand,
  sub: async () => (await import('./pubsub.js')).subCommand,
  'check-config': async () => (await import('./check-config.js')).checkConfigCommand,
  'gen-cert': async () => (await import('./gen-cert.js')).genCertCommand,
  user: async () => (await import('./user.js')).userCommand,
  probe: async () => (await import('./probe.js')).probeCommand,
  swarm: async () => (await import('./swarm.js')).swarmCommand,
  torture: async () => (await import('./torture.js')).tortureCommand,
  'dns-responder': async () => (await import('./dns-responder.js')).dnsResponderCommand,
};

/** Exit codes that mean something: 0 ok, 1 failure (check found problems...), 2 usage. */
export const EXIT = { OK: 0, FAILURE: 1, USAGE: 2, UNAVAILABLE: 69 } as const;

export async function main(argv: string[]): Promise<number> {
  const program = new Command('fluctuat')
    .description('fluctuat: a publish/subscribe databus for swarms of measurement probes')
    .version(VERSION)
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  let result: number | Promise<number> = EXIT.OK;
  const set = (p: Promise<number>): void => {
    result = p;
  };
  // A command named first loads alone; anything else (help, --version, a mistyped command that
  // gets a suggestion) needs them all.
  const named = argv[2];
  const loaders = named !== undefined && Object.hasOwn(COMMANDS, named) ? [COMMANDS[named]!] : Object.values(COMMANDS);
  for (const register of await Promise.all(loaders.map((load) => load()))) register(program, set);
  const override = (c: Command): void => {
    c.exitOverride();
    c.commands.forEach(override);
  };
  override(program);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT.OK;
      return EXIT.USAGE;
    }
    process.stderr.write(`fluctuat: ${(err as Error).message}\n`);
    return EXIT.FAILURE;
  }
  try {
    return await result;
  } catch (err) {
    process.stderr.write(`fluctuat: ${(err as Error).message}\n`);
    return EXIT.FAILURE;
  }
}
