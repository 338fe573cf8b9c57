/**
 * `lockd status`: every lock held or waited on, by whom, who queues behind whom and for about how long; the
 * runs and holds; the daemon itself. Import-light (node built-ins and the client only), and it never starts a
 * daemon just to report that nothing is held.
 */
import { resolve } from 'node:path';
import { COMMON_OPTIONS, parse } from '../args.js';
import { apiClient } from '../common.js';
import { isLockdError } from '../../util/errors.js';
import { EXIT } from '../exit-codes.js';

const OPTIONS = { ...COMMON_OPTIONS, json: { type: 'boolean' }, root: { type: 'string' } } as const;

export const STATUS_HELP = `Usage: lockd status [--json] [--root DIR]

Show every lock held or waited on: its scope, lock file, mode, holders (run or hold id, pid, who, command,
since, elapsed), the queue in order (who, what they asked for, since when, which holder blocks them) with an
estimated wait from the durations of past runs under the same lock; then the runs, the holds, and the
daemon's version, pid and uptime. Never starts a daemon: with none running it says nothing is held.
  --json       stable JSON ({"daemon": null, "locks": [], "runs": [], "holds": []} when no daemon runs)
  --root DIR   only this build root's local locks (global locks are always shown)
Colours only on a terminal, never with NO_COLOR set.

Examples:
  lockd status
  lockd status --root build --json | jq '.locks[] | {name, holders: [.holders[].holder]}'
`;

export async function statusCommand(args: string[]): Promise<number> {
  const { values } = parse(args, OPTIONS);
  const client = apiClient(values, undefined, { autostart: false });
  const root = values.root ? resolve(values.root) : null;
  try {
    if (values.json) {
      // The daemon's JSON as it came, unparsed (it is exactly what JSON.stringify of the parsed snapshot gives).
      process.stdout.write(await client.statusJson(root));
      process.stdout.write('\n');
      return EXIT.OK;
    }
    const snapshot = await client.status(root);
    // The renderer is loaded only for the human table: --json never needs it.
    const [{ renderStatus }, { styleFor }] = await Promise.all([import('../render/status.js'), import('../render/style.js')]);
    process.stdout.write(renderStatus(snapshot, styleFor(process.stdout)));
  } catch (e) {
    if (!isLockdError(e, 'daemon_not_running')) throw e;
    if (values.json) process.stdout.write(`${JSON.stringify({ daemon: null, locks: [], runs: [], holds: [] })}\n`);
    else process.stdout.write(`${(await import('../render/status.js')).NO_DAEMON_TEXT}\n`);
  }
  return EXIT.OK;
}
