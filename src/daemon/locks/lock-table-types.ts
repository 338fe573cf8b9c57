/** The lock table's public types: requests, grants, blockers, snapshots (lock-table.ts has the rules). */

export type LockMode = 'exclusive' | 'shared' | 'slots';

/** key = canonical lock-file path; slots = capacity, required when (and only when) mode === 'slots'. */
export interface LockClaim {
  key: string;
  mode: LockMode;
  slots?: number;
}

/**
 * COUNT members of a pool, each matching every `where` KEY=VALUE of its properties (and, with `member`, that one
 * member). Members are exclusive: a member is held by at most one request at a time.
 */
export interface PoolClaim {
  pool: string;
  count: number;
  where?: Record<string, string>;
  member?: string;
}

/** One named member of a pool; a disabled member is never granted (it stays held until its holder releases it). */
export interface PoolMember {
  name: string;
  properties: Record<string, string>;
  disabled?: boolean;
}

export interface PoolDefinition {
  name: string;
  members: PoolMember[];
}

export interface LockRequest<M = unknown> {
  /** Unique request id (a run id or hold id); unique among requests currently in the table. */
  id: string;
  /** All-or-nothing (together with `pools`); each key at most once. */
  claims: LockClaim[];
  /** Pool claims, granted all-or-nothing together with `claims`; each pool at most once. Top-level requests only. */
  pools?: PoolClaim[];
  /** Higher first; FIFO within one priority. Default 0. Orders top-level waiters only (nested ones come first anyway). */
  priority?: number;
  /** Nested request: id of a request that currently holds locks (a run whose descendant asks). */
  parent?: string;
  /** Opaque, returned in snapshots and blockers (who, command, since…). */
  meta: M;
}

export interface GrantedClaim {
  key: string;
  mode: LockMode;
  /** Present for slots claims only. */
  slotIndex?: number;
  fencingToken: number;
  /** True when granted as re-entry into a key the request's family already held. */
  nested: boolean;
  /** For a pool member (key = poolMemberKey(pool, member)): the pool and the member granted. */
  pool?: string;
  member?: string;
}

export interface Grant<M> {
  request: LockRequest<M>;
  /** In the order of `request.claims`. */
  claims: GrantedClaim[];
  grantedAt: number;
}

export type RejectCode = 'slots_mismatch' | 'deadlock' | 'duplicate_request' | 'bad_claim' | 'unknown_pool' | 'pool_unsatisfiable';

export interface Rejection {
  kind: 'rejected';
  code: RejectCode;
  message: string;
  /** For `deadlock`: the family names (top-level request ids) around the cycle, submitter's first. */
  cycle?: string[];
}

export interface Blocker<M> {
  key: string;
  /** holder: a holder entry in the way; waiter: a waiter ahead of it (or, for a held-back nested request, the waiter it yields to). */
  kind: 'holder' | 'waiter';
  requestId: string;
  meta: M;
}

export type SubmitResult<M> = { kind: 'granted'; grant: Grant<M> } | { kind: 'queued'; blockers: Blocker<M>[] } | Rejection;

export type TryResult<M> = { kind: 'granted'; grant: Grant<M> } | { kind: 'busy'; blockers: Blocker<M>[] } | Rejection;

export interface HolderSnapshot<M> {
  requestId: string;
  mode: LockMode;
  slotIndex?: number;
  fencingToken: number;
  nested: boolean;
  grantedAt: number;
  meta: M;
}

export interface WaiterSnapshot<M> {
  requestId: string;
  mode: LockMode;
  /** 1-based position on this key: nested waiters first, then top-level ones, each in arrival order. */
  position: number;
  since: number;
  nested: boolean;
  /** The request's priority; present only when it is not 0. */
  priority?: number;
  meta: M;
}

export interface LockSnapshot<M> {
  key: string;
  /** Mode in force: exclusive if any exclusive holder, else slots/shared; null when only waited on. */
  mode: LockMode | null;
  /** Slot count for slots keys, null otherwise. */
  capacity: number | null;
  /** In grant order. */
  holders: HolderSnapshot<M>[];
  /** In queue order (see WaiterSnapshot.position). */
  waiters: WaiterSnapshot<M>[];
}

export interface LockTableOptions {
  /** Clock for grantedAt / since; defaults to Date.now. */
  now?: () => number;
  /** Last fencing token per key, as recovered from the journal. */
  initialFencing?: Record<string, number>;
  /** How many waiters ahead to list per key in blockers (holders are always all listed). Default 8. */
  maxWaiterBlockersPerKey?: number;
  /** The pools requests may claim members of (setPools replaces them later). */
  pools?: PoolDefinition[];
}

/** What setPools changed: requests granted now, and waiters that no longer have enough members to ever be granted. */
export interface PoolsChange<M> {
  grants: Grant<M>[];
  unsatisfiable: string[];
}

/** The lock-table key of one pool member. Lock keys are absolute paths or cluster keys, so `pool:` cannot collide. */
export function poolMemberKey(pool: string, member: string): string {
  return `pool:${pool}/${member}`;
}
