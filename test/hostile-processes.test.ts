/**
 * Jobs that try to outlive their run: a double-forked daemon in its own session, a child that changes its process
 * group, a leader that ignores SIGTERM (and, where the job cgroup is available, an escapee with a scrubbed
 * environment). Whether the run ends by itself, is cancelled (lockd kill) or times out, the process table must
 * show nothing of it afterwards. And the daemon reaps what it spawns: no zombie children accumulate over many runs.
 */
import test from 'ava';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, lockd, lockdSpawn, readJson, waitPidsGone, printedPaths, type Daemon } from './helpers/lockd.js';
import { ask, apiRun, cleanupRunsUnder, runProcessesUnder, until, within, zombieChildren, procInfo, LONG } from './helpers/crash-kit.js';
import { cgroupsAvailable } from '../src/daemon/jobs/process-tree.js';

/**
 * The job: records each escapee's pid in <dir>/pids, one per line, then does `tail` (the leader's behaviour).
 * - a daemon: double fork, new session, stdio detached, ignores TERM and HUP;
 * - a process-group changer (perl setpgrp) that ignores TERM;
 * - with a cgroup: an escapee that also drops its environment (`env -i`), invisible to the env-tag scan;
 * - the leader itself ignores TERM.
 */
function hostileScript(pids: string, tail: string): string {
  // The job cgroup is joined right after spawn (the move lands asynchronously); a child forked before it landed
  // stays outside it (docs/crash-safety.md, "Limits"). Waiting (bounded) until the job shell is in its cgroup keeps
  // this test about the cleanup, not about that race.
  const scrubbed = cgroupsAvailable() ? `env -i /bin/sh -c 'echo $$ >> ${pids}; exec setsid sleep 300' </dev/null >/dev/null 2>&1 &` : '';
  const inCgroup = cgroupsAvailable() ? "i=0; while ! grep -q '^0::.*/lockd/' /proc/$$/cgroup && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done" : '';
  return [
    'sleep 0.3',
    inCgroup,
    "trap '' TERM",
    `( setsid sh -c 'trap "" TERM HUP; echo $$ >> ${pids}; while :; do sleep 1; done' </dev/null >/dev/null 2>&1 & )`,
    `perl -e '$SIG{TERM}="IGNORE"; setpgrp(0,0); open(my $f, ">>", "${pids}"); print $f "$$\\n"; close $f; sleep 300' </dev/null >/dev/null 2>&1 &`,
    scrubbed,
    `echo $$ >> ${pids}`,
    tail,
  ]
    .filter(Boolean)
    .join('\n');
}

const expectedPids = () => (cgroupsAvailable() ? 4 : 3);

async function pidsOf(file: string): Promise<number[]> {
  return until(
    () => {
      if (!existsSync(file)) return undefined;
      const pids = readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map(Number);
      return pids.length >= expectedPids() ? pids : undefined;
    },
    10_000,
    'the job to start its escapees',
  );
}

async function assertNothingLeft(t: import('ava').ExecutionContext, d: Daemon, pids: number[]): Promise<void> {
  const left = await waitPidsGone(pids, 20_000);
  const describe = (pid: number) => {
    try {
      return `${pid}: ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ')} ${JSON.stringify(procInfo(pid))}`;
    } catch {
      return `${pid}: gone`;
    }
  };
  t.deepEqual(left, [], `every escapee is gone from the process table; left: ${left.map(describe).join('; ')}`);
  t.deepEqual(await runProcessesUnder(d.dir), [], 'no process of the run is left');
}

test('a run that ends by itself: its daemonized, regrouped and TERM-ignoring leftovers are killed', async (t) => {
  const d = await startDaemon(t);
  cleanupRunsUnder(t, d.dir);
  const root = join(d.dir, 'root');
  const pidsFile = join(d.dir, 'pids');
  const r = await lockd(d, ['run', '--root', root, '--lock', 'h', '--kill-after', '1', '--', 'sh', '-c', hostileScript(pidsFile, 'exit 0')]);
  t.is(r.code, 0, r.stderr);
  const pids = await pidsOf(pidsFile);
  t.is(pids.length, expectedPids());
  await assertNothingLeft(t, d, pids);
  t.is(readJson(printedPaths(r.stderr).result!).status, 'pass');
  t.is((await lockd(d, ['run', '-q', '--root', root, '--lock', 'h', '--wait', '0', '--', 'true'])).code, 0);
});

test('lockd kill stops the whole hostile tree, SIGKILLing what ignores SIGTERM', async (t) => {
  const d = await startDaemon(t);
  cleanupRunsUnder(t, d.dir);
  const root = join(d.dir, 'root');
  const pidsFile = join(d.dir, 'pids');
  const run = lockdSpawn(t, d, ['run', '--root', root, '--lock', 'h', '--kill-after', '1', '--', 'sh', '-c', hostileScript(pidsFile, 'echo started; while :; do sleep 1; done')]);
  await run.waitForStdout('started');
  const pids = await pidsOf(pidsFile);
  const st = await ask(d, { type: 'status', root: null }, ['status']);
  const runId = st.snapshot.runs[0]!.run_id;
  const killed = await ask(d, { type: 'kill', run_id: runId, signal: 'TERM', force: false }, ['ok']);
  t.regex(String(killed.note), /stopped/);
  await assertNothingLeft(t, d, pids);
  const r = await within(run.done, 20_000, 'the client');
  const res = readJson(printedPaths(r.stderr).result!);
  t.is(res.reason, 'cancelled');
  t.not(r.code, 0);
});

test('--timeout stops the whole hostile tree', async (t) => {
  const d = await startDaemon(t);
  cleanupRunsUnder(t, d.dir);
  const root = join(d.dir, 'root');
  const pidsFile = join(d.dir, 'pids');
  const r = await lockd(d, ['run', '--root', root, '--lock', 'h', '--timeout', '1', '--kill-after', '1', '--', 'sh', '-c', hostileScript(pidsFile, 'while :; do sleep 1; done')]);
  t.is(r.code, 124, r.stderr);
  const pids = await pidsOf(pidsFile);
  await assertNothingLeft(t, d, pids);
  t.is(readJson(printedPaths(r.stderr).result!).status, 'timeout');
});

test(`no zombie children accumulate in the daemon over ${LONG ? 3000 : 300} runs`, async (t) => {
  const d = await startDaemon(t);
  cleanupRunsUnder(t, d.dir);
  const root = join(d.dir, 'root');
  const total = LONG ? 3000 : 300;
  const concurrency = 12;
  let next = 0;
  let ok = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= total) return;
      // Every 10th run leaves a short-lived orphan behind and exits at once; the rest just exit. (--keep 0: this is
      // about reaping, and thousands of auto-GC passes over a growing runs root would only slow it down.)
      const script = i % 10 === 0 ? '(sleep 0.2 </dev/null >/dev/null 2>&1 &) ; exit 0' : 'exit 0';
      const run = await apiRun(d, ['run', '-q', '--keep', '0', '--root', root, '--lock', `z${i % 4}`, '--wait', 'inf', '--', 'sh', '-c', script]);
      const outcome = await within(run.done, 60_000, `run ${i}`);
      if (outcome?.exit_code === 0) ok++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  t.is(ok, total);
  // Node reaps on SIGCHLD; give the last exits a moment, bounded.
  const zombies = await until(
    () => {
      const z = zombieChildren(d.pid!);
      return z.length === 0 ? z : undefined;
    },
    5000,
    'the daemon to reap its last children',
  ).catch(() => zombieChildren(d.pid!));
  t.deepEqual(zombies, [], `zombie children of the daemon: ${zombies.map((p) => JSON.stringify(procInfo(p))).join(', ')}`);
  t.deepEqual(await runProcessesUnder(d.dir), []);
  t.is((await lockd(d, ['ping'])).code, 0);
});
