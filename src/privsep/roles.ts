/** Who may send what to whom: the process map of docs/security.md, as data. */
export const BROKER_TO_PARENT = new Set(['verify-password', 'verify-token', 'verify-certificate', 'ready']);
export const PARENT_TO_BROKER = new Set(['start', 'listen', 'adopt', 'rotate', 'reload-tls', 'stop']);
export const PARENT_TO_AUTH = new Set(['verify-password', 'verify-token', 'verify-certificate']);
export const AUTH_TO_PARENT = new Set<string>();

export interface StartMessage {
  readonly config: unknown;
  readonly tlsOptions?: unknown;
  readonly logLevel: string;
}
