/**
 * The kill path never signals a pid it has not verified (pid + start time, checked just before the signal): not a
 * recorded pid whose start time no longer matches, not a pid some `ps` listing named. Real processes throughout:
 * each victim is an unrelated `sleep` in its own process group, and each test checks that it survives.
 */
import test, { type ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { JobTree } from '../src/daemon/jobs/process-tree.js';
import type { RunRecord } from '../src/daemon/records/journal.js';
import { isSameProcessAlive, processStartTimeSync, readProcStatSync } from '../src/util/proc.js';
import { readJson, startDaemon, tempDir } from './helpers/lockd.js';

const HAS_SETSID = ['/usr/bin/setsid', '/bin/setsid'].some((p) => existsSync(p));
const REAL_PS = ['/usr/bin/ps', '/bin/ps'].find((p) => existsSync(p)) ?? null;

interface Victim {
  pid: number;
  startTime: string;
  child: ChildProcess;
}

/** An unrelated process that leads its own group (so even kill(-pid) would reach it), killed by pid + start time in teardown. */
function victim(t: ExecutionContext): Victim {
  const child = spawn('sleep', ['300'], { detached: true, stdio: 'ignore' });
  const pid = child.pid!;
  const startTime = processStartTimeSync(pid)!;
  t.truthy(startTime);
  const exited = once(child, 'exit');
  t.teardown(async () => {
    if (isSameProcessAlive(pid, startTime)) {
      process.kill(pid, 'SIGKILL');
      await exited;
    }
  });
  return { pid, startTime, child };
}

/** A start time that is certainly not the process's own (one clock tick / one second earlier than the real one). */
function wrongStartTime(real: string): string {
  return /^\d+$/.test(real) ? String(BigInt(real) - 1n) : new Date(Date.parse(real) - 1000).toString();
}

// This file's tests change PATH (a stale `ps`, below): one at a time.
test.serial('a stale ps listing (a pid reused since it was listed) never gets that pid signalled', async (t) => {
  t.true(HAS_SETSID, 'util-linux setsid is installed');
  const v = victim(t);
  const dir = tempDir('ldkv');
  // A `ps` that answers every "children of X?" question (the way tree-kill walks a tree) with the victim's pid, as
  // a listing would that was taken just before the child it named exited and the victim got its pid. Anything
  // else goes to the real ps.
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  writeFileSync(
    join(bin, 'ps'),
    `#!/bin/sh
for a in "$@"; do
  if [ "$want" = 1 ]; then
    [ "$a" = "${v.pid}" ] && exit 1
    echo "${v.pid}"; exit 0
  fi
  [ "$a" = "--ppid" ] && want=1
done
${REAL_PS ? `exec ${REAL_PS} "$@"` : 'exit 1'}
`,
  );
  chmodSync(join(bin, 'ps'), 0o755);
  const oldPath = process.env.PATH;
  process.env.PATH = `${bin}:${oldPath ?? ''}`;
  t.teardown(() => {
    process.env.PATH = oldPath;
  });

  // A job with a member that left the process group (setsid in place): the kill path's "escaped subtree" case.
  const runId = `kv${process.pid}`;
  const job = spawn('sh', ['-c', "setsid sh -c 'echo $$; exec sleep 300' & wait"], {
    detached: true,
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, LOCKD_RUN_ID: runId },
  });
  const jobExited = once(job, 'exit');
  const leaderStart = processStartTimeSync(job.pid!);
  const tree = new JobTree({ pid: job.pid!, startTime: leaderStart, runId, envTag: `LOCKD_RUN_ID=${runId}`, useCgroup: false });
  const [line] = (await Promise.race([once(job.stdout!, 'data'), jobExited.then(() => [Buffer.from('')])])) as [Buffer];
  const escaped = Number(line.toString().trim());
  t.true(Number.isInteger(escaped) && escaped > 0, `the escapee reported its pid (${line.toString()})`);
  const escapedStart = processStartTimeSync(escaped)!;
  t.teardown(() => {
    if (isSameProcessAlive(escaped, escapedStart)) process.kill(escaped, 'SIGKILL');
    if (leaderStart && isSameProcessAlive(job.pid!, leaderStart)) process.kill(job.pid!, 'SIGKILL');
  });
  t.not(readProcStatSync(escaped)?.pgid, job.pid, 'the escapee is outside the job’s process group');
  t.true((await tree.members()).includes(escaped));

  t.deepEqual(await tree.kill({ graceMs: 5000 }), { escalated: false, remaining: 0 });
  t.false(isSameProcessAlive(escaped, escapedStart), 'the job’s escapee was killed');
  t.true(isSameProcessAlive(v.pid, v.startTime), 'the pid the stale listing named was never signalled');
  await jobExited;
});

test.serial('a recorded pid whose start time no longer matches is never signalled: JobTree kill and signal', async (t) => {
  const v = victim(t);
  const tree = new JobTree({ pid: v.pid, startTime: wrongStartTime(v.startTime), runId: 'kv-stale', envTag: `LOCKD_RUN_ID=kv-stale-${process.pid}`, useCgroup: false });
  t.is(await tree.signal('SIGTERM'), 0);
  t.deepEqual(await tree.kill({ graceMs: 200, signal: 'SIGKILL' }), { escalated: false, remaining: 0 });
  t.true(isSameProcessAlive(v.pid, v.startTime), 'the process now holding the recorded pid was left alone');
});

test.serial('a daemon settling a journal whose runs name a reused pid (same pid, other start time) signals nothing', async (t) => {
  const attached = victim(t);
  const detached = victim(t);
  const dir = tempDir('ldkv');
  const stateDir = join(dir, 'state');
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const record = (id: string, v: Victim, detach: boolean): RunRecord => {
    const runDir = join(dir, 'runs', id);
    mkdirSync(runDir, { recursive: true });
    return {
      t: 'run',
      run_id: id,
      pid: v.pid,
      pgid: v.pid,
      start_time: wrongStartTime(v.startTime),
      locks: [],
      client_pid: process.pid,
      detach,
      dir: runDir,
      holder: 'test',
      user: 'test',
      uid: process.getuid?.() ?? null,
      command_line: 'sleep 300',
      queued_at: Date.now() - 1000,
      started_at: Date.now() - 900,
      log_path: null,
      parent: null,
    };
  };
  const recs = [record('kv-attached', attached, false), record('kv-detached', detached, true)];
  writeFileSync(join(stateDir, 'journal.jsonl'), recs.map((r) => `${JSON.stringify(r)}\n`).join(''), { mode: 0o600 });

  // The daemon settles the journal before it says ready.
  await startDaemon(t, { dir });
  for (const r of recs) {
    const res = readJson(join(r.dir, 'result.json'));
    t.regex(String(res.message), /already exited/, `${r.run_id} is recorded as gone, not stopped`);
  }
  t.true(isSameProcessAlive(attached.pid, attached.startTime), 'the process holding the attached run’s pid survived');
  t.true(isSameProcessAlive(detached.pid, detached.startTime), 'the process holding the detached run’s pid survived');
});
