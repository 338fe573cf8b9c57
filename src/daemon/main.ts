/**
 * `lockd daemon`: claim the socket, reconcile what a previous daemon left, then serve. Runs in the foreground
 * (systemd/launchd, or detached by a client's auto-start with its output in <state-dir>/daemon.log).
 */
import { mkdirSync, statSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import type { Server, Socket } from 'node:net';
import { Connection } from './server/connection.js';
import { DaemonCore } from './server/core.js';
import { createLogger } from './server/logger.js';
import { Journal } from './records/journal.js';
import { LockGuard } from './records/lock-guard.js';
import { FlockHolder } from './records/flock-holder.js';
import * as lockFiles from './records/lock-files.js';
import { listenOnSocket, inheritedListenFd, listenOnFd } from './server/listen.js';
import { claimStateDirWindows } from './server/state-claim-windows.js';
import { LockdError } from '../util/errors.js';
import { peerCredOfSocket } from '../util/peercred.js';
import { reconcile } from './records/reconcile.js';
import { AdoptedRuns } from './records/adopt.js';
import { selectLauncher } from './jobs/select-launcher.js';
import { removeEmptyJobCgroups, removeOwnCgroupSubtree } from './jobs/cgroup.js';
import { SystemMode } from './services/system-mode.js';
import type { ClusterFactory } from './locks/cluster-port.js';
import type { LockBackendInfo } from '../protocol/messages.js';

/** Bound on stdin buffered for a run that does not exist yet (see onStdin). */
const EARLY_STDIN_MAX_BYTES = 1024 * 1024;
const EARLY_STDIN_MAX_FRAMES = 4096;

export interface DaemonOptions {
  socketPath: string;
  stateDir: string;
  system: boolean;
  /** Write "ready\n" here once serving (used by auto-start and tests), then close it. */
  readyFd: number | null;
  globalDir: string | null;
  defaultKeep: number;
  adminGroup: string | null;
  /** System mode: the group that may use the socket (root:<group> 0660); default `lockd`, null leaves it alone. */
  socketGroup?: string | null;
  /**
   * Cluster locks through etcd (--cluster): how to open the backend, given by the caller (src/cli/commands/daemon.ts
   * loads src/cluster/ lazily); null/absent keeps every lock on this host. The daemon only knows the interface.
   */
  openCluster?: ClusterFactory | null;
  /** What `openCluster` (or its absence) means, and why: reported to clients (`lockd doctor`); omitted when not given. */
  lockBackend?: LockBackendInfo;
}

export interface RunningDaemon {
  core: DaemonCore;
  server: Server;
  stop(force: boolean): Promise<void>;
}

function ensureStateDir(dir: string, system: boolean): void {
  mkdirSync(dir, { recursive: true, mode: system ? 0o755 : 0o700 });
  // Both modes: a state directory others can write would let them forge the journal or plant files the daemon trusts.
  if (process.platform !== 'win32') {
    const st = statSync(dir);
    const uid = process.getuid!();
    if (st.uid !== uid) throw new LockdError('unsafe_state_dir', `state directory ${dir} is owned by uid ${st.uid}, not by you (uid ${uid})`);
    if ((st.mode & 0o022) !== 0) throw new LockdError('unsafe_state_dir', `state directory ${dir} is writable by others (mode ${(st.mode & 0o777).toString(8)}); run: chmod 700 ${dir}`);
  }
}

export async function startDaemon(opts: DaemonOptions): Promise<RunningDaemon> {
  ensureStateDir(opts.stateDir, opts.system);
  // Before anything is claimed: a forced launcher that cannot load is a start-up error (LOCKD_LAUNCHER).
  const launch = selectLauncher();
  const log = createLogger(opts.stateDir);
  installSafetyNet(log);
  log.info('job launcher', { launcher: launch.launcher.name, detail: launch.launcher.detail, reason: launch.reason });
  if (opts.lockBackend) log.info('lock backend', { ...opts.lockBackend });
  const flock: FlockHolder | null =
    process.platform === 'win32'
      ? null
      : await FlockHolder.open({
          onLost: (paths) => log.error('flock helper died; outside flock users are no longer excluded until the locks are retaken', { paths }),
        });
  const system = opts.system ? new SystemMode({ stateDir: opts.stateDir, log, adminGroup: opts.adminGroup, socketGroup: opts.socketGroup === undefined ? 'lockd' : opts.socketGroup }) : null;
  let ready = false;
  const early: Socket[] = [];
  const onConnection = (socket: Socket) => {
    if (ready) return accept(socket);
    // Until reconcile is done nothing is served (no lock may be granted twice); clients just wait for hello_ok.
    socket.on('error', () => undefined);
    early.push(socket);
  };
  const fd = inheritedListenFd();
  const server =
    fd !== null
      ? await listenOnFd(fd, onConnection)
      : await listenOnSocket({ socketPath: opts.socketPath, socketMode: opts.system ? 0o660 : 0o600, dirMode: opts.system ? 0o755 : 0o700, requirePrivateDir: true }, onConnection);
  // System mode: root:lockd 0660, so members of the socket group (and only they) can connect.
  if (system && fd === null) system.applySocketGroup(opts.socketPath);
  // One daemon per state dir, and the socket claimed, BEFORE the journal is read: a second daemon started by
  // mistake must fail without touching the first one's journal or runs (reconciling them would kill live jobs).
  if (flock) {
    try {
      await claimStateDir(flock, opts.stateDir);
    } catch (e) {
      server.close();
      await flock.close();
      throw e;
    }
  }
  // Windows has no flock: the state dir is claimed by a named pipe instead (server/state-claim-windows.ts).
  let windowsClaim: Server | null = null;
  if (process.platform === 'win32') {
    try {
      windowsClaim = await claimStateDirWindows(opts.stateDir);
    } catch (e) {
      server.close();
      throw e;
    }
  }
  // Accept errors (EMFILE when thousands of clients are connected) must not take the daemon down.
  let acceptErrorLogged = 0;
  server.on('error', (e: Error) => {
    const now = Date.now();
    if (now - acceptErrorLogged > 10_000) log.error('listening socket error', { error: e.message });
    acceptErrorLogged = now;
  });

  const { journal, previous, report } = Journal.open(opts.stateDir);
  if (report.setAsidePath) {
    log.warn('journal had unreadable lines; it was set aside and its good entries kept', { bad_lines: previous.badLines, unreadable: previous.unreadable, moved_to: report.setAsidePath });
  } else if (previous.badLines || previous.unreadable) {
    log.error('journal had unreadable lines and could not be set aside', { bad_lines: previous.badLines, unreadable: previous.unreadable });
  }
  journal.onError = (message) => log.error(message);
  if (report.writeError) log.error('journal cannot be written; running from memory', { error: report.writeError });
  const guard = new LockGuard(
    flock,
    {
      prepareLockFile: (p, o) => lockFiles.prepareLockFile(p, o),
      writeMeta: (p, m) => lockFiles.writeMeta(p, m as unknown as lockFiles.LockMeta),
      removeMeta: (p) => lockFiles.removeMeta(p),
    },
    log,
  );

  const core = new DaemonCore({
    socketPath: opts.socketPath,
    stateDir: opts.stateDir,
    mode: opts.system ? 'system' : 'user',
    globalDir: opts.globalDir ?? join(opts.stateDir, 'locks'),
    defaultKeep: opts.defaultKeep,
    log,
    journal,
    guard,
    initialFencing: fencingFrom(previous),
    launcher: launch.launcher,
    launcherReason: launch.reason,
    lockBackend: opts.lockBackend,
  });
  journal.fenceSource = () => core.table.fencingTokens();
  if (system) {
    core.system = system;
    core.callers.adminGids = system.adminGids();
  }
  // Cluster locks: the etcd client is loaded here, lazily, and only when a cluster is configured.
  if (opts.openCluster) core.cluster = await opts.openCluster(core, log);

  const earlyStdinBytes = new WeakMap<Connection, number>();
  const accept = (socket: Socket) => {
    const conn = new Connection(socket, {
      onMessage: (c, msg) => core.handle(c, msg),
      onStdin: (c, data) => {
        if (c.attachment.job) c.attachment.job.writeStdin(data, c);
        else {
          // stdin that arrives before its run exists is kept, bounded: past the bound we stop reading the socket
          // (the run resumes it when it takes the data), so no client can grow our memory with it.
          (c.attachment.earlyStdin ??= []).push(data);
          const total = (earlyStdinBytes.get(c) ?? 0) + data.length;
          earlyStdinBytes.set(c, total);
          if (total > EARLY_STDIN_MAX_BYTES || c.attachment.earlyStdin.length > EARLY_STDIN_MAX_FRAMES) c.socket.pause();
        }
      },
      onClose: (c) => c.attachment.onClose?.(),
      helloInfo: () => core.info(),
    });
    if (opts.system) {
      conn.peer = peerCredOfSocket(socket);
      if (!conn.peer) {
        conn.fail('no_peer_credentials', 'this lockd daemon cannot verify callers (native addon missing); refusing the connection');
      }
    } else {
      conn.peer = peerCredOfSocket(socket);
    }
  };

  // Reconcile before serving, so no lock is granted twice.
  core.adopted = new AdoptedRuns(core.adoptContext, log);
  await reconcile({ journal, guard, holds: core.holds, adopted: core.adopted }, previous, log);
  // Every journaled run is re-adopted or stopped now: an empty job cgroup left is a killed daemon's litter.
  const emptyCgroups = removeEmptyJobCgroups();
  if (emptyCgroups > 0) log.info('removed empty job cgroups left by an earlier daemon', { count: emptyCgroups });
  journal.compact();
  ready = true;
  for (const socket of early.splice(0)) if (!socket.destroyed) accept(socket);
  log.info('lockd daemon started', { socket: opts.socketPath, state_dir: opts.stateDir, mode: core.mode, inherited_socket: fd !== null });

  let stopping: Promise<void> | null = null;
  const stop = (force: boolean): Promise<void> => {
    if (stopping) return stopping;
    stopping = (async () => {
      server.close();
      await core.shutdown(force);
      await guard.close();
      journal.close();
      windowsClaim?.close();
      // Detached runs left running keep their cgroups, and so this subtree; the next daemon removes it once empty.
      removeOwnCgroupSubtree();
      log.info('lockd daemon stopped');
      await new Promise<void>((r) => {
        log.on('finish', () => r());
        log.end();
        setTimeout(r, 1000).unref();
      });
      // Detached runs left running for the next daemon keep child handles open in this process; they are the
      // next daemon's business now (journaled, re-adopted), so nothing must keep this one alive.
      if (core.runs.size > 0) process.exit(process.exitCode ?? 0);
    })();
    return stopping;
  };
  core.onShutdownRequested = () => {
    void stop(true).then(() => process.exit(0));
  };

  if (opts.readyFd !== null) {
    try {
      writeSync(opts.readyFd, 'ready\n');
      closeSync(opts.readyFd);
    } catch {
      /* the starter went away; keep serving */
    }
  }
  return { core, server, stop };
}

/** Exclusive flock on <state-dir>/daemon.lock, held for the daemon's life (the kernel drops it when we die). */
async function claimStateDir(flock: FlockHolder, stateDir: string): Promise<void> {
  const path = join(stateDir, 'daemon.lock');
  await lockFiles.prepareLockFile(path, { uid: null });
  // A daemon that just died may still be letting go (the perl flock helper exits on EOF): look again briefly.
  for (let delay = 10; ; delay *= 2) {
    if (await flock.tryLock(path, 'ex')) return;
    if (delay > 1000) break;
    await new Promise((r) => setTimeout(r, delay));
  }
  throw new LockdError('daemon_running', `another lockd daemon is using the state directory ${stateDir}`);
}

/**
 * Last line of defence: a bug that leaves a promise rejection unhandled is logged, not fatal. The daemon owns
 * every lock on the host; dying would stop every job (or orphan it until the next start).
 */
let safetyNetInstalled = false;
function installSafetyNet(log: ReturnType<typeof createLogger>): void {
  if (safetyNetInstalled) return;
  safetyNetInstalled = true;
  process.on('unhandledRejection', (reason) => {
    log.error('unhandled promise rejection (bug)', { error: reason instanceof Error ? (reason.stack ?? reason.message) : String(reason) });
  });
}

function fencingFrom(prev: ReturnType<typeof Journal.read>): Record<string, number> {
  return Object.fromEntries(prev.fences);
}
