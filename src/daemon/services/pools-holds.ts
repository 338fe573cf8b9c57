/**
 * Pools for explicit holds (`lockd acquire --pool boards --member rpi4-a --ttl 7200`: reserve a named board, the
 * Lager way). A hold's members are added to its locks once granted, so everything a hold does with its locks
 * (journal, .meta, release, restore after a restart) covers them unchanged.
 */
import type { AcquireRequest } from '../../protocol/messages.js';
import { toPoolClaim } from '../jobs/job-members.js';
import type { GrantedClaim, Grant, LockTable, PoolClaim } from '../locks/lock-table.js';
import type { Owner } from '../locks/owner.js';
import type { ResolvedLock } from '../records/lock-resolve.js';

/** The lock-table fields of an acquire's pools and priority (none when it has neither). */
export function poolClaimsOf(req: AcquireRequest): { pools?: PoolClaim[]; priority?: number } {
  return { ...(req.pools?.length ? { pools: req.pools.map(toPoolClaim) } : {}), ...(req.priority ? { priority: req.priority } : {}) };
}

/** A grant's members as locks: exclusive, on their member lock files, named POOL/MEMBER. */
export function memberLocksOf(grant: Grant<Owner>): ResolvedLock[] {
  return grant.claims.filter((c) => c.member !== undefined).map((c) => ({ key: c.key, name: `${c.pool}/${c.member}`, scope: 'local', mode: 'exclusive', root: null, arch: null }));
}

/** The pool, member and properties of a member claim, for the `acquired` reply. */
export function memberInfo(table: LockTable<Owner>, c: GrantedClaim): { pool: string; member: string; properties: Record<string, string> } {
  const props =
    table
      .pools()
      .find((d) => d.name === c.pool)
      ?.members.find((m) => m.name === c.member)?.properties ?? {};
  return { pool: c.pool!, member: c.member!, properties: { ...props } };
}
