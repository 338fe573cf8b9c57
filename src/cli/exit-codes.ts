import { NOT_OBTAINED_ERROR_CODES, USAGE_ERROR_CODES } from '../client/run-text.js';

/** lockd's own exit codes (documented in the README); everything else is the child's. */
export const EXIT = {
  OK: 0,
  USAGE: 2,
  /** The locks were not obtained (busy with --wait 0, wait timed out, deadlock). --conflict-exit-code changes it. */
  NOT_OBTAINED: 75,
  /** `lockd shutdown` refused: runs are in progress (try again later, as for a busy lock; --force stops them). */
  DAEMON_BUSY: 75,
  TIMEOUT: 124,
  /** lockd itself failed: daemon unreachable, connection lost, internal error. */
  LOCKD_FAILED: 125,
  NOT_EXECUTABLE: 126,
  NOT_FOUND: 127,
} as const;

/** Exit code for an error code that reached the CLI as a LockdError (the table is shared with the native client). */
export function exitCodeFor(code: string): number {
  if (code === 'daemon_busy') return EXIT.DAEMON_BUSY;
  if ((USAGE_ERROR_CODES as readonly string[]).includes(code)) return EXIT.USAGE;
  if ((NOT_OBTAINED_ERROR_CODES as readonly string[]).includes(code)) return EXIT.NOT_OBTAINED;
  return EXIT.LOCKD_FAILED;
}
