/**
 * What the lock table reports: why a waiter waits (the holders in its way, the waiters ahead of it), its position in
 * line, and a key's snapshot for `lockd status`. Reads the table's state only.
 */
import type { Blocker, HolderSnapshot, LockClaim, LockMode, LockSnapshot, WaiterSnapshot } from './lock-table-types.js';
import { poolMemberKey } from './lock-table-types.js';
import { keyOf, type Entry, type KeyState, type QueueNode, type Req, type TableState } from './lock-table-state.js';
import { candidates } from './admission.js';
import { claimFits, isAncestor } from './claim-fit.js';

export function blockerIds<M>(st: TableState<M>, r: Req<M>): string[] {
  const holders: string[] = [];
  const waiters: string[] = [];
  const holdersInWay = visitBlockers(
    st,
    r,
    (_c, who) => holders.push(who.id),
    (_i, _c, who) => waiters.push(who.id),
  );
  const ids = r.nested && holdersInWay > 0 ? holders : holders.concat(waiters);
  if (r.pools.length > 0) {
    const poolHolders: string[] = [];
    const poolWaiters: string[] = [];
    visitPoolBlockers(
      st,
      r,
      (_key, who) => poolHolders.push(who.id),
      (_key, who) => poolWaiters.push(who.id),
    );
    return [...new Set(ids.concat(poolHolders, poolWaiters))];
  }
  // On one key a request is either a holder or a waiter, and each once: repeats come only from several claims.
  return r.claims.length === 1 ? ids : [...new Set(ids)];
}

/** Blockers for a waiting or would-be request (see blockersOf). */
export function blockers<M>(st: TableState<M>, r: Req<M>): Blocker<M>[] {
  const out: Blocker<M>[] = [];
  const waitersAhead: Blocker<M>[][] = r.claims.map(() => []);
  const blocker = (key: string, kind: Blocker<M>['kind'], who: Req<M>): Blocker<M> => ({
    key,
    kind,
    requestId: who.id,
    meta: who.request.meta,
  });
  const holdersInWay = visitBlockers(
    st,
    r,
    (c, who) => out.push(blocker(c.key, 'holder', who)),
    (i, c, who) => waitersAhead[i]!.push(blocker(c.key, 'waiter', who)),
  );
  // A nested request waits on holders; only a held-back one (nothing in its way) yields to waiters.
  if (r.nested && holdersInWay > 0) return out;
  const ordinary = sortByClaimOrder(r.claims, out, waitersAhead);
  if (r.pools.length === 0) return ordinary;
  const poolHolders: Blocker<M>[] = [];
  const poolWaiters: Blocker<M>[] = [];
  visitPoolBlockers(
    st,
    r,
    (key, who) => poolHolders.push(blocker(key, 'holder', who)),
    (key, who) => poolWaiters.push(blocker(key, 'waiter', who)),
  );
  return ordinary.concat(poolHolders, poolWaiters);
}

/**
 * Pool claims' blockers: the holders of its candidate members, then the waiters ahead of it on them (each request
 * once per pool claim, at most maxWaiterBlockersPerKey waiters per claim).
 */
export function visitPoolBlockers<M>(st: TableState<M>, r: Req<M>, onHolder: (key: string, who: Req<M>) => void, onWaiter: (key: string, who: Req<M>) => void): void {
  const queued = r.state === 'waiting' && st.requests.get(r.id) === r;
  r.pools.forEach((pc, i) => {
    const keys = queued ? r.memberNodes[i]!.map((n) => n.claim.key) : candidates(st, pc).map((m) => poolMemberKey(pc.pool, m.name));
    const ahead = new Set<Req<M>>();
    for (const key of keys) {
      const ks = st.keys.get(key);
      if (!ks) continue;
      for (const e of ks.holders.values()) onHolder(key, e.req);
    }
    for (const key of keys) {
      const ks = st.keys.get(key);
      if (!ks) continue;
      for (const queue of [ks.nestedQueue, ks.topQueue]) {
        for (let node = queue.head; node; node = node.next) {
          const w = node.req;
          if (w === r || ahead.size >= st.maxWaiterBlockers) break;
          if (!queued && queue === ks.topQueue && w.priority < r.priority) break;
          if (!ahead.has(w)) {
            ahead.add(w);
            onWaiter(key, w);
          }
        }
      }
    }
  });
}

/**
 * The walk behind #blockers: per claim (in claim order), the holder entries in the way, then the waiters
 * reserving the key ahead of it (at most maxWaiterBlockersPerKey per key). Returns how many holders it reported.
 */
export function visitBlockers<M>(st: TableState<M>, r: Req<M>, onHolder: (c: LockClaim, who: Req<M>) => void, onWaiter: (claimIndex: number, c: LockClaim, who: Req<M>) => void): number {
  let holdersInWay = 0;
  const max = st.maxWaiterBlockers;
  r.claims.forEach((c, i) => {
    const ks = st.keys.get(c.key);
    if (!ks) return;
    if (!claimFits(ks, c, r)) {
      // On a slots key where r's family has its slot, only the siblings in that slot are in the way.
      const inFamilySlot = c.mode === 'slots' && ks.families.has(r.family);
      for (const e of ks.holders.values()) {
        if (inFamilySlot && e.req.family !== r.family) continue;
        if (!isAncestor(e.req, r) && entryBlocks(e, c)) {
          onHolder(c, e.req);
          holdersInWay++;
        }
      }
    }
    let ahead = 0;
    if (!r.nested) {
      for (const queue of [ks.nestedQueue, ks.topQueue]) {
        for (let node = queue.head; node; node = node.next) {
          if (node.req === r || ahead >= max) break;
          onWaiter(i, c, node.req);
          ahead++;
        }
      }
    } else {
      for (let node = ks.nestedQueue.head; node; node = node.next) {
        if (ahead >= max) break;
        const w = node.req;
        if (w !== r && w.family !== r.family && claimsCompete(c, node.claim)) {
          onWaiter(i, c, w);
          ahead++;
        }
      }
    }
  });
  return holdersInWay;
}

/** Does holder entry e (of another family) stand in the way of claim c? Called only when c does not fit. */
export function entryBlocks<M>(e: Entry<M>, c: LockClaim): boolean {
  switch (c.mode) {
    case 'exclusive':
      return true;
    case 'shared':
      return e.mode === 'exclusive';
    case 'slots':
      return true; // a full key: any occupant leaving would do
  }
}

export function positionOf<M>(st: TableState<M>, node: QueueNode<M>): number {
  const ks = keyOf(st, node);
  let pos = node.req.nested ? 0 : ks.nestedQueue.size;
  // The newest waiter (what 'queued' asks about, right after submit) is the tail: no walk, so queueing N waiters
  // on one key costs O(N), not O(N²).
  if (node === node.queue.tail) return pos + node.queue.size;
  for (let n: QueueNode<M> | null = node; n; n = n.prev) pos++;
  return pos;
}

export function snapshotOf<M>(ks: KeyState<M>): LockSnapshot<M> {
  const holders: HolderSnapshot<M>[] = [];
  for (const e of ks.holders.values()) {
    const h: HolderSnapshot<M> = {
      requestId: e.req.id,
      mode: e.mode,
      fencingToken: e.fencingToken,
      nested: e.nested,
      grantedAt: e.grantedAt,
      meta: e.req.request.meta,
    };
    if (e.slotIndex !== undefined) h.slotIndex = e.slotIndex;
    holders.push(h);
  }
  const waiters: WaiterSnapshot<M>[] = [];
  for (const queue of [ks.nestedQueue, ks.topQueue]) {
    for (const node of queue) {
      const w: WaiterSnapshot<M> = {
        requestId: node.req.id,
        mode: node.claim.mode,
        position: waiters.length + 1,
        since: node.req.since,
        nested: node.req.nested,
        meta: node.req.request.meta,
      };
      if (node.req.priority !== 0) w.priority = node.req.priority;
      waiters.push(w);
    }
  }
  let mode: LockMode | null = null;
  if (ks.holders.size > 0) mode = ks.exclusiveCount > 0 ? 'exclusive' : ks.capacity !== null ? 'slots' : 'shared';
  return { key: ks.key, mode, capacity: ks.capacity, holders, waiters };
}

/** Two waiting claims on one key where granting either may block the other. */
function claimsCompete(a: LockClaim, b: LockClaim): boolean {
  return a.mode === 'exclusive' || b.mode === 'exclusive' || (a.mode === 'slots' && b.mode === 'slots');
}

/** Holder blockers are already in claim order; interleave each claim's waiter blockers after its holders. */
function sortByClaimOrder<M>(claims: readonly LockClaim[], holders: Blocker<M>[], waiters: Blocker<M>[][]): Blocker<M>[] {
  const out: Blocker<M>[] = [];
  let h = 0;
  claims.forEach((c, i) => {
    while (h < holders.length && holders[h]!.key === c.key) out.push(holders[h++]!);
    out.push(...waiters[i]!);
  });
  return out;
}
