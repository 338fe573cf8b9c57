/**
 * Issue 14 point 3: between one job's exit and the next one's exec there is only the grant and the launch; the
 * finished job's records (result.json, .meta, events, its `finished` frame) are written after the next job is
 * launched. The daemon is stopped exactly there (LOCKD_FAULT_POINT, src/daemon/jobs/fault-point.ts: it SIGKILLs
 * itself) and the guarantees of docs/crash-safety.md must still hold after a restart: the finished run gets a
 * result, the next run's tree is killed and recorded, and no lock is left held. Both launchers (LOCKD_LAUNCHER).
 */
import test from 'ava';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lockd, lockdSpawn, readJson, startDaemon, waitPidsGone } from './helpers/lockd.js';
import { cleanupRunsUnder, statusOf, within } from './helpers/crash-kit.js';

test('a daemon killed after the next job launched but before the finished job wrote its records: both runs get results, no lock is held', async (t) => {
  const d = await startDaemon(t, { env: { LOCKD_FAULT_POINT: 'records_after_next_launch' } });
  cleanupRunsUnder(t, d.dir);
  const root = join(d.dir, 'root');
  const gate = join(d.dir, 'gate');
  const bPid = join(d.dir, 'b.pid');
  // A holds the lock until the test creates `gate`, then exits 3; B waits behind it and records its pid once running.
  const a = lockdSpawn(t, d, ['run', '--root', root, '--lock', 'x', '--', 'sh', '-c', `echo a-started; while [ ! -e ${gate} ]; do sleep 0.05; done; exit 3`]);
  await a.waitForStdout('a-started');
  const b = lockdSpawn(t, d, ['run', '--root', root, '--lock', 'x', '--wait', '60', '--', 'sh', '-c', `echo $$ > ${bPid}; exec sleep 300`]);
  await b.waitForStderr('waiting for x');
  const daemonGone = new Promise<void>((resolve) => d.proc!.once('exit', () => resolve()));
  writeFileSync(gate, '');
  await within(daemonGone, 20_000, 'the daemon to stop itself at the fault point');
  t.is(d.proc!.signalCode, 'SIGKILL', 'the daemon died at the fault point');

  const ra = await within(a.done, 15_000, 'the first client to exit');
  const rb = await within(b.done, 15_000, 'the second client to exit');
  const resultA = /the run's result will be at (\S+)/.exec(ra.stderr)?.[1];
  const resultB = /the run's result will be at (\S+)/.exec(rb.stderr)?.[1];
  t.truthy(resultA, `A's client says where its result will be: ${ra.stderr}`);
  t.truthy(resultB, `B's client says where its result will be (B was launched): ${rb.stderr}`);
  const leaderB = Number(readFileSync(bPid, 'utf8').trim());
  t.true(leaderB > 0, 'B ran');

  // The next daemon settles the journal before it serves.
  const d2 = await startDaemon(t, { dir: d.dir });
  t.deepEqual(await waitPidsGone([leaderB], 15_000), [], "B's tree was killed by the next daemon");
  const res1 = readJson(resultA!);
  const res2 = readJson(resultB!);
  // A's child had exited, but no record of how says so: the run cannot count as judged, and says the daemon was lost.
  t.is(res1.status, 'infra_fail');
  t.is(res1.reason, 'daemon_lost');
  t.is(res2.status, 'infra_fail');
  t.is(res2.reason, 'daemon_lost');
  const st = await statusOf(d2);
  t.deepEqual(st.locks, [], 'no phantom lock');
  t.is((await lockd(d2, ['run', '-q', '--root', root, '--lock', 'x', '--wait', '0', '--', 'true'])).code, 0, 'the lock is free');
});

test('without a crash, the finished run is recorded after the next launch: its result and exit code are intact', async (t) => {
  const d = await startDaemon(t);
  cleanupRunsUnder(t, d.dir);
  const root = join(d.dir, 'root');
  const gate = join(d.dir, 'gate');
  const a = lockdSpawn(t, d, ['run', '--root', root, '--lock', 'x', '--', 'sh', '-c', `echo a-started; while [ ! -e ${gate} ]; do sleep 0.05; done; exit 3`]);
  await a.waitForStdout('a-started');
  const b = lockdSpawn(t, d, ['run', '--root', root, '--lock', 'x', '--wait', '60', '--', 'sh', '-c', 'echo b-ran; exit 4']);
  await b.waitForStderr('waiting for x');
  writeFileSync(gate, '');
  const ra = await within(a.done, 15_000, 'A to finish');
  const rb = await within(b.done, 15_000, 'B to finish');
  t.is(ra.code, 3);
  t.is(rb.code, 4);
  t.is(rb.stdout, 'b-ran\n');
  const runs = join(root, 'runs');
  const results = readdirSync(runs).map((id) => readJson(join(runs, id, 'result.json')));
  t.deepEqual(results.map((r) => r.exit_code).sort(), [3, 4], 'both runs recorded with their own exit codes');
  for (const r of results) t.is(r.status, 'fail');
});

test('a daemon killed right after a launch, before the started frame: the client never retries the run and names its result', async (t) => {
  const d = await startDaemon(t, { env: { LOCKD_FAULT_POINT: 'after_launch' } });
  cleanupRunsUnder(t, d.dir);
  const ran = join(d.dir, 'ran');
  const daemonGone = new Promise<void>((resolve) => d.proc!.once('exit', () => resolve()));
  const a = lockdSpawn(t, d, ['run', '--root', join(d.dir, 'root'), '--lock', 'once', '--', 'sh', '-c', `echo x >> ${ran}`]);
  await within(daemonGone, 20_000, 'the daemon to stop itself at the fault point');
  t.is(d.proc!.signalCode, 'SIGKILL', 'the daemon died at the fault point');
  const r = await within(a.done, 15_000, 'the client to exit');
  t.notRegex(r.stderr, /retrying/, 'a launched run is never sent again');
  const resultPath = /the run's result will be at (\S+)/.exec(r.stderr)?.[1];
  t.truthy(resultPath, `the client says where the result will be: ${r.stderr}`);
  t.not(r.code, 0);
  // The next daemon settles the run it had journaled at enqueue: a true record at the path the client named.
  await startDaemon(t, { dir: d.dir });
  const res = readJson(resultPath!);
  t.is(res.reason, 'daemon_lost');
});
