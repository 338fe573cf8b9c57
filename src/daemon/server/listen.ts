/**
 * Claiming the daemon's socket. Two rules: a stale socket file (nothing listening) is replaced; a live one is
 * never stolen. Ten daemons started at once (ten clients auto-starting on an idle machine) must end with one
 * listener, so the check-unlink-bind sequence runs under a startup mutex (an atomic mkdir next to the socket);
 * the losers see a live socket afterwards and exit with `daemon_running`.
 */
import { pipeAnswers } from './state-claim-windows.js';
import { chmodSync, lstatSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { dirname, join } from 'node:path';
import { LockdError, errnoCode } from '../../util/errors.js';
import { checkSocketPathLength } from '../../util/paths.js';
import { isSameProcessAlive, processStartTimeSync } from '../../util/proc.js';

export interface ListenOptions {
  socketPath: string;
  /** Socket file mode: 0o600 per user, 0o660 in system mode. */
  socketMode: number;
  /** Directory mode when we create it: 0o700 per user, 0o750/0o755 in system mode. */
  dirMode: number;
  /** Per-user mode refuses a socket directory others can write (they could replace the socket). */
  requirePrivateDir: boolean;
}

/** Is something accepting connections on this socket path? */
export function probeSocket(path: string, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    const timer = setTimeout(() => {
      s.destroy();
      // A listener that does not even accept within the bound is wedged, but it is alive: never steal it.
      resolve(true);
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.destroy();
      resolve(true);
    });
    s.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

function ensureDir(dir: string, mode: number, requirePrivate: boolean): void {
  mkdirSync(dir, { recursive: true, mode });
  const st = statSync(dir);
  const myUid = typeof process.getuid === 'function' ? process.getuid() : st.uid;
  if (requirePrivate) {
    if (st.uid !== myUid) throw new LockdError('unsafe_socket_dir', `socket directory ${dir} is owned by uid ${st.uid}, not by you (uid ${myUid})`);
    if ((st.mode & 0o022) !== 0) {
      throw new LockdError('unsafe_socket_dir', `socket directory ${dir} is writable by others (mode ${(st.mode & 0o777).toString(8)}); run: chmod 700 ${dir}`);
    }
  }
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** Run `fn` while holding the startup mutex `<socket>.startup`. */
async function withStartupMutex<T>(socketPath: string, fn: () => Promise<T>): Promise<T> {
  const mutex = `${socketPath}.startup`;
  const deadline = Date.now() + 15_000;
  for (let delay = 2; ; delay = Math.min(delay * 2, 50)) {
    try {
      mkdirSync(mutex, { mode: 0o700 });
      writeFileSync(join(mutex, 'owner'), `${process.pid} ${processStartTimeSync(process.pid) ?? ''}`);
      break;
    } catch (e) {
      if (errnoCode(e) !== 'EEXIST') throw e;
    }
    // Someone else is starting. If that someone died mid-start, take the mutex over; else wait for it.
    let owner: string | null = null;
    try {
      owner = readFileSync(join(mutex, 'owner'), 'utf8');
    } catch {
      /* between its mkdir and its write, or just released */
    }
    if (owner) {
      const [pid, start] = owner.split(' ');
      if (!isSameProcessAlive(Number(pid), start ?? '')) {
        try {
          renameSync(mutex, `${mutex}.dead.${process.pid}`);
          rmSync(`${mutex}.dead.${process.pid}`, { recursive: true, force: true });
        } catch {
          /* another contender cleaned it first */
        }
        continue;
      }
    }
    if (Date.now() > deadline) throw new LockdError('startup_timeout', `another lockd daemon has been starting on ${socketPath} for 15 s`);
    await sleep(delay);
  }
  try {
    return await fn();
  } finally {
    rmSync(mutex, { recursive: true, force: true });
  }
}

/** A Windows named pipe (\\\\.\\pipe\\name or \\\\?\\pipe\\name): no file, no directory, no mode bits. */
export function isNamedPipePath(path: string): boolean {
  return /^[\\/]{2}[.?][\\/]pipe[\\/]/i.test(path);
}

/**
 * Windows: a named pipe vanishes with the process that created it, so there is never a stale one to replace, and
 * libuv creates its first instance with FILE_FLAG_FIRST_PIPE_INSTANCE, so a second daemon's listen fails with
 * EADDRINUSE: the OS is the startup mutex. Its DACL is the default one (Node cannot set another; docs/windows.md).
 */
async function listenOnPipe(pipePath: string, onConnection: Parameters<typeof createServer>[1]): Promise<Server> {
  // Wine does not enforce FILE_FLAG_FIRST_PIPE_INSTANCE: a daemon that answers on the name is found by connecting.
  if (await pipeAnswers(pipePath)) throw new LockdError('daemon_running', `another lockd daemon is already listening on ${pipePath}`);
  const server = createServer({ pauseOnConnect: false, allowHalfOpen: false }, onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => {
      if (errnoCode(e) === 'EADDRINUSE' || errnoCode(e) === 'EACCES') reject(new LockdError('daemon_running', `another lockd daemon is already listening on ${pipePath}`));
      else reject(e);
    });
    server.listen(pipePath, () => {
      server.removeAllListeners('error');
      resolve();
    });
  });
  return server;
}

/** Bind the listening socket, replacing a stale file, refusing a live one. */
export async function listenOnSocket(opts: ListenOptions, onConnection: Parameters<typeof createServer>[1]): Promise<Server> {
  const { socketPath } = opts;
  if (isNamedPipePath(socketPath)) return listenOnPipe(socketPath, onConnection);
  checkSocketPathLength(socketPath);
  ensureDir(dirname(socketPath), opts.dirMode, opts.requirePrivateDir);
  return withStartupMutex(socketPath, async () => {
    let exists = false;
    try {
      exists = lstatSync(socketPath) !== undefined;
    } catch {
      exists = false;
    }
    if (exists) {
      if (await probeSocket(socketPath)) {
        throw new LockdError('daemon_running', `another lockd daemon is already listening on ${socketPath}`);
      }
      const st = lstatSync(socketPath);
      if (!st.isSocket()) throw new LockdError('socket_path_taken', `${socketPath} exists and is not a socket; remove it or choose another --socket`);
      unlinkSync(socketPath); // stale: nothing listens on it
    }
    const server = createServer({ pauseOnConnect: false, allowHalfOpen: false }, onConnection);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // The socket must never be reachable with looser permissions than asked, not even for a moment.
      const oldMask = process.umask(0o777 & ~opts.socketMode);
      server.listen(socketPath, () => {
        process.umask(oldMask);
        server.off('error', reject);
        resolve();
      });
    });
    chmodSync(socketPath, opts.socketMode);
    return server;
  });
}

/** systemd socket activation: the listening socket inherited as fd 3 when LISTEN_PID is us. */
export function inheritedListenFd(env: NodeJS.ProcessEnv = process.env): number | null {
  if (env.LISTEN_PID && Number(env.LISTEN_PID) === process.pid && Number(env.LISTEN_FDS ?? '0') >= 1) return 3;
  return null;
}

export function listenOnFd(fd: number, onConnection: Parameters<typeof createServer>[1]): Promise<Server> {
  const server = createServer({ allowHalfOpen: false }, onConnection);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd }, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
