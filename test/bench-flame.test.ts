/**
 * Flame graphs (bench/lib/flame.ts): a real `node --cpu-prof` profile of a child with two known
 * functions, one calling the other, rendered to SVG; and the merging of identical stacks on a
 * profile built by hand. No timing thresholds: the child runs until it has enough samples.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { flameSvg, flameTree, pruneFlame, type FlameNode } from '../bench/lib/flame.js';
import { readProfile, sampleWeights, type CpuProfile } from '../bench/lib/profile.js';
import { ROOT } from './helpers/broker.js';
import { runNode, type NodeRun } from './helpers/child.js';

const run = (args: string[], cwd: string): Promise<NodeRun> => runNode(args, { cwd });

function find(n: FlameNode, name: string): FlameNode[] {
  return [...(n.name === name ? [n] : []), ...n.children.flatMap((c) => find(c, name))];
}

/** Every frame rectangle of the SVG: `<path d="Mx,yhWv…"><title>name\n…</title>`. */
function rects(svg: string): Array<{ x: number; y: number; w: number; name: string }> {
  const out = [];
  for (const m of svg.matchAll(/<path d="M(-?[\d.]+),(-?[\d.]+)h(-?[\d.]+)v[^"]*"[^>]*><title>([^<\n]*)/g)) {
    out.push({ x: Number(m[1]), y: Number(m[2]), w: Number(m[3]), name: m[4]! });
  }
  return out;
}

// The child: busy for ~600 ms of wall time (as long as it takes to get samples, not a
// threshold), almost all of it in flameOuterWork, a good part of that in flameInnerWork.
// TurboFan would inline flameInnerWork into its caller, and the profiler would then charge
// its time to flameOuterWork: never optimising it keeps it a frame of its own.
const CHILD = `
export function flameInnerWork(n) {
  let h = 0;
  for (let i = 0; i < n; i++) h = Math.imul(h ^ i, 16777619) + (h >>> 7);
  return h;
}
export function flameOuterWork(n) {
  let s = 0;
  for (let i = 0; i < n; i++) s = (s + Math.sqrt(i)) % 1e9;
  return s + flameInnerWork(n * 3);
}
%NeverOptimizeFunction(flameInnerWork);
const t0 = performance.now();
let sink = 0;
while (performance.now() - t0 < 600) sink += flameOuterWork(20000);
if (sink === 0.5) console.log(sink);
`;

test('the flame graph of a real --cpu-prof profile: both functions, the callee above and within its caller', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fluctuat-flame-'));
  try {
    const script = path.join(dir, 'busy.mjs');
    fs.writeFileSync(script, CHILD);
    const profDir = path.join(dir, 'prof');
    const r = await run(['--allow-natives-syntax', '--cpu-prof', `--cpu-prof-dir=${profDir}`, script], dir);
    assert.equal(r.code, 0, r.stderr);
    const files = fs.readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
    assert.equal(files.length, 1, files.join(', '));
    const file = path.join(profDir, files[0]!);
    const profile = readProfile(file);

    const tree = flameTree(profile);
    // Every sample's time is in the tree or in idle: nothing lost, nothing counted twice.
    const all = sampleWeights(profile).us.reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(tree.root.totalUs + tree.idleUs - all) < 1e-6, `${tree.root.totalUs} + ${tree.idleUs} vs ${all}`);
    // The stack is module → flameOuterWork → flameInnerWork. (Now and then a sample's stack
    // walk comes back short and puts a function at another depth, hence "the widest".)
    const widest = (ns: FlameNode[]): FlameNode | undefined => ns.sort((a, b) => b.totalUs - a.totalUs)[0];
    const outer = widest(find(tree.root, 'flameOuterWork'));
    assert.ok(outer, 'flameOuterWork is in the tree');
    const inner = outer.children.filter((c) => c.name === 'flameInnerWork');
    assert.equal(inner.length, 1, 'flameInnerWork is one merged callee of flameOuterWork');
    assert.equal(widest(find(tree.root, 'flameInnerWork')), inner[0], 'and that is where most of its time is');
    assert.ok(inner[0]!.totalUs > 0 && inner[0]!.totalUs <= outer.totalUs, `${inner[0]!.totalUs} within ${outer.totalUs}`);
    assert.equal(outer.kind, 'other');
    assert.match(outer.where, /busy\.mjs:\d+$/);

    const svg = await flameSvg(tree, { title: files[0]! });
    assert.match(svg, /^<svg /);
    assert.ok(svg.includes(files[0]!), 'the title names the file');
    assert.match(svg, /ms on CPU/);
    const frames = rects(svg);
    const widestRect = (name: string) => frames.filter((f) => f.name === name).sort((a, b) => b.w - a.w)[0];
    const po = widestRect('flameOuterWork');
    const pi = widestRect('flameInnerWork');
    assert.ok(po && pi, `both functions among the frames: ${frames.map((f) => f.name).join(', ')}`);
    assert.ok(pi.y < po.y, `the callee is above its caller (y ${pi.y} < ${po.y})`);
    assert.ok(pi.w <= po.w && pi.x >= po.x && pi.x + pi.w <= po.x + po.w + 0.5, `the callee [${pi.x}, +${pi.w}] lies within its caller [${po.x}, +${po.w}]`);
    const root = frames.find((f) => f.name.startsWith('all: '));
    assert.ok(root && root.y > po.y && root.w >= po.w, 'the root is the bottom row, the widest');
    // The hover text of a frame: function, file:line, ms and share.
    assert.match(svg, /<title>flameInnerWork\n[^\n]*busy\.mjs:\d+\n[\d.]+ ms, [\d.]+% \(self [\d.]+ ms, [\d.]+%\)<\/title>/);

    // The command line renders the same profile.
    const out = path.join(dir, 'out', 'flame.svg');
    const cli = await run([path.join(ROOT, 'dist/bench/flame.js'), file, out, '--png'], ROOT);
    assert.equal(cli.code, 0, cli.stderr);
    assert.deepEqual(cli.stdout.trim().split('\n'), [out, out.replace(/\.svg$/, '.png')]);
    assert.ok(fs.readFileSync(out, 'utf8').includes('flameInnerWork'));
    assert.deepEqual([...fs.readFileSync(out.replace(/\.svg$/, '.png')).subarray(1, 4)], [...Buffer.from('PNG')]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('flame.js --help describes its arguments; a missing file fails', async () => {
  const help = await run([path.join(ROOT, 'dist/bench/flame.js'), '--help'], ROOT);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /Usage: flame \[options\] <profile> \[out\]/);
  assert.match(help.stdout, /--min <percent>/);
  const bad = await run([path.join(ROOT, 'dist/bench/flame.js'), path.join(os.tmpdir(), 'no-such-fluctuat.cpuprofile')], ROOT);
  assert.notEqual(bad.code, 0);
});

/** A profile by hand: root → main (a.js:1) → {work (a.js:10) twice as two V8 nodes, work (a.js:20)}; GC; idle. */
function handProfile(): CpuProfile {
  const cf = (functionName: string, url: string, lineNumber: number, columnNumber = 0) => ({ functionName, url, lineNumber, columnNumber, scriptId: '1' });
  return {
    nodes: [
      { id: 1, callFrame: cf('(root)', '', -1), hitCount: 0, children: [2, 6, 7] },
      { id: 2, callFrame: cf('main', 'file:///app/dist/src/a.js', 0), hitCount: 0, children: [3, 4, 5] },
      // Two V8 nodes for the same function and line (different columns): one frame.
      { id: 3, callFrame: cf('work', 'file:///app/dist/src/a.js', 9, 2), hitCount: 1 },
      { id: 4, callFrame: cf('work', 'file:///app/dist/src/a.js', 9, 30), hitCount: 1 },
      // Same name, another line: another frame.
      { id: 5, callFrame: cf('work', 'file:///app/dist/src/a.js', 19), hitCount: 1 },
      { id: 6, callFrame: cf('(garbage collector)', '', -1), hitCount: 1 },
      { id: 7, callFrame: cf('(idle)', '', -1), hitCount: 50 },
    ],
    // Weights come from the time deltas (each sample weighs the time to the next), not from
    // hitCount: the hit counts above say otherwise on purpose.
    samples: [3, 4, 5, 6, 7, 2],
    timeDeltas: [0, 1000, 2000, 4000, 500, 300],
    startTime: 0,
    endTime: 8000,
  };
}

test('identical stacks merge, time comes from the time deltas, idle is out and GC is a frame', () => {
  const tree = flameTree(handProfile());
  const names = (n: FlameNode): string[] => n.children.map((c) => `${c.name}@${c.where}`).sort();
  assert.deepEqual(names(tree.root), ['(garbage collector)@(native)', 'main@src/a.js:1']);
  const main = tree.root.children.find((c) => c.name === 'main')!;
  assert.deepEqual(names(main), ['work@src/a.js:10', 'work@src/a.js:20']);
  const w10 = main.children.find((c) => c.where.endsWith(':10'))!;
  const w20 = main.children.find((c) => c.where.endsWith(':20'))!;
  assert.equal(w10.totalUs, 1000 + 2000, 'the two V8 nodes of work:10 merged');
  assert.equal(w20.totalUs, 4000);
  assert.equal(main.selfUs, 0, 'the last sample weighs nothing');
  assert.equal(main.totalUs, 7000);
  const gc = tree.root.children.find((c) => c.kind === 'gc')!;
  assert.equal(gc.totalUs, 500);
  assert.equal(tree.idleUs, 300);
  assert.equal(tree.root.totalUs, 7500);
  assert.equal(w10.kind, 'fluctuat');

  // Pruning keeps widths: a dropped frame's time stays in its caller.
  const pruned = pruneFlame(tree.root, 0.45);
  const pmain = pruned.children.find((c) => c.name === 'main')!;
  assert.deepEqual(pruned.children.map((c) => c.name), ['main'], 'GC (6.7%) dropped');
  assert.deepEqual(pmain.children.map((c) => c.where), ['src/a.js:20'], 'work:10 (40%) dropped, work:20 (53%) kept');
  assert.equal(pmain.totalUs, 7000);
  assert.equal(pmain.selfUs, 3000, "work:10's time is main's own now");
  assert.equal(pruned.selfUs, 500);

  // Without samples and time deltas, hit counts share the profile's duration.
  const { samples: _s, timeDeltas: _t, ...hitsOnly } = handProfile();
  const byHits = flameTree(hitsOnly);
  assert.equal(byHits.idleUs, (50 / 54) * 8000);
  assert.equal(byHits.root.children.find((c) => c.name === 'main')!.children.find((c) => c.where.endsWith(':10'))!.totalUs, (2 / 54) * 8000);
  assert.equal(pruned.totalUs, 7500);
});
