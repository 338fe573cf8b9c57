/**
 * Which members a cluster pool request may take, decided by every host on the same snapshot of the pool's keys with
 * the rule the local lock table uses (docs/architecture.md, "Pools"):
 *
 *   A later request never takes a member that an earlier waiter could be granted with; a later request that needs
 *   only members no earlier waiter can use goes ahead (backfill). Order: priority (higher first), then the create
 *   revision of the queue entry (arrival).
 *
 * So a request may take COUNT of its candidates (enabled members matching its --where / --member, with no holder)
 * on which no waiter ahead of it is queued; a waiter is "queued on" every candidate it has. Members are chosen in
 * the definition's order, so every host makes the same choice. Pure: no etcd here.
 */

export interface PoolDefView {
  members: Record<string, Record<string, string>>;
  disabled: Record<string, string>;
}

export interface PoolWaiter {
  /** The queue key; unique. */
  key: string;
  createRevision: number;
  priority: number;
  count: number;
  where: Record<string, string>;
  member: string | null;
}

/** Order of the queue: priority desc, then create revision asc. */
export function ahead(a: PoolWaiter, b: PoolWaiter): boolean {
  if (a.priority !== b.priority) return a.priority > b.priority;
  return a.createRevision < b.createRevision;
}

/** Enabled members that match the request, in the definition's order. */
export function candidatesOf(def: PoolDefView, w: Pick<PoolWaiter, 'where' | 'member'>): string[] {
  return Object.entries(def.members)
    .filter(([name, props]) => !(name in def.disabled) && (w.member === null || name === w.member) && Object.entries(w.where).every(([k, v]) => props[k] === v))
    .map(([name]) => name);
}

/**
 * The members `mine` may take now, or null when it must wait. `waiters` is every queue entry of the pool (mine
 * included or not); `held` the members that have a holder.
 */
export function choose(def: PoolDefView, waiters: Iterable<PoolWaiter>, held: ReadonlySet<string>, mine: PoolWaiter): string[] | null {
  const reserved = new Set<string>();
  for (const w of waiters) {
    if (w.key === mine.key || !ahead(w, mine)) continue;
    for (const m of candidatesOf(def, w)) reserved.add(m);
  }
  const free = candidatesOf(def, mine).filter((m) => !held.has(m) && !reserved.has(m));
  return free.length >= mine.count ? free.slice(0, mine.count) : null;
}

/** 1-based place of `mine` among the waiters that share a candidate with it (what `queued` reports). */
export function positionOf(def: PoolDefView, waiters: Iterable<PoolWaiter>, mine: PoolWaiter): number {
  const wanted = new Set(candidatesOf(def, mine));
  let n = 1;
  for (const w of waiters) {
    if (w.key !== mine.key && ahead(w, mine) && candidatesOf(def, w).some((m) => wanted.has(m))) n++;
  }
  return n;
}
