/** --supersede KEY [--cancel-running] with the real daemon: older runs with the key end at once, naming the newer one. */
import test from 'ava';
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { startDaemon, lockdSpawn, printedPaths, readJson, tempDir, waitPidsGone } from './helpers/lockd.js';
import { detachedHolder, statusJson, waitForWaiters } from './helpers/operate.js';
import { cleanupRunsUnder, kill9 } from './helpers/crash-kit.js';

function poolDaemon(t: Parameters<typeof startDaemon>[0]) {
  const dir = tempDir();
  mkdirSync(join(dir, 'state'), { recursive: true });
  writeFileSync(join(dir, 'state', 'lockd.json'), JSON.stringify({ pools: { boards: { members: { a: {} } } } }));
  return startDaemon(t, { dir });
}

async function runIdOf(p: ReturnType<typeof lockdSpawn>): Promise<string> {
  await p.waitForStderr(/manifest -> \S+/);
  return basename(dirname(printedPaths(p.stderr()).manifest!));
}

interface Result {
  reason: string;
  exit_code: number;
  superseded_by?: string;
  signals: { sent_by: string | null };
}

test('a newer run with the same --supersede KEY ends the older queued one at once (exit 77, superseded, result names it)', async (t) => {
  const d = await poolDaemon(t);
  const h = await detachedHolder(d, 'h', ['--pool', 'boards']);
  const older = lockdSpawn(t, d, ['run', '--wait', 'inf', '--supersede', 'repo/main', '--pool', 'boards', '--', 'echo', 'older']);
  const otherKey = lockdSpawn(t, d, ['run', '--wait', 'inf', '--supersede', 'repo/dev', '--pool', 'boards', '--', 'echo', 'other']);
  await waitForWaiters(d, 'boards/a', 2);
  const olderId = await runIdOf(older);
  const newer = lockdSpawn(t, d, ['run', '--wait', 'inf', '--supersede', 'repo/main', '--pool', 'boards', '--', 'echo', 'newer']);
  const newerId = await runIdOf(newer);
  const o = await older.done;
  t.is(o.code, 77, o.stderr);
  t.regex(o.stderr, new RegExp(`lockd: superseded by run ${newerId} \\(--supersede repo/main\\)`));
  t.is(o.stdout, '', 'the superseded command never ran');
  const res = readJson<Result>(join(dirname(printedPaths(o.stderr).result!), 'result.json'));
  t.like(res, { reason: 'superseded', exit_code: 77, superseded_by: newerId });
  t.not(olderId, newerId);
  h.release();
  const [n, other] = await Promise.all([newer.done, otherKey.done]);
  t.is(n.stdout, 'newer\n', n.stderr);
  t.is(other.stdout, 'other\n', 'a different key is not superseded');
});

test('--cancel-running stops the running holder with the same key; its result says superseded and names the newer run', async (t) => {
  const d = await poolDaemon(t);
  const running = lockdSpawn(t, d, ['run', '--kill-after', '2', '--supersede', 'repo/main', '--pool', 'boards', '--', 'sh', '-c', 'echo started; exec sleep 60']);
  await running.waitForStdout('started');
  const newer = lockdSpawn(t, d, ['run', '--wait', 'inf', '--supersede', 'repo/main', '--cancel-running', '--pool', 'boards', '--', 'sh', '-c', 'echo "newer on $LOCKD_MEMBERS_boards"']);
  const newerId = await runIdOf(newer);
  const r = await running.done;
  t.is(r.code, 77, r.stderr);
  const res = readJson<Result>(printedPaths(r.stderr).result!);
  t.like(res, { reason: 'superseded', exit_code: 77, superseded_by: newerId, signals: { sent_by: 'supersede' } });
  const n = await newer.done;
  t.is(n.code, 0, n.stderr);
  t.is(n.stdout, 'newer on a\n');
});

test('--cancel-running also stops a run re-adopted after a daemon restart (same KEY): result superseded, names the newer run', async (t) => {
  const dir = tempDir();
  mkdirSync(join(dir, 'state'), { recursive: true });
  writeFileSync(join(dir, 'state', 'lockd.json'), JSON.stringify({ pools: { boards: { members: { a: {} } } } }));
  const d = await startDaemon(t, { dir });
  cleanupRunsUnder(t, dir);
  const old = await detachedHolder(d, 'old', ['--pool', 'boards', '--supersede', 'repo/main']);
  const leader = (await statusJson(d)).locks.find((l) => l.name === 'boards/a')!.holders[0]!.pid!;
  await kill9(d);
  const d2 = await startDaemon(t, { dir });
  t.is((await statusJson(d2)).locks.find((l) => l.name === 'boards/a')?.holders[0]?.id, old.runId, 're-adopted with its member');
  // Another key, or no --cancel-running: the adopted run is left alone (the newer one just waits for the member).
  const other = lockdSpawn(t, d2, ['run', '--wait', '0', '--supersede', 'repo/dev', '--cancel-running', '--pool', 'boards', '--', 'true']);
  t.is((await other.done).code, 75);
  const newer = lockdSpawn(t, d2, ['run', '--wait', '60', '--supersede', 'repo/main', '--cancel-running', '--pool', 'boards', '--', 'echo', 'newer']);
  const newerId = await runIdOf(newer);
  const n = await newer.done;
  t.is(n.code, 0, n.stderr);
  t.is(n.stdout, 'newer\n');
  t.deepEqual(await waitPidsGone([leader]), [], "the adopted run's tree was stopped");
  const res = readJson<Result & { message: string }>(join(dir, 'state', 'runs', old.runId, 'result.json'));
  t.is(res.reason, 'superseded');
  t.is(res.exit_code, 77);
  t.is(res.superseded_by, newerId);
  t.regex(res.message, /superseded by run \S+ \(--supersede repo\/main\); it had been re-adopted after a daemon restart/);
});
