/**
 * Crash points for the crash tests: `LOCKD_FAULT_POINT=<name>` in the daemon's environment makes the daemon SIGKILL
 * itself the first time it reaches that point, so a test can stop it at an exact place in an ordering that is
 * otherwise a fraction of a millisecond wide. It can only end the daemon (what kill -9 does anyway), never change
 * what a run does; unset, a check is one comparison. Names are listed in docs/crash-safety.md.
 */
export type FaultPointName = 'records_after_next_launch' | 'after_launch';

const armed = process.env.LOCKD_FAULT_POINT ?? '';

export function faultPoint(name: FaultPointName): void {
  if (armed === name) process.kill(process.pid, 'SIGKILL');
}
