/**
 * `lockd runs`: the recorded runs of a runs root, newest first (id, status, reason, duration, command), read
 * straight from the run directories so it works without a daemon.
 *
 * Also home of what every run-record command shares (`logs`, `result`, `pin`, `gc`): where the runs root is
 * (decided exactly like `lockd run` decides it) and how a run id is found in it.
 */
import { lstat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { COMMON_OPTIONS, parse, parseIntOption } from '../args.js';
import { Settings } from '../settings.js';
import { request, type ConnectOptions } from '../../client/connection.js';
import { lookOnly } from '../../client/connect-options.js';
import { listRuns, type ListedStatus, type RunSummary } from '../../runs/list.js';
import { RUN_STATUSES } from '../../runs/result.js';
import { isValidRunId } from '../../runs/run-id.js';
import { readRunRoots } from '../../runs/run-roots.js';
import { LockdError } from '../../util/errors.js';
import { resolveStateDir } from '../../util/paths.js';
import { EXIT } from '../exit-codes.js';

/** Options of every command that reads run records. */
export const RUNS_ROOT_OPTIONS = {
  ...COMMON_OPTIONS,
  'runs-root': { type: 'string' },
  root: { type: 'string' },
} as const;

export interface RunsRootChoice {
  /** Absolute path of the runs root. */
  root: string;
  /** False when it is only the default `<state-dir>/runs` (the daemon may use its own state dir then). */
  explicit: boolean;
}

type RootValues = { socket?: string | undefined; 'state-dir'?: string | undefined; 'runs-root'?: string | undefined; root?: string | undefined };

export function runsSettings(values: RootValues, env: NodeJS.ProcessEnv = process.env): Settings {
  return new Settings({ socket: values.socket, state_dir: values['state-dir'], build_root: values.root, runs_root: values['runs-root'] }, env);
}

/**
 * The runs root, as `lockd run` picks it: --runs-root / LOCKD_RUNS_ROOT / lockd.json `runs_root`, else `<root>/runs`
 * when a build root was given (--root or LOCKD_BUILD_ROOT), else `<state-dir>/runs`.
 */
export function resolveRunsRoot(settings: Settings): RunsRootChoice {
  const runsRoot = settings.value('runs_root');
  if (runsRoot) return { root: resolve(runsRoot), explicit: true };
  if (settings.get('build_root').source !== 'default') return { root: resolve(settings.value('build_root')!, 'runs'), explicit: true };
  return { root: join(resolveStateDir(settings.value('state_dir') ?? undefined), 'runs'), explicit: false };
}

/** Refuse ids that are not a single safe path component (`../x`), before touching the filesystem. */
export function checkRunId(runId: string | undefined, command: string): string {
  if (runId === undefined) throw new LockdError('usage', `lockd ${command} needs a run id: lockd ${command} RUN_ID`);
  if (!isValidRunId(runId)) throw new LockdError('invalid_run_id', `invalid run id ${JSON.stringify(runId)}`);
  return runId;
}

export interface LiveRunInfo {
  live: boolean;
  resultPath: string | null;
  logPath: string | null;
}

/** Ask a running daemon (never starting one) whether the run is live and where its files are; null when none answers. */
export async function askDaemonAboutRun(connect: ConnectOptions, runId: string): Promise<LiveRunInfo | null> {
  try {
    const state = await request(lookOnly(connect), { type: 'watch_run', run_id: runId }, ['run_state']);
    return { live: state.live, resultPath: state.result_path, logPath: state.log_path };
  } catch {
    return null;
  }
}

async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await lstat(p)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * The run directory of `runId`: in the runs root, else (for a live run recorded under another root) where the
 * daemon says it is. Throws `no_such_run` naming the root that was searched.
 */
export async function findRunDir(runsRoot: RunsRootChoice, runId: string, connect: ConnectOptions): Promise<string> {
  const dir = join(runsRoot.root, runId);
  if (await isDirectory(dir)) return dir;
  const live = await askDaemonAboutRun(connect, runId);
  if (live?.live && live.resultPath) return dirname(live.resultPath);
  // Not told where: also the roots the daemon recorded runs under (run-roots.json), e.g. build/runs of a --root run.
  if (!runsRoot.explicit) {
    for (const root of readRunRoots(connect.stateDir)) if (await isDirectory(join(root, runId))) return join(root, runId);
  }
  throw new LockdError(
    'no_such_run',
    `no run ${runId} in ${runsRoot.root}${runsRoot.explicit ? '' : ' nor in the runs roots the daemon used'} (use --runs-root or --root for runs recorded elsewhere)`,
    { run_id: runId },
  );
}

export const RUNS_HELP = `Usage: lockd runs [options]

List recorded runs, newest first: id, status, reason, duration and command.
A run without result.json yet shows as running.

Options:
  --runs-root DIR   runs root (default $LOCKD_RUNS_ROOT, else <root>/runs with --root, else <state-dir>/runs
                    and every runs root the daemon recorded runs under, e.g. build/runs of lockd run --root build)
  --root DIR        build root whose runs to list (<root>/runs)
  --status S[,S]    only runs with these statuses: pass fail timeout error infra_fail running
  --limit N         at most N runs (the newest)
  --json            one JSON array of {run_id, status, reason, duration_ms, command_line, start_time_utc, dir}

Examples:
  lockd runs --limit 10
  lockd runs --root build --status fail,infra_fail
  lockd runs --json | jq -r '.[] | select(.status == "pass") | .run_id'
`;

const LISTED_STATUSES: readonly string[] = [...RUN_STATUSES, 'running'];

function parseStatuses(values: string[]): ListedStatus[] {
  const out: ListedStatus[] = [];
  for (const v of values.flatMap((s) => s.split(','))) {
    const s = v.trim();
    if (!s) continue;
    if (!LISTED_STATUSES.includes(s)) throw new LockdError('usage', `--status ${JSON.stringify(s)} is not one of ${LISTED_STATUSES.join(', ')}`);
    out.push(s as ListedStatus);
  }
  return out;
}

/** 850ms, 12.3s, 4m05s, 2h03m: short enough for a table column, exact enough to compare runs. */
export function formatDuration(ms: number | null): string {
  if (ms === null) return '-';
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.floor(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function table(runs: RunSummary[]): string {
  const rows = runs.map((r) => [r.run_id, r.status ?? '?', r.reason ?? '-', formatDuration(r.duration_ms), r.command_line ?? '?']);
  const header = ['RUN ID', 'STATUS', 'REASON', 'DURATION', 'COMMAND'];
  const widths = header.slice(0, 4).map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i < 4 ? c.padEnd(widths[i]!) : c))
      .join('  ')
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}

export async function runsCommand(args: string[]): Promise<number> {
  const { values } = parse(args, {
    ...RUNS_ROOT_OPTIONS,
    status: { type: 'string', multiple: true },
    limit: { type: 'string' },
    json: { type: 'boolean' },
  });
  const settings = runsSettings(values);
  const { root, explicit } = resolveRunsRoot(settings);
  const statuses = parseStatuses(values.status ?? []);
  const limit = values.limit !== undefined ? parseIntOption(values.limit, '--limit') : undefined;
  // Not told where: the default root and every root the daemon recorded runs under (run-roots.json), merged.
  const roots = explicit ? [root] : [...new Set([root, ...readRunRoots(resolveStateDir(settings.value('state_dir') ?? undefined))])];
  const lists = await Promise.all(roots.map((r) => listRuns(r, { ...(statuses.length ? { status: statuses } : {}), ...(limit !== undefined ? { limit } : {}) })));
  let runs = lists.flat();
  if (lists.length > 1) runs.sort((a, b) => (b.start_time_utc ?? '').localeCompare(a.start_time_utc ?? '') || b.run_id.localeCompare(a.run_id));
  if (limit !== undefined) runs = runs.slice(0, limit);
  if (values.json) process.stdout.write(`${JSON.stringify(runs)}\n`);
  else if (runs.length === 0) process.stderr.write(`lockd: no runs in ${root}\n`);
  else process.stdout.write(table(runs));
  return EXIT.OK;
}
