/**
 * Windows (under Wine): the job's whole tree (a .cmd script, the node.exe it starts, and that one's child) is
 * ended on --timeout and when the client is killed; the lock is free afterwards.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, pidAlive, pidsByCmdline, printedPaths, runCli, waitForPath, waitPidsGone, winCli, winLockd, winPath, type WinLockd } from './wine.js';

const treeCmd = winPath(join(FIXTURES, 'tree.cmd'));

/** Start nothing; give the marker and ready file of one tree. */
function treeArgs(w: WinLockd, marker: string): { args: string[]; ready: string } {
  const ready = join(w.dir, `${marker}.ready`);
  return { args: [treeCmd, marker, winPath(ready)], ready };
}

/** The tree's processes by their marker: the .cmd's cmd.exe, the child and the grandchild (all Linux pids). */
function treePids(marker: string): number[] {
  return pidsByCmdline(marker);
}

test('--timeout ends the whole tree, grandchild included: exit 124, result.json says timeout, the lock is free', async (t) => {
  const w = winLockd(t);
  const marker = `tmo${process.pid}x${Date.now()}`;
  const { args, ready } = treeArgs(w, marker);
  const run = winCli(t, w, ['run', '--lock', 'w', '--timeout', '8', '--', ...args]);
  await waitForPath(ready);
  const pids = treePids(marker);
  t.true(pids.length >= 3, `cmd.exe, child and grandchild carry the marker: ${pids.join(',')}`);
  t.teardown(() => killAll(pids));
  const r = await run.done;
  t.is(r.code, 124, r.stderr);
  t.regex(r.stderr, /timed out/);
  t.deepEqual(await waitPidsGone(pids, 20_000), [], 'no process of the tree is left');
  const res = JSON.parse(readFileSync(printedPaths(r.stderr).result!, 'utf8')) as Record<string, unknown>;
  t.is(res.status, 'timeout');
  t.is((await runCli(w, ['inspect', 'w'])).code, 1);
});

test('killing the client ends the job tree, grandchild included, and frees the lock', async (t) => {
  const w = winLockd(t);
  const marker = `cli${process.pid}x${Date.now()}`;
  const { args, ready } = treeArgs(w, marker);
  const run = winCli(t, w, ['run', '--lock', 'w', '--', ...args]);
  await waitForPath(ready);
  const pids = treePids(marker);
  t.true(pids.length >= 3, `cmd.exe, child and grandchild carry the marker: ${pids.join(',')}`);
  t.teardown(() => killAll(pids));
  t.true(pidAlive(run.proc.pid!));
  run.proc.kill('SIGKILL');
  await run.done;
  t.deepEqual(await waitPidsGone(pids, 30_000), [], 'no process of the tree is left');
  // The daemon frees the lock once the tree is gone: a bounded wait for it, then a run that takes it at once.
  const next = await runCli(w, ['run', '--lock', 'w', '--wait', '30', '--', 'cmd', '/c', 'exit 0']);
  t.is(next.code, 0, next.stderr);
});

test('Ctrl+C in the client (SIGINT, which Wine delivers as CTRL_C_EVENT) ends the job tree and frees the lock', async (t) => {
  const w = winLockd(t);
  const marker = `int${process.pid}x${Date.now()}`;
  const { args, ready } = treeArgs(w, marker);
  const run = winCli(t, w, ['run', '--lock', 'w', '--', ...args]);
  await waitForPath(ready);
  const pids = treePids(marker);
  t.true(pids.length >= 3, `cmd.exe, child and grandchild carry the marker: ${pids.join(',')}`);
  t.teardown(() => killAll(pids));
  run.proc.kill('SIGINT');
  const r = await run.done;
  t.is(r.code, 130, r.stderr);
  t.deepEqual(await waitPidsGone(pids, 30_000), [], 'no process of the tree is left');
  t.is((await runCli(w, ['inspect', 'w'])).code, 1);
});

test('lockd kill RUN_ID ends the tree, grandchild included; result.json says cancelled', async (t) => {
  const w = winLockd(t);
  const marker = `kil${process.pid}x${Date.now()}`;
  const { args, ready } = treeArgs(w, marker);
  const runId = `win-kill-${process.pid}`;
  const run = winCli(t, w, ['run', '--lock', 'w', '--run-id', runId, '--', ...args]);
  await waitForPath(ready);
  const pids = treePids(marker);
  t.true(pids.length >= 3, `cmd.exe, child and grandchild carry the marker: ${pids.join(',')}`);
  t.teardown(() => killAll(pids));
  const k = await runCli(w, ['kill', runId]);
  t.is(k.code, 0, k.stderr);
  const r = await run.done;
  t.not(r.code, 0);
  t.deepEqual(await waitPidsGone(pids, 30_000), [], 'no process of the tree is left');
  const res = JSON.parse(readFileSync(printedPaths(r.stderr).result!, 'utf8')) as Record<string, unknown>;
  t.is(res.reason, 'cancelled');
  t.is((await runCli(w, ['inspect', 'w'])).code, 1);
});

function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}
