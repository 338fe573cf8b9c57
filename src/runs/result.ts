/**
 * result.json: how a run ended. Test farms decide pass/fail from `status`
 * (and branch on `reason`), so both are closed vocabularies kept in sync with
 * docs/schemas/result.schema.json. Add words; never rename or reuse them.
 */
import path from 'node:path';
import { writeJsonAtomic, type AtomicWriteOptions } from './atomic-write.js';
import type { LockMode, LockScope } from './manifest.js';
import { RESULT_FILE, readRunJson } from './run-files.js';

export const RUN_STATUSES = ['pass', 'fail', 'timeout', 'error', 'infra_fail'] as const;
/**
 * - pass / fail: the command ran and the verdict policy judged it.
 * - timeout: lockd killed it at its time limit.
 * - error: lockd did not let it run to an answer for a reason on the user's
 *   side (bad command, lock busy, cancelled).
 * - infra_fail: the answer is untrustworthy because of the environment
 *   (outside kill, lost client or daemon, broken structured output); farms
 *   typically retry these.
 */
export type RunStatus = (typeof RUN_STATUSES)[number];

export const RUN_REASONS = [
  'exit_zero',
  'exit_nonzero',
  'timeout',
  'lock_busy',
  'lock_wait_timeout',
  'spawn_failed',
  'command_not_found',
  'command_not_executable',
  'cancelled',
  'client_lost',
  'daemon_lost',
  'external_sigterm',
  'external_sigkill',
  'external_signal',
  'structured_passed',
  'structured_failed',
  'missing_structured_result',
  'invalid_structured_result',
  'structured_done_false',
  'missing_test_summary',
  'summary_result_mismatch',
  'required_markers_missing',
  'forbidden_markers_detected',
  'expected_timeout',
  'deadlock',
  'cluster_unavailable',
  'lock_lost',
  'log_write_failed',
  'shutdown',
  // added with pools (issue 16): the pool members a queued run asked for were removed; a newer run superseded it
  'pool_gone',
  'superseded',
] as const;
export type RunReason = (typeof RUN_REASONS)[number];

export const VERDICT_SOURCES = ['exit_code', 'structured', 'unstructured', 'infra'] as const;
/** Which rule family produced the verdict. */
export type VerdictSource = (typeof VERDICT_SOURCES)[number];

/** Who sent the signal that ended the child, when lockd knows. */
export type SignalSender = 'timeout' | 'cancel' | 'client_lost' | 'external' | 'shutdown' | 'supersede';

export type CheckStatus = 'ok' | 'missing' | 'invalid' | 'not_required';

export interface StructuredOutcome {
  status: CheckStatus;
  /** The parsed TEST_RESULT_JSON object (status ok). */
  data?: Record<string, unknown>;
  /** Why it is invalid (status invalid). */
  error?: string;
}

export interface SummaryOutcome {
  status: CheckStatus;
  /** N from the last `TEST_SUMMARY: failed=N` (status ok). */
  failed?: number;
  /** The summary text after `TEST_SUMMARY:` as printed (ok or invalid). */
  raw?: string;
}

export interface MarkerOutcome {
  /** The regular expression source as given on the command line. */
  pattern: string;
  matched: boolean;
}

export interface MarkersOutcome {
  /** --require-marker: at least one must match. */
  required: MarkerOutcome[];
  /** --require-all: each must match. */
  required_all: MarkerOutcome[];
  /** --forbid-marker: none may match. */
  forbidden: MarkerOutcome[];
}

export interface ResultLock {
  name: string;
  scope: LockScope;
  mode: LockMode;
  path: string;
  /** Time spent waiting for this lock. */
  wait_ms: number;
}

export interface RunResult {
  schema_version: 1;
  run_id: string;
  status: RunStatus;
  reason: RunReason;
  verdict_source: VerdictSource;
  /** lockd's own exit code for this attempt (what `lockd run` exits with). */
  exit_code: number;
  /** The child's exit code; null when it was killed by a signal or never ran. */
  child_exit_code: number | null;
  signals: { exit_signal: string | null; sent_by: SignalSender | null };
  log_path: string | null;
  start_time_utc: string | null;
  end_time_utc: string;
  /** How long the child ran; null when it never started. */
  duration_ms: number | null;
  queue_wait_ms: number;
  locks: ResultLock[];
  structured: StructuredOutcome;
  summary: SummaryOutcome;
  markers: MarkersOutcome;
  /** One human-readable line, e.g. who held the lock. */
  message: string | null;
  /** Who cancelled the run (holder string of the canceller). */
  cancelled_by: string | null;
  holder: string;
  /** Pool members the run held, by pool, with their properties (absent without pools; added within schema 1). */
  members?: Record<string, Array<{ name: string; properties: Record<string, string> }>>;
  /** For reason superseded: the run that took its place (--supersede; added within schema 1). */
  superseded_by?: string;
}

export function isRunStatus(s: unknown): s is RunStatus {
  return typeof s === 'string' && (RUN_STATUSES as readonly string[]).includes(s);
}

export function isRunReason(s: unknown): s is RunReason {
  return typeof s === 'string' && (RUN_REASONS as readonly string[]).includes(s);
}

/** Atomically write `<dir>/result.json`; returns its path. `options` as for writeJsonAtomic (e.g. when to fsync). */
export async function writeResult(dir: string, result: RunResult, options: AtomicWriteOptions = {}): Promise<string> {
  const file = path.join(dir, RESULT_FILE);
  await writeJsonAtomic(file, result, options);
  return file;
}

/** Read `<dir>/result.json`, or null while the run has none. Not validated. */
export async function readResult(dir: string): Promise<RunResult | null> {
  return (await readRunJson(dir, RESULT_FILE)) as RunResult | null;
}
