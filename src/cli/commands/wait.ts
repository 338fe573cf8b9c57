/**
 * `lockd wait RUN_ID...`: block until each run has ended and exit with its exit code (as pueue's `wait`), so a
 * script can start runs with `--detach` and collect them later. A run that already ended answers at once from its
 * result.json; a live one is watched through the daemon (`watch_run` → `run_ended`), never polled.
 */
import { join } from 'node:path';
import { parse, parseSeconds } from '../args.js';
import { connectOptions } from '../common.js';
import type { ConnectOptions } from '../../client/connection.js';
import { RESULT_FILE } from '../../runs/run-files.js';
import { LockdError } from '../../util/errors.js';
import { EXIT } from '../exit-codes.js';
import { readResultFile } from './logs.js';
import { watchRun } from '../../client/watch-run.js';
import { checkRunId, findRunDir, resolveRunsRoot, runsSettings, RUNS_ROOT_OPTIONS, type RunsRootChoice } from './runs.js';

export const WAIT_HELP = `Usage: lockd wait RUN_ID... [-q] [--timeout DURATION] [--runs-root DIR | --root DIR]

Wait until every named run has ended, then exit with its exit code: with several runs, the first non-zero
exit code in the order given (0 when all passed). On stderr a line per live run when the wait starts and
one as each ends (-q: none).
A run that already ended answers at once from its result.json.

Exit: the run's code (0-255, as lockd run would have exited); 2 no such run; 124 --timeout passed first
(the runs go on: lockd wait never stops them); 125 the daemon was lost while waiting, or a run ended
without a readable result.json.

Options:
  --runs-root DIR   runs root (default $LOCKD_RUNS_ROOT, else <root>/runs with --root, else <state-dir>/runs,
                    then the runs roots the daemon recorded runs under, e.g. build/runs of run --root build)
  --root DIR        build root the runs were recorded under (<root>/runs)
  --timeout DURATION  give up after this long (90, 10m, 1h30m; default: wait as long as it takes), exit 124
  -q, --quiet       no "ended" lines

Examples:
  a=$(lockd run --detach --lock board -- ./flash.sh a); b=$(lockd run --detach --lock board -- ./flash.sh b)
  lockd wait "$a" "$b"
  lockd wait --root build nightly-42 && echo passed
  lockd wait --timeout 2h "$a" || echo "not passed, or still running after 2 h"
`;

/** One run's end: its exit code, or a LockdError when it cannot be known. */
async function waitOne(runId: string, runsRoot: RunsRootChoice, connect: ConnectOptions, say: (line: string) => void, watches: Set<{ close(): void }>): Promise<number> {
  const watched = await watchRun(connect, runId);
  if (watched) watches.add(watched);
  let resultPath: string | null;
  if (watched?.live) {
    say(`waiting for run ${runId}`);
    const how = await watched.ended;
    watched.close();
    if (how === 'lost') throw new LockdError('daemon_lost', `lost the connection to the lockd daemon while waiting for run ${runId}`);
    resultPath = watched.resultPath;
  } else {
    watched?.close();
    // Not live (or no daemon): it ended, or never was; a run id that names nothing is no_such_run (exit 2).
    resultPath = join(await findRunDir(runsRoot, runId, connect), RESULT_FILE);
  }
  const result = resultPath ? await readResultFile(resultPath) : null;
  if (!result) throw new LockdError('no_result', `run ${runId} is not live and has no readable result.json${resultPath ? ` (${resultPath})` : ''}: was its daemon lost?`);
  say(`run ${runId} ended: ${result.status} (${result.reason}), exit ${result.exit_code}`);
  return result.exit_code;
}

export async function waitCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...RUNS_ROOT_OPTIONS, quiet: { type: 'boolean', short: 'q' }, timeout: { type: 'string' } }, true);
  const timeoutS = values.timeout === undefined ? null : parseSeconds(values.timeout, '--timeout');
  if (positionals.length === 0) throw new LockdError('usage', 'lockd wait needs a run id: lockd wait RUN_ID...');
  const ids = positionals.map((p) => checkRunId(p, 'wait'));
  const settings = runsSettings(values);
  const connect = connectOptions(values, settings);
  const runsRoot = resolveRunsRoot(settings);
  const say = (line: string) => {
    if (!values.quiet) process.stderr.write(`lockd: ${line}\n`);
  };
  // All at once: each watch ends when its run does, in any order; the exit code follows the order given.
  const watches = new Set<{ close(): void }>();
  const ended = new Set<string>();
  const all = Promise.all(
    ids.map(async (id) => {
      const code = await waitOne(id, runsRoot, connect, say, watches);
      ended.add(id);
      return code;
    }),
  );
  if (timeoutS === null) return (await all).find((c) => c !== 0) ?? EXIT.OK;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<null>((resolve) => (timer = setTimeout(resolve, Math.round(timeoutS * 1000), null)));
  try {
    const codes = await Promise.race([all, timedOut]);
    if (codes) return codes.find((c) => c !== 0) ?? EXIT.OK;
  } finally {
    clearTimeout(timer);
  }
  for (const w of watches) w.close();
  all.catch(() => undefined);
  const left = ids.filter((id) => !ended.has(id));
  process.stderr.write(`lockd: gave up after ${values.timeout}: still running: ${left.map((id) => `run ${id}`).join(', ')} (not stopped)\n`);
  return EXIT.TIMEOUT;
}
