/**
 * Every way a `lockd run` attempt can end, through the real daemon and CLI: each one leaves a run directory with
 * manifest.json and result.json that validate against docs/schemas, with the status/reason/exit code the verdict
 * policy promises. Also: the manifest's fields, run ids and runs roots, logs, --result-fd, -q and auto-GC.
 *
 * Serial: each test starts a daemon and several clients; run one at a time they stay well inside their bounds on a
 * loaded 2-core machine.
 */
import test, { type ExecutionContext } from 'ava';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CLI, lockd, lockdSpawn, printedPaths, readJson, startDaemon, waitForFile, type CliResult, type Daemon } from './helpers/lockd.js';
import { assertValidManifest, assertValidResult } from './runs-helpers.js';
import { request } from '../src/client/connection.js';
import { digestEnv } from '../src/runs/env-digest.js';
import { isValidRunId } from '../src/runs/run-id.js';

// biome-ignore lint/suspicious/noExplicitAny: JSON records read back from disk are walked loosely by the assertions
type Json = Record<string, any>;

interface Records {
  manifest: Json;
  result: Json;
  dir: string;
}

/** Both files of the attempt whose paths `lockd run` printed, schema-checked. */
function recordsOf(t: ExecutionContext, stderr: string): Records {
  const p = printedPaths(stderr);
  t.truthy(p.manifest, `no manifest line in: ${stderr}`);
  t.truthy(p.result, `no result line in: ${stderr}`);
  t.is(dirname(p.manifest!), dirname(p.result!));
  return recordsIn(t, dirname(p.result!));
}

function recordsIn(t: ExecutionContext, dir: string): Records {
  const manifest = readJson(join(dir, 'manifest.json'));
  const result = readJson(join(dir, 'result.json'));
  assertValidManifest(t, manifest);
  assertValidResult(t, result);
  t.is(manifest.run_id, result.run_id);
  return { manifest, result, dir };
}

/** `lockd run` from inside the daemon's temp dir, so local locks live there and not in the repository. */
function run(d: Daemon, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<CliResult> {
  return lockd(d, ['run', ...args], { cwd: d.dir, ...opts });
}

/** A run holding `locks` until release() is called. */
async function holder(t: ExecutionContext, d: Daemon, lockArgs: string[], name = 'h'): Promise<{ release: () => Promise<CliResult> }> {
  const ready = join(d.dir, `${name}.ready`);
  const go = join(d.dir, `${name}.go`);
  const c = lockdSpawn(t, d, ['run', ...lockArgs, '--', 'sh', '-c', `touch ${ready}; while [ ! -e ${go} ]; do sleep 0.05; done`], { cwd: d.dir });
  await waitForFile(ready);
  return {
    release: async () => {
      writeFileSync(go, '');
      return c.done;
    },
  };
}

/** argv of a command that prints each line to stdout, then exits with `code` (lines are passed as arguments: no quoting). */
function emit(lines: string[], code = 0): string[] {
  return ['sh', '-c', `printf '%s\\n' "$@"; exit ${code}`, 'sh', ...lines];
}

const OK_JSON = 'TEST_RESULT_JSON: {"schema_version":1,"failed":0,"done":true}';

test.serial('a command that ran: pass and fail by exit code, with start, duration, log and locks in the records', async (t) => {
  const d = await startDaemon(t);
  const [pass, fail] = await Promise.all([run(d, ['--lock', 'p', '--', 'true']), run(d, ['--lock', 'f', '--', 'sh', '-c', 'exit 3'])]);
  t.is(pass.code, 0);
  t.is(fail.code, 3);
  const p = recordsOf(t, pass.stderr);
  t.like(p.result, { status: 'pass', reason: 'exit_zero', verdict_source: 'exit_code', exit_code: 0, child_exit_code: 0, cancelled_by: null });
  t.is(p.result.log_path, join(p.dir, 'output.log'));
  t.true(existsSync(p.result.log_path));
  t.is(typeof p.result.duration_ms, 'number');
  t.is(p.result.start_time_utc, p.manifest.start_time_utc);
  t.is(p.result.locks[0].name, 'p');
  t.is(p.result.locks[0].path, join(d.dir, '.locks', 'p.lock'));
  const f = recordsOf(t, fail.stderr);
  t.like(f.result, { status: 'fail', reason: 'exit_nonzero', exit_code: 3, child_exit_code: 3 });
});

test.serial('--timeout: status timeout, exit 124, signal sent by the timeout', async (t) => {
  const d = await startDaemon(t);
  const r = await run(d, ['--timeout', '0.5', '--kill-after', '1', '--', 'sh', '-c', 'while :; do sleep 0.05; done']);
  t.is(r.code, 124);
  const { result } = recordsOf(t, r.stderr);
  t.like(result, { status: 'timeout', reason: 'timeout', exit_code: 124, child_exit_code: null });
  t.deepEqual(result.signals, { exit_signal: 'SIGTERM', sent_by: 'timeout' });
});

test.serial('a child that catches the timeout signal and exits 0 is still a timeout', async (t) => {
  const d = await startDaemon(t);
  const r = await run(d, ['--timeout', '0.5', '--', 'sh', '-c', `trap 'exit 0' TERM; while :; do sleep 0.05; done`]);
  t.is(r.code, 124, r.stderr);
  const { result } = recordsOf(t, r.stderr);
  t.like(result, { status: 'timeout', reason: 'timeout', child_exit_code: 0 });
  t.is(result.signals.sent_by, 'timeout');
});

test.serial('lock_busy (--wait 0): both files, both paths printed, never started, exit 75 or --conflict-exit-code', async (t) => {
  const d = await startDaemon(t);
  const h = await holder(t, d, ['--lock', 'x']);
  const busy = await run(d, ['--wait', '0', '--lock', 'x', '--', 'true']);
  t.is(busy.code, 75);
  t.regex(busy.stderr, /lockd: lock_busy: /);
  const { manifest, result } = recordsOf(t, busy.stderr);
  t.like(result, { status: 'error', reason: 'lock_busy', verdict_source: 'infra', exit_code: 75, child_exit_code: null, start_time_utc: null, duration_ms: null, log_path: null });
  t.regex(result.message, /x/);
  t.is(manifest.start_time_utc, null);
  t.is(manifest.locks[0].fencing_token, undefined);
  const custom = await run(d, ['--wait', '0', '--conflict-exit-code', '9', '--lock', 'x', '--', 'true']);
  t.is(custom.code, 9);
  t.is(recordsOf(t, custom.stderr).result.exit_code, 9);
  // With a verdict option the exit code follows the verdict: error → 2.
  const withVerdict = await run(d, ['--wait', '0', '--require-marker', 'x', '--lock', 'x', '--', 'true']);
  t.is(withVerdict.code, 2);
  t.like(recordsOf(t, withVerdict.stderr).result, { reason: 'lock_busy', exit_code: 2 });
  // -q silences the record lines, also here; the files are written all the same.
  const quiet = await run(d, ['-q', '--wait', '0', '--run-id', 'quiet-busy', '--lock', 'x', '--', 'true']);
  t.is(quiet.code, 75);
  t.deepEqual(printedPaths(quiet.stderr), { manifest: null, result: null });
  t.like(recordsIn(t, join(d.stateDir, 'runs', 'quiet-busy')).result, { reason: 'lock_busy' });
  t.is((await h.release()).code, 0);
});

test.serial('lock_wait_timeout: queued, gave up after --wait, records name the holder', async (t) => {
  const d = await startDaemon(t);
  const h = await holder(t, d, ['--lock', 'x']);
  const r = await run(d, ['--wait', '0.3', '--lock', 'x', '--', 'true']);
  t.is(r.code, 75);
  const { manifest, result } = recordsOf(t, r.stderr);
  t.like(result, { status: 'error', reason: 'lock_wait_timeout', start_time_utc: null, log_path: null });
  t.true(result.queue_wait_ms >= 250, `queue_wait_ms ${result.queue_wait_ms}`);
  t.true(result.locks[0].wait_ms >= 250);
  t.is(manifest.start_time_utc, null);
  await h.release();
});

test.serial('spawn failures: not found 127, not executable 126, missing cwd 125; all recorded', async (t) => {
  const d = await startDaemon(t);
  const nf = await run(d, ['--', 'lockd-no-such-command-xyz']);
  t.is(nf.code, 127);
  t.like(recordsOf(t, nf.stderr).result, { status: 'error', reason: 'command_not_found', exit_code: 127, start_time_utc: null });
  const script = join(d.dir, 'notexec.sh');
  writeFileSync(script, '#!/bin/sh\n');
  const ne = await run(d, ['--', script]);
  t.is(ne.code, 126);
  t.like(recordsOf(t, ne.stderr).result, { status: 'error', reason: 'command_not_executable', exit_code: 126 });
  // With a verdict option, errors exit 2.
  const nfVerdict = await run(d, ['--require-structured', '--', 'lockd-no-such-command-xyz']);
  t.is(nfVerdict.code, 2);
  t.like(recordsOf(t, nfVerdict.stderr).result, { reason: 'command_not_found', exit_code: 2, structured: { status: 'missing' } });

  // The working directory disappears while the run is queued.
  const h = await holder(t, d, ['--root', d.dir, '--lock', 'x']);
  const gone = mkdtempSync(join(d.dir, 'cwd-'));
  const queued = lockdSpawn(t, d, ['run', '--root', d.dir, '--wait', '30', '--lock', 'x', '--', 'true'], { cwd: gone });
  await queued.waitForStderr('waiting for');
  rmSync(gone, { recursive: true });
  await h.release();
  const r = await queued.done;
  t.is(r.code, 125);
  const { result } = recordsOf(t, r.stderr);
  t.like(result, { status: 'infra_fail', reason: 'spawn_failed', exit_code: 125, start_time_utc: null });
  t.regex(result.message, /working directory .* does not exist/);
});

test.serial('a log that cannot be created: infra_fail / log_write_failed', async (t) => {
  const d = await startDaemon(t);
  const r = await run(d, ['--log', join(d.dir, 'no-such-dir', 'x.log'), '--', 'echo', 'hi']);
  t.is(r.code, 74);
  t.like(recordsOf(t, r.stderr).result, { status: 'infra_fail', reason: 'log_write_failed', verdict_source: 'infra', log_path: null });
});

test.serial('a claim the lock table refuses (slots with another N): error, exit 2, recorded', async (t) => {
  const d = await startDaemon(t);
  const h = await holder(t, d, ['--lock', 'board:slots=2']);
  const r = await run(d, ['--lock', 'board:slots=3', '--', 'true']);
  t.is(r.code, 2);
  t.like(recordsOf(t, r.stderr).result, { status: 'error', exit_code: 2, start_time_utc: null });
  await h.release();
});

test.serial('cancelled while queued: lost client → client_lost, kill → cancelled (with who), Ctrl+C → cancelled', async (t) => {
  const d = await startDaemon(t);
  const h = await holder(t, d, ['--lock', 'x']);

  const lost = lockdSpawn(t, d, ['run', '--wait', '30', '--lock', 'x', '--', 'true'], { cwd: d.dir });
  await lost.waitForStderr('waiting for');
  const lostDir = dirname(printedPaths(lost.stderr()).manifest!);
  lost.proc.kill('SIGKILL');
  await waitForFile(join(lostDir, 'result.json'));
  t.like(recordsIn(t, lostDir).result, { status: 'infra_fail', reason: 'client_lost', cancelled_by: null, start_time_utc: null });

  const killed = lockdSpawn(t, d, ['run', '--wait', '30', '--run-id', 'to-kill', '--lock', 'x', '--', 'true'], { cwd: d.dir });
  await killed.waitForStderr('waiting for');
  const ok = await request({ socketPath: d.socket, stateDir: d.stateDir, autostart: false }, { type: 'kill', run_id: 'to-kill', signal: 'TERM', force: false }, ['ok']);
  t.is(ok.type, 'ok');
  const k = await killed.done;
  t.is(k.code, 130);
  const kr = recordsOf(t, k.stderr).result;
  t.like(kr, { status: 'error', reason: 'cancelled', exit_code: 130, start_time_utc: null });
  t.is(typeof kr.cancelled_by, 'string');

  const interrupted = lockdSpawn(t, d, ['run', '--wait', '30', '--lock', 'x', '--', 'true'], { cwd: d.dir });
  await interrupted.waitForStderr('waiting for');
  interrupted.proc.kill('SIGINT');
  const i = await interrupted.done;
  t.is(i.code, 130);
  t.like(recordsOf(t, i.stderr).result, { reason: 'cancelled' });
  t.is((await h.release()).code, 0);
});

test.serial('deadlock between two nested runs: the run that would close the cycle is refused and recorded', async (t) => {
  const d = await startDaemon(t);
  const runsRoot = join(d.dir, 'runs');
  const nested = (lock: string, id: string) => `${process.execPath} ${CLI} run --root ${d.dir} --runs-root ${runsRoot} --run-id ${id} --wait 30 --lock ${lock} -- true`;
  const script = (name: string, lock: string, id: string) => `touch ${d.dir}/${name}.ready; while [ ! -e ${d.dir}/${name}.go ]; do sleep 0.05; done; ${nested(lock, id)}`;
  const a = lockdSpawn(t, d, ['run', '--root', d.dir, '--lock', 'x', '--', 'sh', '-c', script('a', 'y', 'nested-a')], { cwd: d.dir });
  const b = lockdSpawn(t, d, ['run', '--root', d.dir, '--lock', 'y', '--', 'sh', '-c', script('b', 'x', 'nested-b')], { cwd: d.dir });
  await Promise.all([waitForFile(join(d.dir, 'a.ready')), waitForFile(join(d.dir, 'b.ready'))]);
  writeFileSync(join(d.dir, 'a.go'), '');
  await a.waitForStderr('waiting for y'); // a's nested run waits for y, held by b
  writeFileSync(join(d.dir, 'b.go'), '');
  const [ra, rb] = await Promise.all([a.done, b.done]);
  t.is(rb.code, 75); // b's script exits with its nested run's code
  t.regex(rb.stderr, /deadlock/);
  const refused = recordsIn(t, join(runsRoot, 'nested-b'));
  t.like(refused.result, { status: 'error', reason: 'deadlock', exit_code: 75, start_time_utc: null });
  t.is(typeof refused.manifest.parent_run_id, 'string');
  t.is(ra.code, 0); // once b gave up y, a's nested run got it
  t.like(recordsIn(t, join(runsRoot, 'nested-a')).result, { status: 'pass' });
});

test.serial('shutdown --force: the running and the queued run are both recorded as shutdown', async (t) => {
  const d = await startDaemon(t);
  const h = lockdSpawn(t, d, ['run', '--lock', 'x', '--', 'sh', '-c', `touch ${d.dir}/r; while :; do sleep 0.05; done`], { cwd: d.dir });
  await waitForFile(join(d.dir, 'r'));
  const q = lockdSpawn(t, d, ['run', '--wait', '30', '--lock', 'x', '--', 'true'], { cwd: d.dir });
  await q.waitForStderr('waiting for');
  const s = await lockd(d, ['shutdown', '--force']);
  t.is(s.code, 0);
  const [rh, rq] = await Promise.all([h.done, q.done]);
  t.like(recordsOf(t, rh.stderr).result, { status: 'infra_fail', reason: 'shutdown' });
  t.is(rq.code, 125);
  t.like(recordsOf(t, rq.stderr).result, { status: 'infra_fail', reason: 'shutdown', start_time_utc: null });
});

test.serial('a daemon lost mid-run: the next daemon records daemon_lost', async (t) => {
  const d = await startDaemon(t);
  const c = lockdSpawn(t, d, ['run', '--run-id', 'orphan', '--lock', 'x', '--', 'sh', '-c', `touch ${d.dir}/r; while :; do sleep 0.05; done`], { cwd: d.dir });
  await waitForFile(join(d.dir, 'r'));
  await c.waitForStderr('manifest ->'); // sent after the start was journaled
  d.proc!.kill('SIGKILL');
  await new Promise((resolve) => d.proc!.once('exit', resolve));
  t.is((await c.done).code, 125); // the client saw its daemon go
  await startDaemon(t, { dir: d.dir });
  const dir = join(d.stateDir, 'runs', 'orphan');
  await waitForFile(join(dir, 'result.json'));
  const { result } = recordsIn(t, dir);
  t.like(result, { status: 'infra_fail', reason: 'daemon_lost', verdict_source: 'infra' });
  t.not(result.start_time_utc, null);
});

test.serial('structured verdicts through the daemon: pass, failed>0, missing, invalid, done false, summary mismatch', async (t) => {
  const d = await startDaemon(t);
  const cases: Array<{ lines: string[]; code: number; status: string; reason: string; exit: number }> = [
    // The child's own exit code is ignored: the structured result decides.
    { lines: [OK_JSON, 'TEST_SUMMARY: failed=0'], code: 5, status: 'pass', reason: 'structured_passed', exit: 0 },
    { lines: ['TEST_RESULT_JSON: {"schema_version":1,"failed":2,"done":true}', 'TEST_SUMMARY: failed=2'], code: 0, status: 'fail', reason: 'structured_failed', exit: 1 },
    { lines: ['all good'], code: 0, status: 'infra_fail', reason: 'missing_structured_result', exit: 2 },
    { lines: ['TEST_RESULT_JSON: {nope', 'TEST_SUMMARY: failed=0'], code: 0, status: 'infra_fail', reason: 'invalid_structured_result', exit: 2 },
    { lines: ['TEST_RESULT_JSON: {"schema_version":1,"failed":0,"done":false}', 'TEST_SUMMARY: failed=0'], code: 0, status: 'infra_fail', reason: 'structured_done_false', exit: 2 },
    { lines: [OK_JSON, 'TEST_SUMMARY: failed=1'], code: 0, status: 'infra_fail', reason: 'summary_result_mismatch', exit: 2 },
    { lines: [OK_JSON], code: 0, status: 'infra_fail', reason: 'missing_test_summary', exit: 2 },
  ];
  const results = await Promise.all(cases.map((c) => run(d, ['--require-structured', '--', ...emit(c.lines, c.code)])));
  cases.forEach((c, i) => {
    const r = results[i]!;
    t.is(r.code, c.exit, c.reason);
    const { result } = recordsOf(t, r.stderr);
    t.like(result, { status: c.status, reason: c.reason, exit_code: c.exit, child_exit_code: c.code }, c.reason);
  });
  const passed = recordsOf(t, results[0]!.stderr).result;
  t.deepEqual(passed.structured, { status: 'ok', data: { schema_version: 1, failed: 0, done: true } });
  t.like(passed.summary, { status: 'ok', failed: 0 });
  t.like(recordsOf(t, results[3]!.stderr).result.structured, { status: 'invalid' });
});

test.serial('markers: --require-marker, --require-all, --forbid-marker decide and exit 0/1/2', async (t) => {
  const d = await startDaemon(t);
  const [found, missing, allOne, allBoth, forbidden, markerButNonzero] = await Promise.all([
    run(d, ['--require-marker', 'BOOT (OK|DONE)', '--', ...emit(['BOOT OK'])]),
    run(d, ['--require-marker', 'BOOT OK', '--', ...emit(['nothing'])]),
    run(d, ['--require-all', 'alpha', '--require-all', 'beta', '--', ...emit(['alpha'])]),
    run(d, ['--require-all', 'alpha', '--require-all', 'beta', '--', ...emit(['beta', 'alpha'])]),
    run(d, ['--forbid-marker', 'Kernel panic', '--', ...emit(['Kernel panic - not syncing'])]),
    run(d, ['--require-marker', 'ok', '--', ...emit(['ok'], 3)]),
  ]);
  t.is(found.code, 0);
  const f = recordsOf(t, found.stderr).result;
  t.like(f, { status: 'pass', reason: 'exit_zero', verdict_source: 'unstructured' });
  t.deepEqual(f.markers.required, [{ pattern: 'BOOT (OK|DONE)', matched: true }]);
  t.is(missing.code, 1);
  t.like(recordsOf(t, missing.stderr).result, { status: 'fail', reason: 'required_markers_missing', exit_code: 1 });
  t.is(allOne.code, 1);
  t.deepEqual(recordsOf(t, allOne.stderr).result.markers.required_all, [
    { pattern: 'alpha', matched: true },
    { pattern: 'beta', matched: false },
  ]);
  t.is(allBoth.code, 0);
  t.is(forbidden.code, 1);
  t.like(recordsOf(t, forbidden.stderr).result, { status: 'fail', reason: 'forbidden_markers_detected', child_exit_code: 0 });
  t.is(markerButNonzero.code, 1);
  t.like(recordsOf(t, markerButNonzero.stderr).result, { status: 'fail', reason: 'exit_nonzero', exit_code: 1, child_exit_code: 3 });
});

test.serial('--expect-timeout: being killed at --timeout passes; a forbidden marker still fails it', async (t) => {
  const d = await startDaemon(t);
  const loop = 'echo booted; while :; do sleep 0.05; done';
  const [expected, panicked, early] = await Promise.all([
    run(d, ['--expect-timeout', '--timeout', '0.5', '--', 'sh', '-c', loop]),
    run(d, ['--expect-timeout', '--forbid-marker', 'panic', '--timeout', '0.5', '--', 'sh', '-c', `echo panic; ${loop}`]),
    run(d, ['--expect-timeout', '--timeout', '30', '--', 'sh', '-c', 'exit 4']),
  ]);
  t.is(expected.code, 0);
  const e = recordsOf(t, expected.stderr).result;
  t.like(e, { status: 'pass', reason: 'expected_timeout', exit_code: 0 });
  t.is(e.signals.sent_by, 'timeout');
  t.is(panicked.code, 1);
  t.like(recordsOf(t, panicked.stderr).result, { status: 'fail', reason: 'forbidden_markers_detected' });
  // Exiting before the time limit is judged by the exit code, under the 0/1/2 scheme.
  t.is(early.code, 1);
  t.like(recordsOf(t, early.stderr).result, { status: 'fail', reason: 'exit_nonzero', exit_code: 1 });
});

test.serial('manifest: command, cwd, root, arch, git sha of the cwd repo, times, locks with path and fencing token, env digest', async (t) => {
  const d = await startDaemon(t);
  const repo = join(d.dir, 'repo');
  const git = (...args: string[]) => execFileSync('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@example.invalid', ...args], { encoding: 'utf8' });
  execFileSync('git', ['init', '-q', repo]);
  writeFileSync(join(repo, 'f'), 'x');
  git('add', 'f');
  git('commit', '-q', '-m', 'c');
  const sha = git('rev-parse', 'HEAD').trim();
  const root = join(d.dir, 'build');
  const extraEnv = { LOCKD_TEST_MARK: 'digest-me' };
  const r = await run(d, ['--root', root, '--arch', 'riscv64', '--lock', 'qemu', '--', 'printf', '%s', 'a b'], { cwd: repo, env: extraEnv });
  t.is(r.code, 0);
  const { manifest, result, dir } = recordsOf(t, r.stderr);
  t.is(dirname(dir), join(root, 'runs'));
  t.deepEqual(manifest.command, ['printf', '%s', 'a b']);
  t.is(manifest.command_line, "printf %s 'a b'");
  t.is(manifest.cwd, repo);
  t.is(manifest.build_root, root);
  t.is(manifest.arch, 'riscv64');
  t.is(manifest.git_sha, sha);
  t.is(manifest.detach, false);
  t.is(manifest.parent_run_id, null);
  t.is(manifest.lockd_version.length > 0, true);
  t.true(Date.parse(manifest.queued_at_utc) <= Date.parse(manifest.start_time_utc));
  t.is(manifest.start_time_utc, result.start_time_utc);
  t.is(manifest.locks.length, 1);
  t.like(manifest.locks[0], { name: 'qemu', scope: 'local', mode: 'exclusive', path: join(root, 'riscv64', '.locks', 'qemu.lock') });
  t.true(Number.isInteger(manifest.locks[0].fencing_token) && manifest.locks[0].fencing_token > 0);
  // The digest is over the environment lockd run was given (what the command runs with, before LOCKD_* additions).
  const env = Object.fromEntries(Object.entries({ ...d.env, ...extraEnv }).filter(([, v]) => typeof v === 'string')) as Record<string, string>;
  t.deepEqual(manifest.env_digest, digestEnv(env));
  // Outside a repository the sha is null.
  const plain = await run(d, ['--', 'true']);
  t.is(recordsOf(t, plain.stderr).manifest.git_sha, null);
});

test.serial('run ids: --run-id names the directory; ../x is refused with exit 2 before anything is queued; duplicates are refused', async (t) => {
  const d = await startDaemon(t);
  const runsRoot = join(d.stateDir, 'runs');
  const bad = await run(d, ['--run-id', '../x', '--', 'touch', join(d.dir, 'ran')]);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /invalid run id/);
  t.false(existsSync(join(d.stateDir, 'x')));
  t.false(existsSync(join(d.dir, 'ran')));
  t.deepEqual(existsSync(runsRoot) ? readdirSync(runsRoot) : [], []);
  const first = await run(d, ['--run-id', 'nightly-1', '--', 'true']);
  t.is(first.code, 0);
  t.is(recordsOf(t, first.stderr).dir, join(runsRoot, 'nightly-1'));
  const again = await run(d, ['--run-id', 'nightly-1', '--', 'touch', join(d.dir, 'ran')]);
  t.is(again.code, 2);
  t.false(existsSync(join(d.dir, 'ran')));
  // Generated ids are valid ids.
  const gen = await run(d, ['--', 'true']);
  t.true(isValidRunId(recordsOf(t, gen.stderr).result.run_id));
});

test.serial('runs root: <state-dir>/runs by default, <root>/runs with --root, --runs-root and LOCKD_RUNS_ROOT win', async (t) => {
  const d = await startDaemon(t);
  const dirOf = async (args: string[], env?: NodeJS.ProcessEnv) => dirname(recordsOf(t, (await run(d, [...args, '--', 'true'], env ? { env } : {})).stderr).dir);
  t.is(await dirOf([]), join(d.stateDir, 'runs'));
  t.is(await dirOf(['--root', join(d.dir, 'b')]), join(d.dir, 'b', 'runs'));
  t.is(await dirOf(['--root', join(d.dir, 'b'), '--runs-root', join(d.dir, 'rr')]), join(d.dir, 'rr'));
  t.is(await dirOf(['--root', join(d.dir, 'b')], { LOCKD_RUNS_ROOT: join(d.dir, 'env-rr') }), join(d.dir, 'env-rr'));
});

test.serial('logs: output.log holds both streams in arrival order; --log PATH; --log-max-bytes keeps head and tail', async (t) => {
  const d = await startDaemon(t);
  // Each line waits until the previous one reached the log, so the order the daemon saw is known.
  const seen = (s: string) => `until grep -q '${s}' "$LOCKD_RUN_DIR/output.log"; do sleep 0.01; done`;
  const r = await run(d, ['--', 'sh', '-c', `echo out-1; ${seen('out-1')}; echo err-2 >&2; ${seen('err-2')}; echo out-3`]);
  t.is(r.code, 0);
  const { result, dir } = recordsOf(t, r.stderr);
  t.is(readFileSync(join(dir, 'output.log'), 'utf8'), 'out-1\nerr-2\nout-3\n');
  t.is(result.log_path, join(dir, 'output.log'));

  const custom = join(d.dir, 'custom.log');
  const c = await run(d, ['--log', custom, '--', 'echo', 'custom']);
  const cr = recordsOf(t, c.stderr);
  t.is(cr.result.log_path, custom);
  t.is(readFileSync(custom, 'utf8'), 'custom\n');
  t.false(existsSync(join(cr.dir, 'output.log')));

  const big = await run(d, [
    '-q',
    '--log-max-bytes',
    '4K',
    '--run-id',
    'big',
    '--',
    'sh',
    '-c',
    'echo HEAD-START; i=0; while [ $i -lt 2000 ]; do echo "line $i padding padding"; i=$((i+1)); done; echo TAIL-END',
  ]);
  t.is(big.code, 0);
  t.true(big.stdout.includes('line 1999'));
  const log = readFileSync(join(d.stateDir, 'runs', 'big', 'output.log'), 'utf8');
  t.true(log.startsWith('HEAD-START\n'));
  t.true(log.endsWith('TAIL-END\n'));
  t.regex(log, /\[lockd: \d+ bytes elided\]/);
  t.true(statSync(join(d.stateDir, 'runs', 'big', 'output.log')).size <= 4096 + 64);
});

/** Run the CLI with an extra pipe on fd 3 and collect what arrives on it. */
function runWithFd3(d: Daemon, args: string[]): Promise<CliResult & { fd3: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { env: d.env, cwd: d.dir, stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let fd3 = '';
    p.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    p.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    (p.stdio[3] as NodeJS.ReadableStream).on('data', (b: Buffer) => (fd3 += b.toString()));
    p.once('close', (code, signal) => resolve({ code, signal, stdout: out, stderr: err, fd3 }));
  });
}

test.serial('--result-fd N writes the final result JSON to fd N, also when the lock is busy', async (t) => {
  const d = await startDaemon(t);
  const r = await runWithFd3(d, ['run', '-q', '--result-fd', '3', '--run-id', 'fd-run', '--', 'sh', '-c', 'exit 6']);
  t.is(r.code, 6);
  const sent = JSON.parse(r.fd3) as Json;
  assertValidResult(t, sent);
  t.deepEqual(sent, readJson(join(d.stateDir, 'runs', 'fd-run', 'result.json')));
  const h = await holder(t, d, ['--lock', 'x']);
  const busy = await runWithFd3(d, ['run', '--wait', '0', '--result-fd', '3', '--lock', 'x', '--', 'true']);
  t.is(busy.code, 75);
  const busyResult = JSON.parse(busy.fd3) as Json;
  assertValidResult(t, busyResult);
  t.is(busyResult.reason, 'lock_busy');
  t.deepEqual(busyResult, readJson(printedPaths(busy.stderr).result!));
  await h.release();
});

function runDirsIn(root: string): string[] {
  return existsSync(root)
    ? readdirSync(root)
        .filter((n) => !n.startsWith('.'))
        .sort()
    : [];
}

/** Bounded wait for a condition on the filesystem that the daemon's auto-GC brings about. */
async function until(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test.serial('auto-GC after each run: --keep N leaves exactly the N newest of N+5 runs; keep 0 (LOCKD_RUNS_KEEP=0) keeps all', async (t) => {
  const d = await startDaemon(t);
  const kept = join(d.dir, 'kept');
  for (let i = 1; i <= 8; i++) {
    const r = await run(d, ['-q', '--runs-root', kept, '--keep', '3', '--run-id', `r${i}`, '--', 'true']);
    t.is(r.code, 0);
  }
  await until('3 runs left', () => runDirsIn(kept).length === 3);
  t.deepEqual(runDirsIn(kept), ['r6', 'r7', 'r8']);

  const all = join(d.dir, 'all');
  for (let i = 1; i <= 6; i++) {
    const r = await run(d, ['-q', '--runs-root', all, '--', 'true'], { env: { LOCKD_RUNS_KEEP: '0' } });
    t.is(r.code, 0);
  }
  // A later GC on another root has run, so one for `all` (scheduled earlier, had there been one) would have too.
  const other = join(d.dir, 'other');
  await run(d, ['-q', '--runs-root', other, '--keep', '1', '--', 'true']);
  await run(d, ['-q', '--runs-root', other, '--keep', '1', '--', 'true']);
  await until('other root collected', () => runDirsIn(other).length === 1);
  t.is(runDirsIn(all).length, 6);
});
