/**
 * Liveness of cluster locks, against a real etcd with a 2 s lease: a host that dies loses its locks when its lease
 * expires (not before, and its job dies with it), a host that cannot renew stops its jobs before the lease can
 * expire on the server, and an unreachable cluster fails with cluster_unavailable (exit 69).
 */
import test, { type ExecutionContext } from 'ava';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { clusterTest, freePort, pauseEtcd, startEtcd, startHosts } from './helpers/etcd.js';
import { lockd, lockdSpawn, pidAlive, printedPaths, readJson, startDaemon, tempDir, waitPidsGone } from './helpers/lockd.js';
import { leaseLost } from './helpers/cluster-pools.js';

/** A temp dir removed when the test ends. */
function scratch(t: ExecutionContext, prefix: string): string {
  const dir = tempDir(prefix);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A child that prints its pid, then appends a timestamp (epoch ns) to `file` every 50 ms until killed. */
function heartbeat(file: string): string[] {
  return ['sh', '-c', `echo "started $$"; while :; do date +%s%N >> ${file}; sleep 0.05; done`];
}

function lastBeatMs(file: string): number {
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  return Number(BigInt(lines[lines.length - 1]!) / 1_000_000n);
}

clusterTest('SIGKILL of a host: its lock passes to another host only when its lease expires, and its job dies first', async (t) => {
  const e = await startEtcd(t);
  // Debug logging: host 1 logs each acknowledged renewal with the time until which it proves the lease alive.
  const [a, b] = await startHosts(t, e, 2, { ttl: 2, env: { LOCKD_LOG_LEVEL: 'debug' } });
  const dir = scratch(t, 'cv');
  const beats = join(dir, 'beats');
  const holder = lockdSpawn(t, a!, ['run', '--global', 'x', '--', ...heartbeat(beats)]);
  await holder.waitForStdout(/started \d+/);
  const childPid = Number(/started (\d+)/.exec(holder.stdout())![1]);
  const bStart = join(dir, 'b-start');
  const waiter = lockdSpawn(t, b!, ['run', '--global', 'x', '--wait', '60', '--', 'sh', '-c', `date +%s%N > ${bStart}`]);
  await waiter.waitForStderr(/waiting for x/);
  const killedAt = Date.now();
  process.kill(a!.pid!, 'SIGKILL');
  const w = await waiter.done;
  t.is(w.code, 0, w.stderr);
  const startedMs = Number(BigInt(readFileSync(bStart, 'utf8').trim()) / 1_000_000n);
  // Not before the lease could expire: host 1's last logged renewal proves the server kept the lease until at least
  // valid_until (a line still buffered at the kill only makes this bound earlier, never wrong).
  const renewals = readFileSync(join(a!.stateDir, 'daemon.log'), 'utf8')
    .split('\n')
    .filter((l) => l.includes('cluster lease renewed'))
    .map((l) => (JSON.parse(l) as { valid_until: number }).valid_until);
  t.true(renewals.length > 0, 'host 1 logged its renewals');
  const provenUntil = Math.max(...renewals);
  t.log(`host 2 started ${startedMs - killedAt} ms after the kill, ${startedMs - provenUntil} ms after the lease's proven end`);
  t.true(startedMs >= provenUntil, "host 2 started only after host 1's lease could have expired");
  t.true(startedMs - killedAt >= 300, 'no early release: an immediate one takes milliseconds');
  t.true(startedMs - killedAt < 10_000, 'and not much later than the TTL');
  // The orphaned job was killed (by the watchdog) before the other host started.
  t.deepEqual(await waitPidsGone([childPid], 10_000), []);
  t.true(lastBeatMs(beats) < startedMs, "the dead host's job had stopped before the other host's job started");
  t.false(pidAlive(childPid));
});

clusterTest('etcd paused: the holder stops its job before the lease can expire; --on-lock-lost warn lets a job run on', async (t) => {
  const e = await startEtcd(t);
  const [a] = await startHosts(t, e, 1, { ttl: 2 });
  const dir = scratch(t, 'cv');
  const beats = join(dir, 'beats');
  const stopped = lockdSpawn(t, a!, ['run', '--global', 'x', '--', ...heartbeat(beats)]);
  const tolerant = lockdSpawn(t, a!, ['run', '--global', 'y', '--on-lock-lost', 'warn', '--', 'sh', '-c', 'echo started; sleep 4; echo survived']);
  await stopped.waitForStdout(/started \d+/);
  await tolerant.waitForStdout('started');
  const pausedAt = Date.now();
  pauseEtcd(t, e);
  const r = await stopped.done;
  t.is(r.code, 125, r.stderr);
  const result = readJson<{ status: string; reason: string; message: string; end_time_utc: string }>(printedPaths(r.stderr).result!);
  t.is(result.status, 'infra_fail');
  t.is(result.reason, 'lock_lost');
  t.regex(result.message, /cluster lock x lost/);
  // The daemon's own proof of how long the server keeps the lease (send time of the last acknowledged renewal + TTL):
  // the job was gone before it.
  const lost = await leaseLost(a!.stateDir);
  const endedAt = Date.parse(result.end_time_utc);
  t.true(lastBeatMs(beats) < lost.valid_until, 'last heartbeat before the lease could expire');
  t.true(endedAt < lost.valid_until, `job gone ${lost.valid_until - endedAt} ms before the lease could expire`);
  t.true(endedAt - pausedAt < 3000, 'stopped within about one TTL of the pause');
  t.log(`job gone ${endedAt - pausedAt} ms after the pause, ${lost.valid_until - endedAt} ms before the lease could expire`);
  e.resume();
  // The tolerant job ran to its end; its record says the lock was lost.
  const tr = await tolerant.done;
  t.is(tr.code, 0, tr.stderr);
  t.regex(tr.stdout, /survived/);
  const tres = readJson<{ status: string; message: string }>(printedPaths(tr.stderr).result!);
  t.is(tres.status, 'pass');
  t.regex(tres.message, /on-lock-lost warn/);
  // Once etcd answers again the host takes cluster locks as before (a new lease).
  const again = await lockd(a!, ['run', '--global', 'x', '--wait', '30', '--', 'echo', 'again']);
  t.is(again.code, 0, again.stderr);
  t.regex(again.stdout, /again/);
});

test.serial('an unreachable cluster fails with cluster_unavailable (exit 69); local locks keep working', async (t) => {
  const port = await freePort();
  const d = await startDaemon(t, { args: ['--cluster', `etcd://127.0.0.1:${port}`, '--cluster-ttl', '2'] });
  const now = await lockd(d, ['run', '--global', 'x', '--wait', '0', '--', 'true']);
  t.is(now.code, 69, now.stderr);
  t.regex(now.stderr, /cluster_unavailable/);
  const result = readJson<{ status: string; reason: string; exit_code: number }>(printedPaths(now.stderr).result!);
  t.deepEqual([result.status, result.reason, result.exit_code], ['infra_fail', 'cluster_unavailable', 69]);
  // --wait bounds how long an unreachable cluster is retried.
  const t0 = Date.now();
  const later = await lockd(d, ['run', '--global', 'x', '--wait', '1.5', '--', 'true']);
  t.is(later.code, 69, later.stderr);
  t.true(Date.now() - t0 >= 1500);
  // Local locks and --host-only globals do not need the cluster.
  const root = scratch(t, 'cu');
  const local = await lockd(d, ['run', '--root', root, '--lock', 'L', '--global', 'H', '--host-only', '--wait', '0', '--', 'echo', 'fine']);
  t.is(local.code, 0, local.stderr);
  t.regex(local.stdout, /fine/);
});
