import test from 'ava';
import type { ExecutionContext } from 'ava';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { buildResult } from '../src/runs/build-result.js';
import { readResult, writeResult, RUN_REASONS, RUN_STATUSES } from '../src/runs/result.js';
import {
  compileVerdictOptions,
  decideVerdict,
  decideWithoutChild,
  LogScanner,
  NO_CHILD_OUTCOMES,
  scanLogFile,
  type ChildExit,
  type NoChildReason,
  type ScanResult,
  type Verdict,
  type VerdictOptions,
} from '../src/runs/verdict.js';
import { isLockdError } from '../src/util/errors.js';
import { assertValidResult, readJson, repoRoot, resultSchemaAccepts, tempDir } from './runs-helpers.js';

const EXIT0: ChildExit = { kind: 'exited', code: 0 };
const EXIT3: ChildExit = { kind: 'exited', code: 3 };
const TIMEOUT: ChildExit = { kind: 'signaled', signal: 'SIGTERM', sentBy: 'timeout' };

/** Scan `text` fed in awkward chunk sizes (splitting lines and UTF-8 sequences). */
function scanText(text: string, options: Partial<VerdictOptions> = {}, chunk = 7): ScanResult {
  const scanner = new LogScanner(compileVerdictOptions(options));
  const buf = Buffer.from(text, 'utf8');
  for (let i = 0; i < buf.length; i += chunk) scanner.push(buf.subarray(i, i + chunk));
  return scanner.end();
}

function judge(text: string, exit: ChildExit, options: Partial<VerdictOptions> = {}): Verdict {
  const compiled = compileVerdictOptions(options);
  return decideVerdict(exit, scanText(text, options), compiled);
}

/** Every verdict a test makes is also turned into a full result and schema-checked. */
function assertVerdict(t: ExecutionContext, v: Verdict, status: string, reason: string, exitCode: number, source?: string): void {
  t.is(v.status as string, status);
  t.is(v.reason as string, reason);
  t.is(v.exit_code, exitCode);
  if (source) t.is(v.verdict_source as string, source);
  assertValidResult(
    t,
    buildResult({
      runId: '250222-2315-7f3a',
      verdict: v,
      exit: EXIT0,
      queuedAt: new Date('2025-02-22T23:15:00Z'),
      startTime: new Date('2025-02-22T23:15:01Z'),
      endTime: new Date('2025-02-22T23:15:05Z'),
      holder: 'test',
    }),
  );
}

const json = (o: object): string => `TEST_RESULT_JSON: ${JSON.stringify(o)}`;
const GOOD = json({ schema_version: 1, failed: 0, done: true, enabled_mask: 255 });
const S = { requireStructured: true };

// --- default policy -------------------------------------------------------

test('default: exit 0 is pass/exit_zero, nonzero is fail/exit_nonzero with the child code', (t) => {
  assertVerdict(t, judge('hello\n', EXIT0), 'pass', 'exit_zero', 0, 'exit_code');
  assertVerdict(t, judge('hello\n', EXIT3), 'fail', 'exit_nonzero', 3, 'exit_code');
});

test('default: a structured line does not matter without --require-structured', (t) => {
  const v = judge(`${json({ schema_version: 1, failed: 9, done: true })}\n`, EXIT0);
  assertVerdict(t, v, 'pass', 'exit_zero', 0);
  t.deepEqual(v.structured, { status: 'not_required' });
  t.deepEqual(v.summary, { status: 'not_required' });
});

test('default: timeout is status timeout with exit code 124', (t) => {
  assertVerdict(t, judge('', TIMEOUT), 'timeout', 'timeout', 124, 'exit_code');
  assertVerdict(t, judge('', { kind: 'signaled', signal: 'SIGKILL', sentBy: 'timeout' }), 'timeout', 'timeout', 124);
});

test('default: outside signals are infra_fail with 128+N', (t) => {
  assertVerdict(t, judge('', { kind: 'signaled', signal: 'SIGTERM', sentBy: 'external' }), 'infra_fail', 'external_sigterm', 143, 'infra');
  assertVerdict(t, judge('', { kind: 'signaled', signal: 'SIGKILL', sentBy: 'external' }), 'infra_fail', 'external_sigkill', 137, 'infra');
  assertVerdict(t, judge('', { kind: 'signaled', signal: 'SIGSEGV', sentBy: 'external' }), 'infra_fail', 'external_signal', 139, 'infra');
  assertVerdict(t, judge('', { kind: 'signaled', signal: 'SIGHUP', sentBy: 'external' }), 'infra_fail', 'external_signal', 129, 'infra');
});

test('default: cancel, lost client and shutdown', (t) => {
  assertVerdict(t, judge('', { kind: 'signaled', signal: 'SIGTERM', sentBy: 'cancel' }), 'error', 'cancelled', 143, 'infra');
  assertVerdict(t, judge('', { kind: 'signaled', signal: 'SIGKILL', sentBy: 'client_lost' }), 'infra_fail', 'client_lost', 137, 'infra');
  assertVerdict(t, judge('', { kind: 'signaled', signal: 'SIGTERM', sentBy: 'shutdown' }), 'infra_fail', 'shutdown', 143, 'infra');
});

// --- --require-structured -------------------------------------------------

test('structured: failed 0, done true, matching summary → pass/structured_passed whatever the exit code', (t) => {
  const text = `boot\n${GOOD}\nTEST_SUMMARY: failed=0\n`;
  for (const exit of [EXIT0, EXIT3]) {
    const v = judge(text, exit, S);
    assertVerdict(t, v, 'pass', 'structured_passed', 0, 'structured');
    t.deepEqual(v.structured, { status: 'ok', data: { schema_version: 1, failed: 0, done: true, enabled_mask: 255 } });
    t.deepEqual(v.summary, { status: 'ok', failed: 0, raw: 'failed=0' });
  }
});

test('structured: failed > 0 → fail/structured_failed (exit 1)', (t) => {
  const text = `${json({ schema_version: 1, failed: 2, done: true })}\nTEST_SUMMARY: failed=2\n`;
  assertVerdict(t, judge(text, EXIT0, S), 'fail', 'structured_failed', 1, 'structured');
});

test('structured: no TEST_RESULT_JSON → infra_fail/missing_structured_result (exit 2)', (t) => {
  const v = judge('all good, trust me\nTEST_SUMMARY: failed=0\n', EXIT0, S);
  assertVerdict(t, v, 'infra_fail', 'missing_structured_result', 2, 'structured');
  t.deepEqual(v.structured, { status: 'missing' });
});

test('structured: invalid JSON or wrong field types → infra_fail/invalid_structured_result', (t) => {
  const bad = [
    'TEST_RESULT_JSON: {"schema_version": 1, "failed": 0, "done": tru',
    'TEST_RESULT_JSON: [1,2]',
    json({ failed: 0, done: true }),
    json({ schema_version: 1.5, failed: 0, done: true }),
    json({ schema_version: 1, failed: '0', done: true }),
    json({ schema_version: 1, failed: -1, done: true }),
    json({ schema_version: 1, failed: 0, done: 'yes' }),
    json({ schema_version: 1, failed: 0, done: true, enabled_mask: [1] }),
  ];
  for (const line of bad) {
    const v = judge(`${line}\nTEST_SUMMARY: failed=0\n`, EXIT0, S);
    assertVerdict(t, v, 'infra_fail', 'invalid_structured_result', 2);
    t.is(v.structured.status, 'invalid');
    t.is(typeof v.structured.error, 'string', line);
  }
  // enabled_mask as a string is allowed.
  const okMask = judge(`${json({ schema_version: 1, failed: 0, done: true, enabled_mask: '0xff' })}\nTEST_SUMMARY: failed=0\n`, EXIT0, S);
  assertVerdict(t, okMask, 'pass', 'structured_passed', 0);
});

test('structured: done false → infra_fail/structured_done_false', (t) => {
  const text = `${json({ schema_version: 1, failed: 0, done: false })}\nTEST_SUMMARY: failed=0\n`;
  assertVerdict(t, judge(text, EXIT0, S), 'infra_fail', 'structured_done_false', 2, 'structured');
});

test('structured: summary missing or unparseable → infra_fail/missing_test_summary', (t) => {
  const missing = judge(`${GOOD}\n`, EXIT0, S);
  assertVerdict(t, missing, 'infra_fail', 'missing_test_summary', 2);
  t.deepEqual(missing.summary, { status: 'missing' });
  const garbled = judge(`${GOOD}\nTEST_SUMMARY: everything fine\n`, EXIT0, S);
  assertVerdict(t, garbled, 'infra_fail', 'missing_test_summary', 2);
  t.deepEqual(garbled.summary, { status: 'invalid', raw: 'everything fine' });
});

test('structured: summary failed ≠ JSON failed → infra_fail/summary_result_mismatch', (t) => {
  assertVerdict(t, judge(`${GOOD}\nTEST_SUMMARY: failed=1\n`, EXIT0, S), 'infra_fail', 'summary_result_mismatch', 2, 'structured');
});

test('structured: the last TEST_RESULT_JSON and TEST_SUMMARY lines win, prefixes and CRLF are fine', (t) => {
  const text = [json({ schema_version: 1, failed: 5, done: false }), 'TEST_SUMMARY: failed=5', `[  12.345] cpu0: ${GOOD}\r`, '[  12.346] TEST_SUMMARY: passed=40 failed=0\r', 'shutting down'].join(
    '\n',
  );
  const v = judge(text, EXIT3, S);
  assertVerdict(t, v, 'pass', 'structured_passed', 0);
  t.is(v.summary.raw, 'passed=40 failed=0');
  // ...and a bad last line beats a good earlier one.
  const later = judge(`${GOOD}\nTEST_SUMMARY: failed=0\nTEST_RESULT_JSON: {oops\n`, EXIT0, S);
  assertVerdict(t, later, 'infra_fail', 'invalid_structured_result', 2);
});

test('structured: order of checks: done false beats a missing summary, mismatch beats failed>0', (t) => {
  assertVerdict(t, judge(`${json({ schema_version: 1, failed: 0, done: false })}\n`, EXIT0, S), 'infra_fail', 'structured_done_false', 2);
  assertVerdict(t, judge(`${json({ schema_version: 1, failed: 2, done: true })}\nTEST_SUMMARY: failed=1\n`, EXIT0, S), 'infra_fail', 'summary_result_mismatch', 2);
});

// --- markers --------------------------------------------------------------

test('--require-marker: any one match is enough; none → fail/required_markers_missing', (t) => {
  const opts = { requireMarker: ['login:', 'Welcome to .*'] };
  const v = judge('booting\nWelcome to Linux\n', EXIT0, opts);
  assertVerdict(t, v, 'pass', 'exit_zero', 0, 'unstructured');
  t.deepEqual(v.markers.required, [
    { pattern: 'login:', matched: false },
    { pattern: 'Welcome to .*', matched: true },
  ]);
  assertVerdict(t, judge('booting\nhang\n', EXIT0, opts), 'fail', 'required_markers_missing', 1, 'unstructured');
});

test('--require-all: every pattern must match some line', (t) => {
  const opts = { requireAll: ['^stage 1 ok$', '^stage 2 ok$'] };
  assertVerdict(t, judge('stage 2 ok\nstage 1 ok\n', EXIT0, opts), 'pass', 'exit_zero', 0, 'unstructured');
  const v = judge('stage 1 ok\n', EXIT0, opts);
  assertVerdict(t, v, 'fail', 'required_markers_missing', 1);
  t.deepEqual(
    v.markers.required_all.map((m) => m.matched),
    [true, false],
  );
});

test('markers match per line, not across line breaks', (t) => {
  assertVerdict(t, judge('stage 1\nok\n', EXIT0, { requireMarker: ['stage 1\\s+ok'] }), 'fail', 'required_markers_missing', 1);
  // Anchors see each line on its own (CR stripped).
  assertVerdict(t, judge('x\r\nREADY\r\n', EXIT0, { requireMarker: ['^READY$'] }), 'pass', 'exit_zero', 0);
});

test('with markers satisfied, a nonzero exit still fails (exit code 1 under verdict options)', (t) => {
  assertVerdict(t, judge('READY\n', EXIT3, { requireMarker: ['READY'] }), 'fail', 'exit_nonzero', 1, 'unstructured');
});

test('--forbid-marker is checked first: it beats pass, structured pass, timeouts and signals', (t) => {
  const panic = { forbidMarker: ['Kernel panic'] };
  assertVerdict(t, judge('ok\n', EXIT0, panic), 'pass', 'exit_zero', 0);
  assertVerdict(t, judge('Kernel panic - not syncing\n', EXIT0, panic), 'fail', 'forbidden_markers_detected', 1, 'unstructured');
  const structured = `${GOOD}\nTEST_SUMMARY: failed=0\nKernel panic\n`;
  assertVerdict(t, judge(structured, EXIT0, { ...panic, ...S }), 'fail', 'forbidden_markers_detected', 1);
  assertVerdict(t, judge('Kernel panic\n', TIMEOUT, { ...panic, expectTimeout: true }), 'fail', 'forbidden_markers_detected', 1);
  assertVerdict(t, judge('Kernel panic\n', { kind: 'signaled', signal: 'SIGKILL', sentBy: 'external' }, panic), 'fail', 'forbidden_markers_detected', 1);
});

// --- --expect-timeout -----------------------------------------------------

test('--expect-timeout: a timeout is pass/expected_timeout; normal exits follow the exit code', (t) => {
  const opts = { expectTimeout: true };
  assertVerdict(t, judge('serving\n', TIMEOUT, opts), 'pass', 'expected_timeout', 0);
  assertVerdict(t, judge('', EXIT0, opts), 'pass', 'exit_zero', 0);
  assertVerdict(t, judge('', EXIT3, opts), 'fail', 'exit_nonzero', 1);
  // Other kills are still interruptions.
  assertVerdict(t, judge('', { kind: 'signaled', signal: 'SIGTERM', sentBy: 'cancel' }, opts), 'error', 'cancelled', 2);
});

test('--expect-timeout with required markers: the markers must still have appeared', (t) => {
  const opts = { expectTimeout: true, requireMarker: ['login:'] };
  assertVerdict(t, judge('login: \n', TIMEOUT, opts), 'pass', 'expected_timeout', 0, 'unstructured');
  assertVerdict(t, judge('stuck in bootloader\n', TIMEOUT, opts), 'fail', 'required_markers_missing', 1);
});

test('--expect-timeout with --require-structured: the structured rules still apply', (t) => {
  const opts = { expectTimeout: true, ...S };
  assertVerdict(t, judge(`${GOOD}\nTEST_SUMMARY: failed=0\n`, TIMEOUT, opts), 'pass', 'structured_passed', 0);
  assertVerdict(t, judge('', TIMEOUT, opts), 'infra_fail', 'missing_structured_result', 2);
});

test('with verdict options, timeouts and signals use the 0/1/2 exit codes', (t) => {
  assertVerdict(t, judge('', TIMEOUT, { requireMarker: ['x'] }), 'timeout', 'timeout', 1);
  assertVerdict(t, judge('', { kind: 'signaled', signal: 'SIGKILL', sentBy: 'external' }, S), 'infra_fail', 'external_sigkill', 2);
  assertVerdict(t, judge('', { kind: 'signaled', signal: 'SIGINT', sentBy: 'client_lost' }, S), 'infra_fail', 'client_lost', 2);
});

// --- options, scanner details, no-child outcomes ---------------------------

test('compileVerdictOptions rejects invalid or empty regexes with a usage error', (t) => {
  for (const options of [{ requireMarker: ['(unclosed'] }, { requireAll: ['[z-a]'] }, { forbidMarker: ['*x'] }, { requireMarker: [''] }]) {
    const err = t.throws(() => compileVerdictOptions(options));
    t.true(isLockdError(err, 'usage'), String(err));
  }
  const bad = t.throws(() => compileVerdictOptions({ requireMarker: 'x' as unknown as string[] }));
  t.true(isLockdError(bad, 'usage'));
  t.deepEqual(compileVerdictOptions().requireMarker, []);
});

test('LogScanner: chunk boundaries do not matter (including 1-byte chunks and multi-byte UTF-8)', (t) => {
  const text = `ünïcödé ✓ line\n${GOOD}\nTEST_SUMMARY: failed=0\nlast ✓ without newline`;
  const opts = { requireAll: ['ünïcödé ✓', 'last ✓ without newline$'] };
  const reference = scanText(text, opts, text.length);
  for (const size of [1, 2, 3, 5, 64]) t.deepEqual(scanText(text, opts, size), reference);
  t.true(reference.markers.required_all.every((m) => m.matched));
  t.is(reference.lines, 4);
});

test('LogScanner: lines longer than the cap are scanned truncated, and a truncated JSON is invalid', (t) => {
  const scanner = new LogScanner(compileVerdictOptions({ requireMarker: ['^AAAA'], forbidMarker: ['NEEDLE'] }), { maxLineBytes: 64 });
  scanner.push(`AAAA${'x'.repeat(100)}NEEDLE\n`);
  scanner.push(`TEST_RESULT_JSON: {"schema_version":1,"failed":0,"done":true,"pad":"${'p'.repeat(100)}"}\n`);
  const scan = scanner.end();
  t.is(scan.truncatedLines, 2);
  t.true(scan.markers.required[0]!.matched);
  t.false(scan.markers.forbidden[0]!.matched, 'text past the cap is not scanned');
  t.true(scan.structured!.truncated);
  const v = decideVerdict(EXIT0, scan, compileVerdictOptions(S));
  t.is(v.reason, 'invalid_structured_result');
});

test('scanLogFile streams a file through the scanner', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'output.log');
  await writeFile(file, `x\n${GOOD}\nTEST_SUMMARY: failed=0\nREADY`);
  const opts = compileVerdictOptions({ ...S, requireMarker: ['READY'] });
  const v = decideVerdict(EXIT0, await scanLogFile(file, opts), opts);
  assertVerdict(t, v, 'pass', 'structured_passed', 0);
  t.true(v.markers.required[0]!.matched);
});

test('no scan at all (log lost) counts as nothing seen', (t) => {
  const opts = compileVerdictOptions({ ...S, requireMarker: ['READY'] });
  const v = decideVerdict(EXIT0, null, opts);
  assertVerdict(t, v, 'infra_fail', 'missing_structured_result', 2);
  t.deepEqual(v.markers.required, [{ pattern: 'READY', matched: false }]);
  assertVerdict(t, decideVerdict(EXIT0, null, compileVerdictOptions({ requireMarker: ['READY'] })), 'fail', 'required_markers_missing', 1);
});

test('decideWithoutChild: every no-child reason has a status and exit code; 2 under verdict options', (t) => {
  const none = compileVerdictOptions();
  const expected: Record<NoChildReason, [string, number]> = {
    lock_busy: ['error', 75],
    lock_wait_timeout: ['error', 75],
    deadlock: ['error', 75],
    command_not_found: ['error', 127],
    command_not_executable: ['error', 126],
    cancelled: ['error', 130],
    spawn_failed: ['infra_fail', 125],
    client_lost: ['infra_fail', 125],
    daemon_lost: ['infra_fail', 125],
    lock_lost: ['infra_fail', 125],
    shutdown: ['infra_fail', 125],
    cluster_unavailable: ['infra_fail', 69],
    log_write_failed: ['infra_fail', 74],
    pool_gone: ['error', 2],
    superseded: ['error', 77],
  };
  t.deepEqual(Object.keys(NO_CHILD_OUTCOMES).sort(), Object.keys(expected).sort());
  for (const [reason, [status, code]] of Object.entries(expected) as [NoChildReason, [string, number]][]) {
    const v = decideWithoutChild(reason, none);
    assertVerdict(t, v, status, reason, code, 'infra');
    t.is(decideWithoutChild(reason, compileVerdictOptions({ forbidMarker: ['x'] })).exit_code, 2);
  }
  const err = t.throws(() => decideWithoutChild('exit_zero' as NoChildReason, none));
  t.true(isLockdError(err, 'internal'));
});

// --- result files ---------------------------------------------------------

test('writeResult writes a schema-valid result.json with derived fields', async (t) => {
  const dir = await tempDir(t);
  const opts = compileVerdictOptions({ ...S, requireMarker: ['READY'] });
  const exit: ChildExit = { kind: 'signaled', signal: 'SIGTERM', sentBy: 'timeout', childExitCode: 0 };
  const verdict = decideVerdict(exit, scanText(`READY\n${GOOD}\nTEST_SUMMARY: failed=0\n`, { ...S, requireMarker: ['READY'] }), {
    ...opts,
    expectTimeout: true,
  });
  const result = buildResult({
    runId: '250222-2315-7f3a',
    verdict,
    exit,
    logPath: path.join(dir, 'output.log'),
    queuedAt: new Date('2025-02-22T23:15:00.000Z'),
    startTime: new Date('2025-02-22T23:15:02.500Z'),
    endTime: new Date('2025-02-22T23:16:02.750Z'),
    locks: [{ name: 'qemu', scope: 'local', mode: 'exclusive', path: '/run/lockd/qemu.lock', wait_ms: 2500 }],
    message: null,
    holder: 'ci@farm pid 1',
  });
  t.is(result.status, 'pass');
  t.is(result.reason, 'structured_passed');
  t.is(result.duration_ms, 60_250);
  t.is(result.queue_wait_ms, 2500);
  t.is(result.child_exit_code, 0);
  t.deepEqual(result.signals, { exit_signal: 'SIGTERM', sent_by: 'timeout' });
  const file = await writeResult(dir, result);
  const onDisk = await readJson(file);
  assertValidResult(t, onDisk);
  t.deepEqual(onDisk, result);
  t.deepEqual(await readResult(dir), result);
});

test('a run that never started has null start/duration and its queue wait runs to the end', async (t) => {
  const dir = await tempDir(t);
  const result = buildResult({
    runId: 'nightly-7',
    verdict: decideWithoutChild('lock_busy', compileVerdictOptions()),
    queuedAt: new Date('2025-02-22T23:15:00.000Z'),
    endTime: new Date('2025-02-22T23:15:00.040Z'),
    message: 'lock qemu is held by bob@box pid 99 (run 250222-2310-abcd)',
    holder: 'alice@box pid 1',
  });
  t.is(result.start_time_utc, null);
  t.is(result.duration_ms, null);
  t.is(result.queue_wait_ms, 40);
  t.is(result.child_exit_code, null);
  t.deepEqual(result.signals, { exit_signal: null, sent_by: null });
  assertValidResult(t, await readJson(await writeResult(dir, result)));
});

test('the result schema and the TypeScript vocabularies agree', async (t) => {
  const schema = JSON.parse(await readFile(path.join(repoRoot, 'docs/schemas/result.schema.json'), 'utf8')) as {
    $defs: { reason: { enum: string[] } };
    properties: { status: { enum: string[] } };
  };
  t.deepEqual(schema.$defs.reason.enum, [...RUN_REASONS]);
  t.deepEqual(schema.properties.status.enum, [...RUN_STATUSES]);
  const base = buildResult({
    runId: 'r1',
    verdict: judge('', EXIT0),
    exit: EXIT0,
    queuedAt: new Date(0),
    startTime: new Date(0),
    endTime: new Date(1),
    holder: 'h',
  });
  t.true(resultSchemaAccepts(base));
  t.false(resultSchemaAccepts({ ...base, reason: 'it_broke' }));
  t.false(resultSchemaAccepts({ ...base, status: 'pass', reason: 'exit_nonzero' }));
  t.false(resultSchemaAccepts({ ...base, status: 'pass', exit_code: 1 }));
  t.false(resultSchemaAccepts({ ...base, extra: 1 }));
});
