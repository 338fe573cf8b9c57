/**
 * Loader for the optional native addon `lockd_native` (native/peercred.c, built by `node-gyp rebuild` into
 * build/Release/lockd_native.node) and the peer-credential lookup built on it.
 *
 * The addon is optional: a machine without a compiler, or an install where npm did not run the install script,
 * has no addon. Every function here then returns null and the caller falls back (the daemon to the pid the
 * client claims, the flock holder to its perl helper). The addon is loaded lazily, once, on first use, so the
 * client's start-up never pays for it.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

export type NativeFlockMode = 'ex' | 'sh' | 'un';

/** What native/peercred.c exports. */
export interface LockdNative {
  /** Credentials of the peer of a connected Unix socket; throws a Node-style system error (err.code) on failure. */
  peerCred(fd: number): PeerCred;
  /** flock(2); true when taken, false when busy (only possible with nonblocking). Never call it blocking on the main thread. */
  flock(fd: number, mode: NativeFlockMode, nonblocking: boolean): boolean;
}

const ADDON_RELATIVE = join('build', 'Release', 'lockd_native.node');

let cached: LockdNative | null | undefined;

/**
 * Where the addon is: node-gyp builds it under the package root, and this module runs either from src/util
 * (tsx, tests) or from dist/src/util (compiled), so walk up from here until a build/Release holds it.
 */
function findAddon(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, ADDON_RELATIVE);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}

/** The addon, or null when it is not built (or does not load on this platform/Node). Cached after the first call. */
export function loadNative(): LockdNative | null {
  if (cached !== undefined) return cached;
  cached = null;
  const file = findAddon();
  if (file) {
    try {
      const mod = createRequire(import.meta.url)(file) as Partial<LockdNative>;
      if (typeof mod.peerCred === 'function' && typeof mod.flock === 'function') cached = mod as LockdNative;
    } catch {
      // A stale build for another Node ABI or platform: behave as if it were not built.
      cached = null;
    }
  }
  return cached;
}

/** Peer credentials of a connected Unix-socket fd, or null when the addon is not built. Throws on a bad fd. */
export function peerCred(fd: number): PeerCred | null {
  const native = loadNative();
  return native ? native.peerCred(fd) : null;
}

/**
 * Peer credentials of a connected `net.Socket` on a Unix socket, or null when the addon is not built or the
 * socket has no fd (closed, or not a Unix-socket handle). Node exposes the fd only on the private `_handle`.
 */
export function peerCredOfSocket(socket: Socket): PeerCred | null {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return null;
  return peerCred(fd);
}
