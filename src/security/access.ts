/**
 * Authorization: rules allow or deny `sub`, `pub` and `request` on channel patterns for a
 * group, a user or anyone. Deny wins; with no matching allow, the default applies (deny on a
 * configured server). Channel names here are tenant-relative: a tenant is a namespace the
 * session adds before the broker sees a name, so rules cannot reach across tenants.
 */
export type Operation = 'sub' | 'pub' | 'request';

export interface AccessRule {
  readonly effect: 'allow' | 'deny';
  readonly ops: readonly Operation[];
  readonly pattern: string;
  /** `group:<name>`, `user:<name>` or `any`. */
  readonly who: string;
}

export interface Identity {
  readonly user: string;
  readonly groups: readonly string[];
  /** '' only on an open server (no users configured). */
  readonly tenant: string;
  readonly admin: boolean;
  readonly method: 'anonymous' | 'password' | 'token' | 'certificate';
}

export interface Decision {
  readonly allowed: boolean;
  /** The rule that decided, or null for the default. */
  readonly rule: AccessRule | null;
}

function appliesTo(rule: AccessRule, who: Identity): boolean {
  if (rule.who === 'any') return true;
  if (rule.who.startsWith('user:')) return rule.who.slice(5) === who.user;
  if (rule.who.startsWith('group:')) return who.groups.includes(rule.who.slice(6));
  return false;
}

/** Does `outer` match every channel that `inner` matches? */
export function covers(outer: string, inner: string): boolean {
  const o = outer.split('.');
  const n = inner.split('.');
  for (let i = 0; i < o.length; i++) {
    const t = o[i]!;
    if (t === '>') return n.length > i;
    if (i >= n.length) return false;
    const u = n[i]!;
    if (u === '>') return false;
    if (t === '*') continue;
    if (u !== t) return false;
  }
  return o.length === n.length;
}

/** Is there a channel that both patterns match? */
export function intersects(a: string, b: string): boolean {
  const x = a.split('.');
  const y = b.split('.');
  for (let i = 0; ; i++) {
    if (i >= x.length || i >= y.length) return x.length === y.length;
    const s = x[i]!;
    const t = y[i]!;
    if (s === '>' || t === '>') return true;
    if (s === '*' || t === '*' || s === t) continue;
    return false;
  }
}

export class AccessPolicy {
  constructor(
    readonly rules: readonly AccessRule[],
    readonly defaultEffect: 'allow' | 'deny',
  ) {}

  /** May `who` do `op` on `target` (a channel for pub/request, a pattern for sub)? */
  check(who: Identity, op: Operation, target: string): Decision {
    let allow: AccessRule | null = null;
    for (const rule of this.rules) {
      if (!rule.ops.includes(op) || !appliesTo(rule, who)) continue;
      if (rule.effect === 'deny') {
        // A subscription is refused if it could receive anything a deny rule forbids.
        if (op === 'sub' ? intersects(rule.pattern, target) : covers(rule.pattern, target)) return { allowed: false, rule };
      } else if (!allow && covers(rule.pattern, target)) {
        allow = rule;
      }
    }
    if (allow) return { allowed: true, rule: allow };
    return { allowed: this.defaultEffect === 'allow', rule: null };
  }
}
