/**
 * `lockd list`: one summary line per run, newest first, read from the run
 * directories (so it works without a daemon, and for other daemons' runs).
 */
import { readManifest } from './manifest.js';
import { readResult, type RunReason, type RunStatus } from './result.js';
import { listRunDirs, mapLimited, type RunDirEntry } from './run-dirs.js';

/** `running` when there is a manifest but no result yet. */
export type ListedStatus = RunStatus | 'running';

export interface RunSummary {
  run_id: string;
  /** null when the status cannot be told: unreadable result, or not live any more yet no result (abandoned). */
  status: ListedStatus | null;
  reason: RunReason | null;
  duration_ms: number | null;
  command_line: string | null;
  start_time_utc: string | null;
  dir: string;
}

export interface ListRunsOptions {
  /** Only runs with this status (or any of these). */
  status?: ListedStatus | readonly ListedStatus[];
  /** At most this many (newest) runs. */
  limit?: number;
  /**
   * When given, a run without a result that is not live is reported with
   * status null (its daemon died) instead of `running`.
   */
  isLive?: (runId: string) => boolean;
}

const READ_CONCURRENCY = 16;

async function tryRead<T>(read: () => Promise<T | null>): Promise<{ value: T | null; corrupt: boolean }> {
  try {
    return { value: await read(), corrupt: false };
  } catch {
    return { value: null, corrupt: true };
  }
}

async function summarize(entry: RunDirEntry, isLive: ((runId: string) => boolean) | undefined): Promise<RunSummary | null> {
  const [manifest, result] = await Promise.all([tryRead(() => readManifest(entry.dir)), tryRead(() => readResult(entry.dir))]);
  // Neither file (yet): a directory being created, or not a run at all.
  if (!manifest.value && !result.value && !manifest.corrupt && !result.corrupt) return null;
  const r = result.value;
  const m = manifest.value;
  let status: ListedStatus | null;
  if (r) status = r.status;
  else if (result.corrupt) status = null;
  else status = isLive && !isLive(entry.runId) ? null : 'running';
  return {
    run_id: entry.runId,
    status,
    reason: r?.reason ?? null,
    duration_ms: r?.duration_ms ?? null,
    command_line: m?.command_line ?? null,
    start_time_utc: r?.start_time_utc ?? m?.start_time_utc ?? null,
    dir: entry.dir,
  };
}

export async function listRuns(runsRoot: string, options: ListRunsOptions = {}): Promise<RunSummary[]> {
  const wanted = options.status === undefined ? null : new Set<ListedStatus | null>(typeof options.status === 'string' ? [options.status] : options.status);
  const entries = (await listRunDirs(runsRoot)).filter((e) => e.hasManifest || e.hasResult);
  const summaries = await mapLimited(entries, READ_CONCURRENCY, (e) => summarize(e, options.isLive));
  let out = summaries.filter((s): s is RunSummary => s !== null && (wanted === null || wanted.has(s.status)));
  if (options.limit !== undefined) out = out.slice(0, Math.max(0, options.limit));
  return out;
}
