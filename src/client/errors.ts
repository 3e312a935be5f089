/**
 * Errors raised by the client library. Every error carries a stable `.code`: either one of the
 * wire protocol's codes (docs/protocol.md, relayed from an `ERR` frame) or one of the client's
 * own codes below. docs/client.md lists every client code (a test checks).
 */
import { ErrorCode } from '../protocol/errors.js';

/** Codes that originate in the client, never on the wire. */
export const ClientErrorCode = {
  /** A URL or option was invalid (`connect` rejects with it; nothing was sent). */
  BAD_OPTION: 'BAD_OPTION',
  /** The TCP connection (or the `INFO` handshake) could not be established in time. */
  CONNECTION_FAILED: 'CONNECTION_FAILED',
  /** The connection was lost and reconnection is off: the operation's outcome is unknown. */
  DISCONNECTED: 'DISCONNECTED',
  /** The client was closed (by `close()` or after giving up reconnecting). */
  CLOSED: 'CLOSED',
  /** The offline buffer is full: the publish was refused, not queued. */
  BUFFER_FULL: 'BUFFER_FULL',
  /** `respond()` on a message that carries no reply channel. */
  NO_REPLY: 'NO_REPLY',
  /** The broker sent something this client does not understand. */
  PROTOCOL: 'PROTOCOL',
  /** A subscription handler or `handle()` function threw. */
  HANDLER_FAILED: 'HANDLER_FAILED',
} as const;

export type ClientErrorCode = (typeof ClientErrorCode)[keyof typeof ClientErrorCode];

/** Any code a FluctuatError can carry: a wire code relayed from the broker, or a client code. */
export type FluctuatErrorCode = ErrorCode | ClientErrorCode;

export class FluctuatError extends Error {
  /**
   * @param code stable code, see docs/client.md
   * @param ref  for errors relayed from an `ERR` frame: the ack-id or sid it was about
   */
  constructor(
    readonly code: FluctuatErrorCode | string,
    message: string,
    options?: { cause?: unknown; ref?: string },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FluctuatError';
    if (options?.ref !== undefined) this.ref = options.ref;
  }
  /** For errors relayed from an `ERR` frame: the ack-id or sid it was about. */
  declare readonly ref?: string;
}

export { ErrorCode };
