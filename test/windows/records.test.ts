/**
 * Windows (under Wine): records and restarts. gc removes old run directories and keeps the newest; a daemon killed
 * while a run holds a lock is replaced by the next CLI's auto-start with no phantom lock.
 */
import test from 'ava';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, NODE_EXE, pidsByCmdline, runCli, waitForPath, waitPidsGone, winCli, winLockd, winPath } from './wine.js';

test('gc --keep 1 removes the older finished runs and keeps the newest', async (t) => {
  const w = winLockd(t);
  for (const n of [1, 2, 3]) {
    const r = await runCli(w, ['run', '--lock', 'w', '--', 'cmd', '/c', `echo run ${n}`]);
    t.is(r.code, 0, r.stderr);
  }
  const runsDir = join(w.stateDir, 'runs');
  const before = readdirSync(runsDir).filter((n) => existsSync(join(runsDir, n, 'result.json')));
  t.is(before.length, 3);
  const gc = await runCli(w, ['gc', '--keep', '1']);
  t.is(gc.code, 0, gc.stderr);
  const after = readdirSync(runsDir).filter((n) => existsSync(join(runsDir, n, 'result.json')));
  t.is(after.length, 1);
  t.deepEqual(gc.stdout.trim().split(/\r?\n/).sort(), before.filter((n) => !after.includes(n)).sort());
  const runs = await runCli(w, ['runs']);
  t.is(runs.code, 0, runs.stderr);
  t.true(runs.stdout.includes(after[0]!));
});

test('a daemon killed while a run holds a lock: the next CLI starts a new daemon and the lock is not held by the dead run', async (t) => {
  const w = winLockd(t);
  const step = winPath(join(FIXTURES, 'step.cjs'));
  const job = [NODE_EXE, step, winPath(join(w.dir, 'order.log')), 'a', winPath(join(w.dir, 'a.started')), winPath(join(w.dir, 'a.release'))];
  const a = winCli(t, w, ['run', '--lock', 'w', '--', ...job]);
  await waitForPath(join(w.dir, 'a.started'));
  const daemons = pidsByCmdline(w.pipe).filter((pid) => pid !== a.proc.pid);
  t.is(daemons.length, 1, `one daemon serves ${w.pipe}`);
  process.kill(daemons[0]!, 'SIGKILL');
  t.deepEqual(await waitPidsGone(daemons, 20_000), []);
  // The client sees the daemon go (lockd failed, 125); the job ends by itself.
  const lost = await a.done;
  t.is(lost.code, 125, lost.stderr);
  writeFileSync(join(w.dir, 'a.release'), '');

  const next = await runCli(w, ['run', '--lock', 'w', '--wait', '60', '--', 'cmd', '/c', 'echo after-restart']);
  t.is(next.code, 0, next.stderr);
  t.regex(next.stdout, /after-restart/);
  const status = await runCli(w, ['status', '--json']);
  t.deepEqual((JSON.parse(status.stdout) as { locks: unknown[] }).locks, []);
  const fresh = pidsByCmdline(w.pipe);
  t.is(fresh.length, 1, 'a new daemon serves the pipe');
  t.notDeepEqual(fresh, daemons);
});

test('logs, result, pin/unpin and events for a run on Windows', async (t) => {
  const w = winLockd(t);
  const r = await runCli(w, ['run', '--lock', 'w', '--run-id', 'win-r1', '--', 'cmd', '/c', 'echo line1 & echo line2']);
  t.is(r.code, 0, r.stderr);
  const logs = await runCli(w, ['logs', 'win-r1']);
  t.is(logs.code, 0, logs.stderr);
  t.regex(logs.stdout, /line1[ \r]*\n[ ]*line2/);
  const result = await runCli(w, ['result', 'win-r1']);
  t.is(result.code, 0, result.stderr);
  t.like(JSON.parse(result.stdout), { run_id: 'win-r1', status: 'pass', exit_code: 0 });
  // A pinned run survives gc --all; unpinned, it goes.
  t.is((await runCli(w, ['pin', 'win-r1'])).code, 0);
  const gc = await runCli(w, ['gc', '--all']);
  t.is(gc.code, 0, gc.stderr);
  t.regex(gc.stderr, /win-r1.*pinned/);
  t.true(existsSync(join(w.stateDir, 'runs', 'win-r1', 'result.json')));
  t.is((await runCli(w, ['unpin', 'win-r1'])).code, 0);
  const gc2 = await runCli(w, ['gc', '--all']);
  t.is(gc2.code, 0, gc2.stderr);
  t.false(existsSync(join(w.stateDir, 'runs', 'win-r1')));

  const events = winCli(t, w, ['events']);
  await events.waitForStderr('listening for events');
  t.is((await runCli(w, ['run', '--lock', 'w', '--run-id', 'win-r2', '--', 'cmd', '/c', 'exit 0'])).code, 0);
  await events.waitForStdout(/exited\s+win-r2 .*exit_code=0/);
  await events.waitForStdout(/granted\s+win-r2/);
});

test('command_line on Windows is a Windows command line: pasted at a cmd prompt it gives the program the same arguments', async (t) => {
  const w = winLockd(t);
  const args = ['plain', 'with space', 'q"uote', 'trail\\', 'back\\"slash', 'a&b', ''];
  const r = await runCli(w, ['run', '--run-id', 'win-q1', '--', NODE_EXE, winPath(join(FIXTURES, 'argv.cjs')), ...args]);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(JSON.parse(r.stdout.trim().split(/\r?\n/).pop()!), args, 'the job got its arguments');
  const manifest = join(w.stateDir, 'runs', 'win-q1', 'manifest.json');
  const line = (JSON.parse(readFileSync(manifest, 'utf8')) as { command_line: string }).command_line;
  t.notRegex(line, /'/, 'no POSIX single quotes');
  const pasted = await runCli(w, ['run', '--', NODE_EXE, winPath(join(FIXTURES, 'paste.cjs')), winPath(manifest)]);
  t.is(pasted.code, 0, pasted.stderr);
  t.deepEqual(JSON.parse(pasted.stdout.trim().split(/\r?\n/).pop()!), args, line);
});
