/**
 * What one run's records say, computed from what the run knows: its manifest as queued and as started, how its child
 * ended, its verdict and message, and result.json. Pure functions (no I/O, no
 * clock they are not given); run-job.ts writes what they return at the points of its lifecycle.
 */
import type { RunRequest } from '../../protocol/messages.js';
import { LOCKD_VERSION } from '../../protocol/version.js';
import { buildManifest, withStartTime, type RunManifest } from '../../runs/manifest.js';
import type { ResultLock, RunResult, SignalSender } from '../../runs/result.js';
import { buildResult } from '../../runs/build-result.js';
import type { ScanResult } from '../../runs/log-scanner.js';
import { decideVerdict, decideWithoutChild, type ChildExit, type Verdict } from '../../runs/verdict.js';
import type { CompiledVerdictOptions } from '../../runs/verdict-options.js';
import type { GrantedClaim } from '../locks/lock-table.js';
import type { ResolvedLock } from '../records/lock-resolve.js';
import type { JobStdio } from './output-relay.js';

/** The facts of a run that every record repeats. */
export interface RunFacts {
  readonly runId: string;
  readonly req: RunRequest;
  readonly locks: readonly ResolvedLock[];
  readonly parent: string | null;
  readonly queuedAt: number;
}

/** manifest.json as the run is queued (git sha of the build tree, command, locks, who). */
export function queuedManifest(run: RunFacts, gitSha: string | null, stdio: JobStdio | null): RunManifest {
  const { req } = run;
  return buildManifest({
    runId: run.runId,
    command: req.argv,
    cwd: req.cwd,
    buildRoot: req.build_root,
    arch: req.arch,
    locks: run.locks.map((l) => ({ name: l.name, scope: l.scope, mode: l.mode, path: l.key, ...(l.slots ? { slots: l.slots } : {}) })),
    holder: req.holder,
    user: req.user,
    clientPid: req.client_pid,
    gitSha,
    queuedAt: new Date(run.queuedAt),
    lockdVersion: LOCKD_VERSION,
    env: req.env,
    detach: req.detach,
    parentRunId: run.parent,
    ...(stdio ? { stdio: stdio.stdio } : {}),
  });
}

/** The manifest once the job runs: its start time and each lock's fencing token. */
export function startedManifest(m: RunManifest, startedAt: number, claims: readonly GrantedClaim[]): RunManifest {
  const started = withStartTime(m, new Date(startedAt));
  started.locks = started.locks.map((l) => {
    const c = claims.find((x) => x.key === l.path);
    return c ? { ...l, fencing_token: c.fencingToken } : l;
  });
  return started;
}

/** How the child ended, as the verdict policy needs it; `killedBy` is set when lockd stopped it. */
export function childExit(code: number | null, signal: NodeJS.Signals | null, killedBy: { reason: SignalSender; signal: NodeJS.Signals | null } | null): ChildExit {
  if (killedBy) {
    // lockd stopped it: judged by lockd's reason even if the child caught the signal and exited with a code.
    if (signal) return { kind: 'signaled', signal, sentBy: killedBy.reason };
    return { kind: 'signaled', signal: killedBy.signal ?? 'SIGTERM', sentBy: killedBy.reason, ...(code !== null ? { childExitCode: code } : {}) };
  }
  if (signal) return { kind: 'signaled', signal, sentBy: 'external' };
  return { kind: 'exited', code: code ?? 0 };
}

/** What went wrong around a job that ran, besides its own exit: each overrides how it is judged. */
export interface RunTroubles {
  /** output.log could not be written: no trustworthy record, whatever the child did. */
  logError: string | null;
  /** A cluster lock was lost and the job was stopped for it. */
  lockLost: string | null;
  /** A cluster lock was lost and --on-lock-lost warn let the job run on. */
  lockLostWarning: string | null;
}

/** The verdict of a job that ran, and the message its result carries. */
export function judgeExit(exit: ChildExit, scan: ScanResult, options: CompiledVerdictOptions, t: RunTroubles): { verdict: Verdict; message: string | null } {
  if (t.logError) return { verdict: decideWithoutChild('log_write_failed', options, scan), message: `output log could not be written: ${t.logError}` };
  if (t.lockLost) {
    return { verdict: decideWithoutChild('lock_lost', options, scan), message: `${t.lockLost}; the job was stopped before the lock could pass to another host` };
  }
  const message = t.lockLostWarning ? `warning: ${t.lockLostWarning} (--on-lock-lost warn: the job ran on without the lock)` : null;
  return { verdict: decideVerdict(exit, scan, options), message };
}

/** result.json for this attempt: the verdict plus what the daemon measured, assembled by the runs library. */
export function runResult(
  run: RunFacts,
  verdict: Verdict,
  at: { grantedAt: number | null; startedAt: number | null; endedAt: number },
  extra: { exit: ChildExit | null; message: string | null; logPath: string | null; cancelledBy: string | null },
): RunResult {
  // Waited until granted, or until the end for a run that never was.
  const waitMs = Math.max(0, (at.grantedAt ?? at.endedAt) - run.queuedAt);
  const locks: ResultLock[] = run.locks.map((l) => ({ name: l.name, scope: l.scope, mode: l.mode, path: l.key, wait_ms: waitMs }));
  return buildResult({
    runId: run.runId,
    verdict,
    exit: extra.exit,
    logPath: extra.logPath,
    queuedAt: new Date(run.queuedAt),
    startTime: at.startedAt !== null ? new Date(at.startedAt) : null,
    endTime: new Date(at.endedAt),
    locks,
    message: extra.message,
    // Only a cancellation names a canceller; a lost client or a log failure is not one.
    cancelledBy: verdict.reason === 'cancelled' ? extra.cancelledBy : null,
    holder: run.req.holder,
  });
}
