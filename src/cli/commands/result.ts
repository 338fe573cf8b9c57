/** `lockd result RUN_ID`: print a run's result.json, exactly as recorded. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from '../args.js';
import { connectOptions } from '../common.js';
import { RESULT_FILE } from '../../runs/run-files.js';
import { EXIT } from '../exit-codes.js';
import { askDaemonAboutRun, checkRunId, findRunDir, resolveRunsRoot, runsSettings, RUNS_ROOT_OPTIONS } from './runs.js';

export const RESULT_HELP = `Usage: lockd result RUN_ID [--runs-root DIR | --root DIR]

Print the run's result.json (status, reason, exit codes, times, locks, verdict details).
Exit 0 when printed; 1 when the run has no result yet (still queued or running); 2 when there is no such run.

Options:
  --runs-root DIR   runs root (default $LOCKD_RUNS_ROOT, else <root>/runs with --root, else <state-dir>/runs,
                    then the runs roots the daemon recorded runs under, e.g. build/runs of run --root build)
  --root DIR        build root the run was recorded under (<root>/runs)

Examples:
  lockd result 250222-2315-7f3a
  lockd result --root build nightly-42 | jq -r .status
`;

export async function resultCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, RUNS_ROOT_OPTIONS, true);
  const runId = checkRunId(positionals[0], 'result');
  const settings = runsSettings(values);
  const connect = connectOptions(values, settings);
  // A run id that names nothing is thrown (no_such_run): main prints it as one line, exit 2.
  const dir = await findRunDir(resolveRunsRoot(settings), runId, connect);
  let text: string;
  try {
    text = await readFile(join(dir, RESULT_FILE), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    const live = await askDaemonAboutRun(connect, runId);
    const why = live?.live ? 'it is still queued or running' : 'it never finished (was its daemon lost?)';
    process.stderr.write(`lockd: run ${runId} has no result yet: ${why}; it will be at ${join(dir, RESULT_FILE)}\n`);
    return 1;
  }
  // result.json is renamed into place whole, so a file that does not parse was damaged after the fact (a full
  // disk, a hand edit): say so rather than hand the next tool in the pipe something it will choke on.
  try {
    JSON.parse(text);
  } catch (e) {
    process.stderr.write(`lockd: the result of run ${runId} is damaged (${join(dir, RESULT_FILE)} is not valid JSON: ${(e as Error).message})\n`);
    return 1;
  }
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  return EXIT.OK;
}
