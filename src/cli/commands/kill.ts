/** `lockd kill RUN_ID`: stop a run's whole process tree; its result.json says cancelled, and by whom. */
import { constants as osConstants } from 'node:os';
import { COMMON_OPTIONS, parse } from '../args.js';
import { apiClient } from '../common.js';
import { LockdError, isLockdError } from '../../util/errors.js';
import { EXIT } from '../exit-codes.js';

const OPTIONS = { ...COMMON_OPTIONS, signal: { type: 'string', short: 's' }, force: { type: 'boolean' } } as const;

export const KILL_HELP = `Usage: lockd kill RUN_ID [--signal SIG] [--force]

Stop a run (queued, or running with its whole process tree: SIG first, SIGKILL after the run's
--kill-after grace). Returns once the run is recorded; its result.json has reason "cancelled" and
"cancelled_by" naming who killed it. Never waits for a lock and never starts a daemon.
  -s, --signal SIG  first signal (default TERM; e.g. INT, HUP, KILL)
  --force           system mode: kill another user's run (root and the lockd admin group only)

Exit status: 0 stopped, 1 no such live run (or not yours), 2 usage, 125 lockd failed.

Example:
  lockd kill 250222-2315-7f3a --signal INT
`;

export async function killCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, OPTIONS, true);
  if (positionals.length !== 1) throw new LockdError('usage', 'lockd kill needs exactly one RUN_ID (see lockd status)');
  const runId = positionals[0]!;
  const raw = (values.signal ?? 'TERM').toUpperCase();
  const signal = raw.startsWith('SIG') ? raw : `SIG${raw}`;
  if (!(signal in osConstants.signals)) throw new LockdError('usage', `unknown signal ${JSON.stringify(values.signal)}`);
  try {
    const reply = await apiClient(values, undefined, { autostart: false }).kill(runId, { signal, force: values.force ?? false });
    process.stderr.write(`lockd: ${reply.note ?? `run ${runId} stopped`}\n`);
    return EXIT.OK;
  } catch (e) {
    if (isLockdError(e) && (e.code === 'no_such_run' || e.code === 'not_owner' || e.code === 'daemon_not_running')) {
      process.stderr.write(`lockd: ${e.code === 'daemon_not_running' ? `no lockd daemon is running, so no run ${runId} is live` : e.message}\n`);
      return 1;
    }
    throw e;
  }
}
