/** The lock table's public types: requests, grants, blockers, snapshots (lock-table.ts has the rules). */

export type LockMode = 'exclusive' | 'shared' | 'slots';

/** key = canonical lock-file path; slots = capacity, required when (and only when) mode === 'slots'. */
export interface LockClaim {
  key: string;
  mode: LockMode;
  slots?: number;
}

export interface LockRequest<M = unknown> {
  /** Unique request id (a run id or hold id); unique among requests currently in the table. */
  id: string;
  /** All-or-nothing; each key at most once. */
  claims: LockClaim[];
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
}

export interface Grant<M> {
  request: LockRequest<M>;
  /** In the order of `request.claims`. */
  claims: GrantedClaim[];
  grantedAt: number;
}

export type RejectCode = 'slots_mismatch' | 'deadlock' | 'duplicate_request' | 'bad_claim';

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
}
