import type { StartPosition, StoredMessage } from '../storage/engine.js';

/**
 * A message's encodings, cached by the first consumer that needs one and shared by every
 * subscriber of a fan-out. The core never looks inside; a message with one target has none.
 */
export interface SharedEncodings {
  human: Buffer | undefined;
  machine: Buffer | undefined;
}

export type FeedEvent =
  | { readonly kind: 'live'; readonly channel: string; readonly offset: number }
  | { readonly kind: 'drop'; readonly channel: string; readonly count: number }
  | { readonly kind: 'gap'; readonly channel: string; readonly from: number; readonly to: number };

/** What a subscription delivers to: a client session, in practice. The core knows no socket. */
export interface Consumer {
  readonly id: number;
  /** Over its outbound bound: live deliveries must go elsewhere (the log, or the drop policy). */
  congested(): boolean;
  /** `shared` is null when the message goes to this subscription alone. */
  deliver(sub: Subscription, msg: StoredMessage, shared: SharedEncodings | null): void;
  /**
   * Names the bytes this consumer sends for `sub`'s deliveries: consumers with equal keys send
   * identical bytes for the same message, so a batch is encoded once for all of them
   * (fan-out-plan.ts). Null: this subscription is sent message by message.
   */
  blockKey(sub: Subscription): string | null;
  /** Every delivery of `batch` for `sub`, as one buffer that others with the same key reuse. */
  encodeBlock(sub: Subscription, batch: readonly StoredMessage[]): Buffer;
  /** Sends a block from `encodeBlock` (of any consumer with this key): `count` deliveries. */
  deliverBlock(sub: Subscription, block: Buffer, count: number): void;
  notify(sub: Subscription, event: FeedEvent): void;
  /** Close the connection with a reason (slow consumer, storage failure). */
  disconnect(code: string, reason: string): void;
}

/**
 * A channel whose messages this subscription reads from storage rather than from the live
 * stream: while replaying history, or after falling behind. Live messages on that channel are
 * skipped meanwhile; the reader finds them in the log and rejoins the live stream at the head.
 */
export interface Feed {
  readonly channel: string;
  /** Next offset to deliver; -1 while the start position is being resolved. */
  next: number;
  reading: boolean;
}

export class Subscription {
  /** Channels served from storage instead of live. Empty in the steady state. */
  readonly feeds = new Map<string, Feed>();
  /** Memory channels: messages dropped per channel since the last notice. */
  readonly drops = new Map<string, number>();
  delivered = 0;
  closed = false;
  /** Deliveries left before the subscription ends by itself (0 = unlimited), for requests. */
  remaining = 0;
  /** The consumer's encoding of this subscription's delivery prefix, cached (opaque to the core). */
  prefix: Buffer | undefined = undefined;

  constructor(
    readonly consumer: Consumer,
    readonly sid: string,
    readonly pattern: string,
    readonly queue: string,
    readonly from: StartPosition,
  ) {}
}

/**
 * Members of one queue group (same queue name and pattern): each message goes to one of them.
 * While every member is congested, a durable channel's messages are read back from the log
 * (feeds, as for a subscription: nothing is held or lost); a memory channel's wait in a
 * bounded backlog.
 */
export class QueueGroup {
  readonly members: Subscription[] = [];
  cursor = 0;
  /** Memory channels: messages waiting while every member is congested (bounded). */
  readonly backlog: StoredMessage[] = [];
  /** Durable channels this group reads from the log instead of live. */
  readonly feeds = new Map<string, Feed>();
  closed = false;

  constructor(
    readonly key: string,
    readonly queue: string,
    readonly pattern: string,
  ) {}

  /** The next member with room, round robin; null when all are congested. */
  nextFree(): Subscription | null {
    const members = this.members;
    const n = members.length;
    for (let k = 0; k < n; k++) {
      const i = (this.cursor + k) % n;
      const member = members[i]!;
      if (!member.consumer.congested()) {
        this.cursor = i + 1;
        return member;
      }
    }
    return null;
  }
}
