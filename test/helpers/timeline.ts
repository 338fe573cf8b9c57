/**
 * Proof of mutual exclusion from the jobs' side: each job appends `S <ns> <run id> <slots…>` when it starts and
 * `E <ns> <run id>` when it ends (`date +%s%N`, O_APPEND lines are atomic), and the checker sweeps the
 * intervals per lock. A job's [S, E] lies inside its grant, so an overlap the modes do not allow is a lock
 * granted twice. Runs that were killed have no E: their result.json end time (taken once the tree is gone, and
 * before the lock is handed on for everything but re-adopted runs) closes the interval instead.
 */
import { readFileSync, existsSync } from 'node:fs';

export type Mode = 'exclusive' | 'shared' | 'slots';

export interface Claim {
  lock: string;
  mode: Mode;
  /** slots capacity */
  slots?: number;
}

export interface Interval {
  runId: string;
  start: bigint;
  end: bigint;
  claims: Claim[];
  /** slot index per slots lock, as the job saw it (LOCKD_SLOT_<name>) */
  slotOf: Record<string, number>;
}

/** The job's shell snippet: start line, the work, end line. `slotLocks` are echoed so slot reuse can be checked. */
export function timelineScript(file: string, work: string, slotLocks: string[] = []): string {
  const slots = slotLocks.map((n) => `${n}=$LOCKD_SLOT_${n}`).join(' ');
  return `echo "S $(date +%s%N) $LOCKD_RUN_ID ${slots}" >> ${file}; ${work}; echo "E $(date +%s%N) $LOCKD_RUN_ID" >> ${file}`;
}

export interface ParsedTimeline {
  starts: Map<string, { at: bigint; slotOf: Record<string, number> }>;
  ends: Map<string, bigint>;
}

export function parseTimeline(file: string): ParsedTimeline {
  const starts = new Map<string, { at: bigint; slotOf: Record<string, number> }>();
  const ends = new Map<string, bigint>();
  if (!existsSync(file)) return { starts, ends };
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const parts = line.trim().split(/\s+/);
    if (parts.length < 3 || !/^\d+$/.test(parts[1]!)) continue;
    if (parts[0] === 'S') {
      const slotOf: Record<string, number> = {};
      for (const kv of parts.slice(3)) {
        const [k, v] = kv.split('=');
        if (k && v && /^\d+$/.test(v)) slotOf[k] = Number(v);
      }
      starts.set(parts[2]!, { at: BigInt(parts[1]!), slotOf });
    } else if (parts[0] === 'E') ends.set(parts[2]!, BigInt(parts[1]!));
  }
  return { starts, ends };
}

export const msToNs = (ms: number): bigint => BigInt(ms) * 1_000_000n;

/**
 * Every violation of the lock modes: two exclusive holders, exclusive with shared, more slot holders than
 * slots, or one slot index used twice at once. Empty when the history is correct.
 */
export function violations(intervals: Interval[]): string[] {
  const out: string[] = [];
  const byLock = new Map<string, Array<{ iv: Interval; claim: Claim }>>();
  for (const iv of intervals) {
    for (const c of iv.claims) {
      const list = byLock.get(c.lock) ?? [];
      list.push({ iv, claim: c });
      byLock.set(c.lock, list);
    }
  }
  for (const [lock, list] of byLock) {
    // Sweep: at each start, who else is inside? (Ends are inclusive: touching intervals count as overlapping
    // only if they share an instant, which two real holders one after the other never do at ns resolution.)
    const events = list.flatMap(({ iv, claim }) => [
      { t: iv.start, kind: 1 as const, iv, claim },
      { t: iv.end, kind: -1 as const, iv, claim },
    ]);
    events.sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : a.kind - b.kind));
    const inside = new Map<string, { iv: Interval; claim: Claim }>();
    for (const e of events) {
      if (e.kind === -1) {
        inside.delete(e.iv.runId);
        continue;
      }
      inside.set(e.iv.runId, { iv: e.iv, claim: e.claim });
      const now = [...inside.values()];
      const ex = now.filter((x) => x.claim.mode === 'exclusive');
      const sh = now.filter((x) => x.claim.mode === 'shared');
      const sl = now.filter((x) => x.claim.mode === 'slots');
      if (ex.length > 1 || (ex.length === 1 && sh.length > 0)) out.push(`${lock}: ${now.map((x) => `${x.iv.runId}(${x.claim.mode})`).join(', ')} overlap`);
      if (sl.length > 0) {
        const cap = sl[0]!.claim.slots ?? 1;
        if (sl.length > cap) out.push(`${lock}: ${sl.length} holders of ${cap} slots at once`);
        const used = new Map<number, string>();
        for (const x of sl) {
          const slot = x.iv.slotOf[x.claim.lock];
          if (slot === undefined) continue;
          if (used.has(slot)) out.push(`${lock}: slot ${slot} used by ${used.get(slot)} and ${x.iv.runId} at once`);
          used.set(slot, x.iv.runId);
        }
      }
    }
  }
  return out;
}
