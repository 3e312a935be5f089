/**
 * `node dist/bench/flame.js FILE.cpuprofile [OUT.svg]` (`npm run bench:flame -- …`): the flame
 * graph of a V8 CPU profile, for instance one of
 * `STORAGE=file N=2000000 node --cpu-prof --cpu-prof-dir=/tmp/fp dist/bench/hotpath.js`.
 */
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { renderFlame } from './lib/flame.js';

const share = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || n >= 100) throw new InvalidArgumentError('a percentage from 0 to 100');
  return n / 100;
};
const pixels = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 200) throw new InvalidArgumentError('an integer of at least 200');
  return n;
};

const program = new Command('flame')
  .description(
    'Render the flame graph of a V8 CPU profile (node --cpu-prof) to SVG: identical stacks merged, width = time in a function and its callees, callers below, idle time left out.\n' +
      'Colours: orange fluctuat (dist/), blue Node.js internals (node:), green node_modules, lilac native and V8 (program), red the garbage collector, yellow other scripts.',
  )
  .argument('<profile>', 'a .cpuprofile file')
  .argument('[out]', 'the SVG to write (default: the profile with .svg for .cpuprofile)')
  .addOption(new Option('--min <percent>', 'leave out frames narrower than this share of the total, in %').argParser(share).default(0.003, '0.3'))
  .option('--width <px>', 'width of the graph', pixels, 1200)
  .option('--title <text>', "the graph's title (default: the profile's file name)")
  .option('--png', 'also write a PNG next to the SVG')
  .action(async (profile: string, out: string | undefined, o: { min: number; width: number; title?: string; png?: boolean }) => {
    const written = await renderFlame(profile, out, { minShare: o.min, width: o.width, png: o.png === true, title: o.title ?? path.basename(profile) });
    for (const f of written) console.log(f);
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
