/** The result.json of a run whose daemon was lost: written by reconcile (a run found dead) and adopt (one that died). */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { RunRecord } from './journal.js';
import type { Logger } from '../server/logger.js';
import { writeResult } from '../../runs/result.js';
import { buildResult } from '../../runs/build-result.js';
import { decideWithoutChild, NO_VERDICT_OPTIONS } from '../../runs/verdict.js';
import { RESULT_FILE } from '../../runs/run-files.js';

/** How a lost run ended: its daemon went away (the default), or a newer run superseded it after it was re-adopted. */
export type LostEnd = { reason: 'daemon_lost' } | { reason: 'superseded'; by: string };

export async function recordLost(rec: RunRecord, how: string, log: Logger, end: LostEnd = { reason: 'daemon_lost' }): Promise<void> {
  if (!existsSync(rec.dir) || existsSync(join(rec.dir, RESULT_FILE))) return;
  const now = Date.now();
  const waitMs = Math.max(0, (rec.started_at ?? now) - rec.queued_at);
  // The journal does not keep the run's verdict options; nobody waits for this exit code any more.
  const result = buildResult({
    runId: rec.run_id,
    verdict: decideWithoutChild(end.reason, NO_VERDICT_OPTIONS),
    logPath: rec.log_path,
    queuedAt: new Date(rec.queued_at),
    startTime: rec.started_at ? new Date(rec.started_at) : null,
    endTime: new Date(now),
    locks: rec.locks.map((l) => ({ name: l.name, scope: l.scope, mode: l.mode, path: l.key, wait_ms: waitMs })),
    message: end.reason === 'superseded' ? how : `the lockd daemon that supervised this run was lost; ${how}`,
    holder: rec.holder,
    ...(end.reason === 'superseded' ? { supersededBy: end.by } : {}),
  });
  try {
    await writeResult(rec.dir, result);
  } catch (e) {
    log.error('cannot record lost run', { run_id: rec.run_id, error: (e as Error).message });
  }
}
