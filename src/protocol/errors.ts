/** Stable error codes of the wire protocol. docs/protocol.md lists each one (a test checks). */
export const ErrorCode = {
  UNKNOWN_COMMAND: 'UNKNOWN_COMMAND',
  BAD_ARGUMENTS: 'BAD_ARGUMENTS',
  BAD_CHANNEL: 'BAD_CHANNEL',
  BAD_PATTERN: 'BAD_PATTERN',
  BAD_POSITION: 'BAD_POSITION',
  BAD_SIZE: 'BAD_SIZE',
  BAD_FRAME: 'BAD_FRAME',
  LINE_TOO_LONG: 'LINE_TOO_LONG',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  DUPLICATE_SID: 'DUPLICATE_SID',
  NOT_SUBSCRIBED: 'NOT_SUBSCRIBED',
  TOO_MANY_SUBSCRIPTIONS: 'TOO_MANY_SUBSCRIPTIONS',
  CHANNEL_QUOTA: 'CHANNEL_QUOTA',
  DISK_QUOTA: 'DISK_QUOTA',
  SLOW_CONSUMER: 'SLOW_CONSUMER',
  STORAGE_FAILED: 'STORAGE_FAILED',
  TIMEOUT: 'TIMEOUT',
  SHUTTING_DOWN: 'SHUTTING_DOWN',
  AUTH_REQUIRED: 'AUTH_REQUIRED',
  AUTH_FAILED: 'AUTH_FAILED',
  AUTH_BACKOFF: 'AUTH_BACKOFF',
  CERT_REFUSED: 'CERT_REFUSED',
  CERT_USER_UNKNOWN: 'CERT_USER_UNKNOWN',
  LOGIN_TIMEOUT: 'LOGIN_TIMEOUT',
  PLAINTEXT_REFUSED: 'PLAINTEXT_REFUSED',
  FORBIDDEN: 'FORBIDDEN',
  RATE_LIMITED: 'RATE_LIMITED',
  TOO_MANY_CONNECTIONS: 'TOO_MANY_CONNECTIONS',
  ADDRESS_REFUSED: 'ADDRESS_REFUSED',
  IDLE_TIMEOUT: 'IDLE_TIMEOUT',
  NO_SUCH_CLIENT: 'NO_SUCH_CLIENT',
  KILLED: 'KILLED',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** An error that goes on the wire as one `-ERR CODE message` / `ERR ref CODE message` line. */
export class ProtocolError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ProtocolError';
  }
}

/** A short printable quote of some input bytes for error messages. */
export function snippet(bytes: Uint8Array, max = 32): string {
  const cut = bytes.length > max;
  let out = '';
  for (let i = 0; i < Math.min(bytes.length, max); i++) {
    const b = bytes[i]!;
    if (b === 0x5c) out += '\\\\';
    else if (b === 0x22) out += '\\"';
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += '\\x' + b.toString(16).padStart(2, '0');
  }
  return `"${out}${cut ? '…' : ''}"`;
}
