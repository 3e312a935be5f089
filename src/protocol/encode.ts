import type { StoredMessage } from '../storage/engine.js';

/**
 * Server-side encodings of deliveries and answers. Pure: bytes in, bytes out.
 * A delivery is encoded once per message and the bytes are shared by every subscriber; only
 * the machine-mode `MSG <sid> ` prefix differs per subscription.
 */

/** Printable rendering of a payload: one message is always one line. */
export function escapeText(payload: Uint8Array): string {
  // Fast path: plain printable text needs no escaping.
  let plain = true;
  for (let i = 0; i < payload.length; i++) {
    const b = payload[i]!;
    if (b < 0x20 || b === 0x5c || b === 0x7f) {
      plain = false;
      break;
    }
  }
  const text = Buffer.from(payload.buffer, payload.byteOffset, payload.length).toString('utf8');
  if (plain) return text;
  let out = '';
  for (const ch of text) {
    const c = ch.charCodeAt(0);
    if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += '\\x' + c.toString(16).padStart(2, '0');
    else out += ch;
  }
  return out;
}

let clockSecond = -1;
let clockText = '';

/** HH:MM:SS in local time, like the original's `date +%T`; cached per second. */
export function clock(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== clockSecond) {
    const d = new Date(ms);
    clockSecond = second;
    clockText = `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  }
  return clockText;
}

function pad2(n: number): string {
  return n < 10 ? '0' + n : String(n);
}

/** `pubsub on <channel> at HH:MM:SS: <text>\n` */
export function humanDelivery(msg: StoredMessage): Buffer {
  const reply = msg.reply ? ` (reply to ${msg.reply})` : '';
  return Buffer.from(`pubsub on ${msg.channel} at ${clock(msg.timestamp)}${reply}: ${escapeText(msg.payload)}\n`);
}

export function micros(ms: number): number {
  return Math.round(ms * 1000);
}

/** The part of `MSG <sid> <channel> <offset> <time-µs> <publisher> <reply|-> <size>\n` after the sid. */
export function machineDeliveryHeader(msg: StoredMessage): Buffer {
  return Buffer.from(` ${msg.channel} ${msg.offset} ${micros(msg.timestamp)} ${msg.publisher} ${msg.reply || '-'} ${msg.payload.length}\n`, 'latin1');
}

export function info(text: string): string {
  return `# [I] ${text}\n`;
}

export function debug(text: string, ms = Date.now()): string {
  return `# [D]:${clock(ms)}: ${text}\n`;
}

export function warning(text: string): string {
  return `# [W] ${text}\n`;
}

export function humanError(code: string, message: string): string {
  return `-ERR ${code} ${oneLine(message)}\n`;
}

export function machineError(ref: string, code: string, message: string): string {
  return `ERR ${ref || '-'} ${code} ${oneLine(message)}\n`;
}

function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, ' ');
}
