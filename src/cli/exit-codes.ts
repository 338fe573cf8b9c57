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

/** Exit code for an error code that reached the CLI as a LockdError. */
export function exitCodeFor(code: string): number {
  switch (code) {
    case 'usage':
    case 'bad_request':
    case 'invalid_run_id':
    case 'run_id_exists':
    case 'unsafe_lock_path':
    // a run-record command (logs, result, pin) given a run id that names no run: the argument named nothing
    case 'no_such_run':
    // a run naming a hold that is not active (stale LOCKD_HOLD_ID) or not the caller's; an acquire of what the
    // caller already holds: what was asked names something that cannot be done that way
    case 'no_such_hold':
    case 'already_held':
    // lockd pool naming a pool or member that does not exist (or, for add, already does)
    case 'unknown_pool':
    case 'unknown_member':
    case 'pool_exists':
    // a gc that would remove every finished run without --all: what was asked needs saying explicitly
    case 'gc_needs_all':
      return EXIT.USAGE;
    case 'lock_busy':
    case 'lock_wait_timeout':
    case 'deadlock':
      return EXIT.NOT_OBTAINED;
    case 'daemon_busy':
      return EXIT.DAEMON_BUSY;
    default:
      return EXIT.LOCKD_FAILED;
  }
}
