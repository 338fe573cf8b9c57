/**
 * `lockd daemon`: claim the socket, reconcile what a previous daemon left, then serve. Runs in the foreground
 * (systemd/launchd, or detached by a client's auto-start with its output in <state-dir>/daemon.log).
 */
import { mkdirSync, statSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import type { Server, Socket } from 'node:net';
import { Connection } from './connection.js';
import { DaemonCore } from './core.js';
import { createLogger } from './logger.js';
import { Journal } from './journal.js';
import { LockGuard, type FlockLike } from './lock-guard.js';
import { FlockHolder } from './flock-holder.js';
import * as lockFiles from './lock-files.js';
import { listenOnSocket, inheritedListenFd, listenOnFd } from './listen.js';
import { LockdError } from '../util/errors.js';
import { peerCredOfSocket } from '../util/peercred.js';
import { reconcile } from './reconcile.js';

export interface DaemonOptions {
  socketPath: string;
  stateDir: string;
  system: boolean;
  /** Write "ready\n" here once serving (used by auto-start and tests), then close it. */
  readyFd: number | null;
  globalDir: string | null;
  defaultKeep: number;
  adminGroup: string | null;
}

export interface RunningDaemon {
  core: DaemonCore;
  server: Server;
  stop(force: boolean): Promise<void>;
}

function ensureStateDir(dir: string, system: boolean): void {
  mkdirSync(dir, { recursive: true, mode: system ? 0o755 : 0o700 });
  if (!system && process.platform !== 'win32') {
    const st = statSync(dir);
    const uid = process.getuid!();
    if (st.uid !== uid) throw new LockdError('unsafe_state_dir', `state directory ${dir} is owned by uid ${st.uid}, not by you (uid ${uid})`);
    if ((st.mode & 0o022) !== 0) throw new LockdError('unsafe_state_dir', `state directory ${dir} is writable by others (mode ${(st.mode & 0o777).toString(8)}); run: chmod 700 ${dir}`);
  }
}

export async function startDaemon(opts: DaemonOptions): Promise<RunningDaemon> {
  ensureStateDir(opts.stateDir, opts.system);
  const log = createLogger(opts.stateDir);
  const { journal, previous } = Journal.open(opts.stateDir);
  if (previous.badLines) log.warn('journal had unreadable lines; they were set aside', { count: previous.badLines });
  let journalErrorLogged = false;
  journal.onError = () => {
    if (!journalErrorLogged) log.error('journal write failed (state dir full or read-only?)');
    journalErrorLogged = true;
  };
  const flock: FlockLike | null = process.platform === 'win32' ? null : await FlockHolder.open({
    onLost: (paths) => log.error('flock helper died; outside flock users are no longer excluded until the locks are retaken', { paths }),
  });
  const guard = new LockGuard(flock, {
    prepareLockFile: (p, o) => lockFiles.prepareLockFile(p, o),
    writeMeta: (p, m) => lockFiles.writeMeta(p, m as unknown as lockFiles.LockMeta),
    removeMeta: (p) => lockFiles.removeMeta(p),
  }, log);

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
  });

  const onConnection = (socket: Socket) => {
    const conn = new Connection(socket, {
      onMessage: (c, msg) => core.handle(c, msg),
      onStdin: (c, data) => {
        if (c.attachment.job) c.attachment.job.writeStdin(data, c);
        else (c.attachment.earlyStdin ??= []).push(data);
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

  // Reconcile before accepting new work, so no lock is granted twice.
  await reconcile(core, previous, log);
  journal.compact();

  const fd = inheritedListenFd();
  const server = fd !== null
    ? await listenOnFd(fd, onConnection)
    : await listenOnSocket(
        { socketPath: opts.socketPath, socketMode: opts.system ? 0o660 : 0o600, dirMode: opts.system ? 0o755 : 0o700, requirePrivateDir: !opts.system },
        onConnection,
      );
  log.info('lockd daemon started', { socket: opts.socketPath, state_dir: opts.stateDir, mode: core.mode, inherited_socket: fd !== null });

  let stopping: Promise<void> | null = null;
  const stop = (force: boolean): Promise<void> => {
    if (stopping) return stopping;
    stopping = (async () => {
      server.close();
      await core.shutdown(force);
      await guard.close();
      journal.close();
      log.info('lockd daemon stopped');
      await new Promise<void>((r) => {
        log.on('finish', () => r());
        log.end();
        setTimeout(r, 1000).unref();
      });
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

function fencingFrom(prev: ReturnType<typeof Journal.read>): Record<string, number> {
  return Object.fromEntries(prev.fences);
}
