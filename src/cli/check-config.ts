import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { ConfigSyntaxError } from '../config/lexer.js';
import { loadConfigFile } from '../config/load.js';
import { ConfigError, makeConfig } from '../server/config.js';

interface CheckConfigOptions {
  define: Record<string, string>;
  print: boolean;
  quiet: boolean;
}

function define(value: string, prev: Record<string, string>): Record<string, string> {
  const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s.exec(value);
  if (!m) throw new InvalidArgumentError(`"${value}": expected name=value`);
  return { ...prev, [m[1]!]: m[2]! };
}

/**
 * `fluctuat check-config FILE`: parse and check a configuration file (and what it includes,
 * and the TLS files it names) without starting anything. Exit 0 when it is good, 1 with
 * `file:line:column: message` on stderr when it is not, 2 on a usage error.
 */
export function checkConfigCommand(program: Command, done: (p: Promise<number>) => void): void {
  program
    .command('check-config')
    .description('validate a configuration file without starting the broker (docs/config.md)')
    .argument('<file>', 'configuration file')
    .option('-D, --define <name=value>', 'define a macro before the file is read, repeatable', define, {})
    .option('--print', 'print the resulting configuration, defaults filled in, as JSON', false)
    .option('-q, --quiet', 'print nothing when the file is good', false)
    .action((file: string, o: CheckConfigOptions) => done(Promise.resolve(checkConfig(file, o))));
}

export function checkConfig(file: string, o: Partial<CheckConfigOptions> = {}): number {
  try {
    const loaded = loadConfigFile(file, { macros: o.define ?? {} });
    const config = makeConfig(loaded);
    for (const w of loaded.warnings) process.stderr.write(`${w}\n`);
    if (o.print) process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
    else if (!o.quiet) process.stdout.write(`${file}: configuration OK (${loaded.files.length} file${loaded.files.length === 1 ? '' : 's'} read)\n`);
    return 0;
  } catch (err) {
    if (err instanceof ConfigSyntaxError) {
      process.stderr.write(`${err.pretty()}\n`);
      return 1;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message.startsWith(file) ? '' : `${file}: `}${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
