/**
 * records/ owns what outlives a daemon: the crash journal, reconcile at start-up, re-adopting detached runs,
 * lock files with their flock(2) and `.meta`, lock-name resolution, and run-duration statistics.
 * It must not import server/ (bar the logger type), nor services/ beyond identity's UserDirectory (who owns a
 * lock directory); reconcile and adopt are given their context (ReconcileContext, AdoptContext).
 */
export { Journal } from './journal.js';
export { reconcile, type ReconcileContext } from './reconcile.js';
export { AdoptedRuns, type AdoptContext } from './adopt.js';
export { LockGuard } from './lock-guard.js';
export { resolveLocks, type ResolvedLock } from './lock-resolve.js';
