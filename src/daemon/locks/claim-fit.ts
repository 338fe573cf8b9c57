/**
 * Whether a claim fits beside a key's current holders: the mode rules (exclusive, shared, slots) with a request's
 * ancestors transparent to it (nesting, lock-table.ts header). Pure.
 */
import type { LockClaim } from './lock-table-types.js';
import type { KeyState, Req } from './lock-table-state.js';

/**
 * Could this claim of r coexist with the key's current holders? r's ancestors (the requests it is nested under,
 * transitively) are transparent to it: it re-enters what they hold. Every other holder counts by its mode, a
 * sibling in the same family included. A family still takes one slot of a slots key: r shares it only when
 * nobody but its ancestors occupies it.
 */
export function claimFits<M>(ks: KeyState<M>, claim: LockClaim, r: Req<M>): boolean {
  const tally = ks.families.get(r.family);
  let ancestors = 0;
  let ancestorsExclusive = 0;
  if (tally) {
    for (let p = r.parentReq; p; p = p.parentReq) {
      const e = ks.holders.get(p);
      if (!e) continue;
      ancestors++;
      if (e.mode === 'exclusive') ancestorsExclusive++;
    }
  }
  switch (claim.mode) {
    case 'exclusive':
      return ks.holders.size === ancestors;
    case 'shared':
      return ks.exclusiveCount === ancestorsExclusive;
    case 'slots':
      return tally !== undefined ? tally.entries === ancestors : ks.families.size < ks.capacity!;
  }
}

/** Is `a` one of the requests r is nested under (transitively)? */
export function isAncestor<M>(a: Req<M>, r: Req<M>): boolean {
  for (let p = r.parentReq; p; p = p.parentReq) if (p === a) return true;
  return false;
}
