import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import tls from 'node:tls';
import type { Log } from '../storage/engine.js';
import type { SyslogOptions } from './options.js';

/**
 * Forwarding of the accounting log as RFC 5424 syslog over TCP (RFC 6587 octet counting),
 * optionally over TLS (RFC 5425 uses the same framing).
 *
 * Each audit line (one JSON object) becomes one message:
 *
 *   <PRI>1 TIMESTAMP HOSTNAME fluctuat PID MSGID [fluctuat@32473 k="v" ...][meta sequenceId="n"] BOM{json}
 *
 * - PRI = facility·8 + severity; the severity follows the event (SEVERITY_BY_EVENT).
 * - TIMESTAMP is the entry's own `time`, MSGID its `event`.
 * - The `fluctuat@32473` element carries every field of the entry. PARAM-NAMEs are restricted
 *   to what RFC 5424 §6.3.3 allows (printable US-ASCII without `=`, space, `]`, `"`; at most
 *   32 characters); PARAM-VALUEs escape `"`, `\` and `]` with a backslash, and control
 *   characters (C0, DEL, C1, U+2028/9) are replaced by U+FFFD so that no collector writing
 *   plain-text files can be made to split a line. A user name such as
 *   `root from 8.8.8.8"] [forged@1 a="b` therefore stays inside one PARAM-VALUE.
 *   32473 is the private enterprise number RFC 5612 reserves for documentation; `sdId` can
 *   name a real one.
 * - `[meta sequenceId="n"]` (RFC 5424 §7.3.1) numbers messages 1, 2, 3... per forwarder (it
 *   restarts at 1 with the broker). A collector sees a lost message as a gap, a resent one as a
 *   repeated number.
 * - MSG is the JSON line itself, exact, after a UTF-8 BOM: the structured data is a
 *   convenience, the JSON is the record.
 *
 * Delivery: entries wait in a bounded buffer (count and bytes) while the collector is
 * unreachable, and go out in order when it comes back; the connection is retried with capped
 * exponential backoff (with jitter). Beyond the bound the oldest waiting entries are dropped,
 * counted (`dropped`), logged, and announced to the collector by a synthetic `syslog-dropped`
 * entry sent ahead of the survivors.
 *
 * WHAT IS NOT GUARANTEED. Syslog over TCP has no application-level acknowledgement. Node's
 * `write` callback only says that the bytes were handed to the kernel; they can still sit in
 * our send buffer, on the wire, or in the collector's receive buffer, and a connection that is
 * reset then loses them without anyone knowing. What this forwarder does about it:
 * - an entry stays in the buffer until its write callback reports success; when the connection
 *   dies, every entry without that confirmation is sent again, in order, on the next
 *   connection. Such an entry may have been partly written: with octet counting a collector
 *   discards the truncated frame. It may in rare cases have been fully written, and then the
 *   collector sees it twice, with the same sequenceId.
 * - entries confirmed written are forgotten. If the connection then dies before the collector
 *   has read them (the loss window: at most the kernel's send buffer plus the collector's
 *   receive buffer, often a few MB on loopback), they are lost and NOT counted in `dropped`;
 *   the collector can see the gap in sequenceId. Resending them on reconnect would duplicate
 *   everything a healthy collector already has after every ordinary restart, and the socket
 *   API does not say how much of the send buffer was acknowledged, so this is left as is.
 *   A collector that must not lose anything should speak RELP, which this does not.
 * - on close (broker shutdown) the forwarder makes one last connection attempt if it has
 *   entries waiting, writes them, half-closes and waits (bounded) for the collector to close in
 *   turn, which it does after reading everything: a clean shutdown loses nothing while the
 *   collector is up. What is still waiting after the deadline is counted as dropped and logged.
 */

/** RFC 5424 §6.2.1 facility codes. */
export const SYSLOG_FACILITY_CODES = Object.freeze({
  kern: 0,
  user: 1,
  mail: 2,
  daemon: 3,
  auth: 4,
  syslog: 5,
  lpr: 6,
  news: 7,
  uucp: 8,
  cron: 9,
  authpriv: 10,
  ftp: 11,
  local0: 16,
  local1: 17,
  local2: 18,
  local3: 19,
  local4: 20,
  local5: 21,
  local6: 22,
  local7: 23,
});
export type SyslogFacility = keyof typeof SYSLOG_FACILITY_CODES;
export const SYSLOG_FACILITY_NAMES = Object.keys(SYSLOG_FACILITY_CODES) as SyslogFacility[];

export const SEVERITY = Object.freeze({ emerg: 0, alert: 1, crit: 2, err: 3, warning: 4, notice: 5, info: 6, debug: 7 });

/** Severity of an audit event; anything not listed is informational. */
export const SEVERITY_BY_EVENT: Readonly<Record<string, number>> = Object.freeze({
  'login-failed': SEVERITY.warning,
  limit: SEVERITY.warning,
  denied: SEVERITY.notice,
  'syslog-dropped': SEVERITY.warning,
});

export const SYSLOG_DEFAULTS = Object.freeze({
  port: 514,
  facility: 'authpriv' as SyslogFacility,
  bufferEntries: 10_000,
  bufferBytes: 16 * 1024 * 1024,
  reconnectBaseMs: 250,
  reconnectMaxMs: 30_000,
  sdId: 'fluctuat@32473',
  appName: 'fluctuat',
});

/** `host:port`, `[v6]:port` or a bare host (port 514). Throws with a readable message. */
export function parseSyslogAddress(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s[\]]+))(?::(\d{1,5}))?$/.exec(text);
  const port = m?.[3] === undefined ? SYSLOG_DEFAULTS.port : Number(m[3]);
  if (!m || port < 1 || port > 65535) throw new Error(`syslog collector "${text}": expected host:port, [ipv6]:port or host (port 514)`);
  return { host: m[1] ?? m[2]!, port };
}

// -------------------------------------------------------------------------------- formatting

export interface FormatContext {
  readonly facility: SyslogFacility;
  readonly hostname: string;
  readonly appName: string;
  readonly procId: string;
  readonly sdId: string;
}

const NILVALUE = '-';
const BOM = '\uFEFF';
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$/;

/** A header field: printable US-ASCII (33..126), at most `max` characters, else NILVALUE. */
export function headerField(text: string, max: number): string {
  const clean = text.replace(/[^\x21-\x7e]/g, '_').slice(0, max);
  return clean === '' ? NILVALUE : clean;
}

/** SD-NAME: printable US-ASCII except `=`, space, `]` and `"`; 1 to 32 characters. */
export function sdName(text: string): string {
  const clean = text.replace(/[^\x21-\x7e]|[="\]]/g, '_').slice(0, 32);
  return clean === '' ? '_' : clean;
}

/** PARAM-VALUE: `"`, `\` and `]` escaped (RFC 5424 §6.3.3); control characters made harmless. */
export function sdValue(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value) ?? 'null';
  return text.replace(/[\x00-\x1f\x7f-\x9f\u2028\u2029]/g, '\uFFFD').replace(/["\\\]]/g, '\\$&');
}

function timestamp(value: unknown): string {
  if (typeof value === 'string' && RFC3339.test(value)) return value;
  if (typeof value === 'number' && Number.isFinite(value)) return new Date(value).toISOString();
  return new Date().toISOString();
}

/**
 * One audit line (JSON, trailing newline allowed) as an RFC 5424 SYSLOG-MSG, without framing.
 * A line that is not a JSON object still goes out, as MSG, with no entry fields.
 */
export function formatSyslog(line: string, sequenceId: number, ctx: FormatContext): Buffer {
  const json = line.endsWith('\n') ? line.slice(0, -1) : line;
  let entry: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(json);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) entry = parsed as Record<string, unknown>;
  } catch {
    // not JSON: forwarded as MSG only
  }
  const event = typeof entry.event === 'string' ? entry.event : '';
  const severity = SEVERITY_BY_EVENT[event] ?? SEVERITY.info;
  const pri = SYSLOG_FACILITY_CODES[ctx.facility] * 8 + severity;
  const names = new Set<string>();
  let params = '';
  for (const [key, value] of Object.entries(entry)) {
    let name = sdName(key);
    // Two keys that sanitise to the same name stay distinguishable.
    for (let i = 2; names.has(name); i++) name = sdName(`${name.slice(0, 32 - String(i).length - 1)}_${i}`);
    names.add(name);
    params += ` ${name}="${sdValue(value)}"`;
  }
  const header = `<${pri}>1 ${timestamp(entry.time)} ${ctx.hostname} ${ctx.appName} ${ctx.procId} ${headerField(event, 32)}`;
  const sd = `[${ctx.sdId}${params}][meta sequenceId="${sequenceId}"]`;
  return Buffer.from(`${header} ${sd} ${BOM}${json}`, 'utf8');
}

/** RFC 6587 §3.4.1 octet counting: `MSG-LEN SP SYSLOG-MSG`. */
export function octetCounted(message: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${message.length} `, 'latin1'), message]);
}

// -------------------------------------------------------------------------------- forwarding

interface Entry {
  readonly frame: Buffer;
  /** A loss notice: how many dropped entries it announces (0 for an audit entry). */
  readonly announces: number;
}

export interface SyslogStats {
  readonly connected: boolean;
  /** Entries whose write to the collector's socket was confirmed (handed to the kernel). */
  readonly sent: number;
  /** Entries that never left: dropped beyond the buffer bound, or still waiting at close. */
  readonly dropped: number;
  /** Waiting to be written. */
  readonly queued: number;
  /** Written on the current connection, confirmation pending. */
  readonly inflight: number;
  readonly bufferedBytes: number;
  /** Successful connections so far. */
  readonly connects: number;
  /** Entries sent again because their connection died before confirming them. */
  readonly resent: number;
}

export class SyslogForwarder {
  private readonly ctx: FormatContext;
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly ca: Buffer | undefined;

  /** Not yet written on the current connection, oldest first. */
  private queue: Entry[] = [];
  /** Written on the current connection, write callback pending, oldest first. */
  private inflight: Entry[] = [];
  private bytes = 0;
  private sequence = 0;

  private socket: net.Socket | null = null;
  private connected = false;
  /** Identifies the current connection; callbacks of an older one are ignored. */
  private generation = 0;
  private attempts = 0;
  private timer: NodeJS.Timeout | null = null;
  private failing = false;
  private closing = false;
  private closed: Promise<void> | null = null;
  private wake: (() => void) | null = null;

  private counters = { sent: 0, dropped: 0, connects: 0, resent: 0 };
  /** Dropped entries the collector has not been told about yet. */
  private unannounced = 0;
  /** Dropped entries not yet reported through the log. */
  private unlogged = 0;
  private dropping = false;

  constructor(
    private readonly options: SyslogOptions,
    private readonly log: Log,
    overrides: { hostname?: string; appName?: string; sdId?: string } = {},
  ) {
    if (!options.host) throw new Error('syslog: no collector host');
    if (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535) throw new Error(`syslog: bad collector port ${options.port}`);
    if (!(options.facility in SYSLOG_FACILITY_CODES)) throw new Error(`syslog: unknown facility "${options.facility}" (one of ${SYSLOG_FACILITY_NAMES.join(', ')})`);
    if (!(options.bufferEntries >= 1) || !(options.bufferBytes >= 1)) throw new Error('syslog: the buffer must hold at least one entry and one byte');
    this.maxEntries = options.bufferEntries;
    this.maxBytes = options.bufferBytes;
    this.baseMs = Math.max(1, options.reconnectBaseMs ?? SYSLOG_DEFAULTS.reconnectBaseMs);
    this.maxMs = Math.max(this.baseMs, options.reconnectMaxMs ?? SYSLOG_DEFAULTS.reconnectMaxMs);
    this.ca = options.tls?.ca ? fs.readFileSync(options.tls.ca) : undefined;
    this.ctx = {
      facility: options.facility,
      hostname: headerField(overrides.hostname ?? os.hostname(), 255),
      appName: headerField(overrides.appName ?? SYSLOG_DEFAULTS.appName, 48),
      procId: String(process.pid),
      sdId: sdName(overrides.sdId ?? SYSLOG_DEFAULTS.sdId),
    };
    this.connect();
  }

  /** Queue one audit line (a sink of FileAudit). Never throws. */
  send(line: string): void {
    if (this.closing) {
      this.counters.dropped++;
      return;
    }
    try {
      this.enqueue({ frame: octetCounted(formatSyslog(line, this.nextSequence(), this.ctx)), announces: 0 });
      this.flush();
    } catch (err) {
      this.log.error({ err }, 'syslog: cannot forward an audit entry');
    }
  }

  get dropped(): number {
    return this.counters.dropped;
  }

  stats(): SyslogStats {
    return {
      connected: this.connected,
      ...this.counters,
      queued: this.queue.length,
      inflight: this.inflight.length,
      bufferedBytes: this.bytes,
    };
  }

  /**
   * Stop: write what is waiting (one last connection attempt if needed), half-close, and wait
   * for the collector to close its side, all within `timeoutMs`. What could not be written is
   * counted as dropped and logged.
   */
  close(timeoutMs = 5000): Promise<void> {
    this.closed ??= (async () => {
      this.closing = true;
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      const deadline = Date.now() + timeoutMs;
      if (!this.socket && this.queue.length > 0) this.connect();
      await this.until(() => !this.socket || (this.connected && this.queue.length === 0 && this.inflight.length === 0), deadline);
      const socket = this.socket;
      if (socket) {
        socket.end();
        await this.until(() => this.socket !== socket, deadline);
        socket.destroy();
      }
      const lost = [...this.inflight, ...this.queue].filter((e) => e.announces === 0).length;
      this.counters.dropped += lost;
      this.unlogged += lost;
      this.inflight = [];
      this.queue = [];
      this.bytes = 0;
      if (this.unlogged > 0) {
        this.log.warn({ lost: this.unlogged, dropped: this.counters.dropped }, 'syslog: audit entries not delivered at shutdown');
      }
    })();
    return this.closed;
  }

  private nextSequence(): number {
    this.sequence = this.sequence >= 2147483647 ? 1 : this.sequence + 1;
    return this.sequence;
  }

  private enqueue(entry: Entry): void {
    this.queue.push(entry);
    this.bytes += entry.frame.length;
    // Over the bound: drop the oldest entries that are not on the wire (those wait for their
    // write callback and go back to the queue if the connection dies).
    while ((this.queue.length + this.inflight.length > this.maxEntries || this.bytes > this.maxBytes) && this.queue.length > 0) {
      const old = this.queue.shift()!;
      this.bytes -= old.frame.length;
      if (old.announces > 0) {
        this.unannounced += old.announces; // a dropped notice: its count is announced again
        continue;
      }
      this.counters.dropped++;
      this.unannounced++;
      this.unlogged++;
      if (!this.dropping) {
        this.dropping = true;
        this.log.warn(
          { host: this.options.host, port: this.options.port, bufferEntries: this.maxEntries, bufferBytes: this.maxBytes },
          'syslog: buffer full, dropping the oldest audit entries',
        );
      }
    }
  }

  /** Write what is queued while the socket takes it; announce losses first. */
  private flush(): void {
    const socket = this.socket;
    if (!socket || !this.connected) return;
    if (this.unannounced > 0) this.announce();
    const gen = this.generation;
    while (this.queue.length > 0 && !socket.writableNeedDrain) {
      const entry = this.queue.shift()!;
      this.inflight.push(entry);
      socket.write(entry.frame, (err) => this.written(gen, entry, err));
    }
  }

  private announce(): void {
    const n = this.unannounced;
    this.unannounced = 0;
    this.dropping = false;
    if (this.unlogged > 0) {
      this.log.warn({ lost: this.unlogged, dropped: this.counters.dropped }, 'syslog: audit entries lost while the collector was unreachable or slow');
      this.unlogged = 0;
    }
    const line = JSON.stringify({ level: 'warn', time: new Date().toISOString(), dropped: n, droppedTotal: this.counters.dropped, event: 'syslog-dropped' });
    const entry = { frame: octetCounted(formatSyslog(line, this.nextSequence(), this.ctx)), announces: n };
    // Ahead of everything still waiting: the lost entries were older than those.
    this.queue.unshift(entry);
    this.bytes += entry.frame.length;
  }

  private written(gen: number, entry: Entry, err: Error | null | undefined): void {
    if (gen !== this.generation || err) return; // the close handler puts it back in the queue
    const i = this.inflight[0] === entry ? 0 : this.inflight.indexOf(entry);
    if (i < 0) return;
    this.inflight.splice(i, 1);
    this.bytes -= entry.frame.length;
    if (entry.announces === 0) this.counters.sent++;
    this.poke();
  }

  private connect(): void {
    this.timer = null;
    const gen = ++this.generation;
    const { host, port } = this.options;
    let socket: net.Socket;
    if (this.options.tls) {
      const opts: tls.ConnectionOptions = { host, port };
      if (this.ca) opts.ca = this.ca;
      if (!net.isIP(host)) opts.servername = host;
      socket = tls.connect(opts);
    } else {
      socket = net.connect({ host, port });
    }
    this.socket = socket;
    socket.setNoDelay(true);
    socket.setTimeout(Math.max(this.maxMs, 10_000), () => socket.destroy(new Error('connection timed out')));
    socket.once(this.options.tls ? 'secureConnect' : 'connect', () => {
      if (gen !== this.generation) return;
      socket.setTimeout(0);
      socket.setKeepAlive(true, 10_000);
      this.connected = true;
      this.attempts = 0;
      this.counters.connects++;
      if (this.failing) this.log.info({ host, port }, 'syslog: collector reachable again');
      this.failing = false;
      this.flush();
      this.poke();
    });
    socket.on('drain', () => {
      if (gen === this.generation) this.flush();
    });
    // Collectors do not talk back; whatever arrives is read and ignored.
    socket.on('data', () => {});
    // The collector closed its side: it will read no more, so the connection is over.
    socket.on('end', () => socket.destroy());
    socket.on('error', (err) => {
      if (gen !== this.generation) return;
      if (!this.failing) this.log.warn({ host, port, err: err.message, queued: this.queue.length + this.inflight.length }, 'syslog: collector unreachable, buffering audit entries');
      else this.log.debug({ host, port, err: err.message }, 'syslog: reconnection failed');
      this.failing = true;
    });
    socket.on('close', () => this.disconnected(gen));
  }

  private disconnected(gen: number): void {
    if (gen !== this.generation) return;
    this.generation++; // write callbacks of this connection no longer count
    this.socket = null;
    if (this.connected && !this.closing) {
      this.failing = true;
      this.log.warn({ host: this.options.host, port: this.options.port, unconfirmed: this.inflight.length }, 'syslog: connection to the collector lost');
    }
    this.connected = false;
    if (this.inflight.length > 0) {
      // Not confirmed written: send again, in order, ahead of what was waiting.
      this.counters.resent += this.inflight.filter((e) => e.announces === 0).length;
      this.queue = this.inflight.concat(this.queue);
      this.inflight = [];
    }
    if (!this.closing) {
      const delay = Math.min(this.maxMs, this.baseMs * 2 ** Math.min(this.attempts, 30));
      this.attempts++;
      this.timer = setTimeout(() => this.connect(), Math.round(delay * (0.8 + 0.2 * Math.random())));
      this.timer.unref();
    }
    this.poke();
  }

  /** Wake a pending close() to re-check its condition. */
  private poke(): void {
    this.wake?.();
  }

  private async until(done: () => boolean, deadline: number): Promise<void> {
    while (!done()) {
      const left = deadline - Date.now();
      if (left <= 0) return;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = null;
    }
  }
}
