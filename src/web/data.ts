/**
 * What the pages show, gathered the way the CLI gathers it: the daemon's status snapshot over its socket (with
 * this process's own identity, so exactly what `lockd status` shows the user running lockd web), and run records
 * read from the runs root (like `lockd runs`). No daemon parts are imported: lockd web is a client.
 */
import { join } from 'node:path';
import type { LockdClient } from '../api/client.js';
import type { StatusSnapshot } from '../protocol/messages.js';
import { listRuns, type RunSummary } from '../runs/list.js';
import { readManifest, type RunManifest } from '../runs/manifest.js';
import { readResult, type RunResult } from '../runs/result.js';
import { isLockdError } from '../util/errors.js';

export interface RecentRun {
  summary: RunSummary;
  result: RunResult | null;
  manifest: RunManifest | null;
}

/** The snapshot, or null when no daemon runs (the page says so instead of failing). */
export async function fetchStatus(client: LockdClient): Promise<StatusSnapshot | null> {
  try {
    const snapshot = await client.status();
    // Pools are not in the status snapshot: asked for beside it (a daemon before pools has none to show).
    const pools = await client.pool({ action: 'list', pool: null, member: null, properties: {}, reason: null }).then(
      (r) => r.pools,
      () => null,
    );
    return pools === null ? snapshot : ({ ...snapshot, pools } as StatusSnapshot);
  } catch (e) {
    if (isLockdError(e, 'daemon_not_running')) return null;
    throw e;
  }
}

/** The newest `limit` runs of the runs root, with their result and manifest (a missing root is no runs). */
export async function recentRuns(runsRoot: string, limit: number): Promise<RecentRun[]> {
  const summaries = await listRuns(runsRoot, { limit }).catch(() => [] as RunSummary[]);
  return await Promise.all(
    summaries.map(async (summary) => ({
      summary,
      result: await readResult(summary.dir).catch(() => null),
      manifest: await readManifest(summary.dir).catch(() => null),
    })),
  );
}

export interface LockSample {
  /** The run's id, or the hold's (with kind 'hold'). */
  run_id: string;
  /** A run (the default) or an explicit hold (`lockd acquire`, counted by hold-history.ts). */
  kind?: 'run' | 'hold';
  /** When the run ended (ms since the epoch). */
  at: number;
  wait_ms: number;
  /** How long the run held the lock: its child's run time (null when it never got it). */
  hold_ms: number | null;
}

/** How far back the per-lock history looks, and how many recent runs it reads at most to find them. */
export const HISTORY_MS = 24 * 3600 * 1000;
const HISTORY_MAX_RUNS = 2000;

/**
 * Wait and hold times of one lock over the last 24 h, from the run records of the runs root: each result.json
 * lists the locks the run took with its wait, and its duration is how long it held them. `key` is the lock's
 * identity as status shows it (its lock-file path).
 */
export async function lockHistory(runsRoot: string, key: string, now = Date.now()): Promise<LockSample[]> {
  const runs = await listRuns(runsRoot, { limit: HISTORY_MAX_RUNS }).catch(() => [] as RunSummary[]);
  const out: LockSample[] = [];
  await Promise.all(
    runs.map(async (r) => {
      const result = await readResult(r.dir).catch(() => null);
      if (!result) return;
      const at = Date.parse(result.end_time_utc);
      if (!Number.isFinite(at) || now - at > HISTORY_MS) return;
      const lock = result.locks.find((l) => l.path === key);
      if (!lock) return;
      out.push({ run_id: result.run_id, at, wait_ms: lock.wait_ms, hold_ms: result.start_time_utc ? result.duration_ms : null });
    }),
  );
  return out.sort((a, b) => a.at - b.at);
}

export interface RunRecord {
  runId: string;
  dir: string;
  manifest: RunManifest | null;
  result: RunResult | null;
  logPath: string | null;
  live: boolean;
}

/** A run's record, found in the runs root, else (a live run recorded elsewhere) through the daemon; null: no such run. */
export async function findRun(
  runsRoot: string,
  runId: string,
  askDaemon: (runId: string) => Promise<{ live: boolean; resultPath: string | null; logPath: string | null } | null>,
): Promise<RunRecord | null> {
  const live = await askDaemon(runId);
  let dir = join(runsRoot, runId);
  let manifest = await readManifest(dir).catch(() => null);
  if (!manifest && live?.live && live.resultPath) {
    dir = join(live.resultPath, '..');
    manifest = await readManifest(dir).catch(() => null);
  }
  const result = await readResult(dir).catch(() => null);
  if (!manifest && !result) return null;
  const logPath = live?.live ? live.logPath : result ? result.log_path : join(dir, 'output.log');
  return { runId, dir, manifest, result, logPath, live: live?.live ?? false };
}
