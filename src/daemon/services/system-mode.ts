/**
 * System mode: one daemon per host (root, socket /run/lockd/lockd.sock root:lockd 0660) serving every user.
 * One concern (every decision that differs when one daemon serves many users), kept in one file so the threat
 * model below can be checked against one place.
 * docs/security.md has the threat model; in short:
 *
 * - Attribution. Every request is attributed to the caller's kernel-verified uid/gid (SO_PEERCRED, read by the
 *   native addon when the connection is accepted). The `user`, `holder` and `client_pid` a client sends are
 *   claims: `user` is replaced by the verified uid's name, `client_pid` by the verified pid, and `holder` keeps
 *   the caller's string annotated with the verified user (identity.ts `annotateHolder`).
 * - Authorization. A user stops, releases and `--force`s only their own runs and holds; members of the admin
 *   group may break others' with --force (logged, and recorded as `cancelled_by` / in the release note). Only
 *   admins may shut the daemon down.
 * - Jobs run as the caller: `setpriv --reuid --regid --init-groups` (so the supplementary groups are the user's,
 *   which Node's own uid/gid spawn options cannot give), then `env -i` with the job's environment plus HOME/USER/
 *   LOGNAME, then `sh` changes into the working directory *as the user* and execs the command. setpriv and env
 *   run as root, so they get a fixed minimal environment: the caller's environment (LD_PRELOAD…) only ever
 *   reaches processes that already run as the caller.
 * - Files. A run directory is created by the user (`mkdir` under setpriv: the kernel checks the user's right to
 *   write the runs root, ACLs included), then pinned by the daemon with an O_NOFOLLOW directory handle; every
 *   file the daemon writes for the run goes through `/proc/self/fd/<handle>/`, so renaming the directory or
 *   planting symlinks in it cannot redirect a root write. The log is created O_EXCL|O_NOFOLLOW through the
 *   handle (or, for --log PATH, opened by the user and taken over through /proc/<pid>/fd), and the log writer
 *   reaches it through a link in the daemon's private `<state>/io/` directory. Garbage collection decides as
 *   root (read-only) and deletes as the user (`rm -rf` under setpriv).
 *
 * Switching users needs root on Linux with setpriv(1); a system daemon without that still attributes and
 * authorizes every request, but runs jobs only for its own uid.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  closeSync,
  constants as fsc,
  existsSync,
  fchmodSync,
  fchownSync,
  fstatSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
} from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import type { Connection } from '../server/connection.js';
import type { ClientMessage, RunRequest } from '../../protocol/messages.js';
import type { Logger } from '../server/logger.js';
import type { RunResult } from '../../runs/result.js';
import { LockdError, errnoCode } from '../../util/errors.js';
import { annotateHolder, userDirName, UserDirectory, type UserIdentity } from './identity.js';
import { isValidRunId, newRunId } from '../../runs/run-id.js';
import { LOG_FILE, MANIFEST_FILE, RESULT_FILE } from '../../runs/run-files.js';
import { gcRuns, type GcReport } from '../../runs/gc.js';
import { processStartTimeSync } from '../../util/proc.js';
import { AfterBurstByKey, AUTO_GC_TIMING } from '../jobs/after-burst.js';

/** The environment of everything the daemon starts as root (setpriv, env): fixed, never the caller's. */
const ROOT_ENV: Record<string, string> = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' };
const HELPER_TIMEOUT_MS = 30_000;

/** Runs as the user after setpriv: enter the working directory with the user's rights, then become the command. */
const JOB_SCRIPT = 'cd -- "$1" || exit 125\nshift\nexec "$@"';
/**
 * Runs as the user: create the runs root if missing (umask 022, like a user's own `mkdir -p`), then the run
 * directory itself (umask 077: nobody but the user can plant anything before the daemon pins it).
 * Exit 4 = the name is taken (a generated id is drawn again), 3 = cannot create (message on stderr).
 */
const MKDIR_SCRIPT = [
  'umask 022',
  '[ -d "$1" ] || mkdir -p -- "$1" || exit 3',
  'umask 077',
  'mkdir -- "$1/$2" 2>/dev/null && exit 0',
  'if [ -e "$1/$2" ] || [ -L "$1/$2" ]; then exit 4; fi',
  'mkdir -- "$1/$2"',
  'exit 3',
].join('\n');
/** Runs as the user: open (create) the file read-write on fd 3, say so, and keep it open until stdin closes. */
const OPEN_SCRIPT = 'exec 3<>"$1" || exit 3\necho ready\nread _ || true';

function findTool(names: string[]): string | null {
  for (const n of names) if (existsSync(n)) return n;
  return null;
}

function daemonUid(): number {
  return typeof process.geteuid === 'function' ? process.geteuid() : -1;
}

export interface SystemModeOptions {
  stateDir: string;
  log: Logger;
  /** Members may kill/release/--force others' runs and holds (default `lockd-admin`); null: only root. */
  adminGroup: string | null;
  /** Group that owns the socket (default `lockd`); null leaves the socket's group alone. */
  socketGroup: string | null;
  users?: UserDirectory;
}

/** What the daemon holds for one run it created as its user. */
export interface PreparedRun {
  runId: string;
  dir: string;
  identity: UserIdentity;
  /** O_NOFOLLOW handle on the run directory; all the daemon's writes go through /proc/self/fd/<dirFd>. */
  dirFd: number;
  /** The log, opened safely for the user; the log writer reaches it through `logLink`. */
  logFd: number;
  logLink: string;
  /** The log is the default `<dir>/output.log` the daemon created (removed again when the run never used it). */
  defaultLog: boolean;
}

interface HelperResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface SpawnPlan {
  file: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  /** Set when the launcher switches users itself (native): then file/args/cwd are the job's own. */
  identity?: { uid: number; gid: number; groups: readonly number[] };
}

/** What system mode reads and sets on a run (jobs/run-job.ts's RunJob is one). */
export interface SystemRun {
  readonly req: RunRequest;
  readonly runId: string;
  readonly uid: number | null;
  readonly runsRoot: string;
  ioDir: string;
  logOpenPath: string;
}

export class SystemMode {
  readonly users: UserDirectory;
  /** Root on Linux with setpriv, env and sh: jobs and files are created as the calling user. */
  readonly switching: boolean;
  private readonly setpriv: string | null;
  private readonly envTool: string | null;
  private readonly shell: string | null;
  private readonly rmTool: string | null;
  private readonly stateDir: string;
  private readonly ioDir: string;
  private readonly log: Logger;
  private readonly adminGroup: string | null;
  private readonly socketGroup: string | null;
  private readonly identities = new WeakMap<Connection, UserIdentity>();
  private readonly prepared = new WeakMap<SystemRun, PreparedRun>();
  /** Whose run it is, kept after the run's handles are released (auto-GC runs later, as that user). */
  private readonly runUsers = new WeakMap<SystemRun, UserIdentity>();

  constructor(opts: SystemModeOptions) {
    this.users = opts.users ?? new UserDirectory();
    this.stateDir = opts.stateDir;
    this.log = opts.log;
    this.adminGroup = opts.adminGroup;
    this.socketGroup = opts.socketGroup;
    this.setpriv = findTool(['/usr/bin/setpriv', '/bin/setpriv', '/usr/sbin/setpriv']);
    this.envTool = findTool(['/usr/bin/env', '/bin/env']);
    this.shell = findTool(['/bin/sh', '/usr/bin/sh']);
    this.rmTool = findTool(['/bin/rm', '/usr/bin/rm']);
    this.switching = process.platform === 'linux' && daemonUid() === 0 && !!this.setpriv && !!this.envTool && !!this.shell && !!this.rmTool;
    this.ioDir = join(opts.stateDir, 'io');
    if (this.switching) this.prepareIoDir();
    else {
      this.log.warn("system mode without user switching: jobs run only for the daemon's own uid", {
        reason: daemonUid() !== 0 ? 'not running as root' : process.platform !== 'linux' ? `unsupported on ${process.platform}` : 'setpriv(1), env(1), sh or rm not found',
      });
    }
  }

  /** `<state>/io`: root-only, holds the log writers' links and ring files; leftovers of a previous daemon go. */
  private prepareIoDir(): void {
    mkdirSync(this.ioDir, { recursive: true, mode: 0o700 });
    const st = lstatSync(this.ioDir);
    if (!st.isDirectory() || st.uid !== daemonUid()) throw new LockdError('unsafe_state_dir', `${this.ioDir} is not a directory owned by the daemon`);
    chmodSync(this.ioDir, 0o700);
    for (const name of readdirSync(this.ioDir)) rmSync(join(this.ioDir, name), { recursive: true, force: true });
  }

  // ---- socket ------------------------------------------------------------------------------------

  /** Hand the socket to the socket group (root:lockd 0660), when that group exists. */
  applySocketGroup(socketPath: string): void {
    if (!this.socketGroup || process.platform === 'win32') return;
    const g = this.users.groupByName(this.socketGroup);
    if (!g) {
      this.log.warn('socket group does not exist; only the socket owner and its group can connect', { group: this.socketGroup, socket: socketPath });
      return;
    }
    chownSync(socketPath, daemonUid(), g.gid);
    chmodSync(socketPath, 0o660);
  }

  // ---- who is asking -----------------------------------------------------------------------------

  /** The caller's identity, from the kernel-verified peer credentials only. */
  identityOf(conn: Connection): UserIdentity {
    const cached = this.identities.get(conn);
    if (cached) return cached;
    if (!conn.peer) throw new LockdError('no_peer_credentials', 'this lockd system daemon cannot verify the caller; refusing the request');
    const id = this.users.userByUid(conn.peer.uid, conn.peer.gid);
    this.identities.set(conn, id);
    return id;
  }

  /** uid 0, or a member of the admin group (by the group database or the peer's verified gid). */
  isAdmin(conn: Connection): boolean {
    if (!conn.peer) return false;
    if (conn.peer.uid === 0) return true;
    const gids = this.adminGids();
    if (gids.length === 0) return false;
    const id = this.identityOf(conn);
    return [conn.peer.gid, ...id.groups].some((g) => gids.includes(g));
  }

  adminGids(): number[] {
    if (!this.adminGroup) return [];
    const g = this.users.groupByName(this.adminGroup);
    return g ? [g.gid] : [];
  }

  /** "alice (uid 1001, pid 4242)", with ", admin" for admins: how acts are logged and recorded. */
  describeCaller(conn: Connection): string {
    const id = this.identityOf(conn);
    return `${id.name} (uid ${id.uid}${this.isAdmin(conn) ? ', admin' : ''}, pid ${conn.peer?.pid ?? '?'})`;
  }

  /**
   * Replace every identity claim of a request by the verified caller. Runs before dispatch, synchronously, so no
   * handler ever sees a claimed user or pid. Throws for what the caller may not ask at all.
   */
  attribute(conn: Connection, msg: ClientMessage): ClientMessage {
    const id = this.identityOf(conn);
    const pid = conn.peer!.pid;
    switch (msg.type) {
      case 'run': {
        requireAbsolute(msg.req.cwd, 'cwd');
        if (msg.req.runs_root !== null) requireAbsolute(msg.req.runs_root, 'runs_root');
        if (msg.req.log_path !== null) requireAbsolute(msg.req.log_path, 'log_path');
        return { ...msg, req: { ...msg.req, user: id.name, holder: annotateHolder(msg.req.holder, id), client_pid: pid } };
      }
      case 'acquire':
        return { ...msg, req: { ...msg.req, user: id.name, holder: annotateHolder(msg.req.holder, id), client_pid: pid } };
      case 'release':
      case 'heartbeat':
        return { ...msg, holder: annotateHolder(msg.holder, id) };
      case 'shutdown':
        if (!this.isAdmin(conn)) {
          throw new LockdError('not_authorized', `only root or a member of ${this.adminGroup ?? 'the admin group'} can stop the system lockd daemon`);
        }
        this.log.warn('shutdown requested', { by: this.describeCaller(conn), force: msg.force });
        return msg;
      default:
        return msg;
    }
  }

  /** May this caller stop that run? Returns who is stopping it (for the log and result.json `cancelled_by`). */
  authorizeKill(conn: Connection, job: SystemRun, force: boolean): string {
    const id = this.identityOf(conn);
    const by = this.describeCaller(conn);
    if (job.uid === id.uid) return by;
    const notOwner = () => new LockdError('not_owner', `run ${job.runId} belongs to ${job.req.user} (uid ${job.uid ?? '?'}); only its owner, or an admin with --force, can stop it`);
    if (!this.isAdmin(conn)) {
      if (!force) throw notOwner();
      throw new LockdError('not_authorized', `run ${job.runId} belongs to ${job.req.user}; only members of ${this.adminGroup ?? 'the admin group'} (or root) can stop others' runs`);
    }
    // Admins say so explicitly (--force); root is root.
    if (!force && id.uid !== 0) throw notOwner();
    this.log.warn('run stopped by an admin', { run_id: job.runId, owner: job.req.user, owner_uid: job.uid, by });
    return by;
  }

  // ---- runs --------------------------------------------------------------------------------------

  /** Where a user's runs go when the client names no runs root: `<state>/runs/<user>` (0700, theirs). */
  defaultRunsRoot(conn: Connection): string | null {
    if (!this.switching) return null;
    return join(this.stateDir, 'runs', userDirName(this.identityOf(conn)));
  }

  /** `<state>/runs/<user>`, created by root (its parent is root's) and handed to the user. */
  private ensureUserRunsRoot(id: UserIdentity, root: string): void {
    mkdirSync(join(this.stateDir, 'runs'), { recursive: true, mode: 0o755 });
    try {
      mkdirSync(root, { mode: 0o700 });
      lchownSync(root, id.uid, id.gid);
    } catch (e) {
      if (errnoCode(e) !== 'EEXIST') throw e;
    }
    const st = lstatSync(root);
    if (!st.isDirectory() || st.uid !== id.uid) throw new LockdError('unsafe_runs_root', `${root} is not a directory owned by ${id.name}`);
  }

  /**
   * Create the run directory as the caller and pin it (see the top of this file). Null when this daemon does not
   * switch users and the caller is the daemon's own uid (the ordinary path applies); throws for anyone else.
   */
  async prepareRun(conn: Connection, req: RunRequest, runsRoot: string): Promise<PreparedRun | null> {
    const id = this.identityOf(conn);
    if (!this.switching) {
      if (id.uid === daemonUid()) return null;
      throw new LockdError(
        'cannot_switch_user',
        `this system lockd daemon runs as uid ${daemonUid()} without the means to switch users (root on Linux with setpriv), so it cannot run jobs for ${id.name}`,
      );
    }
    const root = resolve(runsRoot);
    if (root === this.defaultRunsRoot(conn)) this.ensureUserRunsRoot(id, root);
    const runId = await this.mkdirAsUser(id, root, req.run_id);
    const dir = join(root, runId);
    let dirFd = -1;
    let logFd = -1;
    try {
      try {
        dirFd = openSync(dir, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
      } catch (e) {
        throw new LockdError('unsafe_run_dir', `run directory ${dir} changed while it was being created (${errnoCode(e) ?? (e as Error).message})`);
      }
      const st = fstatSync(dirFd);
      // The user may have swapped in another directory of theirs: harmless. Anything not theirs is refused.
      if (!st.isDirectory() || st.uid !== id.uid) throw new LockdError('unsafe_run_dir', `run directory ${dir} changed while it was being created`);
      let rootMode = 0o755;
      try {
        rootMode = statSync(root).mode;
      } catch {
        /* vanished: keep 0755 */
      }
      // "With the permissions of the runs root": its rwx bits (and setgid), never sticky/setuid.
      const mode = rootMode & 0o2777;
      fchmodSync(dirFd, mode);
      const io = `/proc/self/fd/${dirFd}`;
      const defaultLogPath = join(dir, LOG_FILE);
      const defaultLog = req.log_path === null || resolve(req.log_path) === defaultLogPath;
      if (defaultLog) {
        try {
          logFd = openSync(`${io}/${LOG_FILE}`, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, mode & 0o666);
        } catch (e) {
          throw new LockdError('unsafe_run_dir', `cannot create ${defaultLogPath} (${errnoCode(e) ?? (e as Error).message}); was something planted in the run directory?`);
        }
        fchownSync(logFd, id.uid, st.gid);
      } else {
        logFd = await this.openAsUser(id, resolve(req.log_path!));
      }
      const logLink = join(this.ioDir, `${runId}-${randomBytes(4).toString('hex')}.log`);
      symlinkSync(`/proc/self/fd/${logFd}`, logLink);
      return { runId, dir, identity: id, dirFd, logFd, logLink, defaultLog };
    } catch (e) {
      if (logFd >= 0) closeSync(logFd);
      if (dirFd >= 0) closeSync(dirFd);
      throw e;
    }
  }

  /** Point the job's own file writes at the pinned handles (before its first write). */
  attachRun(job: SystemRun, p: PreparedRun): void {
    this.prepared.set(job, p);
    this.runUsers.set(job, p.identity);
    job.ioDir = `/proc/self/fd/${p.dirFd}`;
    job.logOpenPath = p.logLink;
  }

  /**
   * How to start a job as its user, or null when the ordinary spawn applies (no switching). The caller's
   * environment goes to `env -i` as arguments, so only processes already running as the caller see it.
   */
  jobSpawn(job: SystemRun, file: string, args: string[], env: Record<string, string>, launcherSetsIds = false): SpawnPlan | null {
    const p = this.prepared.get(job);
    if (!p || !this.switching) return null;
    const id = p.identity;
    const userEnv: Record<string, string> = { ...env, HOME: id.home, USER: id.name, LOGNAME: id.name };
    // The native launcher sets the groups, gid and uid in the child itself, then enters the cwd as the user and
    // execs: the same steps as setpriv + env -i + `cd`, without three extra execs. A nameless uid gets only its gid
    // (setpriv's --clear-groups).
    if (launcherSetsIds) {
      return { file, args, cwd: job.req.cwd, env: userEnv, identity: { uid: id.uid, gid: id.gid, groups: id.known ? id.groups : [id.gid] } };
    }
    const pairs = Object.entries(userEnv)
      .filter(([k, v]) => k !== '' && !k.includes('=') && !k.includes('\0') && !v.includes('\0'))
      .map(([k, v]) => `${k}=${v}`);
    return {
      file: this.setpriv!,
      args: [...credentialArgs(id), '--', this.envTool!, '-i', '--', ...pairs, this.shell!, '-c', JOB_SCRIPT, 'lockd-job', job.req.cwd, file, ...args],
      cwd: '/',
      env: { ...ROOT_ENV },
    };
  }

  /** The run is recorded: release the handles and give the records to the user. */
  runFinished(job: SystemRun, result: RunResult): void {
    const p = this.prepared.get(job);
    if (!p) return;
    this.prepared.delete(job);
    const io = `/proc/self/fd/${p.dirFd}`;
    try {
      unlinkSync(p.logLink);
    } catch {
      /* already gone */
    }
    const gid = fstatSync(p.dirFd).gid;
    // lchown: a name the user replaced by a symlink gets its link re-owned, never the link's target.
    for (const name of [MANIFEST_FILE, RESULT_FILE]) {
      try {
        lchownSync(`${io}/${name}`, p.identity.uid, gid);
      } catch {
        /* not written (a failed record is reported elsewhere) */
      }
    }
    if (p.defaultLog && result.log_path === null) {
      // Never started: the placeholder log goes, so the record matches result.json (`log_path: null`).
      try {
        const placed = lstatSync(`${io}/${LOG_FILE}`);
        const ours = fstatSync(p.logFd);
        if (placed.ino === ours.ino && placed.dev === ours.dev) unlinkSync(`${io}/${LOG_FILE}`);
      } catch {
        /* gone or replaced: leave it */
      }
    }
    closeSync(p.logFd);
    closeSync(p.dirFd);
  }

  // ---- garbage collection ------------------------------------------------------------------------

  /** Auto-GC after a run, coalesced per user and runs root (the same after-burst timing as core's), deleting as the run's user. */
  scheduleGc(job: SystemRun, keep: number, isLive: (id: string) => boolean): void {
    const identity = this.runUsers.get(job);
    if (!identity) return;
    this.autoGc.schedule(`${identity.uid}\0${job.runsRoot}`, { identity, runsRoot: job.runsRoot, keep, isLive });
  }

  private readonly autoGc = new AfterBurstByKey<{ identity: UserIdentity; runsRoot: string; keep: number; isLive: (id: string) => boolean }>(AUTO_GC_TIMING, (w) => {
    this.gcAs(w.identity, w.runsRoot, { keep: w.keep, dryRun: false }, w.isLive)
      .then((r) => {
        if (r.removed.length) this.log.info('auto-gc', { runs_root: w.runsRoot, removed: r.removed.length, as: w.identity.name });
      })
      .catch((e: Error) => this.log.warn('auto-gc failed', { runs_root: w.runsRoot, error: e.message }));
  });

  /** A `gc` request: decided by the policy, carried out with the caller's own rights. */
  async gc(conn: Connection, msg: Extract<ClientMessage, { type: 'gc' }>, isLive: (id: string) => boolean): Promise<void> {
    const id = this.identityOf(conn);
    const runsRoot = msg.runs_root !== null ? resolve(msg.runs_root) : this.defaultRunsRoot(conn)!;
    const report = await this.gcAs(
      id,
      runsRoot,
      {
        keep: msg.keep,
        dryRun: msg.dry_run,
        ...(msg.older_than_ms !== null ? { olderThanMs: msg.older_than_ms } : {}),
        ...(msg.max_bytes !== null ? { maxBytes: msg.max_bytes } : {}),
      },
      isLive,
    );
    conn.end({ type: 'gc_done', report: { runs_root: runsRoot, ...report } as unknown as Record<string, unknown> });
  }

  /**
   * The policy runs as root but only reads (dry run); the removal is `rm -rf` as the user, so the kernel decides
   * what they may delete, and GNU rm's descriptor-based walk is not fooled by a directory swapped for a symlink.
   */
  private async gcAs(id: UserIdentity, runsRoot: string, opts: { keep: number; dryRun: boolean; olderThanMs?: number; maxBytes?: number }, isLive: (id: string) => boolean): Promise<GcReport> {
    const plan = await gcRuns(runsRoot, { ...opts, dryRun: true, isLive });
    if (opts.dryRun || plan.removed.length === 0) return plan;
    const dirs = plan.removed.map((r) => join(runsRoot, r.run_id));
    const res = await this.asUser(id, [this.rmTool!, '-rf', '--', ...dirs]);
    const removed: GcReport['removed'] = [];
    const failed: GcReport['failed'] = [...plan.failed];
    for (const r of plan.removed) {
      if (existsSync(join(runsRoot, r.run_id))) failed.push({ run_id: r.run_id, error: res.stderr.trim().split('\n')[0] || `${id.name} may not remove it` });
      else removed.push(r);
    }
    return { ...plan, removed, failed };
  }

  // ---- doing things as the user ------------------------------------------------------------------

  /** Run a helper as the user (root env, no shell of the caller's); bounded. */
  private asUser(id: UserIdentity, argv: string[], input: ((child: ReturnType<typeof spawn>) => void) | null = null): Promise<HelperResult> {
    return new Promise((resolvePromise, reject) => {
      const child = spawn(this.setpriv!, [...credentialArgs(id), '--', ...argv], { cwd: '/', env: ROOT_ENV, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), HELPER_TIMEOUT_MS);
      child.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.once('close', (code) => {
        clearTimeout(timer);
        resolvePromise({ code, stdout, stderr });
      });
      if (input) input(child);
      else child.stdin!.end();
    });
  }

  /** `mkdir` the run directory as the user; a generated id is drawn again when taken. */
  private async mkdirAsUser(id: UserIdentity, root: string, requested: string | null): Promise<string> {
    if (requested !== null && !isValidRunId(requested)) {
      throw new LockdError('invalid_run_id', `invalid run id ${JSON.stringify(requested)}: use 1-128 of [A-Za-z0-9._-], starting with a letter or digit, without ".."`, { run_id: requested });
    }
    for (let attempt = 0; attempt < 32; attempt++) {
      const runId = requested ?? newRunId(new Date(), attempt < 4 ? 4 : attempt < 16 ? 6 : 8);
      const r = await this.asUser(id, [this.shell!, '-c', MKDIR_SCRIPT, 'lockd-mkdir', root, runId]);
      if (r.code === 0) return runId;
      if (r.code === 4) {
        if (requested !== null) throw new LockdError('run_id_exists', `run id ${requested} already exists in ${root}`, { run_id: requested, dir: join(root, requested) });
        continue;
      }
      throw new LockdError('runs_root_not_writable', `${id.name} cannot create a run directory in ${root}: ${r.stderr.trim().split('\n').pop() || `exit ${r.code}`}`, { runs_root: root });
    }
    throw new LockdError('run_id_exhausted', `could not find a free run id in ${root}`);
  }

  /**
   * Open a file the way the user could (a custom --log PATH): a helper running as the user opens it on its fd 3,
   * and the daemon takes that very open file over through /proc/<helper>/fd/3 — no path is resolved as root.
   */
  private async openAsUser(id: UserIdentity, path: string): Promise<number> {
    let fd = -1;
    let failure: string | null = null;
    const res = await this.asUser(id, [this.shell!, '-c', OPEN_SCRIPT, 'lockd-open', path], (child) => {
      // Identity of the helper is pid + start time, read before it can have been reaped (we are still in the
      // tick that spawned it); checked again around the open, so a recycled pid is never read through.
      const pid = child.pid!;
      const born = processStartTimeSync(pid);
      const same = () => born !== null && processStartTimeSync(pid) === born;
      let seen = '';
      child.stdout!.on('data', (d: Buffer) => {
        seen += d.toString();
        if (fd >= 0 || failure || !seen.includes('ready')) return;
        try {
          if (!same()) throw new Error('the helper went away');
          fd = openSync(`/proc/${pid}/fd/3`, fsc.O_RDWR);
          if (!same()) throw new Error('the helper went away');
          if (!fstatSync(fd).isFile()) throw new Error(`${path} is not a regular file`);
        } catch (e) {
          if (fd >= 0) closeSync(fd);
          fd = -1;
          failure = (e as Error).message;
        }
        child.stdin!.end();
      });
    });
    if (fd >= 0) return fd;
    throw new LockdError('log_write_failed', `${id.name} cannot write the log ${path}: ${failure ?? (res.stderr.trim().split('\n').pop() || `exit ${res.code}`)}`, { path });
  }
}

function credentialArgs(id: UserIdentity): string[] {
  // --init-groups needs a passwd entry (initgroups(3) by name); a nameless uid gets no supplementary groups.
  return ['--reuid', String(id.uid), '--regid', String(id.gid), id.known ? '--init-groups' : '--clear-groups'];
}

function requireAbsolute(p: string, field: string): void {
  if (!isAbsolute(p)) throw new LockdError('bad_request', `invalid request: ${field} must be an absolute path for the system daemon`);
}
