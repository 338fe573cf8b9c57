/**
 * After a pool change, runs still queued for members that no longer exist end at once (reason pool_gone, exit 2)
 * instead of waiting forever. Members that were only disabled still exist: their waiters keep their place and get
 * them when they are enabled again (a board in repair comes back; a removed one does not).
 */
import type { PoolRef } from '../../protocol/messages.js';
import type { RawPool } from './pools-overlay.js';

/** Why `refs` can never be granted with `pools` (counting disabled members as coming back), or null. */
export function whyHopeless(refs: PoolRef[], pools: Record<string, RawPool>): string | null {
  for (const r of refs) {
    const p = pools[r.pool];
    if (!p) return `pool ${r.pool} was removed while this run waited for it`;
    if (r.member !== null && !(r.member in p.members)) return `member ${r.pool}/${r.member} was removed while this run waited for it`;
    const matching = Object.entries(p.members).filter(([name, props]) => (r.member === null || name === r.member) && Object.entries(r.where).every(([k, v]) => props[k] === v));
    if (matching.length < r.count) {
      return `pool ${r.pool} changed while this run waited: ${r.count} wanted, ${matching.length} member(s) match now${matching.length > 0 ? ` (${matching.map(([n]) => n).join(', ')})` : ''}`;
    }
  }
  return null;
}

export interface QueuedPoolRun {
  readonly state: string;
  readonly req: { pools?: PoolRef[] };
  cancelQueued(reason: 'pool_gone', message: string): Promise<void>;
}

export function endHopelessWaiters(runs: Iterable<QueuedPoolRun>, pools: Record<string, RawPool>): void {
  for (const job of runs) {
    if (job.state !== 'queued' || !job.req.pools?.length) continue;
    const why = whyHopeless(job.req.pools, pools);
    if (why) void job.cancelQueued('pool_gone', why);
  }
}
