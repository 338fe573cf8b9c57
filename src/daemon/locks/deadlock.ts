/**
 * Deadlock detection between families (the lock-table.ts header states the rule): would a new waiter, or granting a
 * nested waiter, leave some families stuck for good, and which cycle shows it. Reads the table's state only.
 */
import type { LockClaim, Rejection } from './lock-table-types.js';
import type { BlockGroup, Family, KeyState, Req, TableState, VirtualGrant } from './lock-table-state.js';

/** Would granting nested request r now leave some families stuck for good? */
export function grantWouldDeadlock<M>(st: TableState<M>, r: Req<M>): boolean {
  // Only another family's nested waiter that r's new entries would block can get stuck;
  // without one, granting r only removes wait-for edges.
  let someoneBlocked = false;
  for (const c of r.claims) {
    const ks = st.keys.get(c.key);
    if (!ks) continue;
    for (const node of ks.nestedQueue) {
      const w = node.req;
      if (w !== r && w.family !== r.family && newEntryWouldBlock(ks, c, r.family, node.claim, w.family)) {
        someoneBlocked = true;
        break;
      }
    }
    if (someoneBlocked) break;
  }
  if (!someoneBlocked) return false;
  const byKey = new Map(r.claims.map((c) => [c.key, c] as const));
  return findDeadlock(st, { virtualGrant: { req: r, byKey } }, r.family) !== null;
}

export function newEntryWouldBlock<M>(ks: KeyState<M>, mine: LockClaim, myFamily: Family, theirs: LockClaim, theirFamily: Family): boolean {
  switch (theirs.mode) {
    case 'exclusive':
      return true;
    case 'shared':
      return mine.mode === 'exclusive';
    case 'slots':
      return !ks.families.has(theirFamily) && !ks.families.has(myFamily) && ks.families.size + 1 >= ks.capacity!;
  }
}

/**
 * Families that could never proceed in the current state, modified by one hypothetical
 * change (an extra waiter, or a waiter granted). Reduction: a family is free when it has
 * no blocked nested waiter, or when every blocked waiter's blockers are free ('all'
 * groups) or include a free one ('any' groups); repeat until nothing changes. Whatever
 * remains is deadlocked; returns a cycle through `focus` (or any cycle), else null.
 */
export function findDeadlock<M>(st: TableState<M>, change: { extraWaiter?: Req<M>; virtualGrant?: VirtualGrant<M> }, focus: Family): string[] | null {
  const waiters = [...st.nestedWaiting];
  if (change.extraWaiter) waiters.push(change.extraWaiter);
  const blockedBy = new Map<Family, BlockGroup[]>();
  for (const w of waiters) {
    if (w === change.virtualGrant?.req) continue;
    for (const c of w.claims) {
      const group = blockGroup(st, c, w.family, change.virtualGrant);
      if (!group) continue;
      let groups = blockedBy.get(w.family);
      if (!groups) blockedBy.set(w.family, (groups = []));
      groups.push(group);
    }
  }
  const stuck = new Set(blockedBy.keys());
  const satisfied = (g: BlockGroup): boolean => (g.need === 'all' ? g.families.every((f) => !stuck.has(f)) : g.families.some((f) => !stuck.has(f)));
  for (let changed = true; changed; ) {
    changed = false;
    for (const f of stuck) {
      if (blockedBy.get(f)!.every(satisfied)) {
        stuck.delete(f);
        changed = true;
      }
    }
  }
  if (stuck.size === 0) return null;

  const next = new Map<Family, Family[]>();
  for (const f of stuck) {
    const targets = new Set<Family>();
    for (const g of blockedBy.get(f)!) {
      if (!satisfied(g)) for (const h of g.families) if (stuck.has(h)) targets.add(h);
    }
    next.set(f, [...targets]);
  }
  return cycleThrough(next, stuck.has(focus) ? focus : stuck.values().next().value!).map((f) => f.name);
}

/** Which families block `claim` of `family` (with a hypothetical grant's entries added), or null. */
export function blockGroup<M>(st: TableState<M>, claim: LockClaim, family: Family, virtual: VirtualGrant<M> | undefined): BlockGroup | null {
  const ks = st.keys.get(claim.key);
  const vClaim = virtual?.byKey.get(claim.key);
  const vFamily = vClaim ? virtual!.req.family : undefined;
  const families: Family[] = [];
  switch (claim.mode) {
    case 'exclusive':
    case 'shared': {
      if (ks) {
        for (const [f, tally] of ks.families) {
          if (f !== family && (claim.mode === 'exclusive' || tally.exclusive > 0)) families.push(f);
        }
      }
      if (vFamily && vFamily !== family && (claim.mode === 'exclusive' || vClaim!.mode === 'exclusive')) {
        if (!families.includes(vFamily)) families.push(vFamily);
      }
      return families.length > 0 ? { need: 'all', families } : null;
    }
    case 'slots': {
      if (ks?.families.has(family) || vFamily === family) return null;
      if (ks) families.push(...ks.families.keys());
      if (vFamily && !families.includes(vFamily)) families.push(vFamily);
      const capacity = ks?.capacity ?? claim.slots!;
      return families.length >= capacity ? { need: 'any', families } : null;
    }
  }
}

export function deadlockRejection<M>(r: Req<M>, cycle: string[]): Rejection {
  const loop = [...cycle, cycle[0]].join(' → ');
  return {
    kind: 'rejected',
    code: 'deadlock',
    message: `deadlock: request ${r.id} (under run ${r.family.name}) would wait in a cycle where each run waits for the next: ${loop}`,
    cycle,
  };
}

/**
 * A cycle in `next` (every node has a successor) through `start` if there is one, else the
 * cycle reached by walking from `start`. Listed from its first node, without repeating it.
 */
function cycleThrough<T>(next: Map<T, T[]>, start: T): T[] {
  // Breadth-first from start's successors back to start: the shortest cycle through it.
  const parent = new Map<T, T>();
  const queue: T[] = [];
  for (const s of next.get(start) ?? []) {
    if (s === start) return [start];
    if (!parent.has(s)) {
      parent.set(s, start);
      queue.push(s);
    }
  }
  for (let i = 0; i < queue.length; i++) {
    const n = queue[i]!;
    for (const s of next.get(n) ?? []) {
      if (s === start) {
        const path: T[] = [];
        for (let p: T = n; p !== start; p = parent.get(p)!) path.push(p);
        return [start, ...path.reverse()];
      }
      if (!parent.has(s)) {
        parent.set(s, n);
        queue.push(s);
      }
    }
  }
  // start only leads into a cycle elsewhere: walk until a node repeats.
  const seenAt = new Map<T, number>();
  const walk: T[] = [];
  for (let n: T = start; !seenAt.has(n); n = next.get(n)![0]!) {
    seenAt.set(n, walk.length);
    walk.push(n);
  }
  const repeat = next.get(walk[walk.length - 1]!)![0]!;
  return walk.slice(seenAt.get(repeat));
}
