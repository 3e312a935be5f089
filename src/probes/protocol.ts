/**
 * What probes and controllers say to each other over the bus: channel names and the JSON
 * messages on them. Pure: no I/O. Documented in docs/probes.md.
 *
 *   <root>.presence            probes announce themselves: up, alive (heartbeat), down, gone
 *   <root>.rollcall            a controller asks "who is there?"; every probe answers on the reply channel
 *   <root>.task.<kind>         tasks for any probe of that kind (queue group `<kind>`)
 *   <root>.direct.<probe-id>   tasks for one probe
 *
 * Results go to the reply channel each task carries (an `_INBOX.` channel of the controller).
 */
import os from 'node:os';
import type { Stamp } from './time.js';

export const PROTOCOL_VERSION = 1;
export const DEFAULT_ROOT = 'probes';

const TOKEN = /^[A-Za-z0-9_-]+$/;

export function isToken(s: string): boolean {
  return s.length > 0 && s.length <= 64 && TOKEN.test(s);
}

/** A channel root is one or more tokens separated by dots (`probes`, `lab.probes`). */
export function checkRoot(root: string): string {
  if (!root.split('.').every(isToken) || root.length > 128) throw new TypeError(`channel root must be dot-separated tokens of letters, digits, _ and -: ${JSON.stringify(root)}`);
  return root;
}

export const channels = {
  presence: (root: string): string => `${root}.presence`,
  rollcall: (root: string): string => `${root}.rollcall`,
  task: (root: string, kind: string): string => `${root}.task.${kind}`,
  direct: (root: string, probe: string): string => `${root}.direct.${probe}`,
};

export type ProbeMode = 'thread' | 'process' | 'inline';

export type PresenceEvent = 'up' | 'alive' | 'here' | 'down' | 'gone';

/** A probe's identity card, published on `<root>.presence` and in answer to a roll call. */
export interface Presence {
  readonly v: number;
  readonly event: PresenceEvent;
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  readonly threadId: number;
  readonly mode: ProbeMode;
  readonly kinds: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
  /** System wall clock when sent, ms since the epoch. */
  readonly wallMs: number;
  /** Heartbeat period, ms: a probe not heard of for 3 periods is gone. */
  readonly heartbeatMs: number;
  /** Why the probe left (`down`: `stopped`; `gone`: `exited <code>`, ...). */
  readonly reason?: string;
}

/** A task: what to run, with what parameters, and when the controller sent it. */
export interface Task {
  readonly v: number;
  readonly id: string;
  readonly kind: string;
  readonly params: Readonly<Record<string, unknown>>;
  /** The controller's clocks when it published the task. */
  readonly sent: Stamp;
  /** How long the probe may spend on it, ms. */
  readonly timeoutMs: number;
}

/** Why a task failed, as a stable short word (`refused`, `timeout`, `hmac-mismatch`, ...). */
export interface TaskFailure {
  readonly reason: string;
  readonly message: string;
}

/** The answer to a task, published on the task's reply channel. */
export interface TaskResult {
  readonly v: number;
  readonly task: string;
  readonly probe: string;
  readonly kind: string;
  readonly ok: boolean;
  readonly value?: unknown;
  readonly error?: TaskFailure;
  /** The task's timeline as the probe saw it. */
  readonly t: {
    /** Broker receive time of the task (its message `time`), µs on the broker's clock. */
    readonly brokerUs: number;
    /** When the probe's handler got the task. */
    readonly recv: Stamp;
    /** When the probe had the answer, just before publishing it. */
    readonly done: Stamp;
  };
  /** The probe's estimate of the broker's clock minus its own wall clock, ms. */
  readonly offsetMs: number;
}

/** Host name as a token (channel names and client identities allow letters, digits, _ and -). */
export function hostToken(host = os.hostname()): string {
  const t = host.split('.')[0]!.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 12);
  return t === '' ? 'host' : t;
}

/** A probe id, unique on a host at a time: `<host>-<pid>-<thread>-<n>` (at most 32 bytes). */
export function probeId(pid: number, threadId: number, n: number, host = hostToken()): string {
  return `${host}-${pid.toString(36)}-${threadId.toString(36)}-${n.toString(36)}`.slice(0, 32);
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function isStamp(x: unknown): x is Stamp {
  return isObject(x) && typeof x.wallUs === 'number' && typeof x.monoUs === 'number';
}

/** Parse a JSON message; `undefined` when it is not JSON or not an object. */
function json(text: string): Record<string, unknown> | undefined {
  try {
    const x: unknown = JSON.parse(text);
    return isObject(x) ? x : undefined;
  } catch {
    return undefined;
  }
}

export function parseTask(text: string): Task | string {
  const x = json(text);
  if (!x) return 'not a JSON object';
  if (x.v !== PROTOCOL_VERSION) return `unsupported task version ${JSON.stringify(x.v)}`;
  if (typeof x.id !== 'string' || x.id === '') return 'task without an id';
  if (typeof x.kind !== 'string') return 'task without a kind';
  if (x.params !== undefined && !isObject(x.params)) return 'task params must be an object';
  if (!isStamp(x.sent)) return 'task without its send time';
  const timeoutMs = typeof x.timeoutMs === 'number' && x.timeoutMs > 0 ? x.timeoutMs : 10_000;
  return { v: PROTOCOL_VERSION, id: x.id, kind: x.kind, params: (x.params as Record<string, unknown> | undefined) ?? {}, sent: x.sent, timeoutMs };
}

export function parseResult(text: string): TaskResult | undefined {
  const x = json(text);
  if (!x || x.v !== PROTOCOL_VERSION || typeof x.task !== 'string' || typeof x.probe !== 'string' || typeof x.ok !== 'boolean') return undefined;
  const t = x.t;
  if (!isObject(t) || typeof t.brokerUs !== 'number' || !isStamp(t.recv) || !isStamp(t.done)) return undefined;
  return x as unknown as TaskResult;
}

export function parsePresence(text: string): Presence | undefined {
  const x = json(text);
  if (!x || typeof x.id !== 'string' || typeof x.event !== 'string' || !Array.isArray(x.kinds) || !isObject(x.labels)) return undefined;
  return x as unknown as Presence;
}

/**
 * Label selection: `region=eu,zone=a` (all must match), `region=eu|us` (one of), `region`
 * (present), `!canary` (absent).
 */
export type Selector = (labels: Readonly<Record<string, string>>) => boolean;

export function parseSelector(text: string | undefined): Selector {
  if (text === undefined || text.trim() === '') return () => true;
  const terms = text.split(',').map((t) => t.trim()).filter((t) => t !== '');
  const tests: Selector[] = terms.map((term) => {
    if (term.startsWith('!')) {
      const key = term.slice(1);
      return (l) => !(key in l);
    }
    const eq = term.indexOf('=');
    if (eq < 0) return (l) => term in l;
    const key = term.slice(0, eq);
    const values = term.slice(eq + 1).split('|');
    return (l) => l[key] !== undefined && values.includes(l[key]);
  });
  return (labels) => tests.every((t) => t(labels));
}

/** `region=eu` `rack=3` → { region: 'eu', rack: '3' }. */
export function parseLabels(list: readonly string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const item of list) {
    for (const pair of item.split(',')) {
      if (pair.trim() === '') continue;
      const eq = pair.indexOf('=');
      if (eq <= 0) throw new TypeError(`a label is key=value, got ${JSON.stringify(pair)}`);
      const key = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (!/^[A-Za-z0-9_.-]{1,64}$/.test(key) || !/^[A-Za-z0-9_.:-]{0,128}$/.test(value)) {
        throw new TypeError(`label ${JSON.stringify(pair)}: keys are letters, digits, _ . - (at most 64); values add ":" (at most 128)`);
      }
      labels[key] = value;
    }
  }
  return labels;
}
