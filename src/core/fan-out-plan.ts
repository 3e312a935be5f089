/**
 * How a channel's fan-out is sent. Subscriptions whose consumers would send the same bytes for
 * the same message (equal block keys: in machine mode, the same sid on different connections,
 * which is what a swarm's probes have) form a group; a committed batch is encoded once for a
 * group and each member gets that one buffer. Everyone else is sent message by message.
 *
 * A plan depends only on the set of targets: the broker keeps one per SubjectIndex result,
 * whose arrays change whenever the subscriptions do. Whether a member can take a block right
 * now (not congested, not reading from the log) is checked per batch.
 */
import { QueueGroup, Subscription } from './subscription.js';

export type Target = Subscription | QueueGroup;

export interface FanOutPlan {
  /** Subscriptions with equal keys, two or more in each group. */
  readonly groups: readonly (readonly Subscription[])[];
  readonly keys: readonly string[];
  /** Sent per message: queue groups, and subscriptions with no twin or no key. */
  readonly singles: readonly Target[];
}

export function planFanOut(targets: readonly Target[]): FanOutPlan {
  const byKey = new Map<string, Subscription[]>();
  const singles: Target[] = [];
  for (const t of targets) {
    const key = t instanceof Subscription ? t.consumer.blockKey(t) : null;
    if (key === null) {
      singles.push(t);
      continue;
    }
    const group = byKey.get(key);
    if (group) group.push(t as Subscription);
    else byKey.set(key, [t as Subscription]);
  }
  const groups: Subscription[][] = [];
  const keys: string[] = [];
  for (const [key, members] of byKey) {
    if (members.length === 1) singles.push(members[0]!);
    else {
      groups.push(members);
      keys.push(key);
    }
  }
  return { groups, keys, singles };
}
