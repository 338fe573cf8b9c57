/**
 * Windows (under Wine): `lockd run` with real Windows children: exit codes pass through, .cmd scripts and their
 * arguments, command-not-found, result.json and verdict markers. The daemon is auto-started by the first CLI.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, printedPaths, runCli, winLockd, winPath } from './wine.js';

const exitWith = winPath(join(FIXTURES, 'exit-with.cmd'));

test('cmd /c: output reaches the caller and the exit code passes through (auto-started daemon)', async (t) => {
  const w = winLockd(t);
  const r = await runCli(w, ['run', '--lock', 'w', '--', 'cmd', '/c', 'echo hello from cmd & exit 3']);
  t.is(r.code, 3, r.stderr);
  t.regex(r.stdout, /hello from cmd/);
  const ok = await runCli(w, ['run', '--lock', 'w', '--', 'cmd', '/c', 'exit 0']);
  t.is(ok.code, 0, ok.stderr);
});

test('a .cmd script runs as a Windows user expects: arguments with spaces, its exit /b code', async (t) => {
  const w = winLockd(t);
  const r = await runCli(w, ['run', '--lock', 'w', '--', exitWith, '5', 'two words', 'a&b', 'p(1)', 'x^y', 'k=v']);
  t.is(r.code, 5, r.stderr);
  // As typed at a prompt: plain words bare, the rest in quotes, inside which cmd takes & ( ) ^ = literally.
  t.regex(r.stdout, /args: 5 "two words" "a&b" "p\(1\)" "x\^y" "k=v"\s*$/m);
});

test('a command that does not exist exits 127 with one clear line', async (t) => {
  const w = winLockd(t);
  const r = await runCli(w, ['run', '--lock', 'w', '--', 'no-such-program-lockd-test']);
  t.is(r.code, 127, r.stderr);
  t.regex(r.stderr, /command not found: no-such-program-lockd-test/);
});

test('result.json records the run, and verdict markers decide the exit (0 pass, 1 fail)', async (t) => {
  const w = winLockd(t);
  const pass = await runCli(w, ['run', '--lock', 'w', '--require-marker', 'RESULT: PASS', '--', exitWith, '0']);
  t.is(pass.code, 0, pass.stderr);
  const { result } = printedPaths(pass.stderr);
  t.truthy(result, pass.stderr);
  const res = JSON.parse(readFileSync(result!, 'utf8')) as Record<string, unknown>;
  t.like(res, { exit_code: 0, status: 'pass' });
  const fail = await runCli(w, ['run', '--lock', 'w', '--forbid-marker', 'RESULT: PASS', '--', exitWith, '0']);
  t.is(fail.code, 1, fail.stderr);
  const failed = JSON.parse(readFileSync(printedPaths(fail.stderr).result!, 'utf8')) as Record<string, unknown>;
  t.is(failed.status, 'fail');
  // The run's output log is in the run directory, with the job's output in it.
  t.regex(readFileSync(join(printedPaths(fail.stderr).result!, '..', 'output.log'), 'utf8'), /RESULT: PASS/);
});

test("the README's Windows command runs, also without the `--` that PowerShell drops when it calls npm's lockd.ps1 shim", async (t) => {
  const w = winLockd(t);
  const r = await runCli(w, ['run', '--lock', 'demo', '--', 'cmd', '/c', 'echo', 'hello']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^hello\r?$/m);
  const noDash = await runCli(w, ['run', '--lock', 'demo', 'cmd', '/c', 'echo', 'hello']);
  t.is(noDash.code, 0, noDash.stderr);
  t.regex(noDash.stdout, /^hello\r?$/m);
});
