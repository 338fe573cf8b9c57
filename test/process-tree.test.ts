import test, { type ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { JobTree, cgroupsAvailable, sweepTrees } from '../src/daemon/jobs/process-tree.js';
import { LockdError, isLockdError } from '../src/util/errors.js';
import { isSameProcessAlive, listProcesses, processStartTimeSync, readProcStatSync } from '../src/util/proc.js';
import { pollUntil } from './helpers/crash-kit.js';

// `$R cmd args...` prints its own pid, then execs cmd: the job scripts use it so
// the test learns every pid from the processes themselves, not from the code under test.
const scratch = mkdtempSync(join(tmpdir(), 'lockd-tree-'));
const REPORT = join(scratch, 'report.sh');
writeFileSync(REPORT, '#!/bin/sh\necho $$\nexec "$@"\n');
chmodSync(REPORT, 0o755);
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));

const HAS_SETSID = ['/usr/bin/setsid', '/bin/setsid'].some((p) => existsSync(p));

const IS_LINUX = process.platform === 'linux';

let jobCounter = 0;

interface Job {
  child: ChildProcess;
  tree: JobTree;
  runId: string;
  /** Every pid observed (reported by the job, or seen as a member), with its start time. */
  observed: Map<number, string>;
  /** Resolves once the job printed `n` lines; bounded. */
  lines(n: number): Promise<number[]>;
  exited: Promise<unknown>;
}

/**
 * Spawn `sh -c script` the way the daemon does (detached: own group), wrap it
 * in a JobTree, then let the script run: it waits on stdin first, so every
 * fork happens after the JobTree (and its cgroup, if any) exists.
 */
function startJob(t: ExecutionContext, script: string, useCgroup: boolean): Job {
  const runId = `t${process.pid}-${++jobCounter}-${Math.random().toString(36).slice(2, 8)}`;
  const child = spawn('sh', ['-c', `read _go; ${script}`], {
    detached: true,
    stdio: ['pipe', 'pipe', 'inherit', 'pipe'],
    env: { ...process.env, LOCKD_RUN_ID: runId, R: REPORT },
  });
  const pid = child.pid!;
  const startTime = processStartTimeSync(pid);
  const tree = new JobTree({ pid, startTime, runId, envTag: `LOCKD_RUN_ID=${runId}`, useCgroup });
  const observed = new Map<number, string>();
  if (startTime !== null) observed.set(pid, startTime);
  const exited = once(child, 'exit');

  const printed: number[] = [];
  const waiters: Array<() => void> = [];
  let buf = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buf += chunk.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const p = Number(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      if (!Number.isInteger(p) || p <= 0) continue;
      printed.push(p);
      const st = processStartTimeSync(p);
      if (st !== null && !observed.has(p)) observed.set(p, st);
    }
    for (const w of waiters.splice(0)) w();
  });

  t.teardown(() => {
    // By pid, identity-checked: never a recycled pid, never by name.
    for (const [p, st] of observed) if (isSameProcessAlive(p, st)) process.kill(p, 'SIGKILL');
    tree.dispose();
  });
  child.stdin!.end('go\n');

  return {
    child,
    tree,
    runId,
    observed,
    exited,
    lines: (n) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`job printed ${printed.length} of ${n} pid lines`)), 15_000);
        const check = (): void => {
          if (printed.length >= n) {
            clearTimeout(timer);
            resolve(printed.slice(0, n));
          } else waiters.push(check);
        };
        check();
      }),
  };
}

/** Add the current members (with their start times from the table) to `observed`. */
async function observeMembers(job: Job): Promise<number[]> {
  const members = await job.tree.members();
  const table = await listProcesses();
  for (const p of members) {
    const e = table.find((x) => x.pid === p);
    if (e && !job.observed.has(p)) job.observed.set(p, e.startTime);
  }
  return members;
}

/** The process table holds none of the observed processes (a leftover zombie is dead, so it does not count). */
async function assertAllGone(t: ExecutionContext, job: Job): Promise<void> {
  const table = await listProcesses();
  for (const [p, st] of job.observed) {
    t.false(isSameProcessAlive(p, st), `pid ${p} is still alive`);
    const row = table.find((e) => e.pid === p && e.startTime === st);
    t.true(row === undefined || row.state === 'Z' || row.state === 'X', `pid ${p} still in the table (${row?.state})`);
  }
  t.deepEqual(await job.tree.members(), []);
  t.true(await job.tree.isEmpty());
}

const modes: boolean[] = cgroupsAvailable() ? [true, false] : [false];
const label = (useCgroup: boolean): string => (useCgroup ? 'cgroup' : 'no cgroup');

for (const useCgroup of modes) {
  test(`[${label(useCgroup)}] kill: sh -c 'sleep 60 & sleep 60' — SIGTERM suffices`, async (t) => {
    const job = startJob(t, '"$R" sleep 60 & "$R" sleep 60', useCgroup);
    const reported = await job.lines(2);
    t.is(job.tree.cgroupPath !== null, useCgroup);
    const members = await observeMembers(job);
    for (const p of reported) t.true(members.includes(p), `reported pid ${p} is a member`);
    t.false(members.includes(process.pid), 'never the daemon itself');
    t.false(job.tree.groupEmptySync());

    const first = job.tree.kill({ graceMs: 10_000 });
    t.is(job.tree.kill({ graceMs: 1 }), first, 'a concurrent kill shares the one in progress');
    t.deepEqual(await first, { escalated: false, remaining: 0 });
    await assertAllGone(t, job);
    t.is(job.tree.cgroupPath, null, 'the cgroup is removed once empty');
  });

  test(`[${label(useCgroup)}] kill: a job that ignores SIGTERM escalates to SIGKILL`, async (t) => {
    const job = startJob(t, 'trap "" TERM; "$R" sleep 60 & "$R" sleep 60', useCgroup);
    await job.lines(2);
    await observeMembers(job);
    const result = await job.tree.kill({ graceMs: 300 });
    t.deepEqual(result, { escalated: true, remaining: 0 });
    await assertAllGone(t, job);
  });

  test(`[${label(useCgroup)}] kill: a double-forked daemon, reparented away from the job`, async (t) => {
    // The subshell forks sleep and exits at once: sleep's parent is no longer in the job.
    const job = startJob(t, '("$R" sleep 60 &) ; exec "$R" sleep 60', useCgroup);
    const reported = await job.lines(2);
    const orphan = reported.find((p) => p !== job.child.pid)!;
    const leader = job.child.pid!;
    // Once the subshell exits, the orphan's parent is outside the job (init or a subreaper).
    const reparented = await pollUntil(() => {
      const parent = readProcStatSync(readProcStatSync(orphan)?.ppid ?? 0);
      return parent !== null && parent.pgid !== leader;
    });
    t.true(reparented, 'the daemonised sleep was reparented away from the job');
    t.is(readProcStatSync(orphan)?.pgid, leader, 'still in the job group');
    const members = await observeMembers(job);
    t.true(members.includes(orphan));
    t.deepEqual(await job.tree.kill({ graceMs: 10_000 }), { escalated: false, remaining: 0 });
    await assertAllGone(t, job);
  });

  test(`[${label(useCgroup)}] kill: a child that called setsid (left the process group)`, async (t) => {
    t.true(HAS_SETSID, 'util-linux setsid is installed');
    // $R prints X, execs setsid (not a group leader, so it setsid()s in place), which execs $R again: X prints twice.
    const job = startJob(t, '"$R" setsid "$R" sleep 60 & "$R" sleep 60', useCgroup);
    const lines = await job.lines(3);
    const escaped = lines.find((p, i) => lines.indexOf(p) !== i)!;
    const stat = readProcStatSync(escaped);
    t.is(stat?.sid, escaped, 'it leads its own session');
    t.not(stat?.pgid, job.child.pid, 'it is outside the job’s process group');
    const members = await observeMembers(job);
    t.true(members.includes(escaped));
    t.deepEqual(await job.tree.kill({ graceMs: 10_000 }), { escalated: false, remaining: 0 });
    await assertAllGone(t, job);
  });

  test(`[${label(useCgroup)}] kill: setsid -f orphan after the leader exited (found by env tag / cgroup)`, async (t) => {
    t.true(HAS_SETSID, 'util-linux setsid is installed');
    const job = startJob(t, 'setsid -f "$R" sleep 60; exit 0', useCgroup);
    const [escapee] = await job.lines(1);
    await job.exited;
    const stat = readProcStatSync(escapee!);
    t.not(stat?.pgid, job.child.pid);
    t.not(stat?.ppid, job.child.pid);
    // Fast path: with a cgroup it sees the escapee; without, the group alone is empty (documented limit).
    t.is(job.tree.groupEmptySync(), !useCgroup);
    t.false(await job.tree.isEmpty(), 'the full scan finds it');
    const members = await observeMembers(job);
    t.deepEqual(members, [escapee]);
    t.deepEqual(await job.tree.kill({ graceMs: 10_000 }), { escalated: false, remaining: 0 });
    await assertAllGone(t, job);
  });

  test(`[${label(useCgroup)}] sweepTrees: one reading of the table finds each tree's own escapee, and nothing of a finished tree`, async (t) => {
    t.true(HAS_SETSID, 'util-linux setsid is installed');
    const a = startJob(t, 'setsid -f "$R" sleep 60; exit 0', useCgroup);
    const b = startJob(t, 'setsid -f "$R" sleep 60; exit 0', useCgroup);
    const clean = startJob(t, 'exit 0', useCgroup);
    const [escA] = await a.lines(1);
    const [escB] = await b.lines(1);
    await Promise.all([a.exited, b.exited, clean.exited]);
    const found = await sweepTrees([a.tree, b.tree, clean.tree]);
    t.deepEqual(
      found.map((f) => f.tree),
      [a.tree, b.tree, clean.tree],
      'one answer per tree, in order',
    );
    t.deepEqual(found[0]!.members, [escA]);
    t.deepEqual(found[1]!.members, [escB]);
    t.deepEqual(found[2]!.members, []);
    for (const job of [a, b]) {
      await observeMembers(job);
      t.deepEqual(await job.tree.kill({ graceMs: 10_000 }), { escalated: false, remaining: 0 });
      await assertAllGone(t, job);
    }
    t.deepEqual(await sweepTrees([]), []);
  });

  test(`[${label(useCgroup)}] members exclude zombies; groupEmptySync false while the job runs`, async (t) => {
    // The child blocks on fd 3 until its parent has exec'd sleep (which never reaps), then exits: a zombie, no race.
    const job = startJob(t, '(read _ <&3; exit 0) & echo $!; exec sleep 60', useCgroup);
    const [zombie] = await job.lines(1);
    // A non-child's state change has no event; bounded polls.
    t.true(await pollUntil(() => readProcStatSync(job.child.pid!)?.comm === 'sleep'));
    (job.child.stdio[3] as NodeJS.WritableStream).write('go\n');
    t.true(await pollUntil(() => readProcStatSync(zombie!)?.state === 'Z'));
    t.deepEqual(await observeMembers(job), [job.child.pid!]);
    t.false(job.tree.groupEmptySync());
    t.deepEqual(await job.tree.kill({ graceMs: 10_000 }), { escalated: false, remaining: 0 });
    await assertAllGone(t, job);
  });

  test(`[${label(useCgroup)}] groupEmptySync is true right after a simple child exits`, async (t) => {
    const job = startJob(t, 'exit 0', useCgroup);
    await job.exited;
    const dir = job.tree.cgroupPath;
    t.is(dir !== null, useCgroup);
    t.true(job.tree.groupEmptySync());
    t.is(job.tree.cgroupPath, null, 'the empty cgroup is removed, not leaked');
    if (dir !== null) t.false(existsSync(dir));
    t.true(await job.tree.isEmpty());
    t.deepEqual(await job.tree.members(), []);
    t.true(job.tree.dispose(), 'dispose again is harmless');
  });
}

if (cgroupsAvailable()) {
  test('[cgroup] an escapee with a scrubbed environment, new session and no parent is still found', async (t) => {
    t.true(HAS_SETSID, 'util-linux setsid is installed');
    const job = startJob(t, 'env -i setsid -f "$R" /bin/sleep 60; exit 0', true);
    const [escapee] = await job.lines(1);
    await job.exited;
    const environ = readFileSync(`/proc/${escapee}/environ`);
    t.false(environ.includes(Buffer.from('LOCKD_RUN_ID=')), 'the env tag really is gone');
    t.false(job.tree.groupEmptySync(), 'the cgroup still holds it');
    t.deepEqual(await observeMembers(job), [escapee]);
    // A restarted daemon (new JobTree, same run and leader) reattaches the existing cgroup even
    // though the leader is gone; a different env tag shows the cgroup alone finds the escapee.
    const again = new JobTree({ pid: job.child.pid!, startTime: job.observed.get(job.child.pid!)!, runId: job.runId, envTag: 'LOCKD_RUN_ID=not-this-one', useCgroup: true });
    t.is(again.cgroupPath, job.tree.cgroupPath);
    t.deepEqual(await again.members(), [escapee]);
    t.deepEqual(await job.tree.kill({ graceMs: 10_000 }), { escalated: false, remaining: 0 });
    await assertAllGone(t, job);
  });
}

if (cgroupsAvailable()) {
  test('[cgroup] async move: the constructor does not wait for it, scans do; no cgroup is left behind by a leader that dies meanwhile', async (t) => {
    const runId = `async-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    const child = spawn('sleep', ['60'], { detached: true, stdio: 'ignore', env: { ...process.env, LOCKD_RUN_ID: runId } });
    const pid = child.pid!;
    const start = processStartTimeSync(pid)!;
    const exited = once(child, 'exit');
    t.teardown(() => {
      if (isSameProcessAlive(pid, start)) process.kill(pid, 'SIGKILL');
    });
    const tree = new JobTree({ pid, startTime: start, runId, envTag: `LOCKD_RUN_ID=${runId}`, cgroupMove: 'async' });
    t.deepEqual(await tree.members(), [pid], 'a scan waits for the move and finds the leader');
    const dir = tree.cgroupPath;
    t.not(dir, null, 'the move landed');
    t.true(readFileSync(`/proc/${pid}/cgroup`, 'utf8').includes(`/${basename(dir!)}\n`), 'the leader is in its cgroup');
    t.false(tree.groupEmptySync());
    t.deepEqual(await tree.kill({ graceMs: 10_000 }), { escalated: false, remaining: 0 });
    await exited;
    t.is(tree.cgroupPath, null);
    t.false(existsSync(dir!), 'the empty cgroup is removed');

    // A leader killed right after the constructor: whether its move landed or not, nothing stays behind.
    const runId2 = `${runId}-b`;
    const quick = spawn('sleep', ['60'], { detached: true, stdio: 'ignore' });
    const qpid = quick.pid!;
    const qstart = processStartTimeSync(qpid)!;
    const qexited = once(quick, 'exit');
    const tree2 = new JobTree({ pid: qpid, startTime: qstart, runId: runId2, envTag: `LOCKD_RUN_ID=${runId2}`, cgroupMove: 'async' });
    process.kill(qpid, 'SIGKILL');
    await qexited;
    t.true(tree2.groupEmptySync(), 'the process group is empty');
    await tree2.cgroupSettled();
    t.is(tree2.cgroupPath, null);
    t.deepEqual(
      readdirSync(dirname(dir!)).filter((n) => n.startsWith(runId2)),
      [],
      'no cgroup of the dead leader is left',
    );
    t.deepEqual(await tree2.members(), []);
  });
}

test('a leader pid that now names another process (recycled) is left alone', async (t) => {
  // An unrelated process in its own group stands in for a recycled pid.
  const other = spawn('sleep', ['60'], { detached: true, stdio: 'ignore' });
  const pid = other.pid!;
  const realStart = processStartTimeSync(pid)!;
  t.teardown(() => {
    if (isSameProcessAlive(pid, realStart)) process.kill(pid, 'SIGKILL');
  });
  const myStart = processStartTimeSync(process.pid)!;
  // The job's leader "started" when this test process did: same pid, another process.
  const cgroupBefore = IS_LINUX ? readFileSync(`/proc/${pid}/cgroup`, 'utf8') : '';
  const tree = new JobTree({ pid, startTime: myStart, runId: 'recycled', envTag: `LOCKD_RUN_ID=recycled-${process.pid}`, useCgroup: true });
  t.is(tree.cgroupPath, null, 'a process that is not our leader is never moved into a job cgroup');
  if (IS_LINUX) t.is(readFileSync(`/proc/${pid}/cgroup`, 'utf8'), cgroupBefore);
  t.true(tree.groupEmptySync(), 'the group of that number is not ours');
  t.deepEqual(await tree.members(), []);
  t.deepEqual(await tree.kill({ graceMs: 100 }), { escalated: false, remaining: 0 });
  t.true(isSameProcessAlive(pid, realStart), 'the unrelated process was not signalled');
});

test('JobTree refuses pids that would address groups or init', (t) => {
  for (const pid of [0, 1, -3, 2.5]) {
    t.throws(() => new JobTree({ pid, startTime: '1', runId: 'x', envTag: 'LOCKD_RUN_ID=x', useCgroup: false }), {
      instanceOf: LockdError,
      message: /invalid pid/,
    });
  }
  for (const envTag of ['no-equals', '=x', 'A=b\0c']) {
    const err = t.throws(() => new JobTree({ pid: process.pid, startTime: '1', runId: 'x', envTag, useCgroup: false }));
    t.true(isLockdError(err, 'INVALID_ARGUMENT'));
  }
});

if (cgroupsAvailable()) {
  test('[cgroup] the job cgroup is a sanitised one-segment name under a lockd subtree, holding the child', async (t) => {
    const child = spawn('sleep', ['60'], { detached: true, stdio: 'ignore' });
    const pid = child.pid!;
    const start = processStartTimeSync(pid)!;
    const exited = once(child, 'exit');
    const tree = new JobTree({ pid, startTime: start, runId: 'weird id/../x', envTag: 'LOCKD_RUN_ID=weird', useCgroup: true });
    t.teardown(async () => {
      if (isSameProcessAlive(pid, start)) process.kill(pid, 'SIGKILL');
      await exited;
      tree.dispose();
    });
    const dir = tree.cgroupPath!;
    t.regex(dir, /\/lockd\/d-\d+-\d+\/weird_id_\.\._x-\d+$/);
    const own = readFileSync(`/proc/${pid}/cgroup`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('0::'))!;
    t.true(dir.endsWith(own.slice(3)), 'the child was moved into it');
    t.false(tree.dispose(), 'a populated cgroup is not removed');
  });
}
