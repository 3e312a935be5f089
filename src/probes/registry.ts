/**
 * Probe kinds register here by name. A kind is one file in src/probes/kinds/ that calls
 * `registerKind()`; `loadKinds()` imports every file of that folder, so adding a kind is adding
 * a file. Programs can also load their own kind modules (`--kind-module`).
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Client } from '../client/index.js';

/** A task failure with a stable reason word (`refused`, `timeout`, `hmac-mismatch`, ...). */
export class ProbeError extends Error {
  override readonly name = 'ProbeError';
  /** What was measured anyway (an HTTP status that was not expected, ...). */
  readonly value: unknown;
  constructor(
    readonly reason: string,
    message: string,
    options?: { cause?: unknown; value?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.value = options?.value;
  }
}

/** What a running task may use. */
export interface ProbeContext {
  readonly probeId: string;
  /** The probe's bus connection (for kinds that look at the bus itself, like `clock`). */
  readonly client: Client;
  /** The probe's estimate of the broker's clock minus its wall clock (µs-resolution clock), ms. */
  readonly offsetMs: number;
  /** Aborted when the task's time is up or the probe stops. */
  readonly signal: AbortSignal;
  /** The task's time budget, ms. */
  readonly timeoutMs: number;
  /** The probe's environment (for secrets such as FLUCTUAT_DNS_KEY that must not travel in tasks). */
  readonly env: Readonly<Record<string, string | undefined>>;
}

export type Params = Record<string, unknown>;

export interface ProbeKind<P extends Params = Params, R = unknown> {
  readonly name: string;
  /** One line for `fluctuat probe --list-kinds` and docs. */
  readonly description: string;
  /** The name of the parameter a bare positional word stands for (`tcp 127.0.0.1:80` → target). */
  readonly positional?: string;
  /** Check and normalise parameters; throw ProbeError('bad-params', ...) with a clear message. */
  parse(params: Params): P;
  /** Run once. Resolve with the value, or throw a ProbeError. */
  run(params: P, ctx: ProbeContext): Promise<R>;
}

const kinds = new Map<string, ProbeKind>();

export function registerKind<P extends Params, R>(kind: ProbeKind<P, R>): void {
  if (!/^[a-z][a-z0-9_-]{0,31}$/.test(kind.name)) throw new TypeError(`probe kind name must be lower-case letters, digits, _ and - (at most 32): ${JSON.stringify(kind.name)}`);
  const existing = kinds.get(kind.name);
  if (existing && existing !== (kind as unknown as ProbeKind)) throw new TypeError(`probe kind ${kind.name} is already registered`);
  kinds.set(kind.name, kind as unknown as ProbeKind);
}

export function getKind(name: string): ProbeKind | undefined {
  return kinds.get(name);
}

export function kindNames(): string[] {
  return [...kinds.keys()].sort();
}

let builtins: Promise<void> | undefined;

/** Import every module of src/probes/kinds/ (each registers itself), then the extra modules. */
export async function loadKinds(extraModules: readonly string[] = []): Promise<void> {
  builtins ??= (async () => {
    const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'kinds');
    const files = (await readdir(dir)).filter((f) => f.endsWith('.js')).sort();
    for (const f of files) await import(pathToFileURL(path.join(dir, f)).href);
  })();
  await builtins;
  for (const m of extraModules) await import(m.startsWith('file:') ? m : pathToFileURL(path.resolve(m)).href);
}

/** Parse a parameter value given on a command line: numbers and booleans as such, else text. */
function scalar(text: string): unknown {
  if (/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(text)) return Number(text);
  if (text === 'true') return true;
  if (text === 'false') return false;
  return text;
}

/** `key=value` words (and at most one bare word, for the kind's positional parameter) → params. */
export function paramsFromWords(kind: ProbeKind, words: readonly string[]): Params {
  const params: Params = {};
  for (const w of words) {
    const eq = w.indexOf('=');
    if (eq > 0) {
      params[w.slice(0, eq)] = scalar(w.slice(eq + 1));
      continue;
    }
    if (kind.positional === undefined || kind.positional in params) {
      throw new ProbeError('bad-params', `${kind.name}: unexpected argument ${JSON.stringify(w)} (give parameters as key=value)`);
    }
    params[kind.positional] = w;
  }
  return kind.parse(params);
}

/** Helpers for kinds' parse(). */
export const check = {
  string(kind: string, params: Params, key: string, fallback?: string): string {
    const v = params[key] ?? fallback;
    if (typeof v !== 'string' || v === '') throw new ProbeError('bad-params', `${kind}: parameter ${key} is required (a string)`);
    return v;
  },
  optionalString(kind: string, params: Params, key: string): string | undefined {
    const v = params[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw new ProbeError('bad-params', `${kind}: parameter ${key} must be a string`);
    return v;
  },
  number(kind: string, params: Params, key: string, fallback: number | undefined, min: number, max: number): number {
    const v = params[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
      throw new ProbeError('bad-params', `${kind}: parameter ${key} must be a number between ${min} and ${max}, got ${JSON.stringify(params[key])}`);
    }
    return v;
  },
  boolean(kind: string, params: Params, key: string, fallback: boolean): boolean {
    const v = params[key] ?? fallback;
    if (typeof v !== 'boolean') throw new ProbeError('bad-params', `${kind}: parameter ${key} must be true or false`);
    return v;
  },
  /** `host:port`, `[::1]:port`. */
  hostPort(kind: string, text: string): { host: string; port: number } {
    const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new ProbeError('bad-params', `${kind}: expected host:port, got ${JSON.stringify(text)}`);
    return { host: m[1]!, port: Number(m[2]) };
  },
};

/** Map a Node.js network error to a reason word. */
export function networkReason(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  switch (code) {
    case 'ECONNREFUSED':
    case 'ECONNREFUSED_DNS':
      return 'refused';
    case 'ETIMEDOUT':
    case 'ETIMEOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return 'timeout';
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return 'reset';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'unresolved';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'unreachable';
    default:
      return 'error';
  }
}
