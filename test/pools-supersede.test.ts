/** --supersede KEY [--cancel-running] with the real daemon: older runs with the key end at once, naming the newer one. */
import test from 'ava';
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { startDaemon, lockdSpawn, printedPaths, readJson, tempDir } from './helpers/lockd.js';
import { detachedHolder, waitForWaiters } from './helpers/operate.js';

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
