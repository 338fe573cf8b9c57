/**
 * One `lockd run` attempt inside the daemon, from request to result.json. One concern, the run's lifecycle as a
 * state machine (the states below and every way between them), which is why this file is longer than the others.
 * What it decides is done elsewhere: its output and verdict scan in job-output.ts (bytes: job-io.ts, output-relay.ts),
 * what its records say in job-records.ts, its environment in child-env.ts, its process tree in process-tree.ts, its
 * start through the launcher seam (launcher.ts):
 *
 *   queued ──grant──▶ starting ──spawn──▶ running ──exit──▶ stopping ──tree gone──▶ locks released ──▶ done
 *      └─ busy / wait timeout / client lost / deadlock ─────────────────────────────────────────────▶ done
 *
 * Locks are released the moment the child's exit is observed and its process group is empty (the common case
 * costs one kill(-pgid, 0)); a tree that outlives its leader is killed first. Everything slow (result.json, auto-GC)
 * happens after the release, off the handoff path.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { Connection } from '../server/connection.js';
import type { Owner } from '../locks/owner.js';
import { describeBlocker, holderInfo } from '../locks/owner.js';
import type { ResolvedLock } from '../records/lock-resolve.js';
import type { RunRequest, GrantInfo, RunOutcome, HolderInfo } from '../../protocol/messages.js';

import { writeManifest, type RunManifest } from '../../runs/manifest.js';
import { writeResult, type RunResult, type RunStatus, type SignalSender } from '../../runs/result.js';
import type { AtomicWriteOptions } from '../../runs/atomic-write.js';
import { MANIFEST_FILE, RESULT_FILE, LOG_FILE } from '../../runs/run-files.js';
import { decideWithoutChild, type ChildExit, type NoChildReason, type Verdict } from '../../runs/verdict.js';
import { hasVerdictOptions, type CompiledVerdictOptions } from '../../runs/verdict-options.js';
import { readGitSha } from '../../runs/git-sha.js';
import { commandLineOf } from '../../runs/shell-quote.js';
import type { JobTree } from './process-tree.js';

import type { LockParts } from '../ports.js';
import type { ChildEnd, LaunchFailure, Launcher } from './launcher.js';
import { faultPoint } from './fault-point.js';
import { markPhase } from './phase-marks.js';
import { JobIo } from './job-io.js';
import { childEnv } from './child-env.js';
import { addMemberEnv, memberGrantInfo, memberLocks, membersOf, resultWithMembers, toPoolClaim, withMembers } from './job-members.js';
import { childExit, judgeExit, queuedManifest, runResult, startedManifest } from './job-records.js';
import { lockMeta } from '../records/lock-meta.js';
import { JobOutput, delay } from './job-output.js';
import type { JobStdio } from './output-relay.js';
import type { SystemMode } from '../services/system-mode.js';
import type { Grant, LockRequest } from '../locks/lock-table.js';
import { WaitProgress } from '../services/wait-progress.js';

export type RunState = 'queued' | 'starting' | 'running' | 'stopping' | 'done';

/** What a run needs of the daemon, given at construction: the lock parts, and the daemon's run bookkeeping. */
/** How long a finished job's records wait, at most, for the launches its release set off (see afterExit). */
const RECORDS_AFTER_LAUNCH_MAX_MS = 50;

/** How many runs `p` says were started, or 0 when `ms` ran out first; the timer does not outlive it. */
function startsWithin(p: Promise<number>, ms: number): Promise<number> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<number>((resolve) => (timer = setTimeout(() => resolve(0), ms)))]).finally(() => clearTimeout(timer));
}

export interface JobContext extends LockParts {
  /** Starts the job (jobs/launcher.ts: native or portable). */
  readonly launcher: Launcher;
  /** The daemon's socket (the job's LOCKD_SOCKET, for nested runs). */
  readonly socketPath: string;
  /** System mode: jobs and their files as the caller; null per user. */
  readonly system: SystemMode | null;
  /** Journal this run's record (when queued and again when started): a crash from here on leaves its result. */
  journalRun(job: RunJob): void;
  /** The run is over and its result written: forget it (auto-GC and stats follow). */
  runFinished(job: RunJob, result: RunResult): void;
  /** Look once more, later, for processes that escaped the run's tree. */
  sweepLater(tree: JobTree): void;
  /** A queued request's estimated wait, for its progress messages (services/wait-etas.ts); null when unknown. */
  waitEta(requestId: string): number | null;
}

export class RunJob {
  state: RunState = 'queued';
  readonly owner: Owner;
  readonly queuedAt = Date.now();
  grantedAt: number | null = null;
  startedAt: number | null = null;
  pid: number | null = null;
  tree: JobTree | null = null;
  private grant: Grant<Owner> | null = null;
  private waitTimer: NodeJS.Timeout | null = null;
  /** progress_ms: the `progress` messages while queued (wait-progress.ts). */
  private progress: WaitProgress | null = null;
  private timeoutTimer: NodeJS.Timeout | null = null;
  private killReason: SignalSender | null = null;
  /** The signal lockd sent when it stopped the tree (reported when the child caught it and exited with a code). */
  private killSignal: NodeJS.Signals | null = null;
  /** Set once the child's exit is observed: a stop() after that must not change how the run is judged. */
  private childExited = false;
  /** The start-time manifest rewrite in flight; result.json waits for it so a finished run's manifest is final. */
  private manifestRewrite: Promise<void> | null = null;
  /** After the job's exit: the lock files being given back while the records are written (see afterExit). */
  private filesGiven: Promise<void> | null = null;
  /** The queued manifest's write (enqueue): null once written, the error if it failed. Never rejects. */
  private manifestWritten: Promise<Error | null> | null = null;
  private cancelledBy: string | null = null;
  private manifest: RunManifest | null = null;
  /** output.log, its descriptors and the verdict scan (job-output.ts). */
  private readonly output: JobOutput;
  /** The lock files were taken for the current grant (so releasing gives them back exactly once). */
  private filesTaken = false;
  /** start() is awaiting (files, log): a cancel waits for it, see cancelQueued. */
  private startInFlight = false;
  /** --supersede: the run that ended this one (named in result.json). */
  supersededBy: string | null = null;
  private pendingCancel: { reason: NoChildReason; message: string } | null = null;
  readonly manifestPath: string;
  readonly resultPath: string;
  readonly logPath: string;
  /**
   * Where the daemon itself writes this run's files, and the path its log writer opens: the run dir and the log,
   * or in system mode handles pinned to them (system-mode.ts attachRun), so no root write follows a user's symlink.
   */
  ioDir: string;
  logOpenPath: string;
  private finished = false;
  /** Set when a cluster lock was lost and the job stopped for it (result: infra_fail / lock_lost). */
  private lockLost: string | null = null;
  /** Set when a cluster lock was lost but --on-lock-lost warn let the job run on (noted in result.json). */
  private lockLostWarning: string | null = null;
  /** The child's output to the log, the verdict scanner and the client; the client's stdin to the child. */
  private readonly io = new JobIo({
    scanner: () => this.output.scanner,
    log: () => this.output.writer,
    client: () => (this.detached ? null : this.conn),
  });
  /** Connections following this run's end (`lockd logs -f`, `watch_run`). */
  readonly watchers = new Set<() => void>();

  constructor(
    private readonly ctx: JobContext,
    private conn: Connection | null,
    readonly req: RunRequest,
    readonly runId: string,
    readonly dir: string,
    readonly runsRoot: string,
    readonly locks: ResolvedLock[],
    private readonly verdict: CompiledVerdictOptions,
    readonly uid: number | null,
    readonly parent: string | null,
    private readonly stdio: JobStdio | null = null,
  ) {
    this.output = new JobOutput(runId, verdict, stdio?.passed ?? null, ctx.log, (message) => {
      this.ctx.log.error('run log write failed', { run_id: this.runId, error: message });
      // The record cannot be trusted any more: stop the job rather than run on without its log.
      void this.stop('cancel', 'lockd (log write failed)');
    });
    this.manifestPath = join(dir, MANIFEST_FILE);
    this.resultPath = join(dir, RESULT_FILE);
    this.logPath = req.log_path ?? join(dir, LOG_FILE);
    this.ioDir = dir;
    this.logOpenPath = this.logPath;
    this.owner = {
      kind: 'run',
      id: runId,
      holder: req.holder,
      user: req.user,
      uid,
      pid: null,
      commandLine: null,
      cwd: req.cwd,
      since: this.queuedAt,
      locks,
    };
  }

  get detached(): boolean {
    return this.req.detach;
  }

  /** manifest.json as the run is queued (git sha of the build tree, command, locks, who). */
  private async writeQueuedManifest(): Promise<void> {
    const gitSha = await readGitSha(this.req.cwd).catch(() => null);
    const manifest = queuedManifest(this, gitSha, this.stdio);
    this.manifest = manifest;
    this.owner.commandLine = manifest.command_line;
    await writeManifest(this.ioDir, manifest, this.syncLater('manifest.json'));
  }

  /**
   * Write the queued manifest while the lock table is asked. The write (git sha, then one atomic file) used to come
   * first, in series with the grant, the lock files and the log; now they overlap, and the order on disk is kept by
   * waiting at the points that need it: start() waits for the manifest before the launch, finish() before the
   * result, and a run that queues or is refused before it says so. So no job runs, and no result exists, without
   * its manifest, as before.
   */
  async enqueue(): Promise<void> {
    const request: LockRequest<Owner> = {
      id: this.runId,
      claims: this.locks.map((l) => ({ key: l.key, mode: l.mode, ...(l.slots ? { slots: l.slots } : {}) })),
      meta: this.owner,
      ...(this.parent ? { parent: this.parent } : {}),
      ...(this.req.pools?.length ? { pools: this.req.pools.map(toPoolClaim) } : {}),
      ...(this.req.priority ? { priority: this.req.priority } : {}),
    };
    // Cluster locks: take the place in the etcd queues now, while the git sha is read and the manifest written,
    // so the etcd round trip is off the start path. What the cluster says is acted on once the manifest is there
    // (see enqueueCluster); every way this run can end before that (client gone, records unwritable) withdraws it.
    // (Not for a run already over: a client gone before this point must not leave a waiter in etcd.)
    const inCluster = !this.finished && (this.ctx.cluster?.handles(this.locks, this.req.pools) ?? false);
    // The manifest's command_line, known now: the journal record and the table's owner carry it from the start.
    this.owner.commandLine = commandLineOf(this.req.argv);
    const written = this.writeQueuedManifest().then(
      () => null,
      (e: Error) => e,
    );
    this.manifestWritten = written;
    const manifestOk = written.then((e) => e === null);
    if (inCluster) this.enqueueCluster(request, manifestOk);
    if (this.finished) return; // the client went away before this point
    this.ctx.journalRun(this);

    if (this.locks.length === 0 && !request.pools) {
      // Nothing to hold: the run is supervised and recorded like any other, with no trip through the table.
      void this.start({ request, claims: [], grantedAt: Date.now() });
      return;
    }
    if (inCluster) return; // queued in the cluster above
    const res = this.req.wait_ms === 0 ? this.ctx.gate.table.tryOnly(request) : this.ctx.gate.table.submit(request);
    if (res.kind !== 'granted') {
      // Queued or refused: said only once the manifest is there. Unwritable records end the run (the caller's catch).
      const error = await written;
      if (error) throw error;
      if (this.finished) return;
    }
    if (res.kind === 'granted') {
      // The grant's keys, as the gate's dispatch names them: pool members included (their lock files).
      this.ctx.events.emit(
        'granted',
        this.runId,
        res.grant.claims.map((c) => c.key),
      );
      void this.start(res.grant);
      return;
    }
    if (res.kind === 'rejected') {
      if (res.code === 'deadlock') {
        await this.finishNotObtained('deadlock', `deadlock: ${res.message}`, []);
      } else {
        // A claim the table cannot accept (e.g. slots with a different N): the user's mistake, exit 2 like any usage error.
        await this.finishNotObtained('spawn_failed', res.message, [], { status: 'error', exitCode: 2 });
      }
      return;
    }
    const blockers = res.blockers.map((b) => holderInfo(b.meta));
    if (res.kind === 'busy') {
      const first = res.blockers.find((b) => b.kind === 'holder') ?? res.blockers[0];
      const msg = first ? describeBlocker(lockNameOf(this.locks, first.key), first.meta) : 'lock is busy';
      await this.finishNotObtained('lock_busy', msg, blockers);
      return;
    }
    this.ctx.events.emit('queued', this.runId, this.lockNames(), { position: this.ctx.gate.table.queuePosition(this.runId) });
    if (this.conn && !this.detached) {
      const position = this.ctx.gate.table.queuePosition(this.runId);
      this.conn.send({ type: 'queued', run_id: this.runId, position, blockers, manifest_path: this.manifestPath, result_path: this.resultPath });
      this.startProgress(position, blockers);
    }
    if (this.req.wait_ms !== null) {
      this.waitTimer = setTimeout(() => this.onWaitExpired(), this.req.wait_ms);
    }
  }

  lockNames(): string[] {
    // Pool members once granted (their member lock files), so events name the board a run holds.
    return this.locks.map((l) => l.key).concat(memberLocks(this.manifest).map((l) => l.path));
  }

  /**
   * Cluster locks (docs/cluster.md): the cluster module queues across hosts, then takes the local locks all at
   * once; it owns the --wait deadline (which also bounds retrying an unreachable etcd: cluster_unavailable).
   * It is asked while the manifest is still being written: its answers wait for `manifest` (true once written,
   * false when it could not be), in the order they came. A run that ended meanwhile (client gone, records
   * unwritable: cancelQueued withdrew the request) gives back a grant that arrives, and ignores the rest.
   */
  private enqueueCluster(request: LockRequest<Owner>, manifest: Promise<boolean>): void {
    const later = (fn: () => void, granted = false) =>
      void manifest.then((ok) => {
        if (ok && !this.finished) fn();
        else if (granted) this.ctx.gate.release(this.runId);
      });
    this.ctx.cluster!.enqueue({
      request,
      locks: this.locks,
      waitMs: this.req.wait_ms,
      tryOnly: this.req.wait_ms === 0,
      callbacks: {
        onQueued: (position, blockers) =>
          later(() => {
            this.ctx.events.emit('queued', this.runId, this.lockNames(), { position });
            if (this.conn && !this.detached) {
              this.conn.send({ type: 'queued', run_id: this.runId, position, blockers, manifest_path: this.manifestPath, result_path: this.resultPath });
              this.startProgress(position, blockers);
            }
          }),
        onWaiting: (position, blockers) =>
          later(() => {
            if (this.state === 'queued' && this.conn && !this.detached) {
              this.conn.send({ type: 'waiting', position, blockers });
              this.progress?.saw(position, blockers);
            }
          }),
        onGranted: (grant) =>
          later(() => {
            this.ctx.events.emit('granted', this.runId, this.lockNames());
            void this.start(grant);
          }, true),
        onNotObtained: (reason, message, blockers) =>
          later(() => {
            if (reason === 'usage') void this.finishNotObtained('spawn_failed', message, blockers, { status: 'error', exitCode: 2 });
            else void this.finishNotObtained(reason, message, blockers);
          }),
      },
    });
  }

  /**
   * The cluster lease behind this run's cluster locks is running out (or gone): stop the job before the lock can
   * pass to another host, unless it asked to be only warned (--on-lock-lost warn).
   */
  onClusterLockLost(message: string, graceMs: number): void {
    if (this.finished) return;
    const policy = this.req.on_lock_lost ?? this.ctx.cluster?.onLockLost ?? 'stop';
    this.ctx.log.error('cluster lock lost', { run_id: this.runId, message, action: policy });
    if (this.state === 'queued' || this.state === 'starting') {
      this.lockLost = message;
      void this.cancelQueued('lock_lost', message);
      return;
    }
    if (policy === 'warn') {
      this.lockLostWarning = message;
      return;
    }
    if (this.state !== 'running') return;
    this.lockLost = message;
    void this.stop('cancel', 'lockd (cluster lock lost)', 'SIGTERM', Math.min(graceMs, this.req.kill_after_ms));
  }

  /** The table moved us to `position` (computed for all waiters at once by the daemon); tell an attached client. */
  notifyWaiting(position: number): void {
    if (this.state !== 'queued' || !this.conn || this.detached) return;
    const blockers = this.ctx.gate.table.blockersOf(this.runId).map((b) => holderInfo(b.meta));
    this.conn.send({ type: 'waiting', position, blockers });
    this.progress?.saw(position, blockers);
  }

  /** The client asked for progress messages while queued (progress_ms): one on each interval until granted or ended. */
  private startProgress(position: number, blockers: HolderInfo[]): void {
    if (!this.req.progress_ms || this.progress) return;
    this.progress = new WaitProgress(this.req.progress_ms, position, blockers, {
      send: (pos, bl) => {
        if (this.state !== 'queued' || !this.conn || this.conn.closed || this.detached) return;
        this.conn.send({ type: 'progress', position: pos, blockers: bl, eta_ms: this.ctx.waitEta(this.runId) });
      },
    });
  }

  private stopProgress(): void {
    this.progress?.stop();
    this.progress = null;
  }

  private async onWaitExpired(): Promise<void> {
    this.waitTimer = null;
    if (this.state !== 'queued') return;
    const blockers = this.ctx.gate.table.blockersOf(this.runId);
    const holder = blockers.find((b) => b.kind === 'holder') ?? blockers[0];
    const msg = holder ? describeBlocker(lockNameOf(this.locks, holder.key), holder.meta) : 'locks were not granted in time';
    this.ctx.gate.cancel(this.runId);
    await this.finishNotObtained(
      'lock_wait_timeout',
      `waited ${fmtSeconds(this.req.wait_ms ?? 0)}: ${msg}`,
      blockers.map((b) => holderInfo(b.meta)),
    );
  }

  /** The table granted every lock: take the files, spawn the child. */
  async start(grant: Grant<Owner>): Promise<void> {
    if (this.waitTimer) clearTimeout(this.waitTimer);
    this.waitTimer = null;
    this.stopProgress();
    markPhase('granted', this.runId);
    this.grant = grant;
    this.grantedAt = Date.now();
    this.state = 'starting';
    this.startInFlight = true;
    let ok: boolean;
    try {
      ok = await this.ctx.guard.take(grant.claims, this.uid);
      this.filesTaken = ok;
      markPhase('files_taken', this.runId);
    } catch (e) {
      this.startInFlight = false;
      await this.releaseLocks();
      await this.finishStartFailure('spawn_failed', `cannot prepare lock files: ${(e as Error).message}`);
      return;
    }
    if (await this.finishPendingCancel()) return;
    if (!ok) {
      this.startInFlight = false;
      // The caller's --wait bounds this too: give the table grant back and record who we could not get past.
      if (this.req.wait_ms !== null && Date.now() - this.queuedAt >= this.req.wait_ms) {
        await this.releaseLocks();
        const reason = this.req.wait_ms === 0 ? 'lock_busy' : 'lock_wait_timeout';
        await this.finishNotObtained(reason, `${this.locks.map((l) => l.name).join(', ')}: a lock file is held by a process outside lockd (flock)`, []);
        return;
      }
      // An outside flock(1) user has a lock file: we stay first in line and look again shortly. Polling is the only
      // way to notice another process's flock going away; it runs only in this rare state.
      setTimeout(() => {
        if (this.state === 'starting' && !this.finished) void this.start(grant);
      }, 100);
      return;
    }
    if (this.finished) {
      await this.releaseLocks();
      return;
    }
    try {
      await this.output.open(this.logOpenPath, { detached: this.detached, maxBytes: this.req.log_max_bytes ?? null });
    } catch (e) {
      this.startInFlight = false;
      await this.releaseLocks();
      this.output.error = (e as Error).message;
      await this.finishStartFailure('log_write_failed', `cannot create the run's log ${this.logPath}: ${(e as Error).message}`);
      return;
    }
    // No launch before the queued manifest is on disk (it was written while the above ran; see enqueue).
    const manifestError = await this.manifestWritten;
    if (manifestError && !this.pendingCancel) {
      this.startInFlight = false;
      this.ctx.log.error('cannot write the records of a run', { run_id: this.runId, error: manifestError.message });
      await this.releaseLocks();
      await this.finishStartFailure('log_write_failed', `cannot write the run's records in ${this.dir}: ${manifestError.message}`);
      return;
    }
    if (await this.finishPendingCancel()) return;
    this.startInFlight = false;
    this.spawnChild(grant);
  }

  private spawnChild(grant: Grant<Owner>): void {
    const [file, ...args] = this.req.argv as [string, ...string[]];
    try {
      if (!statSync(this.req.cwd).isDirectory()) throw new Error('not a directory');
    } catch {
      void this.spawnFailed({ code: 'ENOENT_CWD', message: `working directory ${this.req.cwd} does not exist` });
      return;
    }
    // System mode: started as the caller (setpriv, then `cd` as that user); otherwise directly.
    const env = childEnv(this.req, { runId: this.runId, dir: this.dir, socketPath: this.ctx.socketPath, locks: this.locks }, grant.claims);
    const members = membersOf(grant.claims, this.ctx.gate.table.pools());
    if (members) {
      try {
        addMemberEnv(env, members, this.dir, this.ioDir);
      } catch (e) {
        void this.spawnFailed({ code: 'EMEMBERS', message: `cannot write the members file in ${this.dir}: ${(e as Error).message}` });
        return;
      }
    }
    const plan = this.ctx.system?.jobSpawn(this, file, args, env, this.ctx.launcher.setsIds) ?? { file, args, cwd: this.req.cwd, env };
    markPhase('launch', this.runId);
    // Written to the socket before the child exists: if the daemon dies from here on, the client must not run the
    // command a second time (its output may already be on the caller's terminal through the passed descriptors).
    if (this.conn && !this.detached) this.conn.send({ type: 'launching', run_id: this.runId, result_path: this.resultPath });
    const child = this.ctx.launcher.launch(
      {
        runId: this.runId,
        file: plan.file,
        args: plan.args,
        cwd: plan.cwd,
        env: plan.env,
        ...this.output.launchStdio(this.req.interactive && !this.detached),
        graceMs: this.req.kill_after_ms,
        ...(plan.identity ? { identity: plan.identity } : {}),
      },
      (e) => void this.spawnFailed(e),
    );
    const outputDone = this.output.launched(child, this.logOpenPath);
    if (!child) return;
    faultPoint('after_launch');
    markPhase('launched', this.runId, child.pid);

    this.pid = child.pid;
    this.owner.pid = child.pid;
    this.startedAt = Date.now();
    this.state = 'running';
    const startTime = child.startTime;
    this.tree = child.tree;
    const exited = child.exited;
    this.io.attach(child);

    if (this.req.timeout_ms !== null) {
      this.timeoutTimer = setTimeout(() => void this.stop('timeout', null), this.req.timeout_ms);
    }
    this.ctx.journalRun(this);
    this.ctx.events.emit('started', this.runId, this.lockNames(), { pid: child.pid });
    // Cluster locks: the child's pid goes into the etcd keys, and the watchdog kills its group if this daemon dies.
    if (this.ctx.cluster?.handles(this.locks, this.req.pools)) this.ctx.cluster.protect(this.runId, child.pid, (this.req.on_lock_lost ?? this.ctx.cluster.onLockLost) === 'stop');
    const grantInfo = this.grantInfo(grant);
    if (this.conn && !this.detached) {
      this.conn.send({
        type: 'started',
        run_id: this.runId,
        pid: child.pid,
        manifest_path: this.manifestPath,
        result_path: this.resultPath,
        log_path: this.logPath,
        locks: grantInfo,
        ...(this.output.terminal ? { tty: true } : {}),
      });
    }
    // Off the handoff path: the manifest's start time and the .meta files.
    if (this.manifest) {
      const m = withMembers(startedManifest(this.manifest, this.startedAt, grant.claims), grant.claims, members);
      if (this.output.terminal && m.stdio) m.stdio = { ...m.stdio, terminal: true };
      this.manifest = m;
      this.manifestRewrite = writeManifest(this.ioDir, m, this.syncLater('manifest.json')).then(
        () => undefined,
        (e: Error) => {
          this.ctx.log.warn('manifest rewrite failed', { run_id: this.runId, error: e.message });
        },
      );
    }
    // The .meta names the outermost holder: a run nested in its family's grant leaves the family's meta as it is.
    this.ctx.guard.describe(
      grant.claims.filter((c) => !c.nested).map((c) => c.key),
      lockMeta({ pid: child.pid, startTime, startedAt: this.startedAt, cwd: this.req.cwd, commandLine: this.owner.commandLine, runId: this.runId, holder: this.req.holder }),
    );
    void this.afterExit(exited, outputDone);
  }

  grantInfo(grant: Grant<Owner> | null = this.grant): GrantInfo[] {
    if (!grant) return [];
    const defs = grant.claims.some((c) => c.member !== undefined) ? this.ctx.gate.table.pools() : [];
    return grant.claims.map((c): GrantInfo => {
      if (c.member !== undefined) return memberGrantInfo(c, defs, (this.grantedAt ?? this.queuedAt) - this.queuedAt);
      const l = this.locks.find((x) => x.key === c.key)!;
      return {
        name: l.name,
        scope: l.scope,
        mode: c.mode,
        path: c.key,
        slot_index: c.slotIndex ?? null,
        fencing_token: c.fencingToken,
        wait_ms: (this.grantedAt ?? this.queuedAt) - this.queuedAt,
      };
    });
  }

  /** Forward a signal from the client (Ctrl+C) to the job's process group. */
  forwardSignal(sig: NodeJS.Signals): void {
    if (this.state === 'queued' || this.state === 'starting') {
      if (sig === 'SIGKILL' || sig === 'SIGINT' || sig === 'SIGTERM' || sig === 'SIGHUP' || sig === 'SIGQUIT') void this.cancelQueued('cancelled', `cancelled by signal ${sig} while queued`);
      return;
    }
    if (sig === 'SIGKILL') {
      void this.stop('external', null, 'SIGKILL');
      return;
    }
    this.tree?.signal(sig);
  }

  /** Client stdin for the job (-i); bytes that arrive before the child exists are kept, bounded. */
  writeStdin(data: Buffer, conn: Connection): void {
    if (this.req.interactive) this.io.writeStdin(data, conn);
  }

  /** The caller's terminal changed size: its job's pty follows (nothing without one). */
  resize(cols: number, rows: number): void {
    this.output.resize(cols, rows);
  }

  endStdin(): void {
    this.io.endStdin();
  }

  /** Stop the whole tree (timeout, kill, client lost, shutdown); the exit path records why. */
  async stop(reason: SignalSender, by: string | null, signal: NodeJS.Signals = 'SIGTERM', graceMs: number = this.req.kill_after_ms): Promise<void> {
    if (this.state === 'queued' || this.state === 'starting') {
      if (by && reason === 'cancel' && !this.cancelledBy) this.cancelledBy = by;
      if (reason === 'supersede') return await this.cancelQueued('superseded', `superseded by ${by ?? 'a newer run'}`);
      await this.cancelQueued(reason === 'client_lost' ? 'client_lost' : reason === 'shutdown' ? 'shutdown' : 'cancelled', by ? `cancelled by ${by}` : 'cancelled');
      return;
    }
    if (reason === 'shutdown') {
      // The daemon is going: no waiting for a slow caller to read the rest (it goes to the log only).
      this.output.abandon(this.childExited);
    }
    if (this.state !== 'running' || !this.tree || this.childExited) return;
    if (!this.killReason) {
      this.killReason = reason;
      this.killSignal = signal;
    }
    if (by && !this.cancelledBy) this.cancelledBy = by;
    this.state = 'stopping';
    this.ctx.events.emit('killed', this.runId, this.lockNames(), { reason, by });
    await this.tree.kill({ graceMs, signal });
  }

  /** Remove a request that never started. */
  async cancelQueued(reason: NoChildReason, message: string): Promise<void> {
    if (this.finished || (this.state !== 'queued' && this.state !== 'starting')) return;
    // start() is between two awaits (taking the lock files, opening the log): it must not go on to spawn a child
    // whose locks were released under it; it finishes this cancel at its next step instead.
    if (this.state === 'starting' && this.startInFlight) {
      this.pendingCancel ??= { reason, message };
      return;
    }
    if (this.state === 'starting') await this.releaseLocks();
    else this.ctx.gate.cancel(this.runId);
    await this.finishNotObtained(reason, message, []);
  }

  private async afterExit(exited: Promise<ChildEnd>, outputDone: Promise<unknown>): Promise<void> {
    const { code, signal, execFailure } = await exited;
    markPhase('exit_seen', this.runId, this.pid);
    this.childExited = true;
    if (this.timeoutTimer) clearTimeout(this.timeoutTimer);
    const tree = this.tree!;
    // Common case: one kill(-pgid, 0) says nothing is left. Otherwise the tree is killed before anyone else gets the lock.
    if (!tree.groupEmptySync()) {
      await tree.kill({ graceMs: this.req.kill_after_ms, signal: 'SIGTERM' });
    }
    // A descendant that left the group can still hold our pipes open; give the pipes a moment, then hunt it down.
    const drained = await Promise.race([outputDone.then(() => true), delay(200).then(() => false)]);
    if (!drained) {
      await tree.kill({ graceMs: this.req.kill_after_ms, signal: 'SIGTERM' });
      await this.output.drainAfterExit(outputDone, () => this.conn !== null);
    }
    const endedAt = Date.now();
    this.state = 'done';
    // The lock files (.meta removed, flock dropped) are given back while the records below are written: both are
    // thread-pool work, and only the `finished` frame has to wait for both (finish), so that a caller who sees its
    // run end finds the lock file free for flock(1). The next run's take waits for this give by itself.
    const { handedOn, filesGiven } = await this.releaseLocks({ filesInBackground: true });
    this.filesGiven = filesGiven;
    this.ctx.sweepLater(tree);
    // Nothing but the grant and the launch between this job's exit and the next one's exec: this run's records
    // (log close, verdict, result.json, .meta, events, the `finished` frame) wait until the runs it handed its locks
    // to are launched. Bounded, so a next run stuck on an outside flock(1) holder does not hold this result back.
    // The journal still says `running` meanwhile, so a crash here leaves a result for this run (reconcile).
    if ((await startsWithin(handedOn, RECORDS_AFTER_LAUNCH_MAX_MS)) > 0) faultPoint('records_after_next_launch');
    // Under the per-job reaper, a command that cannot be executed is known only now: recorded as a failed start.
    if (execFailure) {
      await this.output.settle(this.logOpenPath);
      await this.recordLaunchFailure(execFailure);
      return;
    }
    await this.finishExited(code, signal, endedAt);
  }

  /** Gives the locks back; returns the starts that release set off (see afterExit). */
  private async releaseLocks(opts: { filesInBackground?: boolean } = {}): Promise<{ handedOn: Promise<number>; filesGiven: Promise<void> }> {
    const grant = this.grant;
    this.grant = null;
    // Announced before the table hands the locks on, so `lockd events` shows this release before the next grant.
    this.ctx.events.emit('released', this.runId, this.lockNames());
    markPhase('released', this.runId);
    const handedOn = this.ctx.gate.release(this.runId);
    // Only files start() really took: a failed or refused take already gave its own back.
    const filesGiven = grant && this.filesTaken ? this.ctx.guard.give(grant.claims.map((c) => c.key)) : Promise.resolve();
    this.filesTaken = false;
    if (!opts.filesInBackground) await filesGiven;
    // Wrapped: a promise returned from an async function would be awaited by the caller's own await.
    return { handedOn, filesGiven };
  }

  /** A cancel that arrived while start() was awaiting: undo what start() has taken and record it. */
  private async finishPendingCancel(): Promise<boolean> {
    const c = this.pendingCancel;
    if (!c) return false;
    this.startInFlight = false;
    await this.output.closeUnstarted();
    await this.releaseLocks();
    await this.finishNotObtained(c.reason, c.message, []);
    return true;
  }

  private async spawnFailed(e: LaunchFailure): Promise<void> {
    await this.releaseLocks();
    await this.recordLaunchFailure(e);
  }

  /** The command could not be executed: 127 (not found) or 126 (not executable), or lockd's own failure. */
  private async recordLaunchFailure(e: LaunchFailure): Promise<void> {
    const notFound = e.code === 'ENOENT';
    const notExec = e.code === 'EACCES' || e.code === 'EISDIR' || e.code === 'ENOEXEC' || e.code === 'EPERM';
    const cmd = this.req.argv[0];
    if (notFound) await this.finishStartFailure('command_not_found', `command not found: ${cmd}`);
    else if (notExec) await this.finishStartFailure('command_not_executable', `command not executable: ${cmd} (${e.code})`);
    else await this.finishStartFailure('spawn_failed', `cannot start ${cmd}: ${e.message}`);
  }

  /** result.json for this attempt (job-records.ts). */
  private resultFrom(verdict: Verdict, opts: { exit?: ChildExit | null; endedAt?: number; message?: string | null } = {}): RunResult {
    const r = runResult(
      this,
      verdict,
      { grantedAt: this.grantedAt, startedAt: this.startedAt, endedAt: opts.endedAt ?? Date.now() },
      // The log exists once it was opened (a spawn failure leaves it empty); never-started runs have none.
      { exit: opts.exit ?? null, message: opts.message ?? null, logPath: this.output.opened ? this.logPath : null, cancelledBy: this.cancelledBy },
    );
    return resultWithMembers(r, this.manifest, this.supersededBy);
  }

  /** The locks were never obtained (busy, wait timeout, deadlock) or the run was removed while queued. */
  private async finishNotObtained(reason: NoChildReason, message: string, blockers: HolderInfo[], opts: { status?: RunStatus; exitCode?: number } = {}): Promise<void> {
    if (this.finished) return;
    if (this.waitTimer) clearTimeout(this.waitTimer);
    const lockBusy = reason === 'lock_busy' || reason === 'lock_wait_timeout' || reason === 'deadlock';
    const verdict = decideWithoutChild(reason, this.verdict);
    // --conflict-exit-code names the "not obtained" code; verdict options switch every error to 2 instead.
    if (lockBusy && !hasVerdictOptions(this.verdict)) verdict.exit_code = this.req.conflict_exit_code;
    if (opts.status) verdict.status = opts.status;
    if (opts.exitCode !== undefined) verdict.exit_code = opts.exitCode;
    const result = this.resultFrom(verdict, { message });
    this.ctx.events.emit(lockBusy ? 'not_obtained' : 'cancelled', this.runId, this.lockNames(), { reason });
    if ((lockBusy || reason === 'cluster_unavailable') && this.conn && !this.conn.closed && !this.detached) {
      this.conn.send({ type: 'not_obtained', code: reason, message, blockers, exit_code: result.exit_code });
    }
    await this.finish(result);
  }

  /** Granted, but the child could not be started (lock files, log file, spawn). */
  private async finishStartFailure(reason: NoChildReason, message: string): Promise<void> {
    await this.output.closeUnstarted();
    await this.finish(this.resultFrom(decideWithoutChild(reason, this.verdict), { message }));
  }

  private async finishExited(code: number | null, signal: NodeJS.Signals | null, endedAt: number): Promise<void> {
    const scan = await this.output.settle(this.logOpenPath);
    const exit = childExit(code, signal, this.killReason ? { reason: this.killReason, signal: this.killSignal } : null);
    const { verdict, message } = judgeExit(exit, scan, this.verdict, { logError: this.output.error, lockLost: this.lockLost, lockLostWarning: this.lockLostWarning });
    const result = this.resultFrom(verdict, { exit, endedAt, message });
    this.ctx.events.emit('exited', this.runId, this.lockNames(), { exit_code: result.exit_code, status: result.status, reason: result.reason });
    await this.finish(result);
  }

  private async finish(result: RunResult): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    this.output.dispose();
    this.state = 'done';
    if (this.waitTimer) clearTimeout(this.waitTimer);
    this.stopProgress();
    if (this.timeoutTimer) clearTimeout(this.timeoutTimer);
    let writeError: string | null = null;
    try {
      // The queued manifest first, then its rewrite, then the result: a result never exists without its manifest.
      if (this.manifestWritten) await this.manifestWritten;
      if (this.manifestRewrite) await this.manifestRewrite;
      await writeResult(this.ioDir, result, this.syncLater('result.json'));
    } catch (e) {
      writeError = (e as Error).message;
      this.ctx.log.error('result.json write failed', { run_id: this.runId, error: writeError });
      // Nothing on disk says how this run ended (full disk, runs root deleted mid-run): it cannot count as judged.
      if (result.status !== 'infra_fail') {
        const v = decideWithoutChild('log_write_failed', this.verdict);
        result = { ...result, status: v.status, reason: v.reason, verdict_source: v.verdict_source, exit_code: v.exit_code };
      }
    }
    const outcome: RunOutcome = {
      run_id: this.runId,
      exit_code: result.exit_code,
      status: result.status,
      reason: result.reason,
      message: writeError ? `${result.message ?? ''}${result.message ? '; ' : ''}result.json could not be written: ${writeError}` : result.message,
      result_path: this.resultPath,
      manifest_path: this.manifestPath,
      result: result as unknown as Record<string, unknown>,
    };
    if (this.filesGiven) await this.filesGiven;
    this.ctx.runFinished(this, result);
    if (this.conn && !this.conn.closed && !this.detached) this.conn.end({ type: 'finished', outcome });
    for (const w of this.watchers) w();
    this.watchers.clear();
  }

  /**
   * Run records are renamed into place before anyone is told about them, and fsynced right after, off the path of the
   * run (a disk flush per record was a large share of every short run's overhead). Readers never see a partial file;
   * only a power cut in that moment can lose one, and the crash journal is not fsynced either (docs/performance.md).
   */
  private syncLater(file: string): AtomicWriteOptions {
    return {
      sync: 'after-rename',
      // The default runs root is in the daemon's own state dir: small records there are written without thread-pool
      // trips (atomic-write.ts). System mode keeps its own way into the caller's run dir.
      blocking: this.req.runs_root === null && this.ctx.system === null,
      onDurable: (err) => {
        if (err) this.ctx.log.warn('run record fsync failed', { run_id: this.runId, file, error: err.message });
      },
    };
  }

  /** The client went away. */
  onClientLost(): void {
    this.conn = null;
    if (this.detached || this.finished) return;
    void this.stop('client_lost', 'client disconnected');
  }

  attachDetachedReply(): void {
    if (!this.conn) return;
    this.conn.end({ type: 'detached', run_id: this.runId, pid: this.pid ?? 0, manifest_path: this.manifestPath, result_path: this.resultPath, log_path: this.logPath });
    this.conn = null;
  }
}

function lockNameOf(locks: ResolvedLock[], key: string): string {
  return locks.find((l) => l.key === key)?.name ?? key;
}

function fmtSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms % 1000 === 0 ? 0 : 1)} s`;
}
