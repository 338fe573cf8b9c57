/**
 * A job's whole process tree, and how to end it. One concern, over 400 lines because finding every member (group,
 * cgroup, known pids, the environment tag) and the kill escalation share one identity rule (pid + start time).
 *
 * The daemon spawns each job detached, so the child leads its own process
 * group (pgid = child pid). Killing that group is not enough: descendants can
 * leave it (setsid / setpgid), double-fork into daemons that get reparented to
 * init, or ignore SIGTERM. `JobTree` finds every live process of the job by
 * several independent means and verifies the result with the process table:
 *
 *  1. the process group (pgid = leader pid);
 *  2. the ppid-descendants of every member found (a fixpoint over the table);
 *  3. processes whose /proc/<pid>/environ carries the job's env tag
 *     (`LOCKD_RUN_ID=<runId>`): an escapee reparented to init keeps its
 *     environment. Limit: a process that exec'd with a scrubbed environment
 *     (`env -i`, `execve(..., envp=[])`) AND left the group AND lost its parent
 *     chain is invisible to this scan — only the cgroup (4) still sees it.
 *     Reading environ needs ptrace-read access: another user's processes are
 *     skipped (the daemon normally runs as the job's user, or as root);
 *  4. the job's own cgroup v2, when the host lets us create one (detected once,
 *     silently skipped otherwise). Membership is inherited by every fork and
 *     cannot be left without write access to a cgroup.procs file;
 *  5. every process seen as a member before (pid + start time), so a member
 *     that escapes between two scans is not forgotten.
 *
 * A pid is never trusted alone: identity is pid + start time, every signal to
 * a single pid is preceded by an identity check, and nothing that started
 * before the job leader can be a member. (There is still a window of
 * microseconds between the check and kill(2); node has no pidfd API.)
 *
 * Cost: (3) reads every /proc/<pid>/environ, so it runs only in `members()`,
 * `isEmpty()`, `signal()` and `kill()`, never on the hot path. The hot path —
 * a child that exited and left nothing behind — is `groupEmptySync()`: one
 * kill(-pgid, 0) plus, with a cgroup, one small file read.
 */
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { compareStartTimes, isExitedState, isSameProcessAlive, isValidPid, listProcesses, processGroupAlive, processStartTimeSync, readProcStat, type ProcessEntry } from '../../util/proc.js';
import { LockdError } from '../../util/errors.js';
import { JobCgroup } from './cgroup.js';
import { TREE_KILL_PLATFORM, treeKillVerified } from './tree-kill-verified.js';

export { cgroupsAvailable } from './cgroup.js';

const IS_LINUX = process.platform === 'linux';

export interface JobTreeOptions {
  /** Pid of the spawned job (leader of its own process group: pgid = pid). */
  pid: number;
  /**
   * The leader's start time (`processStartTimeSync(pid)`, taken synchronously
   * right after spawn). If omitted it is read now; if it cannot be read at
   * all the leader is treated as already gone.
   */
  startTime?: string | null;
  /** The run's id (names the job's cgroup). */
  runId: string;
  /** The exact `NAME=value` entry every process of the job inherits, e.g. `LOCKD_RUN_ID=<runId>`. */
  envTag: string;
  /** Try to put the job in its own cgroup v2 (default true; falls back silently when unavailable). */
  useCgroup?: boolean;
  /**
   * How the leader is moved into its cgroup. 'sync' (default): the constructor creates the cgroup and writes
   * `cgroup.procs` itself. 'async': both go through the thread pool and the constructor returns at once. Moving a
   * process into a cgroup takes the kernel's cgroup_threadgroup_rwsem for writing, which can wait for an RCU grace
   * period (0.1 ms to 15 ms measured); the daemon, which spawns on its only thread, uses 'async'. Until the move
   * has landed the cgroup is not consulted by `groupEmptySync` (a leader that exits before that is judged by its
   * process group alone); every scan (`members`, `isEmpty`, `signal`, `kill`) waits for it first. See
   * `cgroupSettled`.
   */
  cgroupMove?: 'sync' | 'async';
  /**
   * The cgroup the job was born in (the native launcher's clone3 with CLONE_INTO_CGROUP): every process of the job
   * has been in it from its first instruction, so it is the exact membership — no environment scan, no move, and an
   * empty cgroup after the leader's exit means nothing of the job is left (no later sweep needed).
   */
  bornIn?: JobCgroup;
  /** Signals the leader through its pidfd (native launcher): false once it is reaped, never another process. */
  leader?: LeaderSignal;
}

export interface LeaderSignal {
  signal(sig: NodeJS.Signals): boolean;
}

export interface KillOptions {
  /** How long processes get to exit after the first signal before SIGKILL. */
  graceMs: number;
  /** The first signal (default SIGTERM). */
  signal?: NodeJS.Signals;
  /** Bound on waiting for SIGKILLed processes to vanish (default 5000 ms); after it `remaining` says how many did not. */
  killWaitMs?: number;
}

export interface KillResult {
  /** True if anything was still alive after `graceMs` and got SIGKILL. */
  escalated: boolean;
  /** Job processes still in the process table when kill() gave up (0 on success). */
  remaining: number;
}

/** First poll interval while a kill is in progress, and its cap (doubling in between). */
const POLL_FIRST_MS = 5;
const POLL_MAX_MS = 100;

export class JobTree {
  readonly pid: number;
  readonly startTime: string | null;
  readonly runId: string;
  readonly envTag: string;
  private readonly envNeedle: Buffer;
  private cgroup: JobCgroup | null;
  /** Membership is the cgroup's, exactly (see JobTreeOptions.bornIn). */
  readonly exact: boolean;
  private readonly leader: LeaderSignal | null;
  /** An asynchronous move into the cgroup in flight ('async' mode); cleared once it has landed or failed. */
  private cgroupJoin: Promise<void> | null = null;
  /** dispose() was asked while the move was in flight: done once it settles. */
  private disposeWanted = false;
  /** Every process ever seen as a member: pid → start time. */
  private readonly known = new Map<number, string>();
  private killing: Promise<KillResult> | null = null;
  /** The launcher saw the leader exit and reaped it: any process holding its pid now is someone else. */
  private reaped = false;

  constructor(opts: JobTreeOptions) {
    // pid 0/1/negative would turn kill(-pgid) into "every process" or init's group.
    if (!isValidPid(opts.pid) || opts.pid <= 1) {
      throw new LockdError('INVALID_ARGUMENT', `JobTree: invalid pid ${String(opts.pid)}`, { pid: opts.pid });
    }
    if (!/^[^=\0]+=[^\0]*$/.test(opts.envTag)) {
      throw new LockdError('INVALID_ARGUMENT', 'JobTree: envTag must be NAME=value', { envTag: opts.envTag });
    }
    this.pid = opts.pid;
    const given = opts.startTime === undefined ? processStartTimeSync(opts.pid) : opts.startTime;
    this.startTime = given === null || given === '' ? null : given;
    this.runId = opts.runId;
    this.envTag = opts.envTag;
    this.envNeedle = Buffer.from(`${opts.envTag}\0`);
    // Move the job into its cgroup before anything else: every later fork inherits it. Only a
    // leader whose identity checks out is moved (a recycled pid must never land in our cgroup,
    // where cgroup.kill would reach it); the job's existing cgroup is reattached even without it
    // (a restarted daemon finding a dead leader's escapees).
    const leaderAlive = this.startTime !== null && isSameProcessAlive(this.pid, this.startTime);
    this.exact = opts.bornIn !== undefined;
    this.leader = opts.leader ?? null;
    if (opts.bornIn) this.cgroup = opts.bornIn;
    else if (opts.useCgroup === false) this.cgroup = null;
    else if (opts.cgroupMove === 'async' && leaderAlive) {
      this.cgroup = null;
      this.cgroupJoin = this.join(opts.runId).catch(() => {
        this.cgroupJoin = null;
      });
    } else this.cgroup = JobCgroup.adopt(opts.runId, opts.pid, leaderAlive);
    if (this.startTime !== null) this.known.set(this.pid, this.startTime);
  }

  /**
   * The asynchronous join ('async' mode): create the job's cgroup, then move the leader into it. The leader's
   * identity was checked just before (constructor); the kernel resolves the pid when the write lands, normally a
   * few ms later (longer only when the thread pool is saturated). Meanwhile the
   * leader may exit and be reaped, and its pid could only name another process again after the kernel's pid counter
   * wrapped around (pids are allocated cyclically). Still, a cgroup is only used when the process it holds is our
   * leader, or the leader's own descendants once it is gone: if the pid names another process now, the cgroup is
   * given up, never killed.
   */
  private async join(runId: string): Promise<void> {
    try {
      const pending = await JobCgroup.create(runId, this.pid);
      if (pending === null) return;
      const moved = await pending.moveAsync(this.pid);
      const holder = moved ? processStartTimeSync(this.pid) : null;
      // Another process holds the pid: it may be what landed in the cgroup. Never ours to kill; leave the cgroup be.
      if (holder !== null && holder !== this.startTime) return;
      if (moved) this.cgroup = pending;
      else pending.remove();
    } finally {
      // Every way out, so a dispose() asked for meanwhile is carried out.
      this.cgroupJoin = null;
      if (this.disposeWanted) this.dispose();
    }
  }

  /**
   * Told by the launcher once it has reaped the leader. From then on the leader's pid is foreign whenever a
   * process holds it: the kernel does not hand out a number still used as a process group id, so a holder means
   * our group emptied first. This is exact where the start-time check is not: start times tick at 10 ms, and a pid
   * reused within the same tick would otherwise pass for our leader.
   */
  leaderReaped(): void {
    this.reaped = true;
    this.known.delete(this.pid);
  }

  /** Resolves once an asynchronous cgroup move ('async' mode) has landed or failed; at once otherwise. */
  async cgroupSettled(): Promise<void> {
    if (this.cgroupJoin) await this.cgroupJoin;
  }

  /** The job's cgroup directory, or null when cgroups are not used for this job (or its move has not landed yet). */
  get cgroupPath(): string | null {
    return this.cgroup?.dir ?? null;
  }

  /**
   * Fast, synchronous "did the job leave nothing behind?": no process in the
   * job's process group (kill(-pgid, 0)) and, with a cgroup, none in it.
   * Without a cgroup it cannot see escapees that left the group — use
   * `isEmpty()` for the full answer. A zombie still counts as present here
   * (kill(-pgid, 0) succeeds until it is reaped), so a false answer is
   * confirmed by `kill()`, which ignores zombies and returns at once if
   * nothing live remains.
   */
  groupEmptySync(): boolean {
    if (this.cgroup?.populatedSync()) return false;
    if (this.groupIsOursSync() && processGroupAlive(this.pid)) return false;
    // Nothing can enter an empty cgroup by itself, so it is removed here rather than leaked.
    this.dispose();
    return true;
  }

  /** True when the process table shows no live process of the job (then its empty cgroup, if any, is removed). */
  async isEmpty(): Promise<boolean> {
    const empty = (await this.scan()).length === 0;
    if (empty) this.dispose();
    return empty;
  }

  /**
   * Pids of every live process of the job (never the daemon itself, never zombies). With a `snapshot`, the scan
   * uses that reading of the process table instead of taking its own (see `sweepTrees`).
   */
  async members(snapshot?: ProcessSnapshot): Promise<number[]> {
    return (await this.scan(snapshot)).map((e) => e.pid).sort((a, b) => a - b);
  }

  /**
   * Send `sig` to the whole job: to the process group, then to every member
   * outside it, one by one, each after an identity check (pid + start time).
   * On Windows only, an escaped subtree is ended with tree-kill (`taskkill /T`)
   * from its root, verified just before (tree-kill-verified.ts says why not on
   * Linux and macOS). Returns the number of members found.
   */
  async signal(sig: NodeJS.Signals = 'SIGTERM'): Promise<number> {
    return (await this.signalAll(sig)).length;
  }

  /** `signal`, returning the members it signalled. */
  private async signalAll(sig: NodeJS.Signals): Promise<ProcessEntry[]> {
    // Scan first, then signal: every process in the scan is then certain to have been sent `sig`.
    const entries = await this.scan();
    this.signalGroup(sig);
    const outside = entries.filter((e) => e.pgid !== this.pid);
    const outsidePids = new Set(outside.map((e) => e.pid));
    const roots = outside.filter((e) => !outsidePids.has(e.ppid));
    const reached = new Set<number>();
    // Windows only (tree-kill's taskkill /T); born in its cgroup, a job's descendants are all in the scan anyway.
    if (TREE_KILL_PLATFORM && !this.exact) {
      await Promise.all(
        roots.map(async (root) => {
          if (await treeKillVerified(root.pid, root.startTime, sig)) for (const pid of subtreeOf(root.pid, outside)) reached.add(pid);
        }),
      );
    }
    for (const e of outside) if (!reached.has(e.pid)) signalIfSame(e, sig);
    return entries;
  }

  /**
   * End the job: `signal` (default SIGTERM) to everything, wait until the
   * process table shows none of its processes (re-scanning on a short backoff,
   * signalling newcomers too) for up to `graceMs`, then SIGKILL everything left
   * and wait again, bounded by `killWaitMs`. Resolves when the job is gone or
   * the bound is hit (`remaining` > 0 then: e.g. processes stuck in
   * uninterruptible sleep). The job's cgroup is removed once it is empty.
   * Concurrent calls share the kill in progress.
   */
  kill(opts: KillOptions): Promise<KillResult> {
    if (this.killing === null) {
      this.killing = this.runKill(opts).finally(() => {
        this.killing = null;
      });
    }
    return this.killing;
  }

  /**
   * Remove the job's cgroup if it is empty (safe to call any time, and more
   * than once). Returns false if it is still populated. `groupEmptySync`,
   * `isEmpty` and `kill` call it themselves when they find the job empty.
   */
  dispose(): boolean {
    if (this.cgroupJoin !== null) {
      // The move is in flight: the cgroup is removed (if empty) once it settles.
      this.disposeWanted = true;
      return false;
    }
    if (this.cgroup === null) return true;
    if (!this.cgroup.remove()) return false;
    this.cgroup = null;
    return true;
  }

  private async runKill(opts: KillOptions): Promise<KillResult> {
    const firstSignal = opts.signal ?? 'SIGTERM';
    const graceEnd = Date.now() + Math.max(0, opts.graceMs);
    const signalled = new Set<string>();

    let entries = await this.signalAll(firstSignal);
    for (const e of entries) signalled.add(identityKey(e));
    let delay = POLL_FIRST_MS;
    while (entries.length > 0 && Date.now() < graceEnd) {
      await sleep(Math.min(delay, Math.max(1, graceEnd - Date.now())));
      delay = Math.min(delay * 2, POLL_MAX_MS);
      entries = await this.scan();
      // Processes forked since the signal (a trap handler, a respawn) get it too.
      for (const e of entries) {
        const key = identityKey(e);
        if (signalled.has(key)) continue;
        signalled.add(key);
        this.signalMember(e, firstSignal);
      }
    }
    if (entries.length === 0) {
      this.dispose();
      return { escalated: false, remaining: 0 };
    }

    const killEnd = Date.now() + Math.max(0, opts.killWaitMs ?? 5000);
    delay = POLL_FIRST_MS;
    for (;;) {
      this.cgroup?.killAll();
      this.signalGroup('SIGKILL');
      for (const e of entries) this.signalMember(e, 'SIGKILL');
      await sleep(Math.min(delay, Math.max(1, killEnd - Date.now())));
      delay = Math.min(delay * 2, POLL_MAX_MS);
      entries = await this.scan();
      if (entries.length === 0 || Date.now() >= killEnd) break;
    }
    this.dispose();
    return { escalated: true, remaining: entries.length };
  }

  /** One member: the leader through its pidfd when there is one (never a reused pid), anyone else after an identity check. */
  private signalMember(e: ProcessEntry, sig: NodeJS.Signals): void {
    if (this.leader !== null && !this.reaped && e.pid === this.pid && e.startTime === this.startTime) this.leader.signal(sig);
    else signalIfSame(e, sig);
  }

  /**
   * The leader through its pidfd (if any), then kill(-pgid, sig) if the group is still ours; errors other than
   * "no such group" are not ours to handle here.
   */
  private signalGroup(sig: NodeJS.Signals): void {
    this.leader?.signal(sig);
    if (!this.groupIsOursSync()) return;
    try {
      process.kill(-this.pid, sig);
    } catch {
      // ESRCH: the group is gone. EPERM: a member changed credentials (setuid); it is signalled by pid if we may.
    }
  }

  /**
   * Whether pgid = our leader's pid still names our group. While the group has
   * any member the kernel cannot hand its number to a new process, so if a
   * different process now holds the leader's pid, our group emptied before
   * that, and any group of that number is someone else's. (If no process holds
   * the pid, the group, if any, is assumed ours: a foreign group of that
   * number would need the pid to be recycled and its new owner to exit while
   * leaving children in its group, all within one job's life.)
   */
  private groupIsOursSync(): boolean {
    if (this.startTime === null) return false;
    if (this.reaped) return processStartTimeSync(this.pid) === null;
    const now = processStartTimeSync(this.pid);
    return now === null || now === this.startTime;
  }

  private groupIsOurs(byPid: Map<number, ProcessEntry>): boolean {
    if (this.startTime === null) return false;
    const leader = byPid.get(this.pid);
    if (this.reaped) return leader === undefined;
    return leader === undefined || leader.startTime === this.startTime;
  }

  /**
   * One enumeration of the job's live processes, by every means available (see the file comment), from `snapshot`
   * when given (a reading shared with other trees), else from a fresh reading of the process table.
   */
  private async scan(snapshot?: ProcessSnapshot): Promise<ProcessEntry[]> {
    // A cgroup move in flight lands first: the cgroup is then one of the ways this scan finds members.
    if (this.cgroupJoin) await this.cgroupJoin;
    const { table, byPid, children } = snapshot ?? (await ProcessSnapshot.take());

    const found = new Map<number, ProcessEntry>();
    const add = (e: ProcessEntry | undefined | null): void => {
      // Once the leader is reaped, its pid can only name a stranger (see leaderReaped).
      if (e && !(this.reaped && e.pid === this.pid) && !found.has(e.pid) && this.couldBeMember(e)) found.set(e.pid, e);
    };

    if (this.groupIsOurs(byPid)) for (const e of table) if (e.pgid === this.pid) add(e);
    for (const [pid, startTime] of this.known) {
      const e = byPid.get(pid);
      if (e !== undefined && e.startTime === startTime) add(e);
      else this.known.delete(pid);
    }
    if (this.cgroup !== null) {
      for (const pid of await this.cgroup.procs()) {
        // A pid missing from the table started after we listed it; read it directly.
        add(byPid.get(pid) ?? (await readProcStat(pid)));
      }
    }
    // Born in its cgroup, a job cannot have members the cgroup does not show: the costly environment scan is skipped.
    if (IS_LINUX && !this.exact) {
      const candidates = table.filter((e) => !found.has(e.pid) && this.couldBeMember(e));
      const reading = snapshot ?? null;
      const tagged = await Promise.all(candidates.map(async (e) => this.carriesEnvTag(reading ? await reading.environ(e.pid) : await readEnviron(e.pid))));
      candidates.forEach((e, i) => {
        if (tagged[i]) add(e);
      });
    }

    // Fixpoint: descendants of any member are members.
    const queue = [...found.keys()];
    while (queue.length > 0) {
      const parent = queue.pop()!;
      for (const child of children.get(parent) ?? []) {
        if (found.has(child.pid)) continue;
        add(child);
        if (found.has(child.pid)) queue.push(child.pid);
      }
    }

    for (const e of found.values()) this.known.set(e.pid, e.startTime);
    return [...found.values()];
  }

  /** Live, not us, not init, and not older than the job (a process that predates the leader cannot be its descendant). */
  private couldBeMember(e: ProcessEntry): boolean {
    if (e.pid <= 1 || e.pid === process.pid || isExitedState(e.state)) return false;
    if (this.startTime === null) return true;
    const order = compareStartTimes(e.startTime, this.startTime);
    return order === null || order >= 0;
  }

  /** Whether a process's environment (its /proc/<pid>/environ; null when unreadable) carries the job's tag. */
  private carriesEnvTag(env: Buffer | null): boolean {
    if (env === null || env.length === 0) return false;
    // Entries are NUL-terminated; match a whole entry, at the start or after a NUL.
    if (env.subarray(0, this.envNeedle.length).equals(this.envNeedle)) return true;
    const inner = Buffer.concat([Buffer.from([0]), this.envNeedle]);
    if (env.includes(inner)) return true;
    // A last entry without its terminator (should not happen, but cheap to accept).
    const tail = Buffer.concat([Buffer.from([0]), this.envNeedle.subarray(0, -1)]);
    return env.length >= tail.length && env.subarray(env.length - tail.length).equals(tail);
  }
}

/** /proc/<pid>/environ, or null when the process is gone or not ours to read (EACCES). */
async function readEnviron(pid: number): Promise<Buffer | null> {
  try {
    return await readFile(`/proc/${pid}/environ`);
  } catch {
    return null;
  }
}

/**
 * One reading of the process table, indexed, with each process's environment read at most once: what a scan needs,
 * shareable by the scans of several trees. A sweep after a burst of runs then reads `/proc` once, not once per run.
 */
export class ProcessSnapshot {
  readonly byPid = new Map<number, ProcessEntry>();
  readonly children = new Map<number, ProcessEntry[]>();
  private readonly environs = new Map<number, Promise<Buffer | null>>();

  private constructor(readonly table: ProcessEntry[]) {
    for (const e of table) {
      this.byPid.set(e.pid, e);
      const list = this.children.get(e.ppid);
      if (list === undefined) this.children.set(e.ppid, [e]);
      else list.push(e);
    }
  }

  static async take(): Promise<ProcessSnapshot> {
    return new ProcessSnapshot(await listProcesses());
  }

  /** /proc/<pid>/environ as read the first time any scan asked (null: gone or unreadable). */
  environ(pid: number): Promise<Buffer | null> {
    let env = this.environs.get(pid);
    if (env === undefined) {
      env = readEnviron(pid);
      this.environs.set(pid, env);
    }
    return env;
  }
}

/**
 * The live members of each tree, from ONE reading of the process table (and one environ read per candidate process)
 * shared by all of them. For the daemon's sweep after a batch of finished runs.
 */
export async function sweepTrees(trees: readonly JobTree[]): Promise<Array<{ tree: JobTree; members: number[] }>> {
  if (trees.length === 0) return [];
  const snapshot = await ProcessSnapshot.take();
  return Promise.all(trees.map(async (tree) => ({ tree, members: await tree.members(snapshot) })));
}

function identityKey(e: ProcessEntry): string {
  return `${e.pid}@${e.startTime}`;
}

/** Signal one process only if it is still the one we saw. */
function signalIfSame(e: ProcessEntry, sig: NodeJS.Signals): void {
  if (!isSameProcessAlive(e.pid, e.startTime)) return;
  try {
    process.kill(e.pid, sig);
  } catch {
    // ESRCH: it just exited. EPERM: not ours to signal; kill() reports it in `remaining`.
  }
}

/** `root` and its ppid-descendants within `entries`. */
function subtreeOf(root: number, entries: ProcessEntry[]): Set<number> {
  const out = new Set<number>([root]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const e of entries) {
      if (!out.has(e.pid) && out.has(e.ppid)) {
        out.add(e.pid);
        grew = true;
      }
    }
  }
  return out;
}
