/**
 * The configuration file parser: a hand-written recursive-descent parser over the tokens of
 * lexer.ts, in the OpenBSD parse.y tradition (keywords, `#` comments, `\` continuation,
 * quoted strings, `name = "value"` macros used as `$name`, `include "file"`).
 *
 * Why hand-written rather than chevrotain, ohm-js, nearley or parsimmon: what decides is the
 * error messages, and here they come mostly from values, not from syntax. A generator knows
 * token sequences: the best it says is "expecting one of [Port, Tls] but found 'prot'"
 * (chevrotain), "Expected ..." with a character-level list (ohm, parsimmon) or "Unexpected
 * word token" (nearley). This parser knows at every point what the thing is for, so it says
 * `expected a size such as 4096, 512k, 64MiB or 1g for "limit payload", found "64XB"` or
 * `expected "port" or "tls" after the listen address, or the end of the line, found "prot"
 * (did you mean "port"?)`, points at the token (file:line:column, through includes and
 * macro expansions), and reports cross-checks (a TLS listener without a certificate, client
 * certificates without a CA, a setting made twice) at the line concerned. Macros and
 * include are lexer-level in parse.y, which a generator's fixed token stream makes awkward.
 * The grammar is small (one keyword starts each statement, one token of look-ahead besides
 * `name =`), the parser is one file and
 * has no dependency. The grammar is written out in docs/config.md.
 */
import path from 'node:path';
import { SLOW_CONSUMER_POLICIES, type BrokerOptions, type SlowConsumerPolicy } from '../core/broker.js';
import type { FsyncPolicy, StorageOptions } from '../storage/engine.js';
import type { SessionOptions } from '../server/session.js';
import type { AccessRule, Operation } from '../security/access.js';
import type { SecurityOptions, SyslogOptions } from '../security/options.js';
import { SYSLOG_DEFAULTS, SYSLOG_FACILITY_NAMES, type SyslogFacility } from '../security/syslog.js';
import { nameProblem } from '../protocol/names.js';
import { ConfigSyntaxError, describe, Lexer, type Position, type Token } from './lexer.js';
import {
  checkCidr,
  checkCount,
  checkDuration,
  checkHost,
  checkHttpUrl,
  checkName,
  checkPort,
  checkRate,
  checkSize,
  closest,
  LOG_LEVELS,
  type CertificateUser,
  type Checked,
  type ClientCertificateMode,
  type LogLevel,
  type OcspFailurePolicy,
  type TenantSettings,
} from './schema.js';

export interface ParseOptions {
  /** Reads an included file (absolute path). */
  readonly readFile: (file: string) => string;
  /** Canonical name of a file, to detect include cycles (default: the path itself). */
  readonly realpath?: (file: string) => string;
  /** Storage drivers that exist (default: file, memory). */
  readonly drivers?: readonly string[];
  /** Macros defined before the file is read (like `-D name=value`). */
  readonly macros?: Readonly<Record<string, string>>;
}

export interface ListenSetting {
  readonly host: string;
  readonly port: number;
  readonly tls: boolean;
}

type Mutable<T> = { -readonly [K in keyof T]?: T[K] };

/** What a configuration file says; absent fields were not set (defaults apply later). */
export interface ParsedConfig {
  readonly listen: ListenSetting[];
  storage?: string;
  readonly storageOptions: Mutable<StorageOptions>;
  readonly session: Mutable<SessionOptions>;
  readonly broker: Mutable<BrokerOptions>;
  logLevel?: LogLevel;
  readonly tls: {
    certificate?: string;
    key?: string;
    ca?: string;
    crl?: string;
    clientCertificate?: ClientCertificateMode;
    minVersion?: 'TLSv1.2' | 'TLSv1.3';
    handshakeTimeoutMs?: number;
    /** `tls ocsp on|off` and its settings. */
    ocsp?: boolean;
    ocspResponder?: string;
    ocspOnFailure?: OcspFailurePolicy;
    ocspTimeoutMs?: number;
    ocspCacheMs?: number;
  };
  /** Enforced by the security layer (src/security). */
  readonly security: Mutable<SecurityOptions>;
  /** Parsed and checked, not enforced yet. */
  /** Where settings were made, by key ("tls certificate", "listen#0", ...), for later checks. */
  readonly at: ReadonlyMap<string, Position>;
  /** Every file read, the main one first. */
  readonly files: readonly string[];
  /** Things that are legal but probably not meant, with their place. */
  readonly warnings: readonly string[];
}

type Context = { kind: 'top' } | { kind: 'storage' } | { kind: 'tenant'; tenant: string };

const MACRO_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MAX_INCLUDE_DEPTH = 16;
const MAX_MACRO_DEPTH = 16;

/** Keywords that start a statement, per context (for "expected one of" and "did you mean"). */
export const KEYWORDS = {
  top: [
    'include', 'listen', 'data', 'storage', 'limit', 'timeout', 'slow-consumer', 'clock', 'log', 'tls',
    'users', 'login', 'plaintext-passwords', 'default-access', 'admin', 'allow', 'deny', 'certificate', 'tenant',
  ],
  storage: ['include', 'fsync', 'segment', 'retain', 'open-files'],
  tenant: ['include', 'limit'],
} as const;

const OCSP_WORDS = ['on', 'off', 'responder', 'on-failure', 'timeout', 'cache'] as const;
/** Where `tls ocsp ...` settings are recorded in `seen`. */
const OCSP_KEYS = ['tls ocsp', 'tls ocsp responder', 'tls ocsp on-failure', 'tls ocsp timeout', 'tls ocsp cache'] as const;

/** Reserved words cannot be macro names. */
const RESERVED = new Set<string>([...KEYWORDS.top, ...KEYWORDS.storage, 'on', 'port', 'for', 'from', 'per', 'burst', 'any', 'all', 'group', 'user']);

class Stream {
  private readonly stack: Lexer[] = [];
  private buffer: Token[] = [];
  /** Look-ahead tokens of the including files, put back when an included file ends. */
  private readonly saved: Token[][] = [];
  readonly lexers = new Map<string, Lexer>();
  readonly macros = new Map<string, string>();

  push(lexer: Lexer): void {
    this.saved.push(this.buffer);
    this.buffer = [];
    this.stack.push(lexer);
    this.lexers.set(lexer.file, lexer);
  }

  pop(): void {
    this.stack.pop();
    // What is left is the included file's end; the includer's look-ahead comes back.
    this.buffer = this.saved.pop() ?? [];
  }

  get depth(): number {
    return this.stack.length;
  }

  sourceLine(at: Position): string | undefined {
    return this.lexers.get(at.file)?.sourceLine(at.line);
  }

  peek(n = 0): Token {
    while (this.buffer.length <= n) this.fill();
    return this.buffer[n]!;
  }

  next(): Token {
    const t = this.peek();
    this.buffer.shift();
    return t;
  }

  private fill(): void {
    const lexer = this.stack[this.stack.length - 1]!;
    const t = lexer.next();
    if (t.kind === 'word' && t.text.startsWith('$')) {
      this.buffer.push(...this.expand(t, t, 0));
    } else {
      this.buffer.push(t);
    }
  }

  private expand(ref: Token, useSite: Position, depth: number): Token[] {
    const name = ref.text.slice(1);
    if (!MACRO_NAME.test(name)) {
      throw new ConfigSyntaxError(useSite, `expected a macro name after "$" (letters, digits, "_"), found ${describe(ref)}`, this.sourceLine(useSite));
    }
    const value = this.macros.get(name);
    if (value === undefined) {
      const known = [...this.macros.keys()];
      const hint = closest(name, known);
      throw new ConfigSyntaxError(
        useSite,
        `macro $${name} is not defined${hint ? ` (did you mean $${hint}?)` : ''}; define it before its use with ${name} = "value"`,
        this.sourceLine(useSite),
      );
    }
    if (depth >= MAX_MACRO_DEPTH) {
      throw new ConfigSyntaxError(useSite, `macro $${name} expands more than ${MAX_MACRO_DEPTH} levels deep (does it refer to itself?)`, this.sourceLine(useSite));
    }
    const lexer = new Lexer(value, useSite.file, { at: useSite, macro: name });
    const out: Token[] = [];
    for (let t = lexer.next(); t.kind !== 'eof'; t = lexer.next()) {
      if (t.kind === 'word' && t.text.startsWith('$')) out.push(...this.expand(t, useSite, depth + 1));
      else out.push(t);
    }
    return out;
  }
}

export class Parser {
  private readonly stream = new Stream();
  private readonly seen = new Map<string, Position>();
  private readonly files: string[] = [];
  /** The files being read, outermost first (canonical names, and as written), for cycles. */
  private readonly canonical: string[] = [];
  private readonly open: string[] = [];
  private readonly warnings: string[] = [];
  private readonly drivers: readonly string[];

  private readonly listen: ListenSetting[] = [];
  private readonly storageOptions: ParsedConfig['storageOptions'] = {};
  private readonly session: ParsedConfig['session'] = {};
  private readonly broker: ParsedConfig['broker'] = {};
  private readonly tls: ParsedConfig['tls'] = {};
  private readonly security: ParsedConfig['security'] = {};
  private storage: string | undefined;
  private logLevel: LogLevel | undefined;

  private readonly rules: AccessRule[] = [];
  private readonly allowAddresses: string[] = [];
  private readonly denyAddresses: string[] = [];
  private readonly certificateUsers: CertificateUser[] = [];
  private readonly tenants = new Map<string, { settings: { -readonly [K in keyof TenantSettings]: TenantSettings[K] }; at: Token }>();
  private channelsPerTenant = 0;
  private diskPerTenantBytes = 0;

  constructor(private readonly options: ParseOptions) {
    this.drivers = options.drivers ?? ['file', 'memory'];
    for (const [name, value] of Object.entries(options.macros ?? {})) {
      if (!MACRO_NAME.test(name)) throw new Error(`macro name ${JSON.stringify(name)}: expected letters, digits and "_"`);
      this.stream.macros.set(name, value);
    }
  }

  /** Parse `text` as the main file `file` (best absolute: relative paths in it are resolved against its directory). */
  parse(text: string, file: string): ParsedConfig {
    this.enterFile(text, file, undefined);
    this.statements({ kind: 'top' }, 'eof', undefined);
    this.leaveFile();
    return this.finish();
  }

  // ------------------------------------------------------------------ helpers

  private fail(at: Position, detail: string): never {
    throw new ConfigSyntaxError(at, detail, this.stream.sourceLine(at));
  }

  private expected(t: Token, expected: string, hint?: string): never {
    this.fail(t, `expected ${expected}, found ${describe(t)}${hint ? ` (${hint})` : ''}`);
  }

  private where(at: Position): string {
    return `${at.file}:${at.line}`;
  }

  private warn(at: Position, detail: string): void {
    this.warnings.push(`${at.file}:${at.line}:${at.column}: warning: ${detail}`);
  }

  /** A setting that may be made once. */
  private once(key: string, t: Token): void {
    const before = this.seen.get(key);
    if (before) this.fail(t, `"${key}" is already set at ${this.where(before)}; set it once`);
    this.seen.set(key, t);
  }

  /** A word or a string (a value). */
  private value(what: string): Token {
    const t = this.stream.next();
    if (t.kind !== 'word' && t.kind !== 'string') this.expected(t, what);
    return t;
  }

  private keyword(choices: readonly string[], what: string): { word: string; token: Token } {
    const t = this.stream.next();
    if (t.kind === 'word' && choices.includes(t.text)) return { word: t.text, token: t };
    const list = choices.map((c) => `"${c}"`);
    const expected = list.length === 1 ? list[0]! : `${list.slice(0, -1).join(', ')} or ${list[list.length - 1]}`;
    const hint = t.kind === 'word' ? closest(t.text, choices) : undefined;
    this.expected(t, `${expected} ${what}`, hint ? `did you mean "${hint}"?` : undefined);
  }

  private checked<T>(t: Token, result: Checked<T>, what: string): T {
    if (result.ok) return result.value;
    this.expected(t, `${result.expected} for ${what}`, result.hint);
  }

  private positive(t: Token, r: Checked<number>, what: string): number {
    const v = this.checked(t, r, what);
    if (v <= 0) this.expected(t, `a value above zero for ${what}`);
    return v;
  }

  private path(t: Token): string {
    if (t.text.length === 0) this.expected(t, 'a path');
    return path.resolve(path.dirname(t.file), t.text);
  }

  private atEnd(): boolean {
    const k = this.stream.peek().kind;
    return k === 'newline' || k === 'eof' || k === '}';
  }

  /** The statement is complete: a newline, or the `}` / end of file that closes it follows. */
  private endOfStatement(what: string): void {
    const t = this.stream.peek();
    if (t.kind === 'newline') {
      this.stream.next();
      return;
    }
    if (t.kind === 'eof' || t.kind === '}') return;
    this.expected(t, `the end of the line after ${what}`);
  }

  /** Optional `keyword value` pairs, each at most once, in any order, until the end of the statement. */
  private pairs(choices: readonly string[], what: string, each: (word: string, token: Token) => void): void {
    const done = new Set<string>();
    while (!this.atEnd()) {
      const left = choices.filter((c) => !done.has(c));
      if (left.length === 0) break;
      const k = this.keyword(left, `${what}, or the end of the line`);
      done.add(k.word);
      each(k.word, k.token);
    }
  }

  // ------------------------------------------------------------------ structure

  private enterFile(text: string, file: string, from: Token | undefined): void {
    const canonical = this.options.realpath ? this.options.realpath(file) : file;
    const cycle = this.canonical.indexOf(canonical);
    if (cycle >= 0 && from) {
      this.fail(from, `include cycle: ${[...this.open.slice(cycle), file].join(' -> ')}`);
    }
    if (this.stream.depth >= MAX_INCLUDE_DEPTH && from) this.fail(from, `includes nest more than ${MAX_INCLUDE_DEPTH} deep`);
    const nul = text.indexOf('\0');
    if (nul >= 0) {
      const before = text.slice(0, nul).split('\n');
      throw new ConfigSyntaxError({ file, line: before.length, column: before[before.length - 1]!.length + 1 }, 'a NUL byte: this is not a text file');
    }
    this.files.push(file);
    this.canonical.push(canonical);
    this.open.push(file);
    this.stream.push(new Lexer(text.startsWith('\ufeff') ? text.slice(1) : text, file));
  }

  private leaveFile(): void {
    this.stream.pop();
    this.canonical.pop();
    this.open.pop();
  }

  private statements(ctx: Context, until: 'eof' | '}', opening: Token | undefined): void {
    for (;;) {
      const t = this.stream.peek();
      if (t.kind === 'newline') {
        this.stream.next();
        continue;
      }
      if (t.kind === until) return;
      if (t.kind === 'eof') {
        this.fail(t, `expected "}" to close the block opened at ${opening ? this.where(opening) : '?'} before the end of the file${this.stream.depth > 1 ? ' (a block cannot end in another file)' : ''}`);
      }
      this.statement(ctx);
    }
  }

  private block(ctx: Context, opening: Token): void {
    const brace = this.stream.next();
    if (brace.kind !== '{') this.expected(brace, '"{"');
    this.statements(ctx, '}', opening);
    const close = this.stream.next();
    if (close.kind !== '}') this.expected(close, `"}" to close the block opened at ${this.where(opening)}`);
  }

  private statement(ctx: Context): void {
    const t = this.stream.peek();
    if (t.kind !== 'word') this.expected(t, 'a keyword at the start of a statement');
    if (ctx.kind === 'top' && this.stream.peek(1).kind === '=') {
      this.macro();
      return;
    }
    const keywords: readonly string[] = KEYWORDS[ctx.kind];
    if (!keywords.includes(t.text)) {
      const hint = closest(t.text, keywords);
      const where = ctx.kind === 'storage' ? ' in a storage block' : ctx.kind === 'tenant' ? ' in a tenant block' : '';
      const elsewhere = !hint && ctx.kind !== 'top' && (KEYWORDS.top as readonly string[]).includes(t.text) ? ` ("${t.text}" belongs at the top level)` : '';
      this.fail(t, `unknown keyword ${describe(t)}${where}: expected one of ${keywords.join(', ')}${hint ? ` (did you mean "${hint}"?)` : elsewhere}`);
    }
    this.stream.next();
    switch (t.text) {
      case 'include':
        return this.include(ctx);
      case 'listen':
        return this.listenStatement(t);
      case 'data':
        return this.data(t);
      case 'storage':
        return this.storageStatement(t);
      case 'fsync':
        return this.fsync(t);
      case 'segment':
        return this.segment();
      case 'retain':
        return this.retain();
      case 'open-files':
        return this.openFiles(t);
      case 'limit':
        return this.limit(ctx);
      case 'timeout':
        return this.timeout();
      case 'slow-consumer':
        return this.slowConsumer(t);
      case 'clock':
        return this.clock(t);
      case 'log':
        return this.log();
      case 'tls':
        return this.tlsStatement();
      case 'users':
        return this.users(t);
      case 'login':
        return this.login(t);
      case 'plaintext-passwords':
        return this.plaintext(t);
      case 'default-access':
        return this.defaultAccess(t);
      case 'admin':
        return this.admin(t);
      case 'allow':
      case 'deny':
        return this.rule(t);
      case 'certificate':
        return this.certificate();
      case 'tenant':
        return this.tenant(t);
    }
  }

  private macro(): void {
    const name = this.stream.next();
    this.stream.next(); // '='
    if (!MACRO_NAME.test(name.text)) this.fail(name, `a macro name is letters, digits and "_", not starting with a digit; found ${describe(name)}`);
    if (RESERVED.has(name.text)) this.fail(name, `"${name.text}" is a keyword and cannot be a macro name`);
    const v = this.stream.next();
    if (v.kind !== 'word' && v.kind !== 'string') this.expected(v, `a value for macro ${name.text} (a word or a "quoted string")`);
    this.stream.macros.set(name.text, v.text);
    this.endOfStatement(`the value of macro ${name.text}`);
  }

  private include(ctx: Context): void {
    const f = this.stream.next();
    if (f.kind !== 'string' && f.kind !== 'word') this.expected(f, 'a file name after "include"');
    const file = this.path(f);
    this.endOfStatement('the included file name');
    let text: string;
    try {
      text = this.options.readFile(file);
    } catch (err) {
      this.fail(f, `cannot read included file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    this.enterFile(text, file, f);
    this.statements(ctx, 'eof', undefined);
    this.leaveFile();
  }

  // ------------------------------------------------------------------ listeners, storage

  private listenStatement(t: Token): void {
    this.keyword(['on'], 'after "listen"');
    const hostT = this.value('an address after "listen on"');
    const host = this.checked(hostT, checkHost(hostT.text), '"listen on"');
    let port = 2023;
    let tls = false;
    this.pairs(['port', 'tls'], 'after the listen address', (word) => {
      if (word === 'tls') {
        tls = true;
        return;
      }
      const p = this.value('a port number after "port"');
      port = this.checked(p, checkPort(p.text), '"port"');
    });
    this.endOfStatement('the listen address');
    const dup = this.listen.findIndex((l) => l.host === host && l.port === port && port !== 0);
    if (dup >= 0) this.fail(t, `listen on ${host} port ${port} is already declared at ${this.where(this.seen.get(`listen#${dup}`)!)}`);
    this.seen.set(`listen#${this.listen.length}`, t);
    this.listen.push({ host, port, tls });
  }

  private data(t: Token): void {
    this.keyword(['directory'], 'after "data"');
    const d = this.value('a directory after "data directory"');
    this.once('data directory', t);
    this.storageOptions.dataDir = this.path(d);
    this.endOfStatement('the data directory');
  }

  private storageStatement(t: Token): void {
    const d = this.value(`a storage driver (${this.drivers.join(', ')})`);
    if (!this.drivers.includes(d.text)) {
      const hint = closest(d.text, this.drivers);
      this.expected(d, `a storage driver: ${this.drivers.join(', ')}`, hint ? `did you mean "${hint}"?` : undefined);
    }
    this.once('storage', t);
    this.storage = d.text;
    if (this.stream.peek().kind === '{') this.block({ kind: 'storage' }, t);
    this.endOfStatement('the storage statement');
  }

  private fsync(t: Token): void {
    const { word } = this.keyword(['always', 'interval', 'never'], 'after "fsync"');
    this.once('fsync', t);
    this.storageOptions.fsync = word as FsyncPolicy;
    if (word === 'interval') {
      // `fsync interval [<duration>] [acks <count>] [bytes <size>] [unacked <duration>] [unacked-bytes <size>]`
      const keys = ['acks', 'bytes', 'unacked', 'unacked-bytes'];
      const next = this.stream.peek();
      if (!this.atEnd() && !keys.includes(next.text)) {
        const d = this.value('a group-commit interval');
        this.storageOptions.fsyncIntervalMs = this.positive(d, checkDuration(d.text), '"fsync interval"');
      }
      this.pairs(keys, 'after "fsync interval"', (k) => {
        if (k === 'unacked') {
          const v = this.value('a duration after "fsync interval unacked" (0s: the interval\'s pace)');
          this.storageOptions.fsyncUnackedMs = this.checked(v, checkDuration(v.text), '"fsync interval unacked"');
          return;
        }
        if (k === 'unacked-bytes') {
          const v = this.value('a size after "fsync interval unacked-bytes" (0: the interval\'s pace)');
          this.storageOptions.fsyncUnackedBytes = this.checked(v, checkSize(v.text), '"fsync interval unacked-bytes"');
          return;
        }
        const v = this.value(`a ${k === 'acks' ? 'count' : 'size'} after "fsync interval ${k}" (0: not sooner than the interval)`);
        if (k === 'acks') this.storageOptions.fsyncAcks = this.checked(v, checkCount(v.text), '"fsync interval acks"');
        else this.storageOptions.fsyncBytes = this.checked(v, checkSize(v.text), '"fsync interval bytes"');
      });
    }
    this.endOfStatement(`"fsync ${word}"`);
  }

  private segment(): void {
    const first = this.stream.peek();
    this.pairs(['size', 'age'], 'after "segment"', (word, token) => {
      const v = this.value(`a ${word === 'size' ? 'size' : 'duration'} after "segment ${word}"`);
      this.once(`segment ${word}`, token);
      if (word === 'size') this.storageOptions.segmentBytes = this.positive(v, checkSize(v.text), '"segment size"');
      else this.storageOptions.segmentAgeMs = this.checked(v, checkDuration(v.text), '"segment age"');
    });
    if (this.stream.peek() === first) this.expected(first, '"size" or "age" after "segment"');
    this.endOfStatement('the segment settings');
  }

  private retain(): void {
    const first = this.stream.peek();
    this.pairs(['bytes', 'age', 'messages'], 'after "retain"', (word, token) => {
      const v = this.value(`a value after "retain ${word}"`);
      this.once(`retain ${word}`, token);
      if (word === 'bytes') this.storageOptions.retainBytes = this.checked(v, checkSize(v.text), '"retain bytes"');
      else if (word === 'age') this.storageOptions.retainAgeMs = this.checked(v, checkDuration(v.text), '"retain age"');
      else this.storageOptions.retainMessages = this.checked(v, checkCount(v.text), '"retain messages"');
    });
    if (this.stream.peek() === first) this.expected(first, '"bytes", "age" or "messages" after "retain"');
    this.endOfStatement('the retention settings');
  }

  private openFiles(t: Token): void {
    const v = this.value('a count after "open-files" (segment files kept open at once; 0: half the open-file limit)');
    this.once('open-files', t);
    this.storageOptions.maxOpenFiles = this.checked(v, checkCount(v.text), '"open-files"');
    this.endOfStatement('the open-files setting');
  }

  // ------------------------------------------------------------------ limits, timeouts

  private limit(ctx: Context): void {
    const names =
      ctx.kind === 'tenant'
        ? ['channels', 'disk']
        : ['line', 'payload', 'history', 'outbound-buffer', 'subscriptions', 'inflight', 'inflight-bytes', 'read-per-turn', 'queue-backlog', 'connections', 'rate', 'channels', 'disk'];
    const { word, token } = this.keyword(names, 'after "limit"');
    const v = this.value(`a value for "limit ${word}"`);
    const what = `"limit ${word}"`;
    /** The scopes `per` may name; the first is the default (connections: none = the whole server). */
    const scopes: Record<string, readonly string[]> = {
      'outbound-buffer': ['connection'],
      subscriptions: ['connection'],
      inflight: ['connection'],
      'inflight-bytes': ['connection'],
      'queue-backlog': ['group'],
      connections: ['address', 'user'],
      rate: ['connection', 'user'],
      channels: ['tenant'],
      disk: ['tenant'],
    };
    let scope: string | undefined;
    let burst: number | undefined;
    const extra = [...(scopes[word] && ctx.kind !== 'tenant' ? ['per'] : []), ...(word === 'rate' ? ['burst'] : [])];
    this.pairs(extra, `after ${what}`, (k) => {
      if (k === 'per') {
        scope = this.keyword(scopes[word]!, `after "limit ${word} ... per"`).word;
      } else {
        const b = this.value('a burst size (messages)');
        burst = this.checked(b, checkCount(b.text, 1), '"burst"');
      }
    });
    this.endOfStatement(what);
    // `per <the default scope>` is the same setting as no `per` at all.
    const defaultScope = word === 'connections' ? undefined : scopes[word]?.[0];
    const scoped = scope !== undefined && scope !== defaultScope ? ` per ${scope}` : '';
    this.once(ctx.kind === 'tenant' ? `tenant ${ctx.tenant} limit ${word}` : `limit ${word}${scoped}`, token);
    switch (word) {
      case 'line':
        this.session.maxLine = this.positive(v, checkSize(v.text), what);
        return;
      case 'payload':
        this.session.maxPayload = this.positive(v, checkSize(v.text), what);
        return;
      case 'history':
        this.session.historyMax = this.checked(v, checkCount(v.text, 1), what);
        return;
      case 'outbound-buffer':
        this.session.outboundHighWater = this.positive(v, checkSize(v.text), what);
        return;
      case 'subscriptions':
        this.session.maxSubscriptions = this.checked(v, checkCount(v.text, 1), what);
        return;
      case 'inflight':
        this.session.maxInflight = this.checked(v, checkCount(v.text, 1), what);
        return;
      case 'inflight-bytes':
        this.session.maxInflightBytes = this.positive(v, checkSize(v.text), what);
        return;
      case 'read-per-turn':
        this.session.turnReadBytes = this.positive(v, checkSize(v.text), what);
        return;
      case 'queue-backlog':
        this.broker.queueBacklog = this.checked(v, checkCount(v.text, 1), what);
        return;
      case 'connections': {
        const n = this.checked(v, checkCount(v.text, 1), what);
        if (scope === 'address') this.security.maxConnectionsPerAddress = n;
        else if (scope === 'user') this.security.maxConnectionsPerUser = n;
        else this.security.maxConnections = n;
        return;
      }
      case 'rate': {
        const perSecond = this.checked(v, checkRate(v.text), what);
        if (scope === 'user') {
          if (burst !== undefined) this.fail(token, '"burst" applies to the per-connection rate only; the per-user bucket holds one second of its rate');
          this.security.userPublishRate = perSecond;
        } else {
          this.security.publishRate = perSecond;
          this.security.publishBurst = burst ?? Math.max(1, Math.ceil(perSecond));
        }
        return;
      }
      case 'channels': {
        const n = this.checked(v, checkCount(v.text), what);
        if (ctx.kind === 'tenant') this.tenants.get(ctx.tenant)!.settings.maxChannels = n;
        else this.channelsPerTenant = n;
        return;
      }
      case 'disk': {
        const n = this.checked(v, checkSize(v.text), what);
        if (ctx.kind === 'tenant') this.tenants.get(ctx.tenant)!.settings.diskQuotaBytes = n;
        else this.diskPerTenantBytes = n;
        return;
      }
    }
  }

  private timeout(): void {
    const { word, token } = this.keyword(['request', 'handshake', 'login', 'idle'], 'after "timeout"');
    const v = this.value(`a duration for "timeout ${word}"`);
    const what = `"timeout ${word}"`;
    this.once(`timeout ${word}`, token);
    if (word === 'request') this.session.requestTimeoutMs = this.positive(v, checkDuration(v.text), what);
    else if (word === 'handshake') this.tls.handshakeTimeoutMs = this.positive(v, checkDuration(v.text), what);
    else if (word === 'login') this.security.loginTimeoutMs = this.positive(v, checkDuration(v.text), what);
    else this.security.idleTimeoutMs = this.checked(v, checkDuration(v.text), what);
    this.endOfStatement(what);
  }

  private slowConsumer(t: Token): void {
    const { word } = this.keyword(SLOW_CONSUMER_POLICIES, 'after "slow-consumer"');
    this.once('slow-consumer', t);
    this.broker.slowConsumer = word as SlowConsumerPolicy;
    if (word === 'block') {
      this.pairs(['timeout'], 'after "slow-consumer block"', () => {
        const v = this.value('a duration after "slow-consumer block timeout", such as 10s');
        this.broker.blockTimeoutMs = this.positive(v, checkDuration(v.text), '"slow-consumer block timeout"');
      });
    }
    this.endOfStatement('"slow-consumer"');
  }

  private clock(t: Token): void {
    this.keyword(['interval'], 'after "clock"');
    const v = this.value('how often to probe a machine-mode client\'s clock, such as 10s');
    this.once('clock interval', t);
    this.session.clockIntervalMs = this.positive(v, checkDuration(v.text), '"clock interval"');
    this.endOfStatement('"clock interval"');
  }

  // ------------------------------------------------------------------ logging

  private log(): void {
    const { word, token } = this.keyword(['level', 'audit', 'syslog'], 'after "log"');
    this.once(`log ${word}`, token);
    if (word === 'level') {
      this.logLevel = this.keyword(LOG_LEVELS, 'after "log level"').word as LogLevel;
      this.endOfStatement('"log level"');
      return;
    }
    if (word === 'audit') {
      const f = this.value('a file name after "log audit"');
      this.security.auditFile = this.path(f);
      this.pairs(['rotate', 'keep'], 'after the audit log file', (k) => {
        const v = this.value(`a value after "${k}"`);
        if (k === 'rotate') this.security.auditMaxBytes = this.positive(v, checkSize(v.text), '"log audit ... rotate"');
        else this.security.auditKeep = this.checked(v, checkCount(v.text, 1), '"log audit ... keep"');
      });
      this.endOfStatement('"log audit"');
      return;
    }
    const hostT = this.value('a collector address after "log syslog"');
    const host = this.checked(hostT, checkHost(hostT.text), '"log syslog"');
    const syslog: { -readonly [K in keyof SyslogOptions]: SyslogOptions[K] } = {
      host,
      port: SYSLOG_DEFAULTS.port,
      facility: SYSLOG_DEFAULTS.facility,
      bufferEntries: SYSLOG_DEFAULTS.bufferEntries,
      bufferBytes: SYSLOG_DEFAULTS.bufferBytes,
    };
    let portSet = false;
    this.pairs(['port', 'tls', 'buffer', 'buffer-bytes', 'facility'], 'after the syslog collector', (k) => {
      if (k === 'tls') {
        syslog.tls = {};
        if (this.stream.peek().kind === 'word' && this.stream.peek().text === 'ca') {
          this.stream.next();
          syslog.tls = { ca: this.path(this.value('the CA file of the collector after "tls ca"')) };
        }
        return;
      }
      if (k === 'facility') {
        syslog.facility = this.keyword(SYSLOG_FACILITY_NAMES, 'after "facility"').word as SyslogFacility;
        return;
      }
      const v = this.value(`a value after "${k}"`);
      if (k === 'port') {
        syslog.port = this.checked(v, checkPort(v.text), '"log syslog ... port"');
        portSet = true;
      } else if (k === 'buffer') syslog.bufferEntries = this.checked(v, checkCount(v.text, 1), '"log syslog ... buffer"');
      else syslog.bufferBytes = this.positive(v, checkSize(v.text), '"log syslog ... buffer-bytes"');
    });
    // RFC 5425: syslog over TLS listens on 6514.
    if (syslog.tls && !portSet) syslog.port = 6514;
    this.security.syslog = syslog;
    this.endOfStatement('"log syslog"');
  }

  // ------------------------------------------------------------------ TLS

  private tlsStatement(): void {
    const { word, token } = this.keyword(['certificate', 'key', 'ca', 'crl', 'client-certificate', 'min-version', 'ocsp'], 'after "tls"');
    if (word === 'ocsp') return this.ocspStatement(token);
    this.once(`tls ${word}`, token);
    if (word === 'client-certificate') {
      this.tls.clientCertificate = this.keyword(['none', 'optional', 'required'], 'after "tls client-certificate"').word as ClientCertificateMode;
    } else if (word === 'min-version') {
      const v = this.keyword(['1.2', '1.3'], 'after "tls min-version"').word;
      this.tls.minVersion = v === '1.2' ? 'TLSv1.2' : 'TLSv1.3';
    } else {
      const f = this.value(`a PEM file after "tls ${word}"`);
      this.tls[word as 'certificate' | 'key' | 'ca' | 'crl'] = this.path(f);
      this.seen.set(`tls ${word} file`, f);
    }
    this.endOfStatement(`"tls ${word}"`);
  }

  /** `tls ocsp on|off`, `tls ocsp responder <url>`, `on-failure refuse|accept`, `timeout <d>`, `cache <d>`. */
  private ocspStatement(at: Token): void {
    const { word } = this.keyword(OCSP_WORDS, 'after "tls ocsp"');
    const key = word === 'on' || word === 'off' ? 'tls ocsp' : `tls ocsp ${word}`;
    const what = `"${key}"`;
    // Placed at "ocsp", so that the cross-checks of finish() point at the statement.
    this.once(key, at);
    if (word === 'on' || word === 'off') {
      this.tls.ocsp = word === 'on';
    } else if (word === 'responder') {
      const v = this.value('the OCSP responder\'s URL after "tls ocsp responder", such as "http://127.0.0.1:8888"');
      this.tls.ocspResponder = this.checked(v, checkHttpUrl(v.text), what);
    } else if (word === 'on-failure') {
      this.tls.ocspOnFailure = this.keyword(['refuse', 'accept'], 'after "tls ocsp on-failure"').word as OcspFailurePolicy;
    } else {
      const v = this.value(`a duration for ${what}, such as ${word === 'timeout' ? '2s' : '1h'}`);
      const ms = this.positive(v, checkDuration(v.text), what);
      if (word === 'timeout') this.tls.ocspTimeoutMs = ms;
      else this.tls.ocspCacheMs = ms;
    }
    this.endOfStatement(what);
  }

  // ------------------------------------------------------------------ users, access

  private users(t: Token): void {
    this.keyword(['file'], 'after "users"');
    const f = this.value('a file name after "users file"');
    this.once('users file', t);
    this.security.usersFile = this.path(f);
    this.endOfStatement('"users file"');
  }

  private login(t: Token): void {
    this.keyword(['backoff'], 'after "login"');
    const v = this.value('the first delay after a failed login, such as 250ms');
    this.once('login backoff', t);
    this.security.backoffBaseMs = this.positive(v, checkDuration(v.text), '"login backoff"');
    this.pairs(['max'], 'after the login backoff', () => {
      const m = this.value('the longest delay, such as 30s');
      this.security.backoffMaxMs = this.positive(m, checkDuration(m.text), '"login backoff ... max"');
      if (this.security.backoffMaxMs < this.security.backoffBaseMs!) this.expected(m, `a longest delay of at least the first one (${v.text})`);
    });
    this.endOfStatement('"login backoff"');
  }

  private plaintext(t: Token): void {
    const { word } = this.keyword(['allow', 'refuse'], 'after "plaintext-passwords"');
    this.once('plaintext-passwords', t);
    this.security.allowPlaintextPasswords = word === 'allow';
    this.endOfStatement('"plaintext-passwords"');
  }

  private defaultAccess(t: Token): void {
    const { word } = this.keyword(['allow', 'deny'], 'after "default-access"');
    this.once('default-access', t);
    this.security.defaultAccess = word as 'allow' | 'deny';
    this.endOfStatement('"default-access"');
  }

  private admin(t: Token): void {
    this.keyword(['group'], 'after "admin"');
    const n = this.value('a group name after "admin group"');
    this.once('admin group', t);
    this.security.adminGroup = this.checked(n, checkName(n.text, 'group'), '"admin group"');
    this.endOfStatement('"admin group"');
  }

  /** `item`, `item, item ...`, `item item ...` or `{ item [,] item ... }` (newlines allowed in braces). */
  private list<T>(what: string, item: (t: Token) => T): T[] {
    const out: T[] = [];
    if (this.stream.peek().kind === '{') {
      const open = this.stream.next();
      for (;;) {
        const t = this.stream.next();
        if (t.kind === 'newline' || t.kind === ',') continue;
        if (t.kind === '}') break;
        if (t.kind === 'eof') this.fail(open, `expected "}" to close the list opened at ${this.where(open)}`);
        if (t.kind !== 'word' && t.kind !== 'string') this.expected(t, `${what} or "}"`);
        out.push(item(t));
      }
      if (out.length === 0) this.fail(open, `expected ${what} in the list, found an empty list`);
      return out;
    }
    out.push(item(this.value(what)));
    for (;;) {
      const t = this.stream.peek();
      if (t.kind === ',') {
        this.stream.next();
        out.push(item(this.value(`${what} after ","`)));
      } else if (t.kind === 'word' || t.kind === 'string') {
        out.push(item(this.stream.next()));
      } else {
        return out;
      }
    }
  }

  private rule(t: Token): void {
    const effect = t.text as 'allow' | 'deny';
    const next = this.stream.peek();
    if (next.kind === 'word' && next.text === 'from') {
      this.stream.next();
      const nets = this.list('an address or network', (v) => this.checked(v, checkCidr(v.text), `"${effect} from"`).cidr);
      (effect === 'allow' ? this.allowAddresses : this.denyAddresses).push(...nets);
      this.endOfStatement('the address list');
      return;
    }
    const ops = new Set<Operation>();
    const op = (v: Token): void => {
      const choices = ['sub', 'pub', 'request', 'all'];
      if (v.kind !== 'word' || !choices.includes(v.text)) {
        const hint = v.kind === 'word' ? closest(v.text, [...choices, 'from']) : undefined;
        this.expected(v, `sub, pub, request, all, a { list } of them, or "from" after "${effect}"`, hint ? `did you mean "${hint}"?` : undefined);
      }
      if (v.text === 'all') for (const o of ['sub', 'pub', 'request'] as const) ops.add(o);
      else ops.add(v.text as Operation);
    };
    if (next.kind === '{') {
      this.list('an operation (sub, pub, request, all)', op);
    } else {
      op(this.stream.next());
      while (this.stream.peek().kind === ',') {
        this.stream.next();
        op(this.stream.next());
      }
    }
    this.keyword(['on'], 'after the operations');
    const p = this.value('a channel pattern such as "probes.>"');
    const problem = nameProblem(p.text, true);
    if (problem) this.expected(p, 'a channel pattern such as "probes.>" or "tasks.*.eu"', problem);
    let who = 'any';
    if (!this.atEnd()) {
      this.keyword(['for'], 'after the pattern, or the end of the line');
      const k = this.keyword(['group', 'user', 'any'], 'after "for"');
      if (k.word !== 'any') {
        const n = this.value(`a ${k.word} name`);
        who = `${k.word}:${this.checked(n, checkName(n.text, k.word), `"for ${k.word}"`)}`;
      }
    }
    this.endOfStatement('the rule');
    const order: Operation[] = ['sub', 'pub', 'request'];
    this.rules.push({ effect, ops: order.filter((o) => ops.has(o)), pattern: p.text, who });
  }

  private certificate(): void {
    this.keyword(['subject'], 'after "certificate"');
    const s = this.value('a certificate subject common name after "certificate subject"');
    if (s.text.length === 0 || s.text.length > 64) this.expected(s, 'a common name of 1 to 64 characters');
    this.keyword(['user'], 'after the certificate subject');
    const u = this.value('a user name');
    const user = this.checked(u, checkName(u.text, 'user'), '"certificate subject ... user"');
    this.once(`certificate subject ${JSON.stringify(s.text)}`, s);
    this.certificateUsers.push({ subject: s.text, user });
    this.endOfStatement('the certificate mapping');
  }

  private tenant(t: Token): void {
    const n = this.value('a tenant name after "tenant"');
    const name = this.checked(n, checkName(n.text, 'tenant'), '"tenant"');
    const before = this.tenants.get(name);
    if (before) this.fail(n, `tenant ${name} is already declared at ${this.where(before.at)}`);
    this.tenants.set(name, { settings: { name, maxChannels: 0, diskQuotaBytes: 0 }, at: n });
    if (this.stream.peek().kind === '{') this.block({ kind: 'tenant', tenant: name }, t);
    this.endOfStatement('the tenant');
  }

  // ------------------------------------------------------------------ cross-checks

  private finish(): ParsedConfig {
    // TLS: every tls listener needs a certificate and key; client certificates need a CA.
    const tlsListener = this.listen.findIndex((l) => l.tls);
    if (tlsListener >= 0) {
      const at = this.seen.get(`listen#${tlsListener}`)!;
      const l = this.listen[tlsListener]!;
      for (const k of ['certificate', 'key'] as const) {
        if (!this.tls[k]) this.fail(at, `listen on ${l.host} port ${l.port} is tls, but "tls ${k}" is not set: add tls ${k} "/path/to/${k === 'key' ? 'server.key' : 'server.crt'}"`);
      }
    } else if (this.tls.certificate || this.tls.key) {
      this.warn(this.seen.get(this.tls.certificate ? 'tls certificate' : 'tls key')!, 'tls files are set but no listener has "tls"');
    }
    const mode = this.tls.clientCertificate;
    if (mode && mode !== 'none' && !this.tls.ca) {
      this.fail(this.seen.get('tls client-certificate')!, `"tls client-certificate ${mode}" needs "tls ca" (the CA that client certificates must chain to)`);
    }
    if (this.tls.ca && (!mode || mode === 'none')) {
      this.warn(this.seen.get('tls ca')!, '"tls ca" only verifies client certificates, and "tls client-certificate" is none');
    }
    if (this.tls.crl && (!mode || mode === 'none')) {
      this.warn(this.seen.get('tls crl')!, '"tls crl" only revokes client certificates, and "tls client-certificate" is none');
    }
    // OCSP checks client certificates: without them, any OCSP setting (but "off") is a mistake.
    for (const k of OCSP_KEYS) {
      const at = this.seen.get(k);
      if (!at || (k === 'tls ocsp' && this.tls.ocsp === false)) continue;
      const statement = k === 'tls ocsp' ? '"tls ocsp on"' : `"${k}"`;
      if (!mode || mode === 'none') {
        this.fail(at, `${statement} checks client certificates, but "tls client-certificate" is ${mode ?? 'none (the default)'}: set tls client-certificate optional or required`);
      }
      if (k !== 'tls ocsp' && this.tls.ocsp !== true) this.warn(at, `${statement} has no effect: "tls ocsp" is off (add tls ocsp on)`);
    }
    const usersAt = this.seen.get('users file');
    if (!usersAt) {
      const first = this.seen.get('default-access') ?? this.seen.get('admin group');
      if (this.rules.length > 0 || first) {
        this.warn(first ?? { file: this.files[0]!, line: 1, column: 1 }, 'access rules and "default-access" apply only with "users file" (without it the server is open)');
      }
    }
    if (this.rules.length > 0) this.security.rules = this.rules;
    if (this.allowAddresses.length > 0) this.security.allowAddresses = this.allowAddresses;
    if (this.denyAddresses.length > 0) this.security.denyAddresses = this.denyAddresses;
    if (this.certificateUsers.length > 0) this.security.certificateUsers = this.certificateUsers;
    if (this.tenants.size > 0 || this.channelsPerTenant > 0 || this.diskPerTenantBytes > 0) {
      this.broker.quotas = {
        channelsPerTenant: this.channelsPerTenant,
        diskPerTenantBytes: this.diskPerTenantBytes,
        tenants: [...this.tenants.values()].map((t) => t.settings),
      };
    }
    const result: ParsedConfig = {
      listen: this.listen,
      storageOptions: this.storageOptions,
      session: this.session,
      broker: this.broker,
      tls: this.tls,
      security: this.security,
      at: this.seen,
      files: this.files,
      warnings: this.warnings,
    };
    if (this.storage !== undefined) result.storage = this.storage;
    if (this.logLevel !== undefined) result.logLevel = this.logLevel;
    return result;
  }
}

/** Parse configuration text; `file` names it in errors and anchors its relative paths. */
export function parseConfig(text: string, file: string, options: ParseOptions): ParsedConfig {
  return new Parser(options).parse(text, file);
}
