/**
 * Issue 14 point 2, the host without a writable cgroup v2 (a container, a cgroup another manager owns): the native
 * launcher starts each job under its own subreaper (native/reaper.c), so a descendant that loses its parent lands
 * in the job's tree, not init's. LOCKD_CGROUPS=off gives the daemon that host. Native launcher only: the portable
 * launcher has no reaper (docs/crash-safety.md says what it finds instead).
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { lockd, lockdSpawn, pidAlive, printedPaths, readJson, startDaemon } from './helpers/lockd.js';
import { cleanupRunsUnder, within } from './helpers/crash-kit.js';
import { loadNativeLauncher } from '../src/daemon/jobs/launcher-native.js';
import { parseReaperReport, reaperArgv, reaperPath } from '../src/daemon/jobs/reaper.js';

const native = loadNativeLauncher();
const NO_CGROUP = { LOCKD_CGROUPS: 'off', LOCKD_LAUNCHER: 'native' };

function ready(t: { fail(m: string): void }): boolean {
  if (!native.ok) {
    t.fail(`the native launcher does not load here: ${native.reason}`);
    return false;
  }
  if (reaperPath() === null) {
    t.fail('lockd-reaper is neither built (build/Release) nor shipped (prebuilds/linux-x64)');
    return false;
  }
  return true;
}

test('the reaper is found and the launcher says it uses it when there is no cgroup', async (t) => {
  if (!ready(t)) return;
  const d = await startDaemon(t, { env: NO_CGROUP });
  const r = await lockd(d, ['status', '--json']);
  t.is(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout) as { daemon?: { launcher?: { name: string; detail: string } } };
  t.is(s.daemon?.launcher?.name, 'native');
  t.regex(String(s.daemon?.launcher?.detail), /lockd-reaper/);
  // The job's parent is its reaper, not the daemon.
  const p = await lockd(d, ['run', '-q', '--', 'sh', '-c', 'cat /proc/$PPID/comm']);
  t.is(p.code, 0, p.stderr);
  t.is(p.stdout.trim(), 'lockd-reaper');
});

test('no cgroup: an escapee that left the group and session, scrubbed its environment and lost its parent is dead before the lock passes', async (t) => {
  if (!ready(t)) return;
  const d = await startDaemon(t, { env: NO_CGROUP });
  cleanupRunsUnder(t, d.dir);
  const root = join(d.dir, 'root');
  const pidFile = join(d.dir, 'escapee');
  // The issue's own job: `env -i setsid sleep 60 &` from a subshell that exits, so the sleep is an orphan with no tag.
  const first = lockdSpawn(t, d, [
    'run',
    '--root',
    root,
    '--lock',
    'board',
    '--kill-after',
    '1',
    '--',
    'sh',
    '-c',
    `(env -i setsid sleep 60 </dev/null >/dev/null 2>&1 & echo $! > ${pidFile}); echo escaped; read _ < /dev/null; sleep 0.3`,
  ]);
  await first.waitForStdout('escaped');
  const escapee = Number(readFileSync(pidFile, 'utf8').trim());
  t.true(escapee > 1);
  t.teardown(() => {
    try {
      process.kill(escapee, 'SIGKILL');
    } catch {
      // gone, as it should be
    }
  });
  // The next run on the lock looks for the escapee the moment it holds the lock.
  const second = await lockd(d, ['run', '--root', root, '--lock', 'board', '--wait', '60', '--', 'sh', '-c', `if kill -0 ${escapee} 2>/dev/null; then echo alive; else echo dead; fi`]);
  t.is(second.code, 0, second.stderr);
  t.is(second.stdout.trim(), 'dead', 'the escapee was killed before the lock was granted again');
  const a = await within(first.done, 20_000, 'the first client');
  t.is(a.code, 0, a.stderr);
  t.false(pidAlive(escapee));
});

test('no cgroup: the job keeps its exit code and its death by signal; a timeout is still a timeout', async (t) => {
  if (!ready(t)) return;
  const d = await startDaemon(t, { env: NO_CGROUP });
  cleanupRunsUnder(t, d.dir);
  t.is((await lockd(d, ['run', '-q', '--', 'sh', '-c', 'exit 7'])).code, 7);
  const killed = await lockd(d, ['run', '--', 'sh', '-c', 'kill -TERM $$']);
  const res = readJson(printedPaths(killed.stderr).result ?? '');
  t.is(killed.code, res.exit_code as number);
  t.is((res.signals as { exit_signal: string | null }).exit_signal, 'SIGTERM');
  const slow = await lockd(d, ['run', '--timeout', '1', '--kill-after', '1', '--', 'sh', '-c', 'trap "" TERM; sleep 30']);
  t.is(readJson(printedPaths(slow.stderr).result ?? '').reason, 'timeout');
});

test('no cgroup: a command that cannot be found or executed is recorded as with a direct exec (127 / 126)', async (t) => {
  if (!ready(t)) return;
  const d = await startDaemon(t, { env: NO_CGROUP });
  cleanupRunsUnder(t, d.dir);
  const missing = await lockd(d, ['run', '--', 'no-such-command-lockd']);
  t.is(missing.code, 127, missing.stderr);
  t.is(readJson(printedPaths(missing.stderr).result ?? '').reason, 'command_not_found');
  const notExec = await lockd(d, ['run', '--', join(d.dir)]);
  t.is(notExec.code, 126, notExec.stderr);
  t.is(readJson(printedPaths(notExec.stderr).result ?? '').reason, 'command_not_executable');
});

test('the reaper itself: argv layout, report parsing, and a bad command line is refused with 125', async (t) => {
  if (!ready(t)) return;
  t.deepEqual(reaperArgv('/r', 1500.4, ['/a', '/b'], ['x', '-y']), ['/r', '1500', '2', '/a', '/b', '--', 'x', '-y']);
  t.deepEqual(parseReaperReport('E2\n', 'x'), { code: 'ENOENT', message: 'x: cannot execute (ENOENT)' });
  t.is(parseReaperReport('', 'x'), undefined);
  const { spawnSync } = await import('node:child_process');
  const bad = spawnSync(reaperPath()!, ['x'], { encoding: 'utf8', timeout: 10_000 });
  t.is(bad.status, 125);
  t.regex(bad.stderr, /lockd-reaper/);
});
