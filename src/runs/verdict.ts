/**
 * The verdict policy: from how the child ended and what its output said, decide
 * status, reason and lockd's own exit code.
 *
 * Precedence (first rule that applies wins):
 *
 *  1. forbidden markers: any --forbid-marker matched any line
 *        → fail / forbidden_markers_detected              [unstructured]
 *     (First, whatever else happened: the output proves a failure, even if the
 *     run was later cancelled or killed.)
 *  2. interrupted: the child was killed by a signal not from the time limit
 *        sentBy cancel      → error / cancelled            [infra]
 *        sentBy client_lost → infra_fail / client_lost     [infra]
 *        sentBy shutdown    → infra_fail / shutdown        [infra]
 *        sentBy external    → infra_fail / external_sigterm | external_sigkill | external_signal [infra]
 *     (The child did not finish, so neither its exit code nor its output can
 *     be judged.)
 *  3. time limit: killed by lockd's timeout
 *        without --expect-timeout → timeout / timeout      [exit_code]
 *        with --expect-timeout    → go on; the timeout counts as a clean end
 *  4. --require-structured, in this order:
 *        no TEST_RESULT_JSON line           → infra_fail / missing_structured_result
 *        last one not valid (JSON, schema)  → infra_fail / invalid_structured_result
 *        done: false                        → infra_fail / structured_done_false
 *        no valid TEST_SUMMARY: failed=N    → infra_fail / missing_test_summary
 *        summary failed ≠ JSON failed       → infra_fail / summary_result_mismatch
 *        failed > 0                         → fail / structured_failed
 *                                                          [structured]
 *  5. --require-marker (none matched) or --require-all (one unmatched)
 *        → fail / required_markers_missing                 [unstructured]
 *  6. passed so far:
 *        --require-structured → pass / structured_passed   [structured]
 *          (the child's exit code is ignored: emulators exit with codes that
 *          say nothing about the guest's tests)
 *        timed out with --expect-timeout → pass / expected_timeout
 *        exit code 0  → pass / exit_zero
 *        exit code ≠0 → fail / exit_nonzero
 *          [unstructured when any marker option took part, else exit_code]
 *
 * lockd's exit code: with no verdict option, the child's code (pass 0,
 * exit_nonzero the child's code), 124 for timeout, 128+N for signal N. With any
 * verdict option (including --expect-timeout) it follows the verdict:
 * 0 pass, 1 fail or timeout, 2 error or infra_fail.
 *
 * The daemon reports a child that lockd signalled as `signaled` with the
 * reason lockd had (even if the child caught the signal and exited with a
 * code of its own; pass that code as `childExitCode`).
 */
import os from 'node:os';
import { LockdError } from '../util/errors.js';
import type { ScanResult } from './log-scanner.js';
import type { MarkersOutcome, RunReason, RunStatus, SignalSender, StructuredOutcome, SummaryOutcome, VerdictSource } from './result.js';
import { hasVerdictOptions, type VerdictPolicy } from './verdict-options.js';

export { compileVerdictOptions, hasVerdictOptions, NO_VERDICT_OPTIONS } from './verdict-options.js';
export type { CompiledMarker, CompiledVerdictOptions, VerdictOptions, VerdictPolicy } from './verdict-options.js';
export { LogScanner, scanLogFile, DEFAULT_MAX_LINE_BYTES, STRUCTURED_TAG, SUMMARY_TAG } from './log-scanner.js';
export type { LogScannerOptions, ScanResult, ScannedStructured, ScannedSummary } from './log-scanner.js';

export type ChildExit =
  | { kind: 'exited'; code: number }
  | {
      kind: 'signaled';
      /** Signal name, e.g. `SIGTERM`. */
      signal: string;
      sentBy: SignalSender;
      /** Set when the child caught lockd's signal and exited with a code of its own. */
      childExitCode?: number;
    };

export interface Verdict {
  status: RunStatus;
  reason: RunReason;
  verdict_source: VerdictSource;
  /** lockd's exit code for this attempt. */
  exit_code: number;
  structured: StructuredOutcome;
  summary: SummaryOutcome;
  markers: MarkersOutcome;
}

export const TIMEOUT_EXIT_CODE = 124;

/** 128+N for signal N, as shells report it; 128 when the name is unknown here. */
export function signalExitCode(signal: string): number {
  const n = (os.constants.signals as Record<string, number | undefined>)[signal];
  return 128 + (n ?? 0);
}

/** lockd's exit code under verdict options: 0 pass, 1 fail/timeout, 2 error/infra_fail. */
export function policyExitCode(status: RunStatus): number {
  if (status === 'pass') return 0;
  if (status === 'fail' || status === 'timeout') return 1;
  return 2;
}

interface StructuredCheck {
  structured: StructuredOutcome;
  summary: SummaryOutcome;
  /** First problem found, in rule 4 order; null when the structured result passes. */
  problem: Extract<RunReason, 'missing_structured_result' | 'invalid_structured_result' | 'structured_done_false' | 'missing_test_summary' | 'summary_result_mismatch' | 'structured_failed'> | null;
}

function isNonNegativeInteger(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Validate a TEST_RESULT_JSON payload; returns the object or an error message. */
function parseStructured(raw: string, truncated: boolean): { data: Record<string, unknown> } | { error: string } {
  if (truncated) return { error: 'TEST_RESULT_JSON line is too long and was truncated' };
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    return { error: `not valid JSON: ${(err as Error).message}` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { error: 'not a JSON object' };
  const data = value as Record<string, unknown>;
  if (!Number.isSafeInteger(data['schema_version'])) return { error: 'schema_version must be an integer' };
  if (!isNonNegativeInteger(data['failed'])) return { error: 'failed must be a non-negative integer' };
  if (typeof data['done'] !== 'boolean') return { error: 'done must be true or false' };
  const mask = data['enabled_mask'];
  if (mask !== undefined && !isNonNegativeInteger(mask) && typeof mask !== 'string') {
    return { error: 'enabled_mask must be a non-negative integer or a string' };
  }
  return { data };
}

function summaryOutcome(scan: ScanResult | null): SummaryOutcome {
  const s = scan?.summary;
  if (!s) return { status: 'missing' };
  if (s.failed === null || !Number.isSafeInteger(s.failed)) return { status: 'invalid', raw: s.raw };
  return { status: 'ok', failed: s.failed, raw: s.raw };
}

function checkStructured(scan: ScanResult | null): StructuredCheck {
  const summary = summaryOutcome(scan);
  const found = scan?.structured;
  if (!found) return { structured: { status: 'missing' }, summary, problem: 'missing_structured_result' };
  const parsed = parseStructured(found.raw, found.truncated);
  if ('error' in parsed) return { structured: { status: 'invalid', error: parsed.error }, summary, problem: 'invalid_structured_result' };
  const structured: StructuredOutcome = { status: 'ok', data: parsed.data };
  const failed = parsed.data['failed'] as number;
  if (parsed.data['done'] === false) return { structured, summary, problem: 'structured_done_false' };
  if (summary.status !== 'ok') return { structured, summary, problem: 'missing_test_summary' };
  if (summary.failed !== failed) return { structured, summary, problem: 'summary_result_mismatch' };
  if (failed > 0) return { structured, summary, problem: 'structured_failed' };
  return { structured, summary, problem: null };
}

/** Marker outcomes when no output was scanned: every marker unmatched. */
function unmatchedMarkers(policy: VerdictPolicy): MarkersOutcome {
  const list = (items: readonly unknown[]) => items.map((item) => ({ pattern: typeof item === 'string' ? item : String((item as { pattern?: unknown }).pattern), matched: false }));
  return { required: list(policy.requireMarker), required_all: list(policy.requireAll), forbidden: list(policy.forbidMarker) };
}

function markersMissing(markers: MarkersOutcome): boolean {
  const anyRequiredMissing = markers.required.length > 0 && !markers.required.some((m) => m.matched);
  const someRequiredAllMissing = markers.required_all.some((m) => !m.matched);
  return anyRequiredMissing || someRequiredAllMissing;
}

function interruptedReason(signal: string, sentBy: Exclude<SignalSender, 'timeout'>): { status: RunStatus; reason: RunReason } {
  switch (sentBy) {
    case 'supersede':
      return { status: 'error', reason: 'superseded' };
    case 'cancel':
      return { status: 'error', reason: 'cancelled' };
    case 'client_lost':
      return { status: 'infra_fail', reason: 'client_lost' };
    case 'shutdown':
      return { status: 'infra_fail', reason: 'shutdown' };
    case 'external':
      if (signal === 'SIGTERM') return { status: 'infra_fail', reason: 'external_sigterm' };
      if (signal === 'SIGKILL') return { status: 'infra_fail', reason: 'external_sigkill' };
      return { status: 'infra_fail', reason: 'external_signal' };
  }
}

/** Decide a finished child's verdict. `scan` may be null when no output was captured. */
export function decideVerdict(exit: ChildExit, scan: ScanResult | null, policy: VerdictPolicy): Verdict {
  const policyActive = hasVerdictOptions(policy);
  const markers = scan?.markers ?? unmatchedMarkers(policy);
  const markerOptionsUsed = policy.requireMarker.length > 0 || policy.requireAll.length > 0 || policy.forbidMarker.length > 0;
  const check: StructuredCheck | null = policy.requireStructured ? checkStructured(scan) : null;
  const structured: StructuredOutcome = check?.structured ?? { status: 'not_required' };
  const summary: SummaryOutcome = check?.summary ?? { status: 'not_required' };

  const verdict = (status: RunStatus, reason: RunReason, source: VerdictSource, naturalExitCode: number): Verdict => ({
    status,
    reason,
    verdict_source: source,
    exit_code: policyActive ? policyExitCode(status) : naturalExitCode,
    structured,
    summary,
    markers,
  });

  // 1. forbidden markers
  if (markers.forbidden.some((m) => m.matched)) return verdict('fail', 'forbidden_markers_detected', 'unstructured', 1);

  // 2. interrupted by someone other than the time limit (a newer run with its --supersede KEY: exit 77 like a
  // superseded queued run, whatever signal ended the tree)
  if (exit.kind === 'signaled' && exit.sentBy === 'supersede') return verdict('error', 'superseded', 'infra', NO_CHILD_OUTCOMES.superseded.exitCode);
  if (exit.kind === 'signaled' && exit.sentBy !== 'timeout') {
    const { status, reason } = interruptedReason(exit.signal, exit.sentBy);
    return verdict(status, reason, 'infra', signalExitCode(exit.signal));
  }

  // 3. time limit
  const timedOut = exit.kind === 'signaled';
  if (timedOut && !policy.expectTimeout) return verdict('timeout', 'timeout', 'exit_code', TIMEOUT_EXIT_CODE);

  // 4. structured result
  if (check && check.problem !== null) {
    const status: RunStatus = check.problem === 'structured_failed' ? 'fail' : 'infra_fail';
    return verdict(status, check.problem, 'structured', 1);
  }

  // 5. required markers
  if (markersMissing(markers)) return verdict('fail', 'required_markers_missing', 'unstructured', 1);

  // 6. passed the gates
  if (check) return verdict('pass', 'structured_passed', 'structured', 0);
  const source: VerdictSource = markerOptionsUsed ? 'unstructured' : 'exit_code';
  if (timedOut) return verdict('pass', 'expected_timeout', source, 0);
  const code = (exit as { kind: 'exited'; code: number }).code;
  if (code === 0) return verdict('pass', 'exit_zero', source, 0);
  return verdict('fail', 'exit_nonzero', source, code);
}

/**
 * Runs that end without a child verdict: never started (lock busy, spawn
 * failure), or stopped by lockd for its own reasons (lock lost, log write
 * failed). Status and natural exit code per reason; with verdict options the
 * exit code is 2 like every error.
 */
export const NO_CHILD_OUTCOMES = {
  lock_busy: { status: 'error', exitCode: 75 }, // EX_TEMPFAIL: try again later
  lock_wait_timeout: { status: 'error', exitCode: 75 },
  deadlock: { status: 'error', exitCode: 75 },
  command_not_found: { status: 'error', exitCode: 127 }, // as shells report it
  command_not_executable: { status: 'error', exitCode: 126 },
  cancelled: { status: 'error', exitCode: 130 }, // 128+SIGINT: interrupted
  spawn_failed: { status: 'infra_fail', exitCode: 125 }, // the launcher itself failed (as env/timeout do)
  client_lost: { status: 'infra_fail', exitCode: 125 },
  daemon_lost: { status: 'infra_fail', exitCode: 125 },
  lock_lost: { status: 'infra_fail', exitCode: 125 },
  shutdown: { status: 'infra_fail', exitCode: 125 },
  cluster_unavailable: { status: 'infra_fail', exitCode: 69 }, // EX_UNAVAILABLE
  log_write_failed: { status: 'infra_fail', exitCode: 74 }, // EX_IOERR
  pool_gone: { status: 'error', exitCode: 2 }, // what it asked for no longer exists: like a bad request
  superseded: { status: 'error', exitCode: 77 }, // a newer run with the same --supersede KEY took its place
} as const satisfies Partial<Record<RunReason, { status: RunStatus; exitCode: number }>>;

export type NoChildReason = keyof typeof NO_CHILD_OUTCOMES;

/** Verdict for a run that has no child outcome to judge (see NO_CHILD_OUTCOMES). */
export function decideWithoutChild(reason: NoChildReason, policy: VerdictPolicy, scan: ScanResult | null = null): Verdict {
  const outcome = NO_CHILD_OUTCOMES[reason] as { status: RunStatus; exitCode: number } | undefined;
  if (!outcome) throw new LockdError('internal', `decideWithoutChild: ${String(reason)} is decided from a child's exit`, { reason });
  const notRequired = { status: 'not_required' } as const;
  return {
    status: outcome.status,
    reason,
    verdict_source: 'infra',
    exit_code: hasVerdictOptions(policy) ? policyExitCode(outcome.status) : outcome.exitCode,
    structured: policy.requireStructured ? checkStructured(scan).structured : { ...notRequired },
    summary: policy.requireStructured ? summaryOutcome(scan) : { ...notRequired },
    markers: scan?.markers ?? unmatchedMarkers(policy),
  };
}
