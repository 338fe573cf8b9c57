/**
 * Where lockd keeps its socket and state. Shared by client and daemon so both always agree; import-light
 * (node built-ins only) because the client's start-up is on every Make recipe's path.
 */
import { existsSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { LockdError } from './errors.js';

/** macOS has no /run; /var/run exists on both (on Linux it links to /run). */
export const SYSTEM_SOCKET = process.platform === 'darwin' ? '/var/run/lockd/lockd.sock' : '/run/lockd/lockd.sock';
export const SYSTEM_STATE_DIR = '/var/lib/lockd';

/** sun_path is 108 bytes on Linux and 104 on macOS, both including the terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = process.platform === 'linux' ? 107 : 103;

function uid(): number {
  return typeof process.getuid === 'function' ? process.getuid() : 0;
}

/**
 * A pipe name's user part: Windows user names may hold spaces and other characters that are awkward in a pipe name
 * (a backslash is not allowed at all), so anything outside [A-Za-z0-9._-] becomes '_'.
 */
export function pipeUserPart(env: NodeJS.ProcessEnv = process.env): string {
  const user = env.USERNAME || env.USER || 'user';
  return user.replace(/[^A-Za-z0-9._-]/g, '_');
}

/**
 * The per-user socket: $XDG_RUNTIME_DIR/lockd/lockd.sock, else <tmpdir>/lockd-<uid>/lockd.sock. On Windows the
 * per-user named pipe \\.\pipe\lockd-<user> (docs/windows.md: what protects it, since Node cannot set its DACL).
 */
export function defaultUserSocket(env: NodeJS.ProcessEnv = process.env): string {
  if (process.platform === 'win32') return `\\\\.\\pipe\\lockd-${pipeUserPart(env)}`;
  const runtime = env.XDG_RUNTIME_DIR;
  if (runtime?.startsWith('/')) return join(runtime, 'lockd', 'lockd.sock');
  return join(tmpdir(), `lockd-${uid()}`, 'lockd.sock');
}

export interface SocketChoice {
  path: string;
  /** Where the choice came from, for `lockd config` and error messages. */
  source: 'flag' | 'env' | 'user-default' | 'system';
}

/**
 * The lookup order, documented in docs/operations.md: --socket, then LOCKD_SOCKET, then the per-user socket when
 * it exists (or when no system socket exists, so that auto-start creates the per-user daemon), then the system socket.
 */
export function resolveSocket(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): SocketChoice {
  if (flag) return { path: resolve(flag), source: 'flag' };
  if (env.LOCKD_SOCKET) return { path: resolve(env.LOCKD_SOCKET), source: 'env' };
  const user = defaultUserSocket(env);
  if (!existsSync(user) && process.platform !== 'win32' && existsSync(SYSTEM_SOCKET)) return { path: SYSTEM_SOCKET, source: 'system' };
  return { path: user, source: 'user-default' };
}

export function checkSocketPathLength(path: string): void {
  if (process.platform === 'win32') return;
  const n = Buffer.byteLength(path);
  if (n > MAX_SOCKET_PATH_BYTES) {
    throw new LockdError('socket_path_too_long', `socket path ${path} is ${n} bytes, over the ${MAX_SOCKET_PATH_BYTES}-byte limit of Unix sockets; set LOCKD_SOCKET (or --socket) to a shorter path`);
  }
}

/** The per-user state directory: $XDG_STATE_HOME/lockd, else ~/.local/state/lockd; on Windows %LOCALAPPDATA%\lockd. */
export function defaultStateDir(env: NodeJS.ProcessEnv = process.env): string {
  if (process.platform === 'win32') return join(env.LOCALAPPDATA || join(env.USERPROFILE || homedir(), 'AppData', 'Local'), 'lockd');
  const xdg = env.XDG_STATE_HOME;
  if (xdg?.startsWith('/')) return join(xdg, 'lockd');
  return join(env.HOME || homedir(), '.local', 'state', 'lockd');
}

export function resolveStateDir(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (flag) return resolve(flag);
  if (env.LOCKD_STATE_DIR) return resolve(env.LOCKD_STATE_DIR);
  return defaultStateDir(env);
}
