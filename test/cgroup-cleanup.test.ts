/** Job cgroups left by a killed daemon are removed by the next one (issue: 27 empty cgroups piled up). */
import test from 'ava';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { startDaemon, lockdSpawn, waitPidsGone } from './helpers/lockd.js';
import { kill9, cleanupRunsUnder, until } from './helpers/crash-kit.js';
import { cgroupsAvailable } from '../src/daemon/jobs/process-tree.js';
import { jobCgroupBase } from '../src/daemon/jobs/cgroup.js';

const why = 'this host gives no writable cgroup v2 subtree';

test('a killed daemon’s job cgroups (and its subtree) are removed by the next daemon once its jobs are stopped', async (t) => {
  if (!cgroupsAvailable()) {
    t.log(`skipped: ${why}`);
    return;
  }
  // This test process's own subtree is d-<pid>-<start>; the daemons it starts (same cgroup) share the root.
  const root = dirname(jobCgroupBase()!);
  const d = await startDaemon(t);
  cleanupRunsUnder(t, d.dir);
  const pids = join(d.dir, 'pids');
  const job = lockdSpawn(t, d, ['run', '--lock', 'cg', '--', 'sh', '-c', `sleep 300 & echo "$$ $!" > ${pids}; echo started; wait`]);
  await job.waitForStdout('started');
  const subtree = join(root, readdirSync(root).find((n) => n.startsWith(`d-${d.pid}-`)) ?? 'none');
  t.true(existsSync(subtree), `the daemon has its own subtree under ${root}`);
  // The portable launcher moves the job into its cgroup after it started (asynchronously): wait for it, bounded.
  const jobCgroups = () => readdirSync(subtree).filter((n) => !n.startsWith('cgroup.') && !n.includes('.')).length;
  await until(() => (jobCgroups() >= 1 ? true : undefined), 10_000, 'the job cgroup');
  t.is(jobCgroups(), 1, 'one job cgroup in it');
  await kill9(d);
  const jobPids = readFileSync(pids, 'utf8').trim().split(' ').map(Number);
  // The next daemon stops the orphaned job (reconcile), then removes the dead daemon's empty cgroups.
  const d2 = await startDaemon(t, { dir: d.dir });
  t.deepEqual(await waitPidsGone(jobPids), [], 'the orphaned job was stopped');
  await until(() => (existsSync(subtree) ? undefined : true), 10_000, 'the dead daemon’s subtree to go');
  t.false(existsSync(subtree));
  await d2.stop();
});
