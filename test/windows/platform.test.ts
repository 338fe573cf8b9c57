/**
 * Windows (under Wine): what has no Windows counterpart says so in one line, and the commands that look at the
 * machine run there: doctor (no socket directory for a named pipe), daemon --system (refused), the default pipe and
 * state dir names.
 */
import test from 'ava';
import { join } from 'node:path';
import { REPO, runCli, winLockd } from './wine.js';

test('npm bin bin/lockd stays the JS stand-in on Windows and runs the Node CLI as npm cmd shims start it', async (t) => {
  // npm's cmd shim for bin/lockd runs `node.exe <pkg>\bin\lockd ARGS` (the program of its #! line); the install step
  // never puts the native client there on Windows (native/client/place-bin.mjs). Wine's cmd.exe cannot run the
  // shim's own last line (`endLocal & goto #_undefined_# 2>NUL || ...`), so the test starts what the shim starts.
  const w = winLockd(t);
  const entry = join(REPO, 'bin', 'lockd');
  const r = await runCli(w, ['run', '--lock', 'w', '--', 'cmd', '/c', 'exit 3'], { entry });
  t.is(r.code, 3, r.stderr);
  const s = await runCli(w, ['status'], { entry });
  t.is(s.code, 0, s.stderr);
  t.regex(s.stdout, /^lockd \d+\.\d+\.\d+, pid \d+/);
});

test('doctor runs with a named pipe (its socket check says why it is skipped) and reaches the daemon', async (t) => {
  const w = winLockd(t);
  t.is((await runCli(w, ['run', '--lock', 'w', '--', 'cmd', '/c', 'exit 0'])).code, 0);
  const r = await runCli(w, ['doctor']);
  t.notRegex(r.stderr, /internal error/);
  t.regex(r.stdout + r.stderr, /named pipe \\\\\.\\pipe\\lockd-test-[0-9a-f]+: no socket directory on Windows/);
  t.true(r.code === 0 || r.code === 1, `doctor's own exit (0 ok, 1 a check failed), not a crash: ${r.code}`);
});

test('daemon --system is refused with one clear line (exit 125)', async (t) => {
  const w = winLockd(t);
  const r = await runCli(w, ['daemon', '--system']);
  t.is(r.code, 125, r.stderr);
  t.is(r.stderr.trim(), 'lockd: lockd daemon --system is not on Windows: run the per-user daemon (auto-started, or lockd service install)');
});

test('without LOCKD_SOCKET/LOCKD_STATE_DIR the defaults are the per-user pipe and %LOCALAPPDATA%\\lockd', async (t) => {
  const w = winLockd(t);
  const env = { ...w.env };
  delete env.LOCKD_SOCKET;
  delete env.LOCKD_STATE_DIR;
  const r = await runCli({ ...w, env }, ['config']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /socket\s+\\\\\.\\pipe\\lockd-\S+\s+default/);
  t.regex(r.stdout, /state_dir\s+C:\\users\\[^\\]+\\AppData\\Local\\lockd\s+default/i);
});

test('a second daemon on another pipe but the same state dir refuses to start (daemon_running), the first keeps serving', async (t) => {
  const w = winLockd(t);
  t.is((await runCli(w, ['run', '--lock', 'w', '--', 'cmd', '/c', 'exit 0'])).code, 0, 'the first daemon (auto-started)');
  const second = await runCli(w, ['daemon', '--socket', `${w.pipe}-second`]);
  t.is(second.code, 125, second.stderr);
  t.regex(second.stderr, /another lockd daemon is using the state directory/);
  t.is((await runCli(w, ['run', '--lock', 'w', '--', 'cmd', '/c', 'exit 4'])).code, 4, 'the first one still serves');
});
