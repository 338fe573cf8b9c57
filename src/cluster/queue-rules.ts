/**
 * When a cluster request may hold its lock: FIFO by create revision, like etcd's mutex recipe, extended to shared
 * and slots. A request looks only at the keys created before its own (earlier revision), so the wait-for relation
 * always points to older requests and can never form a cycle, also across several locks: a multi-lock request
 * creates all its keys in one transaction, at one revision.
 *
 * - exclusive: no earlier key at all (exactly etcd's mutex: "I am the oldest key").
 * - shared: every earlier key is shared (an earlier exclusive waiter keeps later shared ones out: no starvation).
 * - slots N: every earlier key is a slots key and fewer than N of them exist (the oldest N keys hold).
 * A key that is not lockd's (e.g. `etcdctl lock`'s, with an empty value) counts as exclusive.
 */
import type { LockMode } from '../protocol/messages.js';

export interface QueueEntry {
  key: string;
  createRevision: number;
  mode: LockMode;
  /** Capacity for slots keys; null otherwise. */
  slots: number | null;
}

export interface Claim {
  mode: LockMode;
  slots: number | null;
}

/** May a request with this claim hold, given the keys created before it (any order)? */
export function grantable(mine: Claim, earlier: Iterable<QueueEntry>): boolean {
  let count = 0;
  for (const e of earlier) {
    count++;
    switch (mine.mode) {
      case 'exclusive':
        return false;
      case 'shared':
        if (e.mode !== 'shared') return false;
        break;
      case 'slots':
        if (e.mode !== 'slots') return false;
        break;
    }
  }
  if (mine.mode === 'slots') return count < (mine.slots ?? 1);
  return true;
}

/** Earlier entries that keep this claim waiting (what status and "waiting behind" lines show). */
export function blockingEntries<T extends QueueEntry>(mine: Claim, earlier: T[]): T[] {
  if (grantable(mine, earlier)) return [];
  switch (mine.mode) {
    case 'exclusive':
      return earlier;
    case 'shared':
      return earlier.filter((e) => e.mode !== 'shared');
    case 'slots': {
      const foreign = earlier.filter((e) => e.mode !== 'slots');
      return foreign.length ? foreign : earlier;
    }
  }
}

/**
 * Split one lock's queue (sorted by create revision) into holders and waiters by the same rules every host applies.
 * A holder here is "may hold now": a request that has just become grantable and is still taking its local locks
 * is shown as a holder.
 */
export function classifyQueue<T extends QueueEntry>(sorted: T[]): { holders: T[]; waiters: T[] } {
  const holders: T[] = [];
  const waiters: T[] = [];
  for (let i = 0; i < sorted.length; i++) {
    const e = sorted[i]!;
    if (grantable({ mode: e.mode, slots: e.slots }, sorted.slice(0, i))) holders.push(e);
    else waiters.push(e);
  }
  return { holders, waiters };
}
