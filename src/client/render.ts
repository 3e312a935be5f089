/**
 * Human-mode rendering for collect(): the same lines a person sees in `nc`, produced locally from
 * machine-mode frames. The escaping and the clock are the broker's own (src/protocol/encode.ts),
 * so a line is byte for byte what human mode prints. Pure: no I/O.
 */
import { clock, escapeText } from '../protocol/encode.js';

export { clock, escapeText };

/** `pubsub on <channel> at HH:MM:SS[ (reply to <reply>)]: <escaped text>` */
export function renderDelivery(channel: string, timeUs: number, reply: string | undefined, data: Uint8Array): string {
  const at = clock(timeUs / 1000);
  return reply === undefined
    ? `pubsub on ${channel} at ${at}: ${escapeText(data)}`
    : `pubsub on ${channel} at ${at} (reply to ${reply}): ${escapeText(data)}`;
}

/** `# [D]:HH:MM:SS: <text>` */
export function renderDebug(text: string, nowMs: number = Date.now()): string {
  return `# [D]:${clock(nowMs)}: ${text}`;
}

/** `# [I] <text>` */
export function renderInfo(text: string): string {
  return `# [I] ${text}`;
}

/** `# [W] <text>` */
export function renderWarning(text: string): string {
  return `# [W] ${text}`;
}

/** `-ERR <CODE> <message>` on one line. */
export function renderError(code: string, message: string): string {
  return `-ERR ${code} ${message.replace(/[\r\n]+/g, ' ')}`;
}

/** True for lines collect() hides unless `info: true`: `# [I]`, `# [D]` and help text; `# [W]` warnings are always shown. */
export function isInfoLine(line: string): boolean {
  return line.startsWith('#') && !line.startsWith('# [W]');
}
