import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pollUntil } from './helpers/crash-kit.js';
import {
  compareStartTimes,
  isDescendantOf,
  isSelfOrDescendantOf,
  isSameProcessAlive,
  listProcesses,
  parentPid,
  parseProcStat,
  parsePsRows,
  processGids,
  processGroupAlive,
  processStartTime,
  processStartTimeSync,
  processUid,
  readProcStatSync,
} from '../src/util/proc.js';

const IS_LINUX = process.platform === 'linux';

/** Spawn and register cleanup by pid (with an identity check, so a recycled pid is never hit). */
function spawnTracked(t: { teardown: (fn: () => void) => void }, cmd: string, args: string[], detached = false): ChildProcess {
  const child = spawn(cmd, args, { detached, stdio: ['ignore', 'pipe', 'inherit'] });
  const pid = child.pid!;
  const start = processStartTimeSync(pid);
  t.teardown(() => {
    if (start !== null && isSameProcessAlive(pid, start)) process.kill(pid, 'SIGKILL');
  });
  return child;
}

/** Resolve with the first `n` whole lines the child prints; bounded. */
function readLines(child: ChildProcess, n: number, timeoutMs = 10_000): Promise<string[]> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${n} lines, got: ${JSON.stringify(buf)}`)), timeoutMs);
    child.stdout!.on('data', (chunk: Buffer) => {
      buf += chunk.toString();
      const lines = buf.split('\n');
      if (lines.length > n) {
        clearTimeout(timer);
        resolve(lines.slice(0, n));
      }
    });
  });
}

/**
 * Wait, without yielding to the event loop, for a condition on another process
 * (there is no event for a non-child changing state). Bounded.
 */
function spinUntil(cond: () => boolean, timeoutMs = 10_000): boolean {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) if (cond()) return true;
  return cond();
}

/** Ticks since boot now (Linux), to bound a parsed start time from above. */
function nowTicks(): bigint {
  const uptimeSeconds = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  return BigInt(Math.ceil(uptimeSeconds * 100)) + 1n; // USER_HZ is 100 on Linux
}

test('parseProcStat: comm with spaces and parentheses, and malformed text', (t) => {
  const tail = 'S 10 20 30 0 -1 4194304 99 0 0 0 0 0 0 0 20 0 1 0 44582 3133440 379';
  const s = parseProcStat(`1234 (a b) c) ${tail}`);
  t.deepEqual(s, { pid: 1234, comm: 'a b) c', state: 'S', ppid: 10, pgid: 20, sid: 30, startTime: '44582' });
  t.is(parseProcStat(`7 ((x) (y)) ${tail}`)?.comm, '(x) (y)');
  t.is(parseProcStat(`7 () ${tail}`)?.comm, '');
  t.is(parseProcStat('7 (sleep) S 1 2'), null, 'too few fields');
  t.is(parseProcStat(`x (sleep) ${tail}`), null, 'non-numeric pid');
  t.is(parseProcStat('garbage'), null);
});

test('parsePsRows: lstart with spaces is kept whole and normalised', (t) => {
  const rows = parsePsRows('  12    1   12 Ss   Tue Nov 24 21:47:24 2026\n 13 12 12 Z+ Tue Nov  3 01:02:03 2026\nbad line\n');
  t.deepEqual(rows, [
    { pid: 12, ppid: 1, pgid: 12, state: 'S', startTime: 'Tue Nov 24 21:47:24 2026' },
    { pid: 13, ppid: 12, pgid: 12, state: 'Z', startTime: 'Tue Nov 3 01:02:03 2026' },
  ]);
});

test('compareStartTimes orders ticks exactly and refuses nonsense', (t) => {
  t.is(compareStartTimes('100', '99'), 1);
  t.is(compareStartTimes('99', '100'), -1);
  t.is(compareStartTimes('18446744073709551615', '18446744073709551615'), 0);
  t.is(compareStartTimes('nonsense', '1'), null);
});

test('start time of a real process whose comm has spaces and ")"', async (t) => {
  if (!IS_LINUX) {
    t.truthy(processStartTimeSync(process.pid), 'non-Linux: start time via ps');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'lockd-proc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const exe = join(dir, 'a b) c');
  copyFileSync('/bin/sleep', exe);
  chmodSync(exe, 0o755);
  const child = spawnTracked(t, exe, ['60']);
  await once(child, 'spawn');
  const pid = child.pid!;

  const stat = readProcStatSync(pid);
  t.is(stat?.comm, 'a b) c');
  t.is(stat?.ppid, process.pid);
  const sync = processStartTimeSync(pid);
  const asyncStart = await processStartTime(pid);
  t.regex(sync ?? '', /^\d+$/);
  t.is(asyncStart, sync);
  // Started after us and not in the future.
  const mine = BigInt(processStartTimeSync(process.pid)!);
  t.true(BigInt(sync!) >= mine);
  t.true(BigInt(sync!) <= nowTicks());
  t.true(isSameProcessAlive(pid, sync!));
});

test('isSameProcessAlive: wrong start time (recycled pid), dead pid and bad input are not alive', async (t) => {
  const child = spawnTracked(t, 'sleep', ['60']);
  await once(child, 'spawn');
  const pid = child.pid!;
  const start = processStartTimeSync(pid)!;
  t.true(isSameProcessAlive(pid, start));
  const wrong = /^\d+$/.test(start) ? String(BigInt(start) + 1n) : `${start}x`;
  t.false(isSameProcessAlive(pid, wrong), 'same pid, different start time = a different process');
  t.false(isSameProcessAlive(pid, ''));
  for (const bad of [0, -1, 1.5, Number.NaN]) t.false(isSameProcessAlive(bad, start));

  const exited = once(child, 'exit');
  process.kill(pid, 'SIGKILL');
  await exited; // reaped by node before 'exit' is emitted
  t.false(isSameProcessAlive(pid, start));
  t.not(await processStartTime(pid), start, 'gone (or, at most, a recycled pid with another start time)');
});

test('a zombie is not alive, but still has a start time and keeps its process group alive', (t) => {
  // Node reaps children only from the event loop; as long as this test stays
  // synchronous, an exited child remains a zombie.
  const child = spawn('true', [], { detached: true, stdio: 'ignore' });
  const pid = child.pid!;
  const start = processStartTimeSync(pid);
  t.truthy(start, 'the start time is readable right after spawn, even if the child already exited');
  const becameZombie = spinUntil(() => (IS_LINUX ? readProcStatSync(pid)?.state === 'Z' : !isSameProcessAlive(pid, start!)));
  t.true(becameZombie);
  t.false(isSameProcessAlive(pid, start!), 'a zombie counts as dead');
  t.is(processStartTimeSync(pid), start, 'a zombie is still the same process');
  t.true(processGroupAlive(pid), 'documented: zombies keep a group alive until reaped');
});

test('a zombie whose parent does not reap it shows as Z in the table and is not alive', async (t) => {
  // sh forks a child that blocks on fd 3, then execs sleep (which never reaps).
  // Only once the parent is sleep do we let the child exit: no ordering race.
  const child = spawn('sh', ['-c', '(read _ <&3; exit 0) & echo $!; exec sleep 60'], { stdio: ['ignore', 'pipe', 'inherit', 'pipe'] });
  const parent = child.pid!;
  const parentStart = processStartTimeSync(parent)!;
  t.teardown(() => {
    if (isSameProcessAlive(parent, parentStart)) process.kill(parent, 'SIGKILL');
  });
  const [line] = await readLines(child, 1);
  const zpid = Number(line);
  const zstart = processStartTimeSync(zpid);
  t.truthy(zstart);
  t.teardown(() => {
    if (zstart !== null && isSameProcessAlive(zpid, zstart)) process.kill(zpid, 'SIGKILL');
  });
  if (!IS_LINUX) return;
  t.true(await pollUntil(() => readProcStatSync(parent)?.comm === 'sleep'), "the parent exec'd sleep");
  (child.stdio[3] as NodeJS.WritableStream).write('go\n');
  t.true(await pollUntil(() => readProcStatSync(zpid)?.state === 'Z'), 'the child became a zombie');
  t.false(isSameProcessAlive(zpid, zstart!));
  t.is(processStartTimeSync(zpid), zstart, 'still the same (dead) process');
  const row = (await listProcesses()).find((e) => e.pid === zpid);
  t.is(row?.state, 'Z');
  t.is(row?.ppid, parent);
});

test('parentPid and isDescendantOf: grandchild yes, unrelated no, wrong ancestor start no', async (t) => {
  const child = spawnTracked(t, 'sh', ['-c', 'sleep 60 & echo $!; wait']);
  const [line] = await readLines(child, 1);
  const grandchild = Number(line);
  const g0 = processStartTimeSync(grandchild);
  t.teardown(() => {
    if (g0 !== null && isSameProcessAlive(grandchild, g0)) process.kill(grandchild, 'SIGKILL');
  });
  const shPid = child.pid!;
  const shStart = processStartTimeSync(shPid)!;
  const myStart = processStartTimeSync(process.pid)!;

  t.is(parentPid(grandchild), shPid);
  t.is(parentPid(shPid), process.pid);
  t.true(isDescendantOf(grandchild, shPid, shStart));
  t.true(isDescendantOf(grandchild, process.pid, myStart), 'grandchild of this process');
  t.false(isDescendantOf(grandchild, process.pid, `${myStart}0`), 'ancestor identity must match');
  t.false(isDescendantOf(process.pid, shPid, shStart), 'a parent is not a descendant of its child');
  t.false(isDescendantOf(shPid, shPid, shStart), 'not a descendant of itself');

  const other = spawnTracked(t, 'sleep', ['60']);
  await once(other, 'spawn');
  t.false(isDescendantOf(grandchild, other.pid!, processStartTimeSync(other.pid!)!), 'a sibling subtree is unrelated');
  t.false(isDescendantOf(1, process.pid, myStart), 'init is nobody’s descendant');

  // The nesting check: the run's own process counts, but only as the very process (not a recycled pid).
  t.true(isSelfOrDescendantOf(shPid, shPid, shStart));
  t.false(isSelfOrDescendantOf(shPid, shPid, `${shStart}0`), 'same pid, another start time: another process');
  t.true(isSelfOrDescendantOf(grandchild, shPid, shStart));
  t.false(isSelfOrDescendantOf(process.pid, shPid, shStart));
});

test('parentPid / start time of a pid that cannot exist are null', async (t) => {
  // Pids are always below pid_max, so pid_max itself never names a process.
  const impossible = IS_LINUX ? Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8').trim()) : 99_999_999;
  t.is(parentPid(impossible), null);
  t.is(processStartTimeSync(impossible), null);
  t.is(await processStartTime(impossible), null);
  t.is(parentPid(0), null);
});

test('processUid / processGids match this process (Linux)', (t) => {
  if (!IS_LINUX) {
    t.is(processUid(process.pid), null);
    t.is(processGids(process.pid), null);
    return;
  }
  t.is(processUid(process.pid), process.geteuid!());
  const gids = processGids(process.pid)!;
  t.is(gids[0], process.getegid!());
  for (const g of process.getgroups!()) t.true(gids.includes(g));
  t.is(new Set(gids).size, gids.length, 'no duplicates');
  t.is(processUid(0), null);
});

test('listProcesses shows this process and a detached child leading its own group', async (t) => {
  const child = spawnTracked(t, 'sleep', ['60'], true);
  await once(child, 'spawn');
  const table = await listProcesses();
  const me = table.find((e) => e.pid === process.pid);
  t.is(me?.ppid, process.ppid);
  t.is(me?.startTime, processStartTimeSync(process.pid) ?? undefined);
  const kid = table.find((e) => e.pid === child.pid);
  t.is(kid?.ppid, process.pid);
  t.is(kid?.pgid, child.pid, 'detached: pgid = pid');
  t.is(kid?.startTime, processStartTimeSync(child.pid!) ?? undefined);
  t.true(table.length > 2);
});

test('processGroupAlive: live group true, reaped group false, dangerous pgids refused', async (t) => {
  const child = spawnTracked(t, 'sleep', ['60'], true);
  await once(child, 'spawn');
  const pgid = child.pid!;
  t.true(processGroupAlive(pgid));
  const exited = once(child, 'exit');
  process.kill(pgid, 'SIGKILL');
  await exited;
  t.false(processGroupAlive(pgid));
  for (const bad of [1, 0, -5, 2.5]) t.false(processGroupAlive(bad));
});
