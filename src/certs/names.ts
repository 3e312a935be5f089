/**
 * The choices gen-cert offers (key types, revocation reasons), without the libraries that make
 * certificates: the CLI declares its options with them, and loads @peculiar/x509 (and the
 * reflect-metadata it needs) only when a gen-cert command runs, never in a broker's process.
 */

/** Key algorithms gen-cert can make. */
export type KeyType = 'ec-p256' | 'ec-p384' | 'rsa-2048' | 'rsa-3072';

export const KEY_TYPES: readonly KeyType[] = ['ec-p256', 'ec-p384', 'rsa-2048', 'rsa-3072'];

/** The reasons `gen-cert crl --reason` takes (RFC 5280 §5.3.1, without the delta-CRL one). */
export const REVOCATION_REASONS = ['keyCompromise', 'cACompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation', 'certificateHold', 'privilegeWithdrawn', 'aACompromise'] as const;
export type RevocationReason = (typeof REVOCATION_REASONS)[number];
