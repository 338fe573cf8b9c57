/**
 * After a crash, the journal names the runs and holds the previous daemon owned. Before the new daemon accepts
 * any request, each is settled so that no lock is ever held by a process that no longer exists and none is
 * granted twice:
 *  - a run that never started, or whose process is gone, gets result.json `infra_fail` / `daemon_lost`;
 *  - a run whose process is still alive (same pid AND start time) is killed as a whole tree and recorded
 *    (re-adoption of --detach runs is described in docs/crash-safety.md);
 *  - holds are restored with their remaining TTL; `--ttl none` holds survive.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { DaemonCore } from './core.js';
import type { JournalState, RunRecord } from './journal.js';
import type { Logger } from './logger.js';
import { JobTree } from './process-tree.js';
import { isSameProcessAlive } from '../util/proc.js';
import { writeResult } from '../runs/result.js';
import { buildResult } from '../runs/build-result.js';
import { decideWithoutChild, NO_VERDICT_OPTIONS } from '../runs/verdict.js';
import { RESULT_FILE } from '../runs/run-files.js';
import type { ResolvedLock } from './lock-resolve.js';

async function recordLost(rec: RunRecord, how: string, log: Logger): Promise<void> {
  if (!existsSync(rec.dir) || existsSync(join(rec.dir, RESULT_FILE))) return;
  const now = Date.now();
  const waitMs = Math.max(0, (rec.started_at ?? now) - rec.queued_at);
  // The journal does not keep the run's verdict options; nobody waits for this exit code any more.
  const result = buildResult({
    runId: rec.run_id,
    verdict: decideWithoutChild('daemon_lost', NO_VERDICT_OPTIONS),
    logPath: rec.log_path,
    queuedAt: new Date(rec.queued_at),
    startTime: rec.started_at ? new Date(rec.started_at) : null,
    endTime: new Date(now),
    locks: rec.locks.map((l) => ({ name: l.name, scope: l.scope, mode: l.mode, path: l.key, wait_ms: waitMs })),
    message: `the lockd daemon that supervised this run was lost; ${how}`,
    holder: rec.holder,
  });
  try {
    await writeResult(rec.dir, result);
  } catch (e) {
    log.error('cannot record lost run', { run_id: rec.run_id, error: (e as Error).message });
  }
}

export async function reconcile(core: DaemonCore, prev: JournalState, log: Logger): Promise<void> {
  for (const rec of prev.runs.values()) {
    if (rec.pid === null || !rec.start_time) {
      await recordLost(rec, 'it had not started', log);
      continue;
    }
    if (isSameProcessAlive(rec.pid, rec.start_time)) {
      const tree = new JobTree({ pid: rec.pid, startTime: rec.start_time, runId: rec.run_id, envTag: `LOCKD_RUN_ID=${rec.run_id}` });
      await tree.kill({ graceMs: 5000, signal: 'SIGTERM' });
      await recordLost(rec, 'its process tree was still running and was stopped', log);
      log.warn('stopped a run orphaned by a lost daemon', { run_id: rec.run_id, pid: rec.pid });
    } else {
      await recordLost(rec, 'its process had already exited; its exit status could not be recovered', log);
    }
  }
  for (const h of prev.holds.values()) {
    if (h.expires_at !== null && h.expires_at <= Date.now()) {
      log.warn('hold expired while no daemon was running', { hold_id: h.hold_id });
      continue;
    }
    const locks: ResolvedLock[] = h.locks.map((l) => ({ key: l.key, name: l.name, scope: l.scope === 'cluster' ? 'global' : l.scope, mode: l.mode, ...(l.slots ? { slots: l.slots } : {}), root: null, arch: null }));
    if (core.holds.restore(h, locks)) log.info('restored hold', { hold_id: h.hold_id });
    else log.error('could not restore hold', { hold_id: h.hold_id });
  }
}
