/**
 * The launcher seam (src/daemon/jobs/launcher*.ts) on real processes: the native launcher never forks the daemon
 * (counted with strace), a job's scrubbed, re-parented escapee is dead before its lock is granted again, a reused
 * leader pid is never signalled (by either launcher), and a forced launcher that cannot load is a start-up error.
 */
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { lockd, pidAlive, startDaemon, tempDir, baseEnv, CLI } from './helpers/lockd.js';
import { loadNativeLauncher } from '../src/daemon/jobs/launcher-native.js';
import { PortableLauncher } from '../src/daemon/jobs/launcher-portable.js';
import type { Launcher, LaunchedJob } from '../src/daemon/jobs/launcher.js';
import { cgroupsAvailable } from '../src/daemon/jobs/process-tree.js';

const native = loadNativeLauncher();
const nativeMissing = native.ok ? null : native.reason;

function requireNative(t: { fail(m: string): void }): boolean {
  if (nativeMissing === null) return true;
  // CI builds the addon; a machine where it does not load runs the portable launcher and says so.
  t.fail(`the native launcher does not load here: ${nativeMissing}`);
  return false;
}

/** `p`, or a rejection after `ms`. */
async function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([p, limit]);
  } finally {
    clearTimeout(timer);
  }
}

test.serial('native: the daemon starts jobs without a fork (no clone without CLONE_VM under strace); the portable launcher, as a control, forks', async (t) => {
  if (!requireNative(t)) return;
  if (!existsSync('/usr/bin/strace')) {
    t.fail('strace is not installed (.ci/run installs it)');
    return;
  }
  const counts: Record<string, { forks: number; spawns: number }> = {};
  for (const launcher of ['native', 'portable']) {
    const d = await startDaemon(t, { env: { LOCKD_LAUNCHER: launcher } });
    const out = join(d.dir, 'strace.out');
    // Only the daemon's main thread (the one that spawns): -p without -f follows no other thread and no child.
    const st = spawn('strace', ['-e', 'trace=clone,clone3,fork,vfork', '-o', out, '-p', String(d.pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    st.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    t.teardown(() => {
      if (st.exitCode === null) st.kill('SIGKILL');
    });
    await bounded(
      new Promise<void>((resolve) => {
        const check = (): void => {
          if (/attached/.test(err)) resolve();
        };
        st.stderr!.on('data', check);
        check();
      }),
      20_000,
      `strace attaching: ${err}`,
    );
    for (let i = 0; i < 5; i++) {
      const r = await lockd(d, ['run', '-q', '--lock', 'l', '--', 'sh', '-c', 'true']);
      t.is(r.code, 0, r.stderr);
    }
    st.kill('SIGINT');
    await bounded(once(st, 'exit'), 10_000, 'strace exit');
    const lines = readFileSync(out, 'utf8')
      .split('\n')
      .filter((l) => /\b(clone3?|v?fork)\(/.test(l));
    counts[launcher] = { forks: lines.filter((l) => !/CLONE_VM/.test(l)).length, spawns: lines.filter((l) => /CLONE_VFORK/.test(l) && !/CLONE_THREAD/.test(l)).length };
    await d.stop();
  }
  t.log(counts);
  t.is(counts.native!.forks, 0, 'the native launcher never copies the daemon');
  t.true(counts.native!.spawns >= 5, 'each job was started by a vfork-style clone');
  t.true(counts.portable!.forks >= 5, 'the control: libuv forks the daemon for each job');
});

test.serial('native: a grandchild that scrubs its environment, leaves the session and loses its parent is dead before the lock is granted again (10 of 10)', async (t) => {
  if (!requireNative(t)) return;
  if (!cgroupsAvailable()) {
    t.fail('this host gives no writable cgroup v2 subtree; the native launcher then uses no job cgroup');
    return;
  }
  const d = await startDaemon(t, { env: { LOCKD_LAUNCHER: 'native' } });
  for (let i = 0; i < 10; i++) {
    const pidFile = join(d.dir, `escapee-${i}`);
    const first = await lockd(d, ['run', '-q', '--lock', 'board', '--', 'sh', '-c', `env -i setsid sleep 60 </dev/null >/dev/null 2>&1 & echo $! > ${pidFile}; sleep 0.3`]);
    t.is(first.code, 0, first.stderr);
    const escapee = Number(readFileSync(pidFile, 'utf8').trim());
    t.true(escapee > 1);
    // The next holder of the lock looks for it the moment it starts (a zombie waiting for init to reap it is gone).
    const second = await lockd(d, [
      'run',
      '--lock',
      'board',
      '--',
      'sh',
      '-c',
      `s=$(cut -d' ' -f3 /proc/${escapee}/stat 2>/dev/null); if [ -n "$s" ] && [ "$s" != Z ] && [ "$s" != X ]; then echo "ALIVE $s"; else echo GONE; fi`,
    ]);
    t.is(second.code, 0, second.stderr);
    t.is(second.stdout.trim(), 'GONE', `try ${i}: the escapee ${escapee} outlived its run's lock`);
    if (pidAlive(escapee)) process.kill(escapee, 'SIGKILL');
  }
});

const VICTIM_TRIES = 1000;

/** Make the kernel hand out `pid` next (root only: /proc/sys/kernel/ns_last_pid); then start a victim there. */
async function victimAt(pid: number): Promise<ChildProcess | null> {
  // Other processes fork between the write and our spawn on a busy machine (the suite runs files in parallel): try often.
  for (let attempt = 0; attempt < VICTIM_TRIES; attempt++) {
    try {
      writeFileSync('/proc/sys/kernel/ns_last_pid', String(pid - 1));
    } catch {
      return null;
    }
    // Detached: the victim leads a process group whose number is the reused pid, the nastiest case for kill(-pgid).
    const v = spawn('sleep', ['60'], { detached: true, stdio: 'ignore' });
    await once(v, 'spawn');
    if (v.pid === pid) return v;
    v.kill('SIGKILL');
  }
  return null;
}

for (const which of ['native', 'portable'] as const) {
  test.serial(`${which}: a job leader whose pid is reused after it exited is never signalled`, async (t) => {
    if (which === 'native' && !requireNative(t)) return;
    if (process.getuid?.() !== 0) {
      t.fail('needs root to steer pid allocation (/proc/sys/kernel/ns_last_pid); CI runs as root');
      return;
    }
    const launcher: Launcher = which === 'native' && native.ok ? native.launcher : new PortableLauncher();
    const dir = tempDir('reuse');
    const runId = `reuse-${which}-${process.pid}`;
    let failure: string | null = null;
    const job = launcher.launch({ runId, file: 'sh', args: ['-c', 'exit 0'], cwd: dir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, stdin: 'ignore', output: 'pipe' }, (e) => {
      failure = e.message;
    }) as LaunchedJob;
    t.truthy(job, failure ?? 'launched');
    job.stdout?.resume();
    job.stderr?.resume();
    t.deepEqual(await bounded(job.exited, 20_000, 'job exit'), { code: 0, signal: null });
    await job.tree.cgroupSettled();
    const victim = await victimAt(job.pid);
    if (victim === null) {
      t.fail(`could not get pid ${job.pid} reused in ${VICTIM_TRIES} tries`);
      return;
    }
    t.teardown(() => {
      victim.kill('SIGKILL');
    });
    t.is(victim.pid, job.pid);
    await job.tree.signal('SIGKILL');
    await job.tree.kill({ graceMs: 100, signal: 'SIGKILL', killWaitMs: 500 });
    t.true(pidAlive(victim.pid!), 'the process now holding the old leader pid is alive');
    t.is(victim.exitCode, null);
    t.is(victim.signalCode, null);
  });
}

test('LOCKD_LAUNCHER=native that cannot load, or an unknown value, is a one-line start-up error', async (t) => {
  const dir = tempDir('launcher');
  const env = { ...baseEnv(dir), LOCKD_LAUNCHER: 'fork' };
  const r = spawn(process.execPath, [CLI, 'daemon'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  r.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const [code] = (await bounded(once(r, 'exit'), 30_000, 'daemon exit')) as [number];
  t.not(code, 0);
  t.regex(err, /LOCKD_LAUNCHER must be native or portable/);
  t.is(err.trim().split('\n').length, 1, err);
});

test('status and doctor name the launcher in use and why', async (t) => {
  const d = await startDaemon(t);
  const s = await lockd(d, ['status', '--json']);
  t.is(s.code, 0, s.stderr);
  const st = JSON.parse(s.stdout) as { daemon?: { launcher?: { name: string; reason: string } } };
  const expected = process.env.LOCKD_LAUNCHER === 'portable' || nativeMissing !== null ? 'portable' : 'native';
  t.is(st.daemon?.launcher?.name, expected, s.stdout);
  const doc = await lockd(d, ['doctor']);
  t.regex(doc.stdout + doc.stderr, new RegExp(`launcher.*${expected}`));
});
