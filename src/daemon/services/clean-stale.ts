/**
 * `lockd clean-stale`: remove the `.meta` files left behind by lock owners that are gone.
 *
 * Where it looks: `<root>/.locks`, `<root>/<any>/.locks` for each build root, and the global lock directory.
 * What it looks at: `*.meta` files (normally `<name>.lock.meta`). A `.lock` file without a `.meta` is the
 * normal idle state (lock-files.ts keeps lock files on release), so it is left alone.
 *
 * A meta is stale when its owner is gone: the owner is alive only if its pid exists AND that process started
 * at the recorded `pid_start_time` (a recycled pid is a different process). Metas from the legacy scripts have
 * no start time; for them a live pid counts as alive. Never touched: locks the daemon holds
 * (`isHeldByDaemon`) and locks someone holds a flock on.
 *
 * Removal happens under a non-blocking exclusive flock on the lock file, taken through a FlockHolder of our
 * own (a separate open file, so it conflicts with the daemon's flocks too): while we hold it no flock user can
 * be writing a meta, so the meta re-read under it is safe to delete. A meta that is not a meta at all (half
 * written by a dying legacy script) is removed only that way, when the flock proves nobody holds the lock.
 * The probe holds the flock for a moment: a `flock -n` started in that instant fails once. Without any flock
 * backend, stale-by-pid metas are still removed, unreadable ones are kept.
 *
 * Lock files are removed only with `removeLockFiles`, and only while our flock is held. It is off by default
 * because it cannot be made safe against outside flock users: a process that opened the old file and is
 * blocked in flock(2) gets a lock on the unlinked file once we let go, while the next process creates a new
 * file under the same name and locks that — two holders.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { errnoCode, isLockdError } from '../../util/errors.js';
import { isSameProcessAlive, processStartTime } from '../../util/proc.js';
import { FlockHolder, type FlockBackendName } from '../records/flock-holder.js';
import { META_SUFFIX, isUsableDirectory, readMeta, type StoredMeta } from '../records/lock-files.js';

export interface CleanStaleOptions {
  /** Build roots; `<root>/.locks` and `<root>/*\/.locks` are scanned. */
  roots: string[];
  /** The global lock directory, scanned itself. */
  globalDir?: string | null;
  /** Report what would be removed, remove nothing. */
  dryRun?: boolean;
  /** True for a lock file the daemon's table holds right now (canonical path); those are never touched. */
  isHeldByDaemon(lockPath: string): boolean;
  /** Also remove the `.lock` file of a stale meta (see the top of this file for why this is off by default). */
  removeLockFiles?: boolean;
  /** Whose symlinks may be followed into a `.locks` directory (lock-files.ts rule); null = the daemon's uid. */
  uid?: number | null;
  /**
   * Backend of the probe's own flock holder (opened and closed here; never the daemon's, whose tryLock on a
   * path it holds would answer true). 'none' = no probe. Default 'auto'.
   */
  flockBackend?: 'auto' | FlockBackendName | 'none';
}

export type RemovedReason = 'owner_dead' | 'pid_reused' | 'unreadable_meta';
export type KeptReason = 'held_by_daemon' | 'owner_alive' | 'flock_held' | 'unreadable_meta';

export interface StaleEntry<R extends string> {
  /** The `.meta` file. */
  path: string;
  /** Its lock file. */
  lockPath: string;
  /** The owner pid the meta names; null when the meta is unreadable. */
  pid: number | null;
  reason: R;
  holder?: string;
}

export interface CleanStaleResult {
  removed: Array<StaleEntry<RemovedReason> & { lockFileRemoved: boolean }>;
  kept: Array<StaleEntry<KeptReason>>;
  /** Directories not scanned: a symlink that must not be followed. */
  skipped: Array<{ path: string; reason: string }>;
}

type Verdict = { stale: false; reason: Exclude<KeptReason, 'held_by_daemon' | 'flock_held'>; meta: StoredMeta | null } | { stale: true; reason: RemovedReason; meta: StoredMeta | null };

/** Is the owner named by this lock's meta gone? Reads the meta now; nothing is cached across the flock. */
async function judge(lockPath: string): Promise<Verdict | null> {
  let meta: StoredMeta | null;
  try {
    meta = await readMeta(lockPath);
  } catch (err) {
    if (isLockdError(err, 'bad_meta')) return { stale: true, reason: 'unreadable_meta', meta: null };
    throw err;
  }
  if (meta === null) return null; // gone meanwhile: nothing to do
  const recorded = typeof meta.pid_start_time === 'string' && meta.pid_start_time !== '' ? meta.pid_start_time : null;
  if (recorded === null) {
    // Legacy meta: pid existence is all there is to go on.
    return (await processStartTime(meta.pid)) === null ? { stale: true, reason: 'owner_dead', meta } : { stale: false, reason: 'owner_alive', meta };
  }
  if (isSameProcessAlive(meta.pid, recorded)) return { stale: false, reason: 'owner_alive', meta };
  const now = await processStartTime(meta.pid);
  return { stale: true, reason: now !== null && now !== recorded ? 'pid_reused' : 'owner_dead', meta };
}

/** `.locks` directories to scan, each once, symlinks followed only when lock-files.ts would follow them. */
async function locksDirs(opts: CleanStaleOptions, skipped: CleanStaleResult['skipped']): Promise<string[]> {
  const candidates: string[] = [];
  for (const root of opts.roots) {
    candidates.push(join(root, '.locks'));
    let entries: string[] = [];
    try {
      entries = await fsp.readdir(root);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT' && errnoCode(err) !== 'ENOTDIR') throw err;
    }
    for (const name of entries) if (!name.startsWith('.')) candidates.push(join(root, name, '.locks'));
  }
  if (opts.globalDir) candidates.push(opts.globalDir);

  const seen = new Set<string>();
  const dirs: string[] = [];
  for (const dir of candidates) {
    try {
      if (!(await isUsableDirectory(dir, opts.uid ?? null))) continue;
    } catch (err) {
      // <root>/<a file>/.locks: the candidate list names every entry of the root, files included.
      if (errnoCode(err) === 'ENOTDIR') continue;
      if (!isLockdError(err, 'unsafe_lock_path')) throw err;
      skipped.push({ path: dir, reason: err.message });
      continue;
    }
    // The daemon's table keys are canonical paths; compare like with like.
    const real = await fsp.realpath(dir);
    if (!seen.has(real)) {
      seen.add(real);
      dirs.push(real);
    }
  }
  return dirs;
}

async function metaFiles(dir: string): Promise<string[]> {
  const entries = await fsp.readdir(dir, { withFileTypes: true });
  return entries.filter((e) => e.isFile() && !e.name.startsWith('.') && e.name.endsWith(META_SUFFIX)).map((e) => join(dir, e.name));
}

async function unlinkIfThere(path: string): Promise<boolean> {
  try {
    await fsp.unlink(path);
    return true;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return false;
    throw err;
  }
}

export async function cleanStale(opts: CleanStaleOptions): Promise<CleanStaleResult> {
  const result: CleanStaleResult = { removed: [], kept: [], skipped: [] };
  const backend = opts.flockBackend ?? 'auto';
  const flock = backend === 'none' ? null : await FlockHolder.open({ backend });
  try {
    for (const dir of await locksDirs(opts, result.skipped)) {
      for (const metaPath of await metaFiles(dir)) {
        await cleanOne(metaPath, metaPath.slice(0, -META_SUFFIX.length), opts, flock, result);
      }
    }
  } finally {
    await flock?.close();
  }
  return result;
}

function entry<R extends string>(path: string, lockPath: string, reason: R, meta: StoredMeta | null): StaleEntry<R> {
  const out: StaleEntry<R> = { path, lockPath, pid: meta?.pid ?? null, reason };
  if (typeof meta?.holder === 'string') out.holder = meta.holder;
  return out;
}

async function cleanOne(metaPath: string, lockPath: string, opts: CleanStaleOptions, flock: FlockHolder | null, result: CleanStaleResult): Promise<void> {
  const keep = (reason: KeptReason, meta: StoredMeta | null): void => {
    result.kept.push(entry(metaPath, lockPath, reason, meta));
  };
  const remove = async (verdict: Verdict & { stale: true }, withLockFile: boolean): Promise<void> => {
    let lockFileRemoved = false;
    if (!opts.dryRun) {
      if (!(await unlinkIfThere(metaPath))) return; // someone else cleaned it meanwhile
      if (withLockFile) lockFileRemoved = await unlinkIfThere(lockPath);
    }
    result.removed.push({ ...entry(metaPath, lockPath, verdict.reason, verdict.meta), lockFileRemoved });
  };

  if (opts.isHeldByDaemon(lockPath)) return keep('held_by_daemon', null);
  const first = await judge(lockPath);
  if (first === null) return;
  if (!first.stale) return keep(first.reason, first.meta);
  if (flock === null) {
    // Nothing can prove that nobody holds the lock: act on a pid verdict alone, and never on an unreadable meta.
    return first.reason === 'unreadable_meta' ? keep('unreadable_meta', null) : remove(first, false);
  }

  let locked: boolean;
  try {
    locked = await flock.tryLock(lockPath, 'ex');
  } catch (err) {
    // No usable lock file (gone, or a symlink): nothing to flock, so judge the meta by its pid alone.
    if (errnoCode(err) !== 'ENOENT' && !isLockdError(err, 'unsafe_lock_path')) throw err;
    return cleanOne(metaPath, lockPath, opts, null, result);
  }
  if (!locked) return keep('flock_held', first.meta);
  try {
    // Under our flock no flock user holds the lock or is writing its meta; look again, it may have changed.
    if (opts.isHeldByDaemon(lockPath)) return keep('held_by_daemon', null);
    const verdict = await judge(lockPath);
    if (verdict === null) return;
    if (!verdict.stale) return keep(verdict.reason, verdict.meta);
    await remove(verdict, opts.removeLockFiles === true);
  } finally {
    await flock.unlock(lockPath);
  }
}
