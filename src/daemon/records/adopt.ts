/**
 * Re-adoption of `--detach` runs after a daemon restart.
 *
 * A detached run outlives the client that started it by design, so it must also outlive a daemon crash: the new
 * daemon finds its leader by pid AND start time (a recycled pid is a different process), re-grants its locks in
 * the table before serving anyone, and keeps them until the run's whole process tree has exited. Then it writes
 * result.json with what can be known — the exit status of a process that is not our child is lost (Node has no
 * pidfd and we cannot wait(2) for a non-child), so the result is `infra_fail` / `daemon_lost` with
 * `child_exit_code: null` and the message "re-adopted after a daemon restart; exit status unknown".
 *
 * Watching a non-child: no exit event reaches us, so the leader is polled with `isSameProcessAlive` (one small
 * /proc read per run) on a backoff from POLL_FIRST_MS to POLL_MAX_MS — and only while adopted runs exist: an
 * idle daemon has no timer.
 *
 * Slots: a run started with `LOCKD_SLOT_<name>=k` keeps using slot k, so the table must give it slot k again,
 * not the lowest free one; placeholder requests fill the lower free slots for the moment of the grant.
 * Fencing tokens are re-issued (higher than any before): the adopted process still knows its old one, which is
 * lower than any token handed out later, so fencing stays sound.
 */
import { isClusterKey } from '../locks/cluster-keys.js';
import type { JournalSink, LockParts } from '../ports.js';
import type { RunRecord, JournalLock } from './journal.js';
import type { Logger } from '../server/logger.js';
import type { Grant } from '../locks/lock-table.js';
import { grantAgain } from '../locks/grant-again.js';
import type { Owner } from '../locks/owner.js';
import type { ResolvedLock } from './lock-resolve.js';
import { JobTree } from '../jobs/process-tree.js';
import { isSameProcessAlive } from '../../util/proc.js';
import { recordLost, type LostEnd } from './lost-run.js';
import { lockMeta } from './lock-meta.js';

/** First and largest interval between two looks at the adopted leaders. */
export const POLL_FIRST_MS = 50;
export const POLL_MAX_MS = 1000;
/** Grace between SIGTERM and SIGKILL when an adopted tree is stopped (no --kill-after is journaled). */
const KILL_GRACE_MS = 5000;

export const ADOPTED_EXIT_MESSAGE = 're-adopted after a daemon restart; exit status unknown';

export interface AdoptedRun {
  readonly rec: RunRecord;
  readonly tree: JobTree;
  readonly owner: Owner;
  readonly locks: ResolvedLock[];
  grant: Grant<Owner> | null;
  /** Set once the run is being ended (exit seen, kill, shutdown): later calls share it. */
  ending: Promise<void> | null;
}

/** The table's view of journaled locks (root/arch are not needed once the key is canonical). */
export function resolvedFromJournal(locks: JournalLock[]): ResolvedLock[] {
  return locks.map((l) => ({
    key: l.key,
    name: l.name,
    scope: l.scope === 'cluster' ? 'global' : l.scope,
    mode: l.mode,
    ...(l.mode === 'slots' && l.slots ? { slots: l.slots } : {}),
    root: null,
    arch: null,
  }));
}

/** What re-adopting runs needs: the lock table and its files, the events, the journal. */
export interface AdoptContext extends Pick<LockParts, 'gate' | 'events' | 'guard'> {
  readonly journal: JournalSink;
}

export class AdoptedRuns {
  private readonly runs = new Map<string, AdoptedRun>();
  private timer: NodeJS.Timeout | null = null;
  private delayMs = POLL_FIRST_MS;
  private disposed = false;
  /** Resolves each time an adopted run has been settled (tests and shutdown wait on it). */
  private settledWaiters = new Set<() => void>();

  constructor(
    private readonly ctx: AdoptContext,
    private readonly log: Logger,
  ) {}

  get size(): number {
    return this.runs.size;
  }

  has(runId: string): boolean {
    return this.runs.has(runId);
  }

  list(): AdoptedRun[] {
    return [...this.runs.values()];
  }

  /** True while a poll is scheduled (tests check that an idle daemon has none). */
  get polling(): boolean {
    return this.timer !== null;
  }

  /**
   * Take over a live --detach run: its locks are granted again (same slots), its lock files re-taken, and its
   * leader watched. False when its locks cannot be granted (a conflicting record: the caller stops the run).
   */
  async adopt(rec: RunRecord): Promise<boolean> {
    if (rec.pid === null || rec.start_time === null) return false;
    // Cluster locks and members went with the dead daemon's lease (another host may hold them now): such a run is
    // stopped and recorded, never adopted (docs/cluster.md; the watchdog has usually killed it already).
    if (rec.locks.some((l) => l.scope === 'cluster' || isClusterKey(l.key))) return false;
    const locks = resolvedFromJournal(rec.locks);
    const owner: Owner = {
      kind: 'run',
      id: rec.run_id,
      holder: rec.holder,
      user: rec.user,
      uid: rec.uid,
      pid: rec.pid,
      commandLine: rec.command_line || null,
      cwd: null,
      since: rec.started_at ?? rec.queued_at,
      locks,
    };
    let grant: Grant<Owner> | null = null;
    if (locks.length > 0) {
      grant = this.grantAgain(rec, owner);
      if (grant === null) return false;
    }
    const tree = new JobTree({ pid: rec.pid, startTime: rec.start_time, runId: rec.run_id, envTag: `LOCKD_RUN_ID=${rec.run_id}` });
    const run: AdoptedRun = { rec, tree, owner, locks, grant, ending: null };
    this.runs.set(rec.run_id, run);
    if (grant) await this.retakeFiles(run, grant);
    this.ctx.events.emit(
      'started',
      rec.run_id,
      locks.map((l) => l.key),
      { pid: rec.pid, adopted: true },
    );
    this.log.info('re-adopted a detached run after a daemon restart', { run_id: rec.run_id, pid: rec.pid });
    this.delayMs = POLL_FIRST_MS;
    this.schedule();
    return true;
  }

  /** Stop an adopted run's whole tree (`lockd kill`); resolves once it is recorded. False when unknown. */
  async kill(runId: string, signal: NodeJS.Signals, by: string): Promise<boolean> {
    const run = this.runs.get(runId);
    if (!run) return false;
    this.log.info('kill requested for a re-adopted run', { run_id: runId, signal, by });
    await this.end(run, `${ADOPTED_EXIT_MESSAGE}; stopped by ${by}`, signal);
    return true;
  }

  /**
   * A newer run with the same --supersede KEY and --cancel-running: the adopted tree is stopped (SIGTERM, grace,
   * SIGKILL) and its result says `superseded` and names the newer run, as for a run this daemon started.
   */
  async supersede(runId: string, by: string, key: string): Promise<boolean> {
    const run = this.runs.get(runId);
    if (!run || run.ending) return false;
    this.log.info('a re-adopted run is superseded', { run_id: runId, by, key });
    await this.end(run, `superseded by run ${by} (--supersede ${key}); it had been re-adopted after a daemon restart`, 'SIGTERM', { reason: 'superseded', by });
    return true;
  }

  /** Forced shutdown: every adopted tree is stopped and recorded. */
  async stopAll(by: string): Promise<void> {
    await Promise.all([...this.runs.values()].map((r) => this.end(r, `${ADOPTED_EXIT_MESSAGE}; stopped by ${by}`, 'SIGTERM')));
    this.dispose();
  }

  /**
   * Graceful stop without --force: stop watching, keep the runs and their journal records, so the next daemon
   * adopts them again.
   */
  dispose(): void {
    this.disposed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Resolves when no adopted run is left (bounded by the caller). */
  whenEmpty(): Promise<void> {
    if (this.runs.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (this.runs.size === 0) {
          this.settledWaiters.delete(check);
          resolve();
        }
      };
      this.settledWaiters.add(check);
    });
  }

  // ---- internals ----

  /** The run's locks, on the slots it was started with (grant-again.ts). */
  private grantAgain(rec: RunRecord, owner: Owner): Grant<Owner> | null {
    const table = this.ctx.gate.table;
    const parent = rec.parent && table.isHolding(rec.parent) ? rec.parent : undefined;
    const res = grantAgain(table, { id: rec.run_id, claims: rec.locks, meta: owner, ...(parent ? { parent } : {}) });
    if (res.kind === 'granted') return res.grant;
    if (res.kind === 'slot_taken') this.log.error('cannot re-adopt run: its slot is taken', { run_id: rec.run_id, key: res.key, slot: res.slot });
    else this.log.error('cannot re-adopt run: its locks are held by another record', { run_id: rec.run_id });
    return null;
  }

  /**
   * The old daemon's flocks died with it (the kernel drops them with its files); take them again. An outside
   * flock user that slipped in between keeps its flock: we say so and look again shortly, a bounded number of times.
   */
  private async retakeFiles(run: AdoptedRun, grant: Grant<Owner>): Promise<void> {
    const claims = grant.claims;
    if (claims.length === 0) return;
    for (let attempt = 0; attempt < 20; attempt++) {
      if (run.ending || !this.runs.has(run.rec.run_id)) return;
      let ok = false;
      try {
        ok = await this.ctx.guard.take(claims, run.owner.uid);
      } catch (e) {
        this.log.warn('cannot prepare lock files of a re-adopted run', { run_id: run.rec.run_id, error: (e as Error).message });
        return;
      }
      if (ok) {
        this.ctx.guard.describe(
          claims.filter((c) => !c.nested).map((c) => c.key),
          lockMeta({ pid: run.rec.pid, startTime: run.rec.start_time, startedAt: run.owner.since, cwd: '', commandLine: run.rec.command_line, runId: run.rec.run_id, holder: run.rec.holder }),
        );
        this.filesTaken.add(run.rec.run_id);
        return;
      }
      await new Promise((r) => setTimeout(r, 100).unref());
    }
    this.log.error('a re-adopted run could not retake its lock files: an outside flock user holds them', { run_id: run.rec.run_id });
  }

  private readonly filesTaken = new Set<string>();

  private schedule(): void {
    if (this.disposed || this.timer !== null || this.runs.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.poll();
    }, this.delayMs);
    // The listening socket keeps the daemon alive; this timer alone must not.
    this.timer.unref();
    this.delayMs = Math.min(this.delayMs * 2, POLL_MAX_MS);
  }

  private poll(): void {
    for (const run of this.runs.values()) {
      if (run.ending) continue;
      if (!isSameProcessAlive(run.rec.pid!, run.rec.start_time!)) {
        void this.end(run, ADOPTED_EXIT_MESSAGE, 'SIGTERM');
      }
    }
    this.schedule();
  }

  /**
   * The leader has exited (or we are told to stop it): kill whatever is left of the tree, release the locks,
   * record the result, drop the journal record. Shared by concurrent callers.
   */
  private end(run: AdoptedRun, how: string, signal: NodeJS.Signals, lost: LostEnd = { reason: 'daemon_lost' }): Promise<void> {
    if (run.ending) return run.ending;
    run.ending = (async () => {
      try {
        if (!(await run.tree.isEmpty())) {
          const res = await run.tree.kill({ graceMs: KILL_GRACE_MS, signal });
          if (res.remaining > 0) this.log.error('processes of a re-adopted run survived SIGKILL', { run_id: run.rec.run_id, remaining: res.remaining });
        }
      } catch (e) {
        this.log.error('stopping a re-adopted run failed', { run_id: run.rec.run_id, error: (e as Error).message });
      }
      this.ctx.gate.release(run.rec.run_id);
      if (run.grant && this.filesTaken.delete(run.rec.run_id)) {
        await this.ctx.guard.give(run.grant.claims.map((c) => c.key)).catch(() => undefined);
      }
      this.ctx.events.emit(
        'released',
        run.rec.run_id,
        run.locks.map((l) => l.key),
      );
      await recordLost(run.rec, how, this.log, lost);
      this.ctx.journal.append({ t: 'run_end', run_id: run.rec.run_id });
      this.runs.delete(run.rec.run_id);
      if (this.runs.size === 0 && this.timer) {
        clearTimeout(this.timer);
        this.timer = null;
      }
      this.ctx.events.emit(
        'exited',
        run.rec.run_id,
        run.locks.map((l) => l.key),
        lost.reason === 'superseded' ? { status: 'error', reason: 'superseded', adopted: true } : { status: 'infra_fail', reason: 'daemon_lost', adopted: true },
      );
      this.log.info('re-adopted run ended', { run_id: run.rec.run_id });
      for (const w of [...this.settledWaiters]) w();
    })();
    return run.ending;
  }
}
