/**
 * Estimated waits of queued requests, for their progress lines (`lockd run` without a terminal prints one every
 * --progress-interval): the same estimate `lockd status` shows per waiter, the longest over the request's locks.
 * One pass over the table at most once a second, however many waiting runs ask, so ten thousand CI callers cost
 * one status-sized walk a second, not one each.
 */
import type { LockTable } from '../locks/lock-table.js';
import type { Owner } from '../locks/owner.js';
import type { DurationStats } from '../records/duration-stats.js';
import { snapshotEtas } from '../locks/wait-estimate.js';

const FRESH_MS = 1000;

export class WaitEtas {
  private builtAt = Number.NEGATIVE_INFINITY;
  private byId = new Map<string, number>();

  constructor(
    private readonly table: LockTable<Owner>,
    private readonly durations: Pick<DurationStats, 'typical'>,
    private readonly now: () => number = Date.now,
  ) {}

  /** ms until the request is expected to be granted; null when unknown (no recorded runs, an explicit hold ahead). */
  of(requestId: string): number | null {
    const now = this.now();
    if (now - this.builtAt >= FRESH_MS) this.rebuild(now);
    return this.byId.get(requestId) ?? null;
  }

  private rebuild(now: number): void {
    this.builtAt = now;
    this.byId = new Map();
    for (const snap of this.table.snapshot()) {
      if (snap.waiters.length === 0) continue;
      const etas = snapshotEtas(snap, this.durations.typical(snap.key), now, (o) => o.kind === 'run');
      for (let i = 0; i < snap.waiters.length; i++) {
        const eta = etas[i];
        if (eta === null || eta === undefined) continue;
        const id = snap.waiters[i]!.requestId;
        this.byId.set(id, Math.max(this.byId.get(id) ?? 0, eta));
      }
    }
  }
}
