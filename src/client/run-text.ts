/**
 * What `lockd run` tells the user, and the exit code of each error code: one table for both clients. The Node
 * client (cli/commands/run.ts, api/run.ts, cli/exit-codes.ts) reads it here; the native fast client
 * (native/client/) compiles it in as native/client/run-text.h, generated from this file by
 * native/client/gen-table.mjs. test/native-client-table.test.ts fails when the header is stale, so the two
 * clients cannot drift. Templates use {name} placeholders and nothing else (the C side substitutes them too).
 */

/** Lines printed after `lockd: ` on stderr. */
export const RUN_TEXT = {
  manifest: 'manifest -> {path}',
  result: 'result -> {path}',
  /** {blockers} is BLOCKER_TEXT for the first blocker, or empty. */
  waiting: 'waiting for {names} (position {position}){blockers}',
  granted: 'locks granted after {seconds} s',
  timed_out: 'timed out; the process tree was killed',
  retry: 'the lockd daemon went away while we were queued; retrying once',
  lost: "lost the connection to the lockd daemon; the run's result will be at {path}",
  lost_handshake: 'the lockd daemon closed the connection during the handshake',
  /** A refusal: not quiet-gated (the user must learn why nothing ran). */
  not_obtained: '{code}: {message}',
  /**
   * Without a terminal, every --progress-interval while queued (from the daemon's `progress` message): {elapsed} and
   * {left} are durations as cli/render/format.ts formatDuration writes them (the native client has its rules), {blocker} is BLOCKER_TEXT without its leading space or progress_no_blocker, {eta} is
   * ETA_TEXT, {deadline} progress_deadline or progress_no_deadline.
   */
  progress: 'still waiting for {names}: {elapsed} elapsed, position {position}, {blocker}, ETA {eta}, {deadline}',
  progress_no_blocker: 'no blocker known',
  /** {clock} is the deadline's UTC time of day, HH:MM:SS. */
  progress_deadline: 'gives up in {left} (at {clock}Z)',
  progress_no_deadline: 'no deadline (--wait inf)',
} as const;

/** An estimated wait (lockd run's progress lines, lockd status): none known, under a second, else ~DURATION. */
export const ETA_TEXT = { unknown: 'unknown', soon: 'any moment', estimate: '~{duration}' } as const;

/** The first blocker in a waiting line; {pid} is ` (pid N)` or empty, {command} `: <first 60 chars>` or empty. */
export const BLOCKER_TEXT = ' behind {kind} {id}{pid} {holder}{command}';
export const BLOCKER_PID = ' (pid {pid})';
export const BLOCKER_COMMAND = ': {command}';
export const BLOCKER_COMMAND_MAX = 60;

/** Reasons whose message the user needs to see (the others are the child's own doing, or said by the verdict). */
export const SAY_REASONS = [
  'command_not_found',
  'command_not_executable',
  'spawn_failed',
  'log_write_failed',
  'deadlock',
  'client_lost',
  'shutdown',
  'cancelled',
  'lock_lost',
  // pools: the members it was queued for are gone; a newer run with the same --supersede KEY took its place
  'pool_gone',
  'superseded',
] as const;

/** lockd's own exit codes for an error code (exitCodeFor); any code not listed gives LOCKD_FAILED. */
export const EXIT_CODES = { USAGE: 2, NOT_OBTAINED: 75, LOCKD_FAILED: 125 } as const;
export const USAGE_ERROR_CODES = [
  'usage',
  'bad_request',
  'invalid_run_id',
  'run_id_exists',
  'unsafe_lock_path',
  // a run-record command (logs, result, pin) given a run id that names no run: the argument named nothing
  'no_such_run',
  // a run naming a hold that is not active (stale LOCKD_HOLD_ID) or not the caller's; an acquire of what the
  // caller already holds: what was asked names something that cannot be done that way
  'no_such_hold',
  'already_held',
  // a gc that would remove every finished run without --all: what was asked needs saying explicitly
  'gc_needs_all',
  // a pool or member that does not exist (or, for `lockd pool add`, already does)
  'unknown_pool',
  'unknown_member',
  'pool_exists',
] as const;
export const NOT_OBTAINED_ERROR_CODES = ['lock_busy', 'lock_wait_timeout', 'deadlock'] as const;

/** Fill a template's {name} placeholders. */
export function fill(template: string, values: Record<string, string | number>): string {
  return template.replace(/\{([a-z_]+)\}/g, (whole, name: string) => (name in values ? String(values[name]) : whole));
}
