/**
 * Which subscriptions match a channel, without scanning all subscriptions: a trie over
 * tokens with `*` and `>` branches, plus a cache of results per channel that is cleared
 * whenever the subscription set changes (the common case is many publishes per change).
 */
interface Node<T> {
  children: Map<string, Node<T>>;
  star: Node<T> | null;
  /** Items whose pattern ends with `>` at this level. */
  rest: Set<T>;
  /** Items whose pattern ends exactly here. */
  exact: Set<T>;
}

function node<T>(): Node<T> {
  return { children: new Map(), star: null, rest: new Set(), exact: new Set() };
}

const MAX_CACHE = 16_384;

export class SubjectIndex<T> {
  private readonly root: Node<T> = node();
  private readonly cache = new Map<string, readonly T[]>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  add(pattern: string, item: T): void {
    let n = this.root;
    const tokens = pattern.split('.');
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i]!;
      if (t === '>') {
        n.rest.add(item);
        this.changed(1);
        return;
      }
      if (t === '*') n = n.star ??= node();
      else {
        let next = n.children.get(t);
        if (!next) n.children.set(t, (next = node()));
        n = next;
      }
    }
    n.exact.add(item);
    this.changed(1);
  }

  remove(pattern: string, item: T): boolean {
    const tokens = pattern.split('.');
    const chain: Node<T>[] = [this.root];
    let n = this.root;
    for (const t of tokens) {
      if (t === '>') {
        if (!n.rest.delete(item)) return false;
        return this.removed(tokens, chain);
      }
      const next = t === '*' ? n.star : n.children.get(t);
      if (!next) return false;
      chain.push(next);
      n = next;
    }
    if (!n.exact.delete(item)) return false;
    return this.removed(tokens, chain);
  }

  /** Every item whose pattern matches the channel. The array is shared: do not modify it. */
  match(channel: string): readonly T[] {
    let hit = this.cache.get(channel);
    if (hit) return hit;
    const out: T[] = [];
    collect(this.root, channel.split('.'), 0, out);
    if (this.cache.size >= MAX_CACHE) this.cache.clear();
    this.cache.set(channel, out);
    return out;
  }

  private changed(delta: number): void {
    this.count += delta;
    this.cache.clear();
  }

  /** Drop empty nodes so a churn of patterns does not leak trie nodes. chain[i] is reached by tokens[i - 1]. */
  private removed(tokens: string[], chain: Node<T>[]): true {
    this.changed(-1);
    for (let i = chain.length - 1; i > 0; i--) {
      if (!isEmpty(chain[i]!)) break;
      const parent = chain[i - 1]!;
      const t = tokens[i - 1]!;
      if (t === '*') parent.star = null;
      else parent.children.delete(t);
    }
    return true;
  }
}

function isEmpty<T>(n: Node<T>): boolean {
  return n.children.size === 0 && !n.star && n.rest.size === 0 && n.exact.size === 0;
}

function collect<T>(n: Node<T>, tokens: string[], i: number, out: T[]): void {
  if (i === tokens.length) {
    for (const item of n.exact) out.push(item);
    return;
  }
  for (const item of n.rest) out.push(item);
  const child = n.children.get(tokens[i]!);
  if (child) collect(child, tokens, i + 1, out);
  if (n.star) collect(n.star, tokens, i + 1, out);
}
