/**
 * Summaries of V8 CPU profiles (`node --cpu-prof`): self time per function, summed over every
 * profile in a directory, heaviest first. Self time is where the CPU actually was; it is what
 * says which function on the broker's hot path to fix first.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber?: number;
}
export interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
  parent?: number;
}
/** A V8 CPU profile, as `node --cpu-prof` writes it. */
export interface CpuProfile {
  nodes: ProfileNode[];
  samples?: number[];
  timeDeltas?: number[];
  startTime: number;
  endTime: number;
}

export interface SelfTime {
  fn: string;
  where: string;
  ms: number;
  share: number;
}

export function readProfile(file: string): CpuProfile {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
}

/**
 * Whether the profile is of the process that serves connections: with privilege separation
 * the parent only binds and waits, and its profile is all module loading.
 */
export function servesConnections(p: CpuProfile): boolean {
  return p.nodes.some((n) => n.callFrame.url.includes('server/session.js') && (n.hitCount ?? 0) > 0);
}

/** `src/server/session.js:120`, `node_modules/pino/…:3`, `node:internal/…:5`, or `(native)`. */
export function frameWhere(cf: CallFrame): string {
  const url = cf.url.replace(/^file:\/\//, '');
  const rel = url.includes('/dist/') ? url.slice(url.indexOf('/dist/') + 6) : url.includes('node_modules/') ? url.slice(url.lastIndexOf('node_modules/')) : url || '(native)';
  return `${rel}${url ? ':' + (cf.lineNumber + 1) : ''}`;
}

/**
 * Each sample's weight in µs: the time until the next sample (the last one weighs nothing).
 * Without time deltas, hit counts spread evenly over the profile.
 */
export function sampleWeights(p: CpuProfile): { nodeIds: number[]; us: number[] } {
  const samples = p.samples ?? [];
  const deltas = p.timeDeltas ?? [];
  if (samples.length > 0 && deltas.length === samples.length) {
    return { nodeIds: samples, us: samples.map((_, i) => deltas[i + 1] ?? 0) };
  }
  const hits = p.nodes.reduce((a, n) => a + (n.hitCount ?? 0), 0);
  const per = hits ? (p.endTime - p.startTime) / hits : 0;
  const nodeIds: number[] = [];
  const us: number[] = [];
  for (const n of p.nodes) {
    if (!n.hitCount) continue;
    nodeIds.push(n.id);
    us.push(n.hitCount * per);
  }
  return { nodeIds, us };
}

/** Self time per function over the profiles, excluding idle time. */
export function selfTimes(files: string[]): { rows: SelfTime[]; busyMs: number; used: number } {
  const byFn = new Map<string, { fn: string; where: string; us: number }>();
  let busy = 0;
  let used = 0;
  for (const f of files) {
    const p = readProfile(f);
    if (!servesConnections(p)) continue;
    used++;
    const nodes = new Map(p.nodes.map((n) => [n.id, n]));
    const { nodeIds, us } = sampleWeights(p);
    for (let i = 0; i < nodeIds.length; i++) {
      const n = nodes.get(nodeIds[i]!);
      if (!n) continue;
      const dt = us[i]!;
      const fn = n.callFrame.functionName || '(anonymous)';
      if (fn === '(idle)') continue;
      const where = frameWhere(n.callFrame);
      const key = `${fn}\u0000${where}`;
      const e = byFn.get(key) ?? byFn.set(key, { fn, where, us: 0 }).get(key)!;
      e.us += dt;
      busy += dt;
    }
  }
  const rows = [...byFn.values()].sort((a, b) => b.us - a.us).map((e) => ({ fn: e.fn, where: e.where, ms: e.us / 1000, share: busy ? e.us / busy : 0 }));
  return { rows, busyMs: busy / 1000, used };
}

export function summariseProfiles(dir: string, top = 20): string {
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(dir, f)) : [];
  if (files.length === 0) return `no .cpuprofile in ${dir}`;
  const { rows, busyMs, used } = selfTimes(files);
  const out = [`CPU profile of the fluctuat broker: ${used} of ${files.length} profile(s) (those that served connections), ${(busyMs / 1000).toFixed(1)} s busy; top ${top} functions by self time`, '  self ms   share  function  (file:line)'];
  for (const r of rows.slice(0, top)) out.push(`${r.ms.toFixed(0).padStart(8)} ${(r.share * 100).toFixed(1).padStart(6)}%  ${r.fn}  (${r.where})`);
  return out.join('\n');
}

// `node dist/bench/lib/profile.js DIR [TOP]`
if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  console.log(summariseProfiles(process.argv[2] ?? '.', Number(process.argv[3] ?? 25)));
}
