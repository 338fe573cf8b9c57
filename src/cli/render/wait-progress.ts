/**
 * The periodic "still waiting" line of a `lockd run` that queues without a terminal (CI logs): CI systems kill jobs
 * that print nothing for a while, and one "waiting" line followed by 30 minutes of silence looks like a hang.
 * Pure formatting; the timer that prints it lives in commands/run.ts.
 */
import type { HolderInfo, StatusSnapshot } from '../../protocol/messages.js';
import { formatDuration, formatEstimate } from './format.js';
import { BLOCKER_COMMAND, BLOCKER_COMMAND_MAX, BLOCKER_PID, BLOCKER_TEXT, RUN_TEXT, fill } from '../../client/run-text.js';

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
  if (!b) return RUN_TEXT.progress_no_blocker;
  const pid = b.pid ? fill(BLOCKER_PID, { pid: b.pid }) : '';
  const command = b.command_line ? fill(BLOCKER_COMMAND, { command: b.command_line.slice(0, BLOCKER_COMMAND_MAX) }) : '';
  return fill(BLOCKER_TEXT, { kind: b.kind, id: b.id, pid, holder: b.holder, command }).trimStart();
}

/** `still waiting for qemu: 2m 00s elapsed, position 1, behind run … (pid 4242) alice: make, ETA ~1m 10s, gives up in 28m 00s (at 10:42:07Z)` */
export function progressLine(p: WaitProgress): string {
  const deadline =
    p.deadline === null
      ? RUN_TEXT.progress_no_deadline
      : fill(RUN_TEXT.progress_deadline, { left: formatDuration(Math.max(0, p.deadline - p.now)), clock: new Date(p.deadline).toISOString().slice(11, 19) });
  return fill(RUN_TEXT.progress, { names: p.names, elapsed: formatDuration(p.elapsedMs), position: p.position, blocker: blockerText(p.blockers), eta: formatEstimate(p.etaMs), deadline });
}

/** This request's estimated wait: the longest over the locks it waits on (it needs them all); null when none is known. */
export function etaOfRequest(snapshot: StatusSnapshot, requestId: string): number | null {
  let eta: number | null = null;
  for (const lock of snapshot.locks) {
    for (const w of lock.waiters) if (w.id === requestId && w.estimated_wait_ms !== null) eta = Math.max(eta ?? 0, w.estimated_wait_ms);
  }
  return eta;
}
