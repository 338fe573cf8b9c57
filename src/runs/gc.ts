/**
 * Garbage collection of run directories.
 *
 * Policy: the newest `keep` runs are never removed. Among the older ones:
 *  - with neither `olderThanMs` nor `maxBytes`: all are removed;
 *  - `olderThanMs`: those whose last activity (dir mtime, or the id's time if
 *    later) is at least that old are removed;
 *  - `maxBytes`: in addition, the oldest are removed until all runs together
 *    take at most `maxBytes`.
 * With `refuseRemovingAll`, a policy that would remove every finished run is refused before anything is removed.
 * Live runs (`isLive`) and pinned runs (`.pinned`) are never removed; they are
 * reported in `skipped` when the policy would have picked them. Nor are runs
 * without a result.json that were active within `unfinishedGraceMs` (default
 * 24 h): `isLive` knows only this daemon's runs, and a runs root on a shared
 * build root may hold the queued or running runs of other daemons (other hosts
 * of a cluster, other users): theirs look unfinished here. A run of a daemon
 * that died without recording it is collected once it has been quiet that long.
 *
 * Safety: only directories named like a run id that hold a manifest.json or
 * result.json recording that very run id are considered (never arbitrary
 * folders a user keeps in the root, never symlinks, never a run whose
 * manifest is not written yet). A run
 * is first renamed to a hidden `.gc-*` name (atomic, so `lockd list` never
 * shows a half-deleted run) and then deleted. Runs that vanish under us
 * (another GC, a user's rm) are skipped; ENOENT is never an error.
 */
import { randomBytes } from 'node:crypto';
import { lstat, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { isPinned } from './pin.js';
import { exists, isMissing, listRunDirs, mapLimited, type RunDirEntry } from './run-dirs.js';
import { LOG_FILE, MANIFEST_FILE, RESULT_FILE, readRunJson } from './run-files.js';
import { LockdError } from '../util/errors.js';

export { parseDuration, parseSize } from './units.js';
export { pinRun, unpinRun, isPinned } from './pin.js';

export interface GcOptions {
  /** Newest runs that are always kept (default 20). */
  keep?: number;
  /**
   * Refuse (LockdError gc_needs_all, nothing removed) when the policy would remove every finished run: a user must
   * say --all for that, whatever combination of --keep, --older-than and --max-bytes got there (the kept newest may
   * all be live or unfinished). Auto-GC leaves it off.
   */
  refuseRemovingAll?: boolean;
  olderThanMs?: number;
  maxBytes?: number;
  /** Report what would be removed without removing anything. */
  dryRun?: boolean;
  /** True for runs the daemon is still running or queueing; they are never removed. */
  isLive?: (runId: string) => boolean;
  /** Runs without result.json active this recently are kept (default UNFINISHED_GRACE_MS); see the policy above. */
  unfinishedGraceMs?: number;
  /** Clock for the age rule (tests). */
  now?: Date;
}

export type SkipReason = 'live' | 'pinned' | 'unfinished';

export interface GcReport {
  removed: { run_id: string; bytes: number }[];
  /** Run directories left in place. */
  kept: number;
  skipped: { run_id: string; why: SkipReason }[];
  /** Runs whose removal failed for a reason other than vanishing (e.g. EACCES). */
  failed: { run_id: string; error: string }[];
  /** Size of all runs before GC, when maxBytes was given (sizes are computed only then). */
  total_bytes_before?: number;
}

export const DEFAULT_KEEP = 20;
/** How long a run without result.json counts as possibly live elsewhere (see the policy above). */
export const UNFINISHED_GRACE_MS = 24 * 3600_000;
const TRASH_PREFIX = '.gc-';
const SIZE_CONCURRENCY = 8;

/** Apparent size of a directory tree (symlinks not followed); whatever vanishes counts as 0. */
export async function dirSize(dir: string): Promise<number> {
  let total = 0;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if (isMissing(err)) return 0;
    throw err;
  }
  for (const name of names) {
    const p = path.join(dir, name);
    try {
      const st = await lstat(p);
      total += st.isDirectory() ? await dirSize(p) : st.size;
    } catch (err) {
      if (!isMissing(err)) throw err;
    }
  }
  return total;
}

/** Remove leftovers of a GC that was interrupted between rename and delete. */
async function removeTrash(root: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(root);
  } catch (err) {
    if (isMissing(err)) return;
    throw err;
  }
  for (const name of names) {
    if (name.startsWith(TRASH_PREFIX)) await rm(path.join(root, name), { recursive: true, force: true }).catch(() => undefined);
  }
}

/** True when the run's manifest.json or result.json is a lockd record for this very run id. */
async function isOwnRun(entry: RunDirEntry): Promise<boolean> {
  for (const name of [MANIFEST_FILE, RESULT_FILE]) {
    let record: unknown;
    try {
      record = await readRunJson(entry.dir, name);
    } catch {
      continue; // unreadable or not JSON: not proof of anything
    }
    const r = record as { run_id?: unknown; schema_version?: unknown } | null;
    if (r && typeof r === 'object' && r.run_id === entry.runId && typeof r.schema_version === 'number') return true;
  }
  return false;
}

function lastActivity(entry: RunDirEntry): number {
  return Math.max(entry.mtimeMs, entry.idTimeMs ?? 0);
}

/** A run still being written: its output log grows without touching the directory's mtime, so look at it too. */
async function unfinishedActivity(entry: RunDirEntry): Promise<number> {
  let latest = lastActivity(entry);
  for (const name of [MANIFEST_FILE, LOG_FILE]) {
    try {
      latest = Math.max(latest, (await lstat(path.join(entry.dir, name))).mtimeMs);
    } catch {
      // absent or vanished: nothing to add
    }
  }
  return latest;
}

export async function gcRuns(runsRoot: string, options: GcOptions = {}): Promise<GcReport> {
  const root = path.resolve(runsRoot);
  const keep = Math.max(0, Math.floor(options.keep ?? DEFAULT_KEEP));
  const isLive = options.isLive ?? (() => false);
  const now = (options.now ?? new Date()).getTime();
  const unfinishedGrace = options.unfinishedGraceMs ?? UNFINISHED_GRACE_MS;
  const report: GcReport = { removed: [], kept: 0, skipped: [], failed: [] };

  if (!options.dryRun) await removeTrash(root);
  // Newest first; a run is only ours to judge once its manifest or result exists
  // and names it (a user's folder that happens to hold a manifest.json is not a run).
  const listed = (await listRunDirs(root)).filter((e) => e.hasManifest || e.hasResult);
  const ours = await mapLimited(listed, SIZE_CONCURRENCY, isOwnRun);
  const runs = listed.filter((_, i) => ours[i]);
  const older = runs.slice(keep);

  const sizes = new Map<string, number>();
  const sizeOf = async (e: RunDirEntry): Promise<number> => {
    let s = sizes.get(e.runId);
    if (s === undefined) {
      s = await dirSize(e.dir);
      sizes.set(e.runId, s);
    }
    return s;
  };
  if (options.maxBytes !== undefined) {
    await mapLimited(runs, SIZE_CONCURRENCY, sizeOf);
    report.total_bytes_before = runs.reduce((sum, e) => sum + sizes.get(e.runId)!, 0);
  }

  /** Why a run must stay, checked again right before removal. */
  const protection = async (e: RunDirEntry): Promise<SkipReason | null> => {
    if (isLive(e.runId)) return 'live';
    if (await isPinned(e.dir)) return 'pinned';
    // (A directory that vanished meanwhile is not unfinished: removal finds it gone and counts it so.)
    if (!(await exists(path.join(e.dir, RESULT_FILE))) && (await exists(e.dir)) && now - (await unfinishedActivity(e)) < unfinishedGrace) return 'unfinished';
    return null;
  };

  // Pick victims, oldest first.
  const victims: RunDirEntry[] = [];
  const noteSkip = (e: RunDirEntry, why: SkipReason): void => {
    report.skipped.push({ run_id: e.runId, why });
  };
  const oldestFirst = [...older].reverse();
  const byAge =
    options.olderThanMs === undefined && options.maxBytes === undefined
      ? oldestFirst
      : options.olderThanMs === undefined
        ? []
        : oldestFirst.filter((e) => now - lastActivity(e) >= options.olderThanMs!);
  const chosen = new Set<string>();
  for (const e of byAge) {
    const why = await protection(e);
    if (why) noteSkip(e, why);
    else victims.push(e);
    chosen.add(e.runId);
  }
  if (options.maxBytes !== undefined) {
    let total = report.total_bytes_before! - victims.reduce((sum, e) => sum + sizes.get(e.runId)!, 0);
    for (const e of oldestFirst) {
      if (total <= options.maxBytes) break;
      if (chosen.has(e.runId)) continue;
      chosen.add(e.runId);
      const why = await protection(e);
      if (why) {
        noteSkip(e, why);
        continue;
      }
      victims.push(e);
      total -= sizes.get(e.runId)!;
    }
  }

  if (options.refuseRemovingAll && victims.length > 0) {
    const finished = runs.filter((e) => e.hasResult).length;
    const finishedVictims = victims.filter((e) => e.hasResult).length;
    if (finishedVictims === finished) {
      throw new LockdError('gc_needs_all', `this gc would remove every finished run in ${root} (${finished}); say --all if that is what you mean (--keep N keeps the newest N, --dry-run lists them)`, {
        runs_root: root,
        finished,
      });
    }
  }

  /** Victims no longer in the runs listing without being reported as removed. */
  let gone = 0;
  for (const e of victims) {
    const bytes = await sizeOf(e);
    if (options.dryRun) {
      report.removed.push({ run_id: e.runId, bytes });
      continue;
    }
    // Re-check: a run may have been pinned (or resumed) while we were sizing others.
    const why = await protection(e);
    if (why) {
      noteSkip(e, why);
      continue;
    }
    const trash = path.join(root, `${TRASH_PREFIX}${e.runId}-${randomBytes(4).toString('hex')}`);
    try {
      await rename(e.dir, trash);
    } catch (err) {
      if (isMissing(err)) {
        gone++; // removed by someone else meanwhile
        continue;
      }
      report.failed.push({ run_id: e.runId, error: (err as Error).message });
      continue;
    }
    try {
      await rm(trash, { recursive: true, force: true });
    } catch (err) {
      // The run is already gone from the runs listing; the next GC retries the trash.
      report.failed.push({ run_id: e.runId, error: (err as Error).message });
      gone++;
      continue;
    }
    report.removed.push({ run_id: e.runId, bytes });
  }
  report.kept = runs.length - report.removed.length - gone;
  return report;
}
