/**
 * The periodic "still waiting" line of a `lockd run` that queues without a terminal (CI logs): CI systems kill jobs
 * that print nothing for a while, and one "waiting" line followed by 30 minutes of silence looks like a hang.
 * Pure formatting; the timer that prints it lives in commands/run.ts.
 */
import type { HolderInfo, StatusSnapshot } from '../../protocol/messages.js';
import { formatDuration, formatEstimate } from './format.js';

export interface WaitProgress {
  names: string;
  elapsedMs: number;
  position: number;
  blockers: HolderInfo[];
  /** From the daemon's status (recorded durations of past runs); null when unknown. */
  etaMs: number | null;
  /** When --wait runs out (epoch ms); null for --wait inf. */
  deadline: number | null;
  now: number;
}

function blockerText(blockers: HolderInfo[]): string {
  const b = blockers[0];
  if (!b) return 'no blocker known';
  return `behind ${b.kind} ${b.id}${b.pid ? ` (pid ${b.pid})` : ''} ${b.holder}${b.command_line ? `: ${b.command_line.slice(0, 60)}` : ''}`;
}

/** `still waiting for qemu: 2m 00s elapsed, position 1, behind run … (pid 4242) alice: make, ETA ~1m 10s, gives up in 28m 00s (at 10:42:07Z)` */
export function progressLine(p: WaitProgress): string {
  const deadline = p.deadline === null ? 'no deadline (--wait inf)' : `gives up in ${formatDuration(Math.max(0, p.deadline - p.now))} (at ${new Date(p.deadline).toISOString().slice(11, 19)}Z)`;
  return `still waiting for ${p.names}: ${formatDuration(p.elapsedMs)} elapsed, position ${p.position}, ${blockerText(p.blockers)}, ETA ${formatEstimate(p.etaMs)}, ${deadline}`;
}

/** This request's estimated wait: the longest over the locks it waits on (it needs them all); null when none is known. */
export function etaOfRequest(snapshot: StatusSnapshot, requestId: string): number | null {
  let eta: number | null = null;
  for (const lock of snapshot.locks) {
    for (const w of lock.waiters) if (w.id === requestId && w.estimated_wait_ms !== null) eta = Math.max(eta ?? 0, w.estimated_wait_ms);
  }
  return eta;
}
