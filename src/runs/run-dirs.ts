/**
 * Enumerate the run directories under a runs root, newest first. Shared by
 * `lockd list` and GC so both agree on what a run directory is and on order.
 *
 * A run directory is a real directory (not a symlink) whose name is a valid
 * run id. Everything may vanish between readdir and stat (GC, a user's rm):
 * such entries are silently dropped.
 */
import { lstat, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { MANIFEST_FILE, RESULT_FILE } from './run-files.js';
import { isValidRunId, parseRunIdTime } from './run-id.js';

export interface RunDirEntry {
  runId: string;
  /** Absolute path. */
  dir: string;
  /** The directory's mtime; changes when files are added or replaced in it (result.json). */
  mtimeMs: number;
  /** Minute encoded in a generated id; null for caller-chosen ids. */
  idTimeMs: number | null;
  hasManifest: boolean;
  hasResult: boolean;
}

/** Stat calls in flight at once: enough to hide latency, few enough to not exhaust fds. */
const STAT_CONCURRENCY = 32;

export function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

export async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (err) {
    if (isMissing(err)) return false;
    throw err;
  }
}

/** Creation order key: the id's minute when it has one, else the mtime. */
export function runSortTime(entry: Pick<RunDirEntry, 'idTimeMs' | 'mtimeMs'>): number {
  return entry.idTimeMs ?? entry.mtimeMs;
}

/** Newest first: by id time (or mtime), then mtime, then id (descending, for a stable order). */
export function compareNewestFirst(a: RunDirEntry, b: RunDirEntry): number {
  return runSortTime(b) - runSortTime(a) || b.mtimeMs - a.mtimeMs || (a.runId < b.runId ? 1 : a.runId > b.runId ? -1 : 0);
}

async function inspect(root: string, runId: string): Promise<RunDirEntry | null> {
  const dir = path.join(root, runId);
  try {
    const st = await lstat(dir);
    if (!st.isDirectory()) return null;
    const [hasManifest, hasResult] = await Promise.all([exists(path.join(dir, MANIFEST_FILE)), exists(path.join(dir, RESULT_FILE))]);
    return { runId, dir, mtimeMs: st.mtimeMs, idTimeMs: parseRunIdTime(runId), hasManifest, hasResult };
  } catch (err) {
    if (isMissing(err)) return null;
    throw err;
  }
}

/** Map with at most `limit` promises in flight, keeping input order. */
export async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** All run directories under `runsRoot`, newest first; [] when the root does not exist. */
export async function listRunDirs(runsRoot: string): Promise<RunDirEntry[]> {
  const root = path.resolve(runsRoot);
  let names: string[];
  try {
    names = await readdir(root);
  } catch (err) {
    if (isMissing(err)) return [];
    throw err;
  }
  const entries = await mapLimited(names.filter(isValidRunId), STAT_CONCURRENCY, (name) => inspect(root, name));
  return entries.filter((e): e is RunDirEntry => e !== null).sort(compareNewestFirst);
}
