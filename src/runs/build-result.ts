/**
 * Assemble a RunResult from a verdict and what the daemon measured, so the
 * derived fields (durations, child exit code, signal info) are computed the
 * same way for every run.
 */
import { RUN_SCHEMA_VERSION } from './run-files.js';
import type { ResultLock, RunResult } from './result.js';
import type { ChildExit, Verdict } from './verdict.js';

export interface ResultInput {
  runId: string;
  verdict: Verdict;
  /** How the child ended; null/absent when it never started. */
  exit?: ChildExit | null;
  logPath?: string | null;
  queuedAt: Date;
  /** When the child was started; null when it never was. */
  startTime?: Date | null;
  endTime: Date;
  locks?: readonly ResultLock[];
  message?: string | null;
  cancelledBy?: string | null;
  holder: string;
  members?: RunResult['members'];
  supersededBy?: string | null;
}

function childExitCode(exit: ChildExit | null | undefined): number | null {
  if (!exit) return null;
  if (exit.kind === 'exited') return exit.code;
  return exit.childExitCode ?? null;
}

export function buildResult(input: ResultInput): RunResult {
  const exit = input.exit ?? null;
  const start = input.startTime ?? null;
  // Queue wait ends when the child starts, or at the end for runs that never started.
  const queueEnd = start ?? input.endTime;
  return {
    schema_version: RUN_SCHEMA_VERSION,
    run_id: input.runId,
    status: input.verdict.status,
    reason: input.verdict.reason,
    verdict_source: input.verdict.verdict_source,
    exit_code: input.verdict.exit_code,
    child_exit_code: childExitCode(exit),
    signals: exit?.kind === 'signaled' ? { exit_signal: exit.signal, sent_by: exit.sentBy } : { exit_signal: null, sent_by: null },
    log_path: input.logPath ?? null,
    start_time_utc: start ? start.toISOString() : null,
    end_time_utc: input.endTime.toISOString(),
    duration_ms: start ? Math.max(0, input.endTime.getTime() - start.getTime()) : null,
    queue_wait_ms: Math.max(0, queueEnd.getTime() - input.queuedAt.getTime()),
    locks: (input.locks ?? []).map((l) => ({ name: l.name, scope: l.scope, mode: l.mode, path: l.path, wait_ms: l.wait_ms })),
    structured: input.verdict.structured,
    summary: input.verdict.summary,
    markers: input.verdict.markers,
    message: input.message ?? null,
    cancelled_by: input.cancelledBy ?? null,
    holder: input.holder,
    ...(input.members && Object.keys(input.members).length > 0 ? { members: input.members } : {}),
    ...(input.supersededBy ? { superseded_by: input.supersededBy } : {}),
  };
}
