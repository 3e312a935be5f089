import fs from 'node:fs';
import path from 'node:path';
import { pino, type Logger } from 'pino';

/**
 * The accounting log: one JSON object per line, every field escaped by JSON itself, never a
 * printf-formatted sentence, so a user name like `root from 8.8.8.8` stays one field.
 * Rotates by size: audit.log -> audit.log.1 -> ... -> audit.log.<keep>.
 */
export type AuditEvent =
  | 'connect'
  | 'login'
  | 'login-failed'
  | 'logout'
  | 'denied'
  | 'limit'
  | 'disconnect';

export interface Audit {
  record(event: AuditEvent, fields: Record<string, unknown>): void;
  close(): Promise<void>;
}

export const nullAudit: Audit = {
  record() {},
  close: () => Promise.resolve(),
};

export interface AuditOptions {
  /** null: no file, the lines only go to the sinks (syslog forwarding without a local log). */
  readonly file: string | null;
  readonly maxBytes: number;
  readonly keep: number;
}

export class FileAudit implements Audit {
  private readonly logger: Logger;
  private readonly dest: ReturnType<typeof pino.destination> | null;
  private size: number;
  /** Extra sinks (e.g. syslog forwarding) that get each line as written. */
  readonly sinks: ((line: string) => void)[] = [];

  constructor(private readonly options: AuditOptions) {
    if (options.file) fs.mkdirSync(path.dirname(options.file), { recursive: true });
    this.size = options.file && fs.existsSync(options.file) ? fs.statSync(options.file).size : 0;
    this.dest = options.file ? pino.destination({ dest: options.file, sync: true, mkdir: true }) : null;
    this.logger = pino(
      {
        base: null,
        timestamp: pino.stdTimeFunctions.isoTime,
        messageKey: 'event',
        formatters: { level: (label: string) => ({ level: label }) },
        hooks: {
          streamWrite: (line: string) => {
            if (this.dest) this.size += Buffer.byteLength(line);
            for (const sink of this.sinks) sink(line);
            if (this.size > this.options.maxBytes) queueMicrotask(() => this.rotate());
            return line;
          },
        },
      },
      this.dest ?? { write: () => {} },
    );
  }

  record(event: AuditEvent, fields: Record<string, unknown>): void {
    this.logger.info(fields, event);
  }

  private rotate(): void {
    const { file, keep } = this.options;
    if (!file || !this.dest || this.size <= this.options.maxBytes) return;
    for (let i = keep - 1; i >= 1; i--) {
      if (fs.existsSync(`${file}.${i}`)) fs.renameSync(`${file}.${i}`, `${file}.${i + 1}`);
    }
    fs.renameSync(file, `${file}.1`);
    this.dest.reopen();
    this.size = 0;
  }

  close(): Promise<void> {
    this.dest?.flushSync();
    return Promise.resolve();
  }
}
