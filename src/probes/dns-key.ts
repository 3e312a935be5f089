/**
 * Keyed DNS names: a probe asks for a random name under a zone, the test responder answers
 * with an HMAC of that name. A cache cannot have seen a fresh random name, and only a server
 * that holds the key can compute the answer, so a correct answer proves the resolver really
 * asked the authority.
 */
import { createHmac, randomBytes } from 'node:crypto';

/** Canonical form of a name: lower case, no trailing dot. */
export function canonicalName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/** The TXT answer for `name`: HMAC-SHA256(key, canonical name), hex, 32 characters (128 bits). */
export function keyedAnswer(key: Buffer, name: string): string {
  return createHmac('sha256', key).update(canonicalName(name)).digest('hex').slice(0, 32);
}

/** A fresh name under `zone`: 16 random hex characters, then the zone. */
export function randomName(zone: string): string {
  return `k${randomBytes(8).toString('hex')}.${canonicalName(zone)}`;
}

/** A key given as hex (even length) or `base64:...`; anything else is taken as UTF-8 text. */
export function parseKey(text: string): Buffer {
  if (text.startsWith('base64:')) return Buffer.from(text.slice(7), 'base64');
  if (/^(?:[0-9a-fA-F]{2})+$/.test(text)) return Buffer.from(text, 'hex');
  return Buffer.from(text, 'utf8');
}
