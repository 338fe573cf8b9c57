/**
 * `lockd logs RUN_ID [-f]`: print a run's output log; with -f, follow a live run from any terminal until it ends.
 *
 * Where the log is: for a live run the daemon says (`watch_run` → `run_state`, which also covers --log paths and
 * runs recorded under another runs root); otherwise result.json's `log_path`, else `<run-dir>/output.log`.
 * Following reads the file as it grows (runs/log-tail.ts: fs.watch on its directory, plus a slow re-check because
 * fs.watch can miss events on some filesystems) and stops at the daemon's `run_ended`, which comes after the log is
 * closed, so the last bytes are always printed.
 */
import { readFile } from 'node:fs/promises';
import { once } from 'node:events';
import { join } from 'node:path';
import { parse } from '../args.js';
import { connectOptions } from '../common.js';
import { watchRun } from '../../client/watch-run.js';
import { LOG_FILE, RESULT_FILE } from '../../runs/run-files.js';
import { LogTail } from '../../runs/log-tail.js';
import { readResult, type RunResult } from '../../runs/result.js';
import { EXIT } from '../exit-codes.js';
import { checkRunId, findRunDir, resolveRunsRoot, runsSettings, RUNS_ROOT_OPTIONS } from './runs.js';

export const LOGS_HELP = `Usage: lockd logs RUN_ID [-f] [--runs-root DIR | --root DIR]

Print a run's output log (stdout and stderr in arrival order).

Options:
  -f, --follow      follow a live run until it ends, from any terminal (like tail -f, but stops by itself),
                    then exit with the run's exit code (also for a run that already ended); lockd wait
                    waits without printing the log
  --runs-root DIR   runs root (default $LOCKD_RUNS_ROOT, else <root>/runs with --root, else <state-dir>/runs,
                    then the runs roots the daemon recorded runs under, e.g. build/runs of run --root build)
  --root DIR        build root the run was recorded under (<root>/runs)

A live run is found through the daemon wherever its log is; a finished run through its runs root.

Examples:
  lockd logs 250222-2315-7f3a
  lockd logs -f nightly-42
  lockd logs --root build 250222-2315-7f3a | grep -n FAIL
`;

/** Re-check interval in case fs.watch misses a change; only bounds the delay, events do the real work. */
const RECHECK_MS = 1000;

/** The log copied to stdout from where it left off; a full stdout pauses the reads (its drain). */
function toStdout(path: string): LogTail {
  return new LogTail(path, 0, (chunk) => (process.stdout.write(chunk) ? undefined : once(process.stdout, 'drain').then(() => undefined)));
}

/** Print the whole file; false when it does not exist. */
async function printFile(path: string): Promise<boolean> {
  const f = toStdout(path);
  await f.pump();
  const found = f.opened;
  await f.close();
  if (f.error) throw f.error;
  return found;
}

async function follow(path: string, ended: Promise<'ended' | 'lost'>): Promise<'ended' | 'lost'> {
  const f = toStdout(path);
  // The directory, not the file: the log may not exist yet while the run is queued (the re-check bounds a miss).
  f.follow();
  const timer = setInterval(() => void f.pump(), RECHECK_MS);
  try {
    await f.pump();
    const how = await ended;
    await f.pump(); // the log is closed before run_ended: this reads its last bytes
    if (f.error) throw f.error;
    return how;
  } finally {
    clearInterval(timer);
    await f.close();
  }
}

export async function readResultFile(path: string): Promise<RunResult | null> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as RunResult;
  } catch {
    return null;
  }
}

export async function logsCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...RUNS_ROOT_OPTIONS, follow: { type: 'boolean', short: 'f' } }, true);
  const runId = checkRunId(positionals[0], 'logs');
  const settings = runsSettings(values);
  const connect = connectOptions(values, settings);
  // A reader that went away (`lockd logs -f X | head`) ends us quietly.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(EXIT.OK);
  });

  const watched = await watchRun(connect, runId);
  if (watched?.live && watched.logPath) {
    if (!values.follow) {
      watched.close();
      if (!(await printFile(watched.logPath))) process.stderr.write(`lockd: run ${runId} has not started yet; its log will be ${watched.logPath}\n`);
      return EXIT.OK;
    }
    const how = await follow(watched.logPath, watched.ended);
    if (how === 'lost') {
      process.stderr.write(`lockd: lost the connection to the lockd daemon while following ${runId}\n`);
      return EXIT.LOCKD_FAILED;
    }
    const result = watched.resultPath ? await readResultFile(watched.resultPath) : null;
    if (!result) {
      process.stderr.write(`lockd: run ${runId} ended but its result.json cannot be read${watched.resultPath ? ` (${watched.resultPath})` : ''}\n`);
      return EXIT.LOCKD_FAILED;
    }
    process.stderr.write(`lockd: run ${runId} ended: ${result.status} (${result.reason}), exit ${result.exit_code}\n`);
    // -f ends with the run's own exit code (as lockd wait does), so `lockd logs -f ID` can stand in for the run.
    return result.exit_code;
  }
  watched?.close();

  // A run id that names nothing is thrown (no_such_run): main prints it as one line, exit 2.
  const dir = await findRunDir(resolveRunsRoot(settings), runId, connect);
  const result = await readResult(dir).catch(() => null);
  if (result && result.log_path === null) {
    process.stderr.write(`lockd: run ${runId} never started (${result.reason}), so it has no log; see ${join(dir, RESULT_FILE)}\n`);
    return values.follow ? result.exit_code : 1;
  }
  const logPath = result?.log_path ?? join(dir, LOG_FILE);
  if (!(await printFile(logPath))) {
    process.stderr.write(`lockd: run ${runId} has no log at ${logPath}\n`);
    return 1;
  }
  // -f of a run that already ended: the same exit as following it live would have given.
  if (values.follow && result) return result.exit_code;
  return EXIT.OK;
}
