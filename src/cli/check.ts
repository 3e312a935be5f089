import type { Command } from 'commander';
import { defaultStorageOptions } from '../storage/engine.js';
import { getDriver } from '../storage/registry.js';
import '../storage/builtin.js';

interface CheckOptions {
  data: string;
  storage: string;
  repair: boolean;
  json: boolean;
}

export function checkCommand(program: Command, done: (p: Promise<number>) => void): void {
  program
    .command('check')
    .description("verify every record's checksum in a data directory; exit 1 when problems are found")
    .option('-d, --data <dir>', 'data directory', './data')
    .option('--storage <driver>', 'storage driver', 'file')
    .option('--repair', 'truncate each damaged channel at its first bad record', false)
    .option('--json', 'print the report as JSON', false)
    .action((o: CheckOptions) => done(check(o)));
}

async function check(o: CheckOptions): Promise<number> {
  const driver = getDriver(o.storage);
  if (!driver.check) {
    process.stderr.write(`fluctuat check: storage driver "${o.storage}" has nothing on disk to check\n`);
    return 2;
  }
  const report = await driver.check({ ...defaultStorageOptions, dataDir: o.data }, o.repair);
  if (o.json) {
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  } else {
    for (const p of report.problems) {
      process.stdout.write(`bad record: channel=${p.channel} offset=${p.offset} segment=${p.segment} position=${p.position}: ${p.problem}\n`);
    }
    for (const f of report.orphans) process.stdout.write(`orphan: ${f}\n`);
    for (const r of report.repaired) process.stdout.write(`repaired: ${r}\n`);
    const verdict = report.problems.length === 0 ? 'ok' : o.repair ? 'repaired' : 'DAMAGED';
    process.stdout.write(
      `${verdict}: ${report.channels} channels, ${report.segments} segments, ${report.records} records, ` +
        `${report.problems.length} bad, ${report.orphans.length} orphans\n`,
    );
  }
  if (report.problems.length === 0) return 0;
  return o.repair ? 0 : 1;
}
