/** `lockd pin RUN_ID` / `lockd unpin RUN_ID`: keep a run out of garbage collection (a `.pinned` file in its directory). */
import { parse } from '../args.js';
import { connectOptions } from '../common.js';
import { pinRun, unpinRun } from '../../runs/pin.js';
import { EXIT } from '../exit-codes.js';
import { checkRunId, findRunDir, resolveRunsRoot, runsSettings, RUNS_ROOT_OPTIONS } from './runs.js';

export const PIN_HELP = `Usage: lockd pin RUN_ID [--runs-root DIR | --root DIR]

Keep the run's directory forever: neither auto-GC nor 'lockd gc' removes a pinned run.
Undo with 'lockd unpin RUN_ID'.

Options:
  --runs-root DIR   runs root (default $LOCKD_RUNS_ROOT, else <root>/runs with --root, else <state-dir>/runs)
  --root DIR        build root the run was recorded under (<root>/runs)

Examples:
  lockd pin 250222-2315-7f3a
  lockd pin --root build reference-run
`;

export const UNPIN_HELP = `Usage: lockd unpin RUN_ID [--runs-root DIR | --root DIR]

Let GC remove the run again (removes the mark 'lockd pin' left). Unpinning a run that is not pinned is not an error.

Options:
  --runs-root DIR   runs root (default $LOCKD_RUNS_ROOT, else <root>/runs with --root, else <state-dir>/runs)
  --root DIR        build root the run was recorded under (<root>/runs)

Examples:
  lockd unpin 250222-2315-7f3a
`;

async function setPinned(args: string[], pinned: boolean): Promise<number> {
  const name = pinned ? 'pin' : 'unpin';
  const { values, positionals } = parse(args, RUNS_ROOT_OPTIONS, true);
  const runId = checkRunId(positionals[0], name);
  const settings = runsSettings(values);
  // A run id that names nothing is thrown (no_such_run): main prints it as one line, exit 2.
  const dir = await findRunDir(resolveRunsRoot(settings), runId, connectOptions(values, settings));
  // pinRun/unpinRun keep the directory's mtime (GC's idea of the run's age).
  if (pinned) await pinRun(dir);
  else await unpinRun(dir);
  process.stderr.write(`lockd: ${pinned ? 'pinned' : 'unpinned'} ${runId} (${dir})\n`);
  return EXIT.OK;
}

export function pinCommand(args: string[]): Promise<number> {
  return setPinned(args, true);
}

export function unpinCommand(args: string[]): Promise<number> {
  return setPinned(args, false);
}
