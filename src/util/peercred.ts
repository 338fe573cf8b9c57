/**
 * Loader for the optional native addon `lockd_native` (native/peercred.c, and on Linux native/launcher.c: the job
 * launcher), found by node-gyp-build: a local build in build/Release, else the prebuilt binary the package ships in
 * prebuilds/linux-x64/, and the peer-credential lookup built on it.
 *
 * The addon is optional: another platform without a compiler, or a stale build for another ABI,
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

/**
 * The package root (the directory holding binding.gyp): this module runs either from src/util (tsx, tests) or from
 * dist/src/util (compiled), so walk up from here.
 */
/** The package's root directory (the one holding binding.gyp), or null. */
export function packageRoot(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'binding.gyp'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}

let cached: LockdNative | null | undefined;
let loadedFrom: string | null = null;
let loadError: string | null = null;

/**
 * The addon, or null when none loads (cached after the first call). node-gyp-build picks a local build
 * (build/Release, from `npm run build:native` or an install-time compile) before the prebuilt binary shipped in the
 * package (prebuilds/<platform>-<arch>/, N-API, so one file serves Node 20, 22 and 24).
 */
export function loadNative(): LockdNative | null {
  if (cached !== undefined) return cached;
  cached = null;
  const root = packageRoot();
  if (root === null) {
    loadError = 'the package root (binding.gyp) was not found';
    return null;
  }
  try {
    const require = createRequire(import.meta.url);
    const nodeGypBuild = require('node-gyp-build') as { path(dir: string): string };
    const file = nodeGypBuild.path(root);
    const mod = require(file) as Partial<LockdNative>;
    if (typeof mod.peerCred === 'function' && typeof mod.flock === 'function') {
      cached = mod as LockdNative;
      loadedFrom = file;
    } else loadError = `${file} is not lockd's addon`;
  } catch (e) {
    // No build and no prebuilt binary for this platform, or one for another ABI: behave as if it were not built.
    loadError = (e as Error).message.split('\n')[0] ?? String(e);
  }
  return cached;
}

/** Where the loaded addon came from (a build or a prebuilt binary), or why none loaded: for doctor and the log. */
export function nativeOrigin(): { file: string | null; error: string | null } {
  loadNative();
  return { file: loadedFrom, error: loadError };
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
