/**
 * After a crash, the journal names the runs and holds the previous daemon owned. Before the new daemon accepts
 * any request, each is settled so that no lock is ever held by a process that no longer exists and none is
 * granted twice (docs/crash-safety.md has the whole story):
 *  - a run that never started, or whose process tree is gone, gets result.json `infra_fail` / `daemon_lost`;
 *    stragglers of its tree (found by process group, cgroup and the LOCKD_RUN_ID env tag) are killed first —
 *    including those of a run that was spawned but not yet journaled as started when the daemon died;
 *  - a live --detach run (same pid AND start time) is re-adopted: its locks are granted again and it is watched
 *    until its tree exits (adopt.ts);
 *  - a live attached run lost its client with the old daemon's socket: its whole tree is killed and recorded;
 *  - holds are restored with their remaining TTL; `--ttl none` holds survive.
 * Settling never throws: one bad record is logged and the others are still settled.
 */
import { existsSync, renameSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { HoldRecord, JournalState, RunRecord } from './journal.js';
import type { Logger } from '../server/logger.js';
import { JobTree } from '../jobs/process-tree.js';
import { isSameProcessAlive, listProcesses, compareStartTimes, isExitedState, type ProcessEntry } from '../../util/proc.js';
import { readResult } from '../../runs/result.js';
import { RESULT_FILE } from '../../runs/run-files.js';
import { resolvedFromJournal, type AdoptedRuns } from './adopt.js';
import { recordLost } from './lost-run.js';
import type { JournalSink } from '../ports.js';
import type { LockGuard } from './lock-guard.js';
import type { ResolvedLock } from './lock-resolve.js';
import { readMeta, removeMeta } from './lock-files.js';
import { isLockdError } from '../../util/errors.js';

/** What reconcile did, for the daemon log and the tests. */
export interface ReconcileReport {
  /** Runs recorded `daemon_lost` whose tree was already gone (or never started). */
  lost: string[];
  /** Live runs whose trees were killed (attached runs; detached ones that could not be re-adopted). */
  stopped: string[];
  /** Live --detach runs taken over. */
  adopted: string[];
  holdsRestored: string[];
  holdsDropped: string[];
}

/** Grace between SIGTERM and SIGKILL for trees stopped at start-up (no --kill-after is journaled). */
const RECONCILE_GRACE_MS = 5000;

function stamp(now: Date): string {
  return now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

/** A result.json that cannot be parsed is moved aside (result.json.corrupt-<time>) so a true one can be written. */
export async function setAsideCorruptResult(dir: string, log: Logger): Promise<string | null> {
  try {
    await readResult(dir);
    return null;
  } catch (e) {
    if (!isLockdError(e, 'corrupt_run_file')) return null;
    const aside = join(dir, `${RESULT_FILE}.corrupt-${stamp(new Date())}`);
    try {
      renameSync(join(dir, RESULT_FILE), aside);
      log.warn('a corrupt result.json was set aside', { dir, moved_to: aside });
      return aside;
    } catch {
      return null;
    }
  }
}

/**
 * One pass over the process table: every live process whose environment carries `LOCKD_RUN_ID=<id>` for one of
 * `ids` (the tag every process of a run inherits). Finds the tree of a run spawned just before the daemon died,
 * whose pid never reached the journal. Processes of other users are skipped (environ is not readable).
 */
export async function taggedProcesses(ids: ReadonlySet<string>): Promise<Map<string, ProcessEntry[]>> {
  const out = new Map<string, ProcessEntry[]>();
  if (ids.size === 0 || process.platform !== 'linux') return out;
  const needle = Buffer.from('LOCKD_RUN_ID=');
  const table = (await listProcesses()).filter((e) => e.pid > 1 && e.pid !== process.pid && !isExitedState(e.state));
  await Promise.all(
    table.map(async (e) => {
      let env: Buffer;
      try {
        env = await readFile(`/proc/${e.pid}/environ`);
      } catch {
        return;
      }
      for (let at = env.indexOf(needle); at !== -1; at = env.indexOf(needle, at + 1)) {
        if (at !== 0 && env[at - 1] !== 0) continue; // a variable's value, not its start
        const end = env.indexOf(0, at);
        const id = env.subarray(at + needle.length, end === -1 ? env.length : end).toString('utf8');
        if (ids.has(id)) {
          const list = out.get(id);
          if (list) list.push(e);
          else out.set(id, [e]);
        }
        break;
      }
    }),
  );
  return out;
}

/** Parents before their nested children, so a nested run is re-granted into its parent's family. */
function parentsFirst(recs: RunRecord[]): RunRecord[] {
  const pending = new Map(recs.map((r) => [r.run_id, r]));
  const out: RunRecord[] = [];
  while (pending.size > 0) {
    const before = pending.size;
    for (const r of [...pending.values()]) {
      if (r.parent === null || !pending.has(r.parent)) {
        out.push(r);
        pending.delete(r.run_id);
      }
    }
    if (pending.size === before) {
      // A parent cycle can only come from a damaged journal: take the rest as they are.
      out.push(...pending.values());
      break;
    }
  }
  return out;
}

/**
 * Kill whatever is left of a run's tree; true when anything was found. `tagged` says whether the start-up scan
 * saw processes carrying the run's env tag: with none, an empty process group and cgroup (two cheap checks) mean
 * nothing is left, without a process-table scan per record.
 */
async function killTree(tree: JobTree, log: Logger, runId: string, tagged: boolean): Promise<boolean> {
  if (tree.groupEmptySync() && (!tagged || (await tree.isEmpty()))) return false;
  const res = await tree.kill({ graceMs: RECONCILE_GRACE_MS, signal: 'SIGTERM' });
  if (res.remaining > 0) log.error('processes of a lost run survived SIGKILL', { run_id: runId, remaining: res.remaining });
  return true;
}

/** A `.meta` the old daemon left for this run is stale once the run is settled (unless a live holder rewrote it). */
async function removeStaleMetas(guard: Pick<LockGuard, 'isHeld'>, rec: RunRecord): Promise<void> {
  for (const l of rec.locks) {
    if (guard.isHeld(l.key)) continue;
    try {
      const meta = await readMeta(l.key);
      if (meta?.run_id === rec.run_id) await removeMeta(l.key);
    } catch {
      /* unreadable or refused path: clean-stale reports it */
    }
  }
}

/** What reconcile needs of the daemon: the journal, the lock files, the holds to restore, the runs to re-adopt. */
export interface ReconcileContext {
  readonly journal: JournalSink;
  readonly guard: Pick<LockGuard, 'isHeld'>;
  readonly holds: { restore(rec: HoldRecord, locks: ResolvedLock[]): boolean };
  readonly adopted: AdoptedRuns;
}

export async function reconcile(ctx: ReconcileContext, prev: JournalState, log: Logger): Promise<ReconcileReport> {
  const report: ReconcileReport = { lost: [], stopped: [], adopted: [], holdsRestored: [], holdsDropped: [] };
  const adopted = ctx.adopted;

  const notStarted: RunRecord[] = [];
  const alive: RunRecord[] = [];
  const gone: RunRecord[] = [];
  for (const rec of prev.runs.values()) {
    if (rec.pid === null || rec.start_time === null) notStarted.push(rec);
    else if (isSameProcessAlive(rec.pid, rec.start_time)) alive.push(rec);
    else gone.push(rec);
  }

  // 1. Re-adopt live detached runs first: their locks are granted before anything else can ask.
  const toStop: RunRecord[] = [];
  for (const rec of parentsFirst(alive)) {
    if (!rec.detach) {
      toStop.push(rec);
      continue;
    }
    let ok = false;
    try {
      ok = await adopted.adopt(rec);
    } catch (e) {
      log.error('re-adopting a detached run failed', { run_id: rec.run_id, error: (e as Error).message });
    }
    if (ok) report.adopted.push(rec.run_id);
    else toStop.push(rec);
  }

  // 2. Stop every other tree, in parallel (each may take its SIGTERM grace), and record the runs. One scan of the
  // process table finds the env-tagged processes of every record at once.
  const tagged = await taggedProcesses(new Set([...notStarted, ...gone].map((r) => r.run_id))).catch(() => new Map<string, ProcessEntry[]>());
  const settle = async (rec: RunRecord, kind: 'not_started' | 'alive' | 'gone'): Promise<void> => {
    try {
      let how: string;
      if (kind === 'not_started') {
        const procs = (tagged.get(rec.run_id) ?? []).slice().sort((a, b) => compareStartTimes(a.startTime, b.startTime) ?? 0);
        const leader = procs[0];
        let killed = false;
        if (leader) killed = await killTree(new JobTree({ pid: leader.pid, startTime: leader.startTime, runId: rec.run_id, envTag: `LOCKD_RUN_ID=${rec.run_id}` }), log, rec.run_id, true);
        how = killed ? 'it was being started; the processes it had started were stopped' : 'it had not started';
        (killed ? report.stopped : report.lost).push(rec.run_id);
      } else {
        const tree = new JobTree({ pid: rec.pid!, startTime: rec.start_time, runId: rec.run_id, envTag: `LOCKD_RUN_ID=${rec.run_id}` });
        // A live tree is always scanned; a dead leader's only when its tag was seen (or its group/cgroup is not empty).
        const killed = await killTree(tree, log, rec.run_id, kind === 'alive' || tagged.has(rec.run_id));
        if (kind === 'alive') {
          how = rec.detach
            ? 'its process tree was still running but could not be re-adopted, and was stopped'
            : 'its client lost its connection with the daemon; its process tree was still running and was stopped';
          report.stopped.push(rec.run_id);
          log.warn('stopped a run orphaned by a lost daemon', { run_id: rec.run_id, pid: rec.pid });
        } else {
          how = killed
            ? 'its process had exited; processes left behind by it were stopped; its exit status could not be recovered'
            : 'its process had already exited; its exit status could not be recovered';
          report.lost.push(rec.run_id);
        }
      }
      if (existsSync(rec.dir)) await setAsideCorruptResult(rec.dir, log);
      await recordLost(rec, how, log);
      await removeStaleMetas(ctx.guard, rec);
    } catch (e) {
      log.error('settling a lost run failed', { run_id: rec.run_id, error: (e as Error).message });
    }
    // Settled either way: the record must not be replayed by every later start.
    ctx.journal.append({ t: 'run_end', run_id: rec.run_id });
  };
  await Promise.all([...notStarted.map((r) => settle(r, 'not_started')), ...toStop.map((r) => settle(r, 'alive')), ...gone.map((r) => settle(r, 'gone'))]);

  // 3. Holds keep their remaining TTL; `--ttl none` holds survive.
  for (const h of prev.holds.values()) {
    try {
      if (h.expires_at !== null && h.expires_at <= Date.now()) {
        log.warn('hold expired while no daemon was running', { hold_id: h.hold_id });
        report.holdsDropped.push(h.hold_id);
        ctx.journal.append({ t: 'hold_end', hold_id: h.hold_id });
        continue;
      }
      if (ctx.holds.restore(h, resolvedFromJournal(h.locks))) {
        log.info('restored hold', { hold_id: h.hold_id });
        report.holdsRestored.push(h.hold_id);
      } else {
        log.error('could not restore hold: its locks are taken', { hold_id: h.hold_id });
        report.holdsDropped.push(h.hold_id);
        ctx.journal.append({ t: 'hold_end', hold_id: h.hold_id });
      }
    } catch (e) {
      log.error('restoring a hold failed', { hold_id: h.hold_id, error: (e as Error).message });
    }
  }
  if (report.lost.length + report.stopped.length + report.adopted.length + report.holdsRestored.length + report.holdsDropped.length > 0) {
    log.info("reconciled the previous daemon's journal", {
      lost: report.lost.length,
      stopped: report.stopped.length,
      adopted: report.adopted.length,
      holds_restored: report.holdsRestored.length,
      holds_dropped: report.holdsDropped.length,
    });
  }
  return report;
}
