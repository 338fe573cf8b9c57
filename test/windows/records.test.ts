/**
 * Windows (under Wine): records and restarts. gc removes old run directories and keeps the newest; a daemon killed
 * while a run holds a lock is replaced by the next CLI's auto-start with no phantom lock.
 */
import test from 'ava';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
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
