/**
 * From a lock as the caller names it (`--lock qemu --root build --arch riscv64`, `--global deps-fetch`) to the
 * canonical path of its lock file, which IS the lock's identity: two spellings of one build root are one lock.
 */
import { lstatSync, realpathSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import type { LockMode, LockRef } from '../../protocol/messages.js';
import { LockdError } from '../../util/errors.js';
import { clusterLockKey } from '../locks/cluster-keys.js';

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const MAX_NAME = 200;

export function validateLockName(name: string, what = 'lock name'): void {
  if (!NAME_RE.test(name) || name.includes('..') || name.length > MAX_NAME) {
    throw new LockdError(
      'usage',
      `invalid ${what} ${JSON.stringify(name.slice(0, 80))}: use letters, digits, '.', '_' and '-' (starting with a letter or digit, no '..', at most ${MAX_NAME} characters)`,
    );
  }
}

export interface ResolvedLock {
  /** Canonical lock file path: the lock table key. */
  key: string;
  name: string;
  /** 'cluster': a --global lock shared through the configured etcd cluster (its key is etcd:<prefix>/<name>). */
  scope: 'local' | 'global' | 'cluster';
  mode: LockMode;
  slots?: number;
  root: string | null;
  arch: string | null;
}

/**
 * realpath of the deepest existing ancestor plus the rest, so a root that does not exist yet (the daemon creates
 * `.locks` on first use) still canonicalizes the same way it will once it exists.
 */
export function canonicalPath(p: string): string {
  const parts: string[] = [];
  let cur = resolve(p);
  for (;;) {
    try {
      const real = realpathSync.native(cur);
      return parts.length ? join(real, ...parts.reverse()) : real;
    } catch {
      const parent = dirname(cur);
      if (parent === cur) return join(cur, ...parts.reverse());
      parts.push(basename(cur));
      cur = parent;
    }
  }
}

/**
 * A `.locks` directory that is a symlink is only followed when the caller owns both the link and its target;
 * otherwise another user could point our lock and meta files at a place of their choosing.
 */
function checkLocksDir(dir: string, callerUid: number | null): void {
  let st;
  try {
    st = lstatSync(dir);
  } catch {
    return; // does not exist yet: created by us later, as a real directory
  }
  if (!st.isSymbolicLink()) return;
  if (callerUid === null) return;
  let target;
  try {
    target = lstatSync(realpathSync.native(dir));
  } catch {
    throw new LockdError('unsafe_lock_path', `${dir} is a dangling symlink; remove it`);
  }
  if (st.uid !== callerUid || target.uid !== callerUid) {
    throw new LockdError('unsafe_lock_path', `${dir} is a symlink not owned by you (uid ${callerUid}); refusing to follow it`);
  }
}

/** clusterPrefix: set when the daemon has a cluster; then --global locks (without host_only) are cluster locks. */
export interface ResolveDefaults {
  globalDir: string;
  callerUid: number | null;
  clusterPrefix?: string | null;
}

export function resolveLock(ref: LockRef, defaults: ResolveDefaults): ResolvedLock {
  validateLockName(ref.name);
  if (ref.arch !== undefined) validateLockName(ref.arch, 'arch');
  if (ref.mode === 'slots' && !(Number.isInteger(ref.slots) && (ref.slots as number) >= 1)) {
    throw new LockdError('usage', `lock ${ref.name}: slots must be a positive integer`);
  }
  if (ref.scope === 'global' && !ref.host_only && defaults.clusterPrefix !== undefined && defaults.clusterPrefix !== null) {
    const out: ResolvedLock = { key: clusterLockKey(defaults.clusterPrefix, ref.name), name: ref.name, scope: 'cluster', mode: ref.mode, root: null, arch: null };
    if (ref.mode === 'slots') out.slots = ref.slots!;
    return out;
  }
  let dir: string;
  let file: string;
  if (ref.scope === 'global') {
    const gd = ref.global_dir ?? defaults.globalDir;
    if (!isAbsolute(gd)) throw new LockdError('usage', `global lock directory must be absolute: ${gd}`);
    dir = canonicalPath(gd);
    file = `global-${ref.name}.lock`;
  } else {
    if (!ref.root || !isAbsolute(ref.root)) throw new LockdError('usage', `local lock ${ref.name} needs an absolute build root`);
    const locksDir = ref.arch ? join(ref.root, ref.arch, '.locks') : join(ref.root, '.locks');
    checkLocksDir(locksDir, defaults.callerUid);
    dir = canonicalPath(locksDir);
    file = `${ref.name}.lock`;
  }
  const out: ResolvedLock = {
    key: join(dir, file),
    name: ref.name,
    scope: ref.scope,
    mode: ref.mode,
    root: ref.root ?? null,
    arch: ref.arch ?? null,
  };
  if (ref.mode === 'slots') out.slots = ref.slots!;
  return out;
}

export function resolveLocks(refs: LockRef[], defaults: ResolveDefaults): ResolvedLock[] {
  const out: ResolvedLock[] = [];
  const seen = new Set<string>();
  for (const ref of refs) {
    const r = resolveLock(ref, defaults);
    if (seen.has(r.key)) throw new LockdError('usage', `lock ${r.name} is named twice (${r.key})`);
    seen.add(r.key);
    out.push(r);
  }
  return out;
}
