/** `lockd heartbeat [HOLD_ID]`: restart a hold's TTL clock (default: the hold in $LOCKD_HOLD_ID). */
import { COMMON_OPTIONS, parse } from '../args.js';
import { apiClient } from '../common.js';
import { callerIdentity, holdSettings } from '../hold-args.js';
import { LockdError, isLockdError } from '../../util/errors.js';
import { EXIT } from '../exit-codes.js';

const OPTIONS = { ...COMMON_OPTIONS, holder: { type: 'string' }, quiet: { type: 'boolean', short: 'q' } } as const;

export const HEARTBEAT_HELP = `Usage: lockd heartbeat [HOLD_ID] [--holder H] [-q]

Tell the daemon the holder of HOLD_ID (default: $LOCKD_HOLD_ID) is still there: its TTL starts again from now. Only the hold's own
holder may do this (the same CI job, user, or --holder / LOCKD_HOLDER). A hold without a TTL needs none.

Exit status: 0 renewed, 1 no such hold (expired, released, never existed) or not yours, 125 lockd failed.

Example:
  while sleep 60; do lockd heartbeat || break; done &      # the hold in $LOCKD_HOLD_ID
`;

export async function heartbeatCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, OPTIONS, true);
  if (positionals.length > 1) throw new LockdError('usage', 'lockd heartbeat takes one HOLD_ID');
  const holdId = positionals[0] ?? process.env.LOCKD_HOLD_ID;
  if (!holdId) throw new LockdError('usage', 'lockd heartbeat needs a HOLD_ID, or LOCKD_HOLD_ID in the environment');
  const settings = holdSettings(values);
  const { holder } = callerIdentity(settings);
  try {
    const reply = await apiClient(values, settings).heartbeat(holdId, holder);
    if (!values.quiet) process.stderr.write(`lockd: ${holdId} renewed${reply.note ? ` (${reply.note})` : ''}\n`);
    return EXIT.OK;
  } catch (e) {
    if (isLockdError(e) && (e.code === 'no_such_hold' || e.code === 'not_owner' || e.code === 'daemon_not_running')) {
      process.stderr.write(`lockd: ${e.code === 'daemon_not_running' ? `no lockd daemon is running, so there is no hold ${holdId}` : e.message}\n`);
      return 1;
    }
    throw e;
  }
}
