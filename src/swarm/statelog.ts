/**
 * The periodic controller's state log: append-only JSON lines. The first line of each file
 * says the schedule's configuration, then `seed` lines give each target's last state as of
 * the rotation, then one `decision` line per run: the observation, the state after it and the
 * delay decided. When the file passes `maxBytes` it is renamed `<file>.1` (older ones shift to
 * `.2`, ... up to `keep`) and a new one starts, re-seeded with the last state of each target:
 * the current file alone is enough to replay every decision it holds.
 */
import fs from 'node:fs';
import { decide, initialState, type Decision, type Observation, type ScheduleConfig, type TargetState } from './schedule.js';

export type StateRecord =
  | { type: 'config'; config: ScheduleConfig; wallMs: number }
  | { type: 'seed'; state: TargetState }
  | { type: 'decision'; target: string; obs: Observation; state: TargetState; delayMs: number; why: string; wallMs: number };

export class StateLog {
  private fd: number;
  private bytes = 0;
  private readonly last = new Map<string, TargetState>();

  constructor(
    readonly file: string,
    readonly config: ScheduleConfig,
    readonly maxBytes = 1024 * 1024,
    readonly keep = 3,
  ) {
    this.fd = this.start([]);
  }

  private start(seeds: readonly TargetState[]): number {
    const fd = fs.openSync(this.file, 'w');
    this.bytes = 0;
    this.fd = fd;
    this.append({ type: 'config', config: this.config, wallMs: Date.now() });
    for (const s of seeds) this.append({ type: 'seed', state: s });
    return fd;
  }

  private append(record: StateRecord): void {
    const line = JSON.stringify(record) + '\n';
    fs.writeSync(this.fd, line);
    this.bytes += Buffer.byteLength(line);
  }

  /** Log one decision (rotating first if the file is full). */
  write(target: string, obs: Observation, d: Decision): void {
    if (this.bytes >= this.maxBytes) this.rotate();
    this.append({ type: 'decision', target, obs, state: d.state, delayMs: d.delayMs, why: d.why, wallMs: Date.now() });
    this.last.set(target, d.state);
  }

  /** Seed a target that has a state but no decision in this file yet. */
  seed(state: TargetState): void {
    this.last.set(state.target, state);
    this.append({ type: 'seed', state });
  }

  rotate(): void {
    fs.closeSync(this.fd);
    for (let i = this.keep - 1; i >= 1; i--) {
      if (fs.existsSync(`${this.file}.${i}`)) fs.renameSync(`${this.file}.${i}`, `${this.file}.${i + 1}`);
    }
    fs.renameSync(this.file, `${this.file}.1`);
    this.start([...this.last.values()]);
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

export function readStateLog(file: string): StateRecord[] {
  const records: StateRecord[] = [];
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      records.push(JSON.parse(line) as StateRecord);
    } catch (cause) {
      throw new Error(`${file}:${i + 1}: not a JSON line`, { cause });
    }
  });
  return records;
}

export interface ReplayReport {
  readonly decisions: number;
  readonly mismatches: readonly { line: number; target: string; logged: number; replayed: number }[];
  /** Per target, the last decision recomputed from the log. */
  readonly last: Readonly<Record<string, { obs: Observation; delayMs: number; why: string; state: TargetState }>>;
}

/** Recompute every decision of a state log from its config and seeds, and compare. */
export function replayStateLog(records: readonly StateRecord[]): ReplayReport {
  const head = records[0];
  if (!head || head.type !== 'config') throw new Error('a state log starts with its config line');
  const config = head.config;
  const states = new Map<string, TargetState>();
  const mismatches: { line: number; target: string; logged: number; replayed: number }[] = [];
  const last: Record<string, { obs: Observation; delayMs: number; why: string; state: TargetState }> = {};
  let decisions = 0;
  records.forEach((r, i) => {
    if (r.type === 'seed') states.set(r.state.target, r.state);
    if (r.type !== 'decision') return;
    decisions++;
    const prev = states.get(r.target) ?? initialState(r.target, config);
    const d = decide(prev, r.obs, config);
    if (d.delayMs !== r.delayMs || JSON.stringify(d.state) !== JSON.stringify(r.state)) mismatches.push({ line: i + 1, target: r.target, logged: r.delayMs, replayed: d.delayMs });
    states.set(r.target, d.state);
    last[r.target] = { obs: r.obs, delayMs: d.delayMs, why: d.why, state: d.state };
  });
  return { decisions, mismatches, last };
}
