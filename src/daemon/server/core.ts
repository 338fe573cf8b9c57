/**
 * The daemon's state and its answers: one lock table (behind the lock gate), the live runs and holds, the event bus,
 * the journal. The socket server hands every validated message to `handle`, which calls one handler. The handlers
 * and services (jobs/run-job.ts, services/holds.ts, services/status.ts, records/adopt.ts) never see this object:
 * each is given, at construction, the few capabilities it uses (ports.ts), built here. One concern, the daemon's
 * state and its wiring; longer than most files because every port is built here, and nothing else is.
 */
import { hostname, constants as osConstants } from 'node:os';
import { join } from 'node:path';
import type { Connection } from './connection.js';
import type { ClientMessage, DaemonInfo, LauncherInfo, LockBackendInfo, RunRequest } from '../../protocol/messages.js';
import { LOCKD_VERSION, PROTOCOL_VERSION } from '../../protocol/version.js';
import { LockdError, isLockdError } from '../../util/errors.js';
import { LockTable } from '../locks/lock-table.js';
import type { Owner } from '../locks/owner.js';
import { EventBus } from '../services/events.js';
import { journalLock, type Journal, type JournalLock } from '../records/journal.js';
import type { Logger } from './logger.js';
import type { LockGuard } from '../records/lock-guard.js';
import { resolveLocks } from '../records/lock-resolve.js';
import { RunJob, type JobContext } from '../jobs/run-job.js';
import { closePassed } from '../jobs/output-relay.js';
import { negotiateStdio, type StdioChoice } from './stdio-exchange.js';
import { createRunDir } from '../../runs/run-id.js';
import { compileVerdictOptions } from '../../runs/verdict-options.js';
import type { RunResult } from '../../runs/result.js';
import { gcRuns } from '../../runs/gc.js';
import { sweepTrees, type JobTree } from '../jobs/process-tree.js';
import { isSelfOrDescendantOf } from '../../util/proc.js';
import { HoldManager, type HoldContext } from '../services/holds.js';
import type { ClusterService } from '../locks/cluster-port.js';
import { addClusterStatus } from '../services/cluster-status.js';
import type { AdoptContext, AdoptedRuns } from '../records/adopt.js';
import { buildStatus, buildInspect, type StatusSource } from '../services/status.js';
import { DaemonLockGate } from './lock-gate.js';
import type { Launcher } from '../jobs/launcher.js';
import { DaemonCallers } from '../services/callers.js';
import { RunRoots } from '../../runs/run-roots.js';
import { DurationStats, DURATIONS_FILE } from '../records/duration-stats.js';
import { userNameOf } from '../services/user-name.js';
import type { SystemMode } from '../services/system-mode.js';
import { AfterBurstByKey, AUTO_GC_TIMING, QuietTimer } from '../jobs/after-burst.js';
import { MetricsCollector } from '../services/metrics.js';
import { PoolConfig } from '../services/pools.js';
import { answerPoolRequest, checkPoolsKnown, checkPriority, poolMemberCounts } from '../services/pools-admin.js';
import { endHopelessWaiters } from '../services/pools-waiters.js';
import { memberJournalLocks } from '../records/pool-members.js';
import { adoptedToSupersede, supersedeOlder } from '../services/supersede.js';
import { WaitEtas } from '../services/wait-etas.js';

export interface CoreOptions {
  socketPath: string;
  stateDir: string;
  mode: 'user' | 'system';
  globalDir: string;
  defaultKeep: number;
  log: Logger;
  journal: Journal;
  guard: LockGuard;
  initialFencing?: Record<string, number>;
  /** How jobs are started (jobs/select-launcher.ts). */
  launcher: Launcher;
  /** Why that launcher, for status and doctor. */
  launcherReason: string;
  /** The lock backend and why, for doctor (absent when the caller did not say). */
  lockBackend?: LockBackendInfo | undefined;
}

/**
 * Housekeeping after runs (auto-GC, the escapee sweep) waits for this much quiet, but no longer than the max, and
 * comes no sooner than the min interval after its previous round. "Quiet" alone is not enough: a queue of jobs
 * that each take longer than the quiet time (tens of ms) has a quiet moment after every job, and a GC (it reads
 * every run directory of the root) or a sweep (it reads the whole process table) after every job took much of the
 * daemon's time away from the queue itself.
 */
const SWEEP_QUIET_MS = 20;
const SWEEP_MAX_DELAY_MS = 1_000;
const SWEEP_MIN_INTERVAL_MS = 1_000;

export class DaemonCore implements StatusSource {
  readonly startedAt = Date.now();
  readonly table: LockTable<Owner>;
  /** The table's way out: releases and cancels hand the locks on (to runs, holds and the cluster). */
  readonly gate: DaemonLockGate;
  /** The pools of <state-dir>/lockd.json, re-read when it changed (services/pools.ts). */
  readonly pools: PoolConfig;
  readonly callers = new DaemonCallers();
  readonly events = new EventBus();
  readonly runs = new Map<string, RunJob>();
  readonly holds: HoldManager;
  readonly durations = new DurationStats();
  /** Estimated waits for the progress messages of waiting runs (one table walk a second at most). */
  private readonly waitEtas: WaitEtas;
  /** Runs roots used (run-roots.json), so `lockd runs/logs/result/wait` find runs recorded under a --root. */
  readonly runRoots: RunRoots;
  /** Waits, holds, handoffs and run verdicts, counted from the event bus's tap (services/metrics.ts). */
  readonly metrics: MetricsCollector;
  readonly log: Logger;
  readonly guard: LockGuard;
  readonly socketPath: string;
  readonly stateDir: string;
  readonly mode: 'user' | 'system';
  readonly globalDir: string;
  private readonly journal: Journal;
  private readonly defaultKeep: number;
  private shuttingDown = false;
  private sweepQueue: JobTree[] = [];
  onShutdownRequested: (() => void) | null = null;
  #system: SystemMode | null = null;
  /** --detach runs taken over from a previous daemon (created at start-up for reconcile; see adopt.ts). */
  adopted: AdoptedRuns | null = null;
  #cluster: ClusterService | null = null;
  /** What runs, holds and re-adopted runs are given (ports.ts), built once. */
  readonly jobContext: JobContext;
  readonly launcherInfo: LauncherInfo;
  readonly lockBackend: LockBackendInfo | undefined;
  readonly adoptContext: AdoptContext;

  constructor(opts: CoreOptions) {
    this.table = new LockTable<Owner>(opts.initialFencing ? { initialFencing: opts.initialFencing } : {});
    this.log = opts.log;
    this.guard = opts.guard;
    this.journal = opts.journal;
    this.socketPath = opts.socketPath;
    this.stateDir = opts.stateDir;
    this.runRoots = new RunRoots(opts.stateDir);
    this.mode = opts.mode;
    this.globalDir = opts.globalDir;
    this.defaultKeep = opts.defaultKeep;
    this.launcherInfo = { name: opts.launcher.name, detail: opts.launcher.detail, reason: opts.launcherReason };
    this.lockBackend = opts.lockBackend;
    this.gate = new DaemonLockGate(this.table, this.events, {
      granted: (g) => {
        const job = this.runs.get(g.request.id);
        if (job) return job.start(g);
        void this.holds.onGranted(g);
        return undefined;
      },
      queuesMoved: (keys) => this.notifyWaiters(keys),
    });
    this.pools = new PoolConfig(
      this.stateDir,
      this.table,
      (grants) => this.gate.dispatch(grants),
      this.log,
      (effective) => endHopelessWaiters(this.runs.values(), effective),
    );
    this.pools.refresh();
    // Getters, not copies: the cluster and system mode are attached after construction (main.ts).
    const core = this;
    this.waitEtas = new WaitEtas(this.table, this.durations);
    const lockParts = { gate: this.gate, events: this.events, guard: this.guard, log: this.log };
    const holdContext: HoldContext = {
      ...lockParts,
      get cluster() {
        return core.cluster;
      },
      journal: this.journal,
      callers: this.callers,
      mode: this.mode,
      globalDir: this.globalDir,
      get system() {
        return core.system;
      },
      waitEta: (id) => this.waitEtas.of(id),
    };
    this.holds = new HoldManager(holdContext);
    // Tapped before any request can arrive, so the counts cover every transition since start.
    this.metrics = new MetricsCollector(this);
    this.events.tap(this.metrics.onEvent);
    this.jobContext = {
      ...lockParts,
      get cluster() {
        return core.cluster;
      },
      socketPath: this.socketPath,
      launcher: opts.launcher,
      get system() {
        return core.system;
      },
      journalRun: (job) => this.journalRun(job),
      runFinished: (job, result) => this.runFinished(job, result),
      sweepLater: (tree) => this.sweepLater(tree),
      waitEta: (id) => this.waitEtas.of(id),
    };
    this.adoptContext = { gate: this.gate, events: this.events, guard: this.guard, journal: this.journal };
    // Estimated waits survive restarts: loaded now, saved off the hot path and on shutdown.
    this.durations.persistTo(join(opts.stateDir, DURATIONS_FILE));
  }

  /** System mode: verified attribution, authorization, jobs and files as the caller (system-mode.ts); null per user. */
  get system(): SystemMode | null {
    return this.#system;
  }

  set system(s: SystemMode | null) {
    this.#system = s;
    this.callers.systemAdmin = s ? (conn) => s.isAdmin(conn) : null;
  }

  /** Cluster locks (--cluster): set by main.ts when configured; null keeps every lock on this host. */
  get cluster(): ClusterService | null {
    return this.#cluster;
  }

  set cluster(c: ClusterService | null) {
    this.#cluster = c;
    this.gate.cluster = c;
  }

  info(): DaemonInfo {
    return {
      protocol: PROTOCOL_VERSION,
      version: LOCKD_VERSION,
      pid: process.pid,
      uptime_ms: Date.now() - this.startedAt,
      mode: this.mode,
      socket: this.socketPath,
      state_dir: this.stateDir,
      launcher: this.launcherInfo,
      ...(this.lockBackend ? { lock_backend: this.lockBackend } : {}),
      features: ['pools', 'supersede', 'progress'],
    };
  }

  get busy(): boolean {
    return this.runs.size > 0 || (this.adopted?.size ?? 0) > 0;
  }

  /** A run this daemon supervises (its own, or a re-adopted one): never garbage-collected. */
  isLiveRun(id: string): boolean {
    return this.runs.has(id) || (this.adopted?.has(id) ?? false);
  }

  handle(conn: Connection, msg: ClientMessage): void {
    if (this.system) {
      // Claims (user, holder, client_pid) are replaced by the kernel-verified caller before any handler sees them.
      try {
        msg = this.system.attribute(conn, msg);
      } catch (e) {
        conn.fail(isLockdError(e) ? e.code : 'internal_error', (e as Error).message);
        return;
      }
    }
    // One long-lived request per connection: a run, a subscription or an acquire owns the connection's close (a
    // lost client cancels it). A second request must not take that over, or a lost client would go unnoticed.
    if (conn.attachment.owner !== undefined && msg.type !== 'signal' && msg.type !== 'stdin_end' && msg.type !== 'resize') {
      conn.fail('protocol_error', `this connection already carries a ${conn.attachment.owner} request; open a new connection for ${msg.type}`);
      return;
    }
    if (msg.type === 'run' || msg.type === 'events' || msg.type === 'watch_run' || msg.type === 'acquire') conn.attachment.owner = msg.type;
    const p = this.dispatch(conn, msg);
    if (p) {
      p.catch((e: unknown) => {
        if (isLockdError(e)) conn.fail(e.code, e.message);
        else {
          this.log.error('request failed', { type: msg.type, error: (e as Error).stack ?? String(e) });
          conn.fail('internal_error', `lockd internal error: ${(e as Error).message}`);
        }
      });
    }
  }

  private dispatch(conn: Connection, msg: ClientMessage): Promise<void> | void {
    switch (msg.type) {
      case 'ping':
        conn.end({ type: 'pong', ...this.info() });
        return;
      case 'run':
        return this.startRun(conn, msg.req);
      case 'signal': {
        const job = this.jobOf(conn);
        job?.forwardSignal(msg.signal);
        return;
      }
      case 'resize':
        this.jobOf(conn)?.resize(msg.cols, msg.rows);
        return;
      case 'stdin_end':
        if (conn.attachment.job) conn.attachment.job.endStdin();
        else conn.attachment.earlyStdinEnd = true;
        return;
      case 'acquire':
        if (msg.req.pools?.length || msg.req.priority) this.pools.refresh();
        checkPriority(this, conn, msg.req.priority);
        checkPoolsKnown(this, msg.req.pools);
        return this.holds.acquire(conn, msg.req);
      case 'heartbeat':
        return this.holds.heartbeat(conn, msg.hold_id, msg.holder);
      case 'release':
        return this.holds.release(conn, msg);
      case 'status':
        this.pools.refresh();
        if (this.cluster) return addClusterStatus(buildStatus(this, msg.root), this.cluster, msg.root).then((snapshot) => conn.end({ type: 'status', snapshot }));
        conn.end({ type: 'status', snapshot: buildStatus(this, msg.root) });
        return;
      case 'inspect':
        return buildInspect(this, conn, msg.lock);
      case 'metrics':
        this.pools.refresh();
        {
          const snapshot = this.metrics.snapshot({ holders: msg.holders });
          return poolMemberCounts(this).then((pools) => conn.end({ type: 'metrics', snapshot: { ...snapshot, pools } }));
        }
      case 'events': {
        const unsubscribe = this.events.subscribe((event) => conn.send({ type: 'event', event }));
        conn.attachment.onClose = unsubscribe;
        conn.send({ type: 'ok', note: 'subscribed' });
        return;
      }
      case 'kill':
        return this.killRun(conn, msg.run_id, msg.signal, msg.force);
      case 'watch_run':
        return this.watchRun(conn, msg.run_id);
      case 'gc':
        return this.gc(conn, msg);
      case 'shutdown':
        if (this.busy && !msg.force) {
          // Name the runs in the way, so the refusal says what to wait for or kill (lockd wait / lockd kill).
          const inWay = [...this.runs.values(), ...(this.adopted?.list() ?? [])].map((j) => j.owner);
          const named = inWay.slice(0, 5).map((o) => `run ${o.id} (${o.pid !== null ? `pid ${o.pid}, ` : ''}${o.holder}${o.commandLine ? `: ${o.commandLine.slice(0, 60)}` : ''})`);
          const more = inWay.length > 5 ? ` and ${inWay.length - 5} more` : '';
          conn.fail('daemon_busy', `${inWay.length} run(s) in progress: ${named.join(', ')}${more}; use lockd shutdown --force to stop them and exit`);
          return;
        }
        conn.end({ type: 'ok', note: this.busy ? `stopping ${this.runs.size} run(s)` : null });
        this.onShutdownRequested?.();
        return;
      case 'pool':
        return answerPoolRequest(this, conn, msg.req);
      case 'hello':
        return;
    }
  }

  private jobOf(conn: Connection): RunJob | undefined {
    return conn.attachment.job as RunJob | undefined;
  }

  /**
   * Nesting: LOCKD_RUN_ID names a run whose child is an ancestor of the asking process. The variable alone proves
   * nothing (anyone can set it), so the daemon walks the asker's ancestry to that run's child, pid AND start time.
   */
  verifiedParent(conn: Connection, req: { parent_run_id: string | null; client_pid: number; holder: string; hold_id?: string | null | undefined }): string | null {
    if (req.parent_run_id) {
      const job = this.runs.get(req.parent_run_id);
      if (job && job.pid !== null && job.tree && job.state === 'running') {
        const pid = this.callers.pidOf(conn, req.client_pid);
        const startTime = job.tree.startTime;
        // The run's own child (`lockd run -- lockd run ...`) or any of its descendants.
        if (startTime && isSelfOrDescendantOf(pid, job.pid, startTime)) return job.runId;
        this.log.warn('nesting claim rejected: caller does not descend from the run', { run_id: req.parent_run_id, pid });
      }
    }
    // A run joins an explicit hold only when it names it (--hold / LOCKD_HOLD_ID) and is the hold's holder; inside
    // the hold it still obeys each lock's mode against the hold's other runs (the lock table's sibling rule).
    return req.hold_id ? this.holds.joinable(req.hold_id, req.holder, this.callers.uidOf(conn)) : null;
  }

  private async startRun(conn: Connection, req: RunRequest): Promise<void> {
    if (this.shuttingDown) throw new LockdError('shutting_down', 'the lockd daemon is shutting down');
    // First, before any other await: a client offering its descriptors passes them now (stdio-exchange.ts).
    const io = await negotiateStdio(conn, req);
    try {
      await this.startRunWith(conn, req, io);
    } catch (e) {
      // Not handed to a run: nothing else will close the caller's descriptors.
      if (io.passed && conn.attachment.job === undefined) closePassed(io.passed);
      throw e;
    }
  }

  private async startRunWith(conn: Connection, req: RunRequest, io: StdioChoice): Promise<void> {
    const uid = this.callers.uidOf(conn);
    if (req.pools?.length || req.priority) this.pools.refresh();
    checkPriority(this, conn, req.priority);
    checkPoolsKnown(this, req.pools);
    const locks = resolveLocks(req.locks, { globalDir: this.globalDir, callerUid: uid, clusterPrefix: this.cluster?.prefix ?? null });
    const verdict = compileVerdictOptions({
      requireStructured: req.verdict.require_structured,
      requireMarker: req.verdict.require_marker,
      requireAll: req.verdict.require_all,
      forbidMarker: req.verdict.forbid_marker,
      expectTimeout: req.verdict.expect_timeout,
    });
    const parent = this.verifiedParent(conn, req);
    const runsRoot = req.runs_root ?? this.system?.defaultRunsRoot(conn) ?? join(this.stateDir, 'runs');
    // System mode: the run dir is created by the caller's own uid and pinned (system-mode.ts); null = ordinary path.
    const prepared = this.system ? await this.system.prepareRun(conn, req, runsRoot) : null;
    let created: { runId: string; dir: string };
    try {
      // The default runs root is the daemon's own state dir: made there without a thread-pool trip (run-id.ts).
      created = prepared ?? (await createRunDir(runsRoot, req.run_id ?? undefined, { blocking: req.runs_root === null && !this.system }));
    } catch (e) {
      if (isLockdError(e)) throw e;
      // A read-only, full or vanished runs root: a clear error for the client, nothing held, the daemon stays up.
      throw new LockdError('runs_root_unusable', `cannot create a run directory under ${runsRoot}: ${(e as Error).message}`);
    }
    const { runId, dir } = created;
    if (req.runs_root !== null) this.runRoots.remember(runsRoot);
    const job = new RunJob(this.jobContext, conn, req, runId, dir, runsRoot, locks, verdict, uid, parent, io);
    if (prepared) this.system!.attachRun(job, prepared);
    this.runs.set(runId, job);
    // Journaled before anything slow, so a crash from here on leaves a record and the run dir gets its result.json.
    this.journalRun(job);
    if (req.supersede !== undefined) {
      const ended = supersedeOlder(this.runs.values(), job);
      // Runs re-adopted after a restart are not RunJobs, but the same key stops them too.
      for (const a of adoptedToSupersede(this.adopted?.list() ?? [], job)) {
        void this.adopted!.supersede(a.rec.run_id, runId, req.supersede);
        ended.push(a.rec.run_id);
      }
      if (ended.length > 0) this.log.info('runs superseded', { by: runId, key: req.supersede, ended });
    }
    conn.attachment.job = job;
    for (const b of conn.attachment.earlyStdin ?? []) job.writeStdin(b, conn);
    if (conn.attachment.earlyStdinEnd) job.endStdin();
    conn.attachment.earlyStdin = undefined;
    conn.attachment.onClose = () => job.onClientLost();
    // The client may have gone while the run dir was being created: its close event found no handler then.
    if (conn.closed && !req.detach) job.onClientLost();
    if (req.detach) job.attachDetachedReply();
    try {
      await job.enqueue();
    } catch (e) {
      // The run's records cannot be written (full or read-only runs root): end it with that reason, holding nothing.
      this.log.error('cannot write the records of a run', { run_id: runId, error: (e as Error).message });
      await job.cancelQueued('log_write_failed', `cannot write the run's records in ${dir}: ${(e as Error).message}`);
    }
  }

  /**
   * Positions changed on these keys: tell the runs waiting there (batched by the lock gate, once a second). One walk
   * per key involved gives every waiter's position there (a run's position is the largest over its keys), so a round
   * costs O(waiters), not O(waiters²) as asking each run's position separately did.
   */
  private notifyWaiters(keys: Set<string>): void {
    const waiting = [...this.runs.values()].filter((job) => job.state === 'queued' && this.table.isWaiting(job.runId) && job.locks.some((l) => keys.has(l.key)));
    const onKey = new Map<string, Map<string, number>>();
    for (const job of waiting) for (const l of job.locks) if (!onKey.has(l.key)) onKey.set(l.key, this.table.positionsOn(l.key));
    for (const job of waiting) job.notifyWaiting(Math.max(...job.locks.map((l) => onKey.get(l.key)!.get(job.runId) ?? 0)));
  }

  journalRun(job: RunJob): void {
    this.journal.append({
      t: 'run',
      run_id: job.runId,
      pid: job.pid,
      pgid: job.pid,
      start_time: job.tree?.startTime ?? null,
      locks: job.locks
        .map((l): JournalLock => {
          const g = job.grantInfo().find((x) => x.path === l.key);
          return journalLock(l, g?.fencing_token ?? 0, g?.slot_index);
        })
        .concat(memberJournalLocks(job.grantInfo())),
      client_pid: job.req.client_pid,
      detach: job.req.detach,
      dir: job.dir,
      holder: job.req.holder,
      user: job.req.user,
      uid: job.uid,
      command_line: job.owner.commandLine ?? '',
      queued_at: job.queuedAt,
      started_at: job.startedAt,
      log_path: job.startedAt ? job.logPath : null,
      parent: job.parent,
      ...(job.req.supersede !== undefined ? { supersede: job.req.supersede } : {}),
    });
  }

  runFinished(job: RunJob, result: RunResult): void {
    this.runs.delete(job.runId);
    this.journal.append({ t: 'run_end', run_id: job.runId });
    this.system?.runFinished(job, result);
    this.metrics.runFinished(result.status);
    if (job.startedAt !== null && result.duration_ms !== null) {
      for (const l of job.locks) this.durations.record(l.key, result.duration_ms);
    }
    const keep = job.req.keep ?? this.defaultKeep;
    if (keep > 0) {
      // System mode deletes old runs with the run's user's rights, never as root.
      if (this.system?.switching) this.system.scheduleGc(job, keep, (id: string) => this.isLiveRun(id));
      else this.scheduleGc(job.runsRoot, keep);
    }
    if (this.shuttingDown && this.runs.size === 0) this.onIdle?.();
  }

  onIdle: (() => void) | null = null;

  /** Auto-GC, coalesced per runs root and run after the current burst of work, never on the handoff path. */
  private scheduleGc(runsRoot: string, keep: number): void {
    this.autoGc.schedule(runsRoot, { runsRoot, keep });
  }

  private readonly autoGc = new AfterBurstByKey<{ runsRoot: string; keep: number }>(AUTO_GC_TIMING, ({ runsRoot, keep }) => {
    gcRuns(runsRoot, { keep, dryRun: false, isLive: (id: string) => this.isLiveRun(id) })
      .then((r) => {
        if (r.removed.length) this.log.info('auto-gc', { runs_root: runsRoot, removed: r.removed.length });
      })
      .catch((e: Error) => this.log.warn('auto-gc failed', { runs_root: runsRoot, error: e.message }));
  });

  /**
   * After a run's locks are released, look once more for stragglers that escaped the process group and closed
   * their pipes (a daemonized grandchild): found by the run's env tag or cgroup, and killed. A scan reads the whole
   * process table (and the environment of every process younger than the job) through the thread pool, and during
   * a burst of runs that traffic delayed every next job's start; so the sweep waits for a quiet moment
   * (SWEEP_QUIET_MS, at most SWEEP_MAX_DELAY_MS) and then takes every tree queued meanwhile, with ONE reading of
   * the process table shared by all of them (sweepTrees).
   */
  sweepLater(tree: JobTree): void {
    // Born in its cgroup (native launcher), a job whose cgroup is empty has left nothing anywhere: no sweep needed.
    if (tree.exact && tree.groupEmptySync()) return;
    this.sweepQueue.push(tree);
    this.sweepTimer.poke();
  }

  private readonly sweepTimer = new QuietTimer(SWEEP_QUIET_MS, SWEEP_MAX_DELAY_MS, SWEEP_MIN_INTERVAL_MS, () => this.sweepNow());

  private sweepNow(): void {
    const trees = this.sweepQueue;
    this.sweepQueue = [];
    void (async () => {
      let found: Array<{ tree: JobTree; members: number[] }>;
      try {
        found = await sweepTrees(trees);
      } catch (e) {
        this.log.warn('sweep failed', { error: (e as Error).message });
        for (const t of trees) t.dispose();
        return;
      }
      await Promise.all(
        found.map(async ({ tree, members }) => {
          try {
            if (members.length) {
              this.log.warn('killing processes that outlived their run', { run_id: tree.runId, pids: members });
              await tree.kill({ graceMs: 2000, signal: 'SIGTERM' });
            }
            tree.dispose();
          } catch (e) {
            this.log.warn('sweep failed', { run_id: tree.runId, error: (e as Error).message });
          }
        }),
      );
    })();
  }

  private async killRun(conn: Connection, runId: string, signal: string, force: boolean): Promise<void> {
    const job = this.runs.get(runId);
    const adopted = job ? undefined : this.adopted?.list().find((r) => r.rec.run_id === runId);
    if (!job && adopted) {
      // A --detach run re-adopted after a daemon restart: same rules, its whole tree is stopped and recorded.
      const uid = this.callers.uidOf(conn);
      if (this.mode === 'system' && adopted.rec.uid !== uid && uid !== 0 && !(force && this.callers.isAdmin(conn))) {
        throw new LockdError('not_owner', `run ${runId} belongs to ${adopted.rec.user}; only its owner or an admin with --force can kill it`);
      }
      const upper = signal.toUpperCase();
      const sig = (upper.startsWith('SIG') ? upper : `SIG${upper}`) as NodeJS.Signals;
      if (!(sig in osConstants.signals)) throw new LockdError('usage', `unknown signal ${JSON.stringify(signal)}`);
      await this.adopted!.kill(runId, sig, `${userNameOf(uid)} (uid ${uid ?? '?'}, pid ${conn.peer?.pid ?? conn.clientPid ?? '?'})`);
      conn.end({ type: 'ok', note: `run ${runId} stopped; result -> ${join(adopted.rec.dir, 'result.json')}` });
      return;
    }
    if (!job) throw new LockdError('no_such_run', `no live run ${runId}`);
    const uid = this.callers.uidOf(conn);
    // System mode: owner, or an admin with --force (logged); returns who did it for result.json `cancelled_by`.
    const authorizedBy = this.system ? this.system.authorizeKill(conn, job, force) : null;
    if (!this.system && this.mode === 'system' && job.uid !== uid && uid !== 0 && !(force && this.callers.isAdmin(conn))) {
      throw new LockdError('not_owner', `run ${runId} belongs to ${job.req.user}; only its owner or an admin with --force can kill it`);
    }
    const upper = signal.toUpperCase();
    const sig = (upper.startsWith('SIG') ? upper : `SIG${upper}`) as NodeJS.Signals;
    if (!(sig in osConstants.signals)) throw new LockdError('usage', `unknown signal ${JSON.stringify(signal)}`);
    const by = authorizedBy ?? `${userNameOf(uid)} (uid ${uid ?? '?'}, pid ${conn.peer?.pid ?? conn.clientPid ?? '?'})`;
    const done = new Promise<void>((r) => job.watchers.add(r));
    this.log.info('kill requested', { run_id: runId, signal: sig, by });
    await job.stop('cancel', by, sig);
    await done;
    conn.end({ type: 'ok', note: `run ${runId} stopped; result -> ${job.resultPath}` });
  }

  private watchRun(conn: Connection, runId: string): void {
    const job = this.runs.get(runId);
    conn.send({ type: 'run_state', run_id: runId, live: !!job, result_path: job?.resultPath ?? null, log_path: job?.logPath ?? null });
    if (!job) {
      conn.end();
      return;
    }
    const fn = () => conn.end({ type: 'run_ended', run_id: runId });
    job.watchers.add(fn);
    conn.attachment.onClose = () => job.watchers.delete(fn);
  }

  private async gc(conn: Connection, msg: Extract<ClientMessage, { type: 'gc' }>): Promise<void> {
    if (this.system?.switching) return this.system.gc(conn, msg, (id: string) => this.isLiveRun(id));
    const runsRoot = msg.runs_root ?? join(this.stateDir, 'runs');
    const report = await gcRuns(runsRoot, {
      keep: msg.keep,
      ...(msg.older_than_ms !== null ? { olderThanMs: msg.older_than_ms } : {}),
      ...(msg.max_bytes !== null ? { maxBytes: msg.max_bytes } : {}),
      dryRun: msg.dry_run,
      refuseRemovingAll: msg.all !== true,
      isLive: (id: string) => this.isLiveRun(id),
    });
    conn.end({ type: 'gc_done', report: { runs_root: runsRoot, ...report } as unknown as Record<string, unknown> });
  }

  /** Graceful stop: every job is stopped and recorded (force), or we wait for them; then the caller exits. */
  async shutdown(force: boolean): Promise<void> {
    this.shuttingDown = true;
    const jobs = [...this.runs.values()];
    if (force || jobs.length) {
      await Promise.all(jobs.map((j) => (j.detached && !force ? Promise.resolve() : j.stop('shutdown', 'lockd shutdown'))));
    }
    // Every record is written before we exit: wait for the runs to finish their result files.
    await Promise.all(jobs.filter((j) => !(j.detached && !force)).map((j) => (this.runs.has(j.runId) ? new Promise<void>((r) => j.watchers.add(r)) : Promise.resolve())));
    // Re-adopted --detach runs: stopped and recorded with --force; otherwise left running for the next daemon.
    if (force) await this.adopted?.stopAll('lockd shutdown');
    else this.adopted?.dispose();
    // Cluster locks cannot outlive the lease: runs still holding them are stopped, then the lease is revoked.
    if (this.cluster) await this.cluster.shutdown();
    await this.holds.shutdown();
    await this.durations.flush().catch((e: Error) => this.log.warn('could not save run durations', { error: e.message }));
  }

  get host(): string {
    return hostname();
  }
}
