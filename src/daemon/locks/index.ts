/**
 * locks/ owns the pure lock table: requests, grant rules, fairness, nesting, slots, fencing, deadlock detection,
 * wait estimates, and the interface the cluster backend implements (cluster-port.ts).
 * It must not import anything with I/O or a clock it is not given: no node:fs, no timers, nothing from jobs/,
 * records/, services/ or server/ (types from records/lock-resolve.ts excepted).
 */
export { LockTable } from './lock-table.js';
export type { Grant, LockClaim, LockRequest, LockSnapshot } from './lock-table.js';
export type { Owner } from './owner.js';
export type { ClusterService, ClusterHost, ClusterFactory } from './cluster-port.js';
