/**
 * Windows (under Wine): locks. Two runs on one lock are serialized; a multi-lock run takes all or nothing; the
 * conflict, wait-timeout and --conflict-exit-code exits; status and inspect show the holder and the waiter.
 */
import test from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, NODE_EXE, runCli, waitForPath, winCli, winLockd, winPath, type WinLockd } from './wine.js';

const step = winPath(join(FIXTURES, 'step.cjs'));

/** argv of a job that logs start/end into <dir>/order.log and runs until <dir>/<name>.release exists. */
function stepJob(w: WinLockd, name: string): string[] {
  return [NODE_EXE, step, winPath(join(w.dir, 'order.log')), name, winPath(join(w.dir, `${name}.started`)), winPath(join(w.dir, `${name}.release`))];
}

interface LockJson {
  name: string;
  holders: Array<{ kind: string; id: string }>;
  waiters: Array<{ kind: string; position: number; wants: string[] }>;
}

test('two runs on one lock are serialized: the second starts only after the first ended; status shows both', async (t) => {
  const w = winLockd(t);
  const a = winCli(t, w, ['run', '--lock', 'w', '--', ...stepJob(w, 'a')]);
  await waitForPath(join(w.dir, 'a.started'));
  const b = winCli(t, w, ['run', '--lock', 'w', '--wait', '120', '--', ...stepJob(w, 'b')]);
  await b.waitForStderr('waiting for w');

  const status = await runCli(w, ['status', '--json']);
  t.is(status.code, 0, status.stderr);
  const locks = (JSON.parse(status.stdout) as { locks: LockJson[] }).locks;
  t.is(locks.length, 1);
  t.is(locks[0]!.name, 'w');
  t.is(locks[0]!.holders.length, 1);
  t.like(locks[0]!.waiters[0], { kind: 'run', position: 1, wants: ['w'] });
  const inspect = await runCli(w, ['inspect', 'w']);
  t.is(inspect.code, 0, 'inspect: held');

  writeFileSync(join(w.dir, 'a.release'), '');
  await waitForPath(join(w.dir, 'b.started'));
  writeFileSync(join(w.dir, 'b.release'), '');
  t.is((await a.done).code, 0);
  t.is((await b.done).code, 0);
  t.deepEqual(readFileSync(join(w.dir, 'order.log'), 'utf8').trim().split('\n'), ['start a', 'end a', 'start b', 'end b']);
  t.is((await runCli(w, ['inspect', 'w'])).code, 1, 'inspect: free again');
});

test('busy, wait timeout and --conflict-exit-code exits; a multi-lock run takes all of its locks or none', async (t) => {
  const w = winLockd(t);
  const a = winCli(t, w, ['run', '--lock', 'w', '--', ...stepJob(w, 'a')]);
  await waitForPath(join(w.dir, 'a.started'));

  const busy = await runCli(w, ['run', '--lock', 'w', '--wait', '0', '--', 'cmd', '/c', 'exit 0']);
  t.is(busy.code, 75, busy.stderr);
  const custom = await runCli(w, ['run', '--lock', 'w', '--wait', '0', '--conflict-exit-code', '9', '--', 'cmd', '/c', 'exit 0']);
  t.is(custom.code, 9, custom.stderr);
  const timedOut = await runCli(w, ['run', '--lock', 'w', '--wait', '1', '--', 'cmd', '/c', 'exit 0']);
  t.is(timedOut.code, 75, timedOut.stderr);

  // v and w together: w is busy, so the run waits holding neither (it is v's first waiter, not its holder).
  const both = winCli(t, w, ['run', '--lock', 'v', '--lock', 'w', '--wait', '120', '--', 'cmd', '/c', 'echo both-ran']);
  await both.waitForStderr('waiting for');
  const v = await runCli(w, ['inspect', 'v', '--json']);
  t.is(v.code, 1, 'v is not held by the waiting multi-lock run');
  const vLock = (JSON.parse(v.stdout) as { lock: LockJson | null }).lock;
  t.is(vLock?.holders.length ?? 0, 0);

  writeFileSync(join(w.dir, 'a.release'), '');
  const r = await both.done;
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /both-ran/);
  t.is((await a.done).code, 0);
});

test('Session-Lock.ps1 mapping: acquire --global (LOCKD_HOLD_ID, 0), inspect 0 held, a second acquire 75 (was 11), heartbeat, release, inspect 1 free', async (t) => {
  const w = winLockd(t);
  const acq = await runCli(w, ['acquire', '--global', 'labview-session', '--wait', '0', '--ttl', '600', '--holder', 'ci-job-1']);
  t.is(acq.code, 0, acq.stderr);
  const id = /LOCKD_HOLD_ID=(\S+)/.exec(acq.stdout)?.[1];
  t.truthy(id, acq.stdout);
  const held = await runCli(w, ['inspect', '--global', 'labview-session', '--json']);
  t.is(held.code, 0, held.stderr);
  t.regex(held.stdout, /ci-job-1/);
  const second = await runCli(w, ['acquire', '--global', 'labview-session', '--wait', '1', '--ttl', '600', '--holder', 'ci-job-2']);
  t.is(second.code, 75, second.stderr);
  // Heartbeat and release as the same holder (a hold is its holder's: Session-Lock.ps1 passes SESSION_HOLDER).
  const job1 = { env: { LOCKD_HOLDER: 'ci-job-1' } };
  t.is((await runCli(w, ['heartbeat', id!], job1)).code, 0);
  const rel = await runCli(w, ['release', id!], job1);
  t.is(rel.code, 0, rel.stderr);
  t.is((await runCli(w, ['inspect', '--global', 'labview-session'])).code, 1);
});
