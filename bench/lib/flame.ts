/**
 * Flame graphs of V8 CPU profiles (`node --cpu-prof`). Identical stacks (the same function,
 * file and line all along the path from the root) are merged; a frame's width is its total
 * time, its own plus its callees', from the sample timestamps (not hit counts alone); callers
 * are below their callees. Idle time is left out (it is not CPU time), the garbage collector
 * and `(program)` (V8 itself: compiler, runtime) stay as frames of their own.
 *
 * The layout is Vega's: `stratify` builds the tree, `partition` (an icicle) sizes it, and the
 * y axis is flipped so the root is at the bottom. Frames narrower than `minShare` of the
 * whole are dropped (their time stays in their caller's width).
 */
import fs from 'node:fs';
import path from 'node:path';
import { svgToPng, vegaToSvg, type VegaSpec } from '../../src/plot/render.js';
import { frameWhere, readProfile, sampleWeights, servesConnections, type CallFrame, type CpuProfile, type ProfileNode } from './profile.js';

export type FrameKind = 'fluctuat' | 'node' | 'dependency' | 'native' | 'gc' | 'other' | 'root';

export interface FlameNode {
  /** Function name, `(anonymous)` for an anonymous one. */
  name: string;
  /** `src/server/session.js:120` (relative to dist/ or node_modules/), `node:…:5`, `(native)`. */
  where: string;
  kind: FrameKind;
  /** Time in this frame itself, µs. */
  selfUs: number;
  /** Time in this frame and its callees, µs. */
  totalUs: number;
  children: FlameNode[];
}

export interface FlameTree {
  root: FlameNode;
  /** Idle time left out, µs. */
  idleUs: number;
  samples: number;
}

export const KIND_LABELS: Record<Exclude<FrameKind, 'root'>, string> = {
  fluctuat: 'fluctuat (dist/)',
  node: 'Node.js internals (node:)',
  dependency: 'dependencies (node_modules)',
  native: 'native, V8 (program)',
  gc: 'garbage collector',
  other: 'other scripts',
};

/** Base hue, saturation, lightness of each kind; frames vary around it so neighbours differ. */
const KIND_HSL: Record<FrameKind, [number, number, number]> = {
  fluctuat: [28, 90, 62],
  node: [205, 60, 72],
  dependency: [110, 45, 62],
  native: [275, 25, 78],
  gc: [0, 80, 62],
  other: [50, 85, 62],
  root: [0, 0, 85],
};

export function frameKind(cf: CallFrame): FrameKind {
  const fn = cf.functionName;
  const url = cf.url;
  if (fn === '(root)' && !url) return 'root';
  if (fn === '(garbage collector)') return 'gc';
  if (!url) return 'native';
  if (url.includes('node_modules/')) return 'dependency';
  if (url.startsWith('node:')) return 'node';
  if (url.includes('/dist/')) return 'fluctuat';
  return 'other';
}

/** The profile's call tree with identical stacks merged and time from the samples. */
export function flameTree(p: CpuProfile): FlameTree {
  const byId = new Map<number, ProfileNode>(p.nodes.map((n) => [n.id, n]));
  // Children lists: `--cpu-prof` writes `children`; the inspector protocol may give `parent`.
  const kids = new Map<number, number[]>();
  for (const n of p.nodes) {
    if (n.children) kids.set(n.id, [...(kids.get(n.id) ?? []), ...n.children]);
    if (n.parent !== undefined && !byId.get(n.parent)?.children) kids.set(n.parent, [...(kids.get(n.parent) ?? []), n.id]);
  }
  const childIds = new Set([...kids.values()].flat());
  const roots = p.nodes.filter((n) => !childIds.has(n.id));
  const mk = (cf: CallFrame): FlameNode => ({ name: cf.functionName || '(anonymous)', where: frameWhere(cf), kind: frameKind(cf), selfUs: 0, totalUs: 0, children: [] });
  // One merged root even if the profile had several (it has one).
  const root: FlameNode = roots.length === 1 ? mk(roots[0]!.callFrame) : mk({ functionName: '(root)', url: '', lineNumber: -1 });
  root.kind = 'root';
  const merged = new Map<number, FlameNode>();
  const childIndex = new Map<FlameNode, Map<string, FlameNode>>();
  const stack: Array<[number, FlameNode]> = roots.length === 1 ? [[roots[0]!.id, root]] : roots.map((r) => [r.id, childOf(root, r.callFrame)]);
  function childOf(parent: FlameNode, cf: CallFrame): FlameNode {
    const key = `${cf.functionName}\u0000${cf.url}\u0000${cf.lineNumber}`;
    let idx = childIndex.get(parent);
    if (!idx) childIndex.set(parent, (idx = new Map()));
    let c = idx.get(key);
    if (!c) {
      c = mk(cf);
      idx.set(key, c);
      parent.children.push(c);
    }
    return c;
  }
  while (stack.length) {
    const [id, node] = stack.pop()!;
    merged.set(id, node);
    for (const k of kids.get(id) ?? []) {
      const n = byId.get(k);
      if (n) stack.push([k, childOf(node, n.callFrame)]);
    }
  }
  let idleUs = 0;
  const { nodeIds, us } = sampleWeights(p);
  for (let i = 0; i < nodeIds.length; i++) {
    const n = merged.get(nodeIds[i]!);
    if (n) n.selfUs += us[i]!;
  }
  // Idle is not CPU time: out of the tree, reported apart.
  root.children = root.children.filter((c) => {
    if (c.name !== '(idle)') return true;
    idleUs += c.selfUs;
    return false;
  });
  const total = (n: FlameNode): number => (n.totalUs = n.selfUs + n.children.reduce((a, c) => a + total(c), 0));
  total(root);
  return { root, idleUs, samples: nodeIds.length };
}

/**
 * A copy without the frames under `minShare` of the root's time (and without never-sampled
 * ones); a dropped frame's time becomes its caller's own, so widths do not change.
 */
export function pruneFlame(root: FlameNode, minShare: number): FlameNode {
  const min = root.totalUs * minShare;
  const walk = (n: FlameNode): FlameNode => {
    const kept = n.children.filter((c) => c.totalUs > 0 && c.totalUs >= min).map(walk);
    const selfUs = n.totalUs - kept.reduce((a, c) => a + c.totalUs, 0);
    return { ...n, selfUs, children: kept };
  };
  return walk(root);
}

export function depthOf(root: FlameNode): number {
  return 1 + Math.max(0, ...root.children.map(depthOf));
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return (h >>> 0) / 2 ** 32;
}

function colour(n: FlameNode): string {
  const [h, s, l] = KIND_HSL[n.kind];
  if (n.kind === 'root' || n.kind === 'gc') return `hsl(${h},${s}%,${l}%)`;
  const r = hash(n.name + n.where);
  return `hsl(${Math.round(h - 12 + 24 * r)},${s}%,${Math.round(l - 6 + 12 * hash(n.where + n.name + 'l'))}%)`;
}

/** Labels' font, and its width per character in em as truncation assumes (DejaVu Sans ~0.58, Arial ~0.5). */
const LABEL_FONT = 'Arial, Helvetica, DejaVu Sans, sans-serif';
const LABEL_EM = 0.62;

const ms = (us: number): string => (us >= 10_000 ? (us / 1000).toFixed(0) : (us / 1000).toFixed(1));

export interface FlameOptions {
  /** Title, usually the profile's file name. */
  title?: string;
  /** Frames narrower than this share of the total are dropped (0.003). */
  minShare?: number;
  /** Width of the plot in px (1200). */
  width?: number;
  /** Height of one frame in px (17). */
  row?: number;
}

/** The rows Vega stratifies: one per frame, `parent` the caller's id (none for the root). */
export function flameRows(root: FlameNode): Array<Record<string, string | number | null>> {
  const rows: Array<Record<string, string | number | null>> = [];
  const all = root.totalUs || 1;
  const walk = (n: FlameNode, parent: number | null, order: number): void => {
    const id = rows.length;
    const label = n.kind === 'root' ? `all (${ms(n.totalUs)} ms)` : n.name === '(anonymous)' ? `(anonymous) ${n.where}` : n.name;
    const tip = n.kind === 'root' ? `all: ${ms(n.totalUs)} ms on CPU` : `${n.name}\n${n.where}\n${ms(n.totalUs)} ms, ${((100 * n.totalUs) / all).toFixed(1)}% (self ${ms(n.selfUs)} ms, ${((100 * n.selfUs) / all).toFixed(1)}%)`;
    rows.push({ id, parent, order, self: n.selfUs, total: n.totalUs, label, tip, color: colour(n), kind: n.kind === 'root' ? null : KIND_LABELS[n.kind] });
    // Heaviest callee first (left), so the widest towers line up on the left.
    [...n.children].sort((a, b) => b.totalUs - a.totalUs).forEach((c, i) => walk(c, id, i));
  };
  walk(root, null, 0);
  return rows;
}

/** The Vega specification of the flame graph of `tree`. */
export function flameSpec(tree: FlameTree, opts: FlameOptions = {}): VegaSpec {
  const minShare = opts.minShare ?? 0.003;
  const width = opts.width ?? 1200;
  const row = opts.row ?? 17;
  const root = pruneFlame(tree.root, minShare);
  const depth = depthOf(root);
  const rows = flameRows(root);
  const kinds = (Object.keys(KIND_LABELS) as Array<Exclude<FrameKind, 'root'>>).filter((k) => rows.some((r) => r.kind === KIND_LABELS[k]));
  const idle = tree.idleUs > 0 ? `, ${ms(tree.idleUs)} ms idle left out` : '';
  return {
    width,
    height: depth * row,
    padding: { left: 5, right: 5, top: 5, bottom: 5 },
    title: {
      text: `${opts.title ?? 'CPU profile'}: ${ms(tree.root.totalUs)} ms on CPU`,
      subtitle: `flame graph: width = time in a function and its callees, callers below; ${tree.samples} samples${idle}; frames under ${(minShare * 100).toFixed(1)}% left out`,
      anchor: 'start',
      limit: width,
      fontSize: 14,
      subtitleFontSize: 11,
      subtitleColor: '#555',
      offset: 8,
    },
    data: [
      {
        name: 'frames',
        values: rows,
        transform: [
          { type: 'stratify', key: 'id', parentKey: 'parent' },
          { type: 'partition', field: 'self', sort: { field: 'order' }, size: [{ signal: 'width' }, { signal: 'height' }], round: true },
          { type: 'formula', as: 'y', expr: `height - (datum.depth + 1) * ${row}` },
          { type: 'formula', as: 'w', expr: 'datum.x1 - datum.x0' },
        ],
      },
      { name: 'labelled', source: 'frames', transform: [{ type: 'filter', expr: 'datum.w >= 28' }] },
    ],
    scales: [{ name: 'kind', type: 'ordinal', domain: kinds.map((k) => KIND_LABELS[k]), range: kinds.map((k) => `hsl(${KIND_HSL[k][0]},${KIND_HSL[k][1]}%,${KIND_HSL[k][2]}%)`) }],
    legends: [{ fill: 'kind', orient: 'bottom', direction: 'horizontal', symbolType: 'square', labelFontSize: 11, labelLimit: 400, columnPadding: 16, offset: 10 }],
    marks: [
      {
        type: 'rect',
        from: { data: 'frames' },
        encode: {
          enter: {
            x: { field: 'x0' },
            x2: { field: 'x1' },
            y: { field: 'y' },
            height: { value: row - 1 },
            fill: { field: 'color' },
            stroke: { value: 'white' },
            strokeWidth: { value: 0.5 },
            description: { field: 'tip' },
          },
        },
      },
      {
        type: 'text',
        from: { data: 'labelled' },
        interactive: false,
        aria: false,
        encode: {
          enter: {
            x: { signal: 'datum.x0 + 3' },
            y: { signal: `datum.y + ${(row - 1) / 2}` },
            baseline: { value: 'middle' },
            text: { field: 'label' },
            // Without a canvas Vega estimates text at 0.8 em a character; these fonts are ~0.6.
            limit: { signal: `(datum.w - 6) * ${0.8 / LABEL_EM}` },
            font: { value: LABEL_FONT },
            fontSize: { value: 10.5 },
            fill: { value: '#1a1a1a' },
          },
        },
      },
    ],
  };
}

/** Render the flame graph of `tree` to SVG text (each frame with a hover title). */
export async function flameSvg(tree: FlameTree, opts: FlameOptions = {}): Promise<string> {
  return vegaToSvg(flameSpec(tree, opts), { titles: true });
}

/**
 * Render the profile `file` to `out` (`.svg`, by default next to the profile) and, if `png`,
 * a PNG beside it. Returns the paths written.
 */
export async function renderFlame(file: string, out?: string, opts: FlameOptions & { png?: boolean; profile?: CpuProfile } = {}): Promise<string[]> {
  const svgFile = out ?? file.replace(/\.cpuprofile$/, '') + '.svg';
  const svg = await flameSvg(flameTree(opts.profile ?? readProfile(file)), { title: path.basename(file), ...opts });
  fs.mkdirSync(path.dirname(path.resolve(svgFile)), { recursive: true });
  fs.writeFileSync(svgFile, svg);
  const written = [svgFile];
  if (opts.png) {
    const pngFile = svgFile.replace(/\.svg$/i, '') + '.png';
    fs.writeFileSync(pngFile, await svgToPng(svg, 1.5));
    written.push(pngFile);
  }
  return written;
}

/**
 * Flame graphs of the broker profiles in `dir` (those that served connections, as in the
 * self-time summary): `<profile>.svg` and `.png` next to each `<profile>.cpuprofile`.
 */
export async function flameGraphs(dir: string, opts: FlameOptions & { png?: boolean } = {}): Promise<string[]> {
  if (!fs.existsSync(dir)) return [];
  const out: string[] = [];
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort()) {
    const file = path.join(dir, f);
    const profile = readProfile(file);
    if (!servesConnections(profile)) continue;
    out.push(...(await renderFlame(file, undefined, { png: true, ...opts, profile })));
  }
  return out;
}
