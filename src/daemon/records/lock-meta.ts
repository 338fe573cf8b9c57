/**
 * The `.meta` file beside each lock file names who holds it, in the fields the flock(1) wrappers lockd replaces wrote
 * (docs/operations.md). One builder for a run that starts (run-job.ts) and one that is re-adopted (adopt.ts).
 */
export function lockMeta(job: { pid: number | null; startTime: string | null; startedAt: number; cwd: string; commandLine: string | null; runId: string; holder: string }): Record<string, unknown> {
  return {
    pid: job.pid,
    pid_start_time: job.startTime,
    start_utc: new Date(job.startedAt).toISOString(),
    start_epoch: Math.floor(job.startedAt / 1000),
    cwd: job.cwd,
    cmd: job.commandLine,
    run_id: job.runId,
    holder: job.holder,
    lockd_pid: process.pid,
  };
}
