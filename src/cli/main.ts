import { Command, CommanderError } from 'commander';
import { serveCommand } from './serve.js';
import { checkCommand } from './check.js';
import { pubCommand, subCommand } from './pubsub.js';
import { checkConfigCommand } from './check-config.js';
import { genCertCommand } from './gen-cert.js';
import { probeCommand } from './probe.js';
import { swarmCommand } from './swarm.js';
import { tortureCommand } from './torture.js';
import { dnsResponderCommand } from './dns-responder.js';
import { userCommand } from './user.js';
import { VERSION } from '../server/session.js';

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
  serveCommand(program, set);
  checkCommand(program, set);
  pubCommand(program, set);
  subCommand(program, set);
  checkConfigCommand(program, set);
  genCertCommand(program, set);
  userCommand(program, set);
  probeCommand(program, set);
  swarmCommand(program, set);
  tortureCommand(program, set);
  dnsResponderCommand(program, set);
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
