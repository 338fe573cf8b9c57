/**
 * Pool members in a run's records (result.json, .meta, the events stream, the journal) and through a daemon crash:
 * a re-adopted --detach run keeps its member, an attached run's member is free again, no member is held twice.
 */
import test from 'ava';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, lockd, lockdSpawn, printedPaths, readJson, tempDir, waitForFile, waitPidsGone } from './helpers/lockd.js';
import { detachedHolder, followEvents, statusJson } from './helpers/operate.js';
import { cleanupRunsUnder, kill9, until } from './helpers/crash-kit.js';
import { JOURNAL_FILE } from '../src/daemon/records/journal.js';

const BOARDS = { pools: { boards: { members: { 'rpi4-a': { arch: 'arm64' }, 'rpi4-b': { arch: 'arm64' } } } } };

function poolDir(): string {
  const dir = tempDir();
  mkdirSync(join(dir, 'state'), { recursive: true });
  writeFileSync(join(dir, 'state', 'lockd.json'), JSON.stringify(BOARDS));
  return dir;
}

test('result.json, the .meta file, the events stream and the journal name the members a run holds', async (t) => {
  const d = await startDaemon(t, { dir: poolDir() });
  const events = await followEvents(t, d);
  const memberLock = join(d.stateDir, 'pools', 'boards', 'rpi4-b.lock');
  const job = lockdSpawn(t, d, [
    'run',
    '--pool',
    'boards',
    '--member',
    'rpi4-b',
    '--',
    'sh',
    '-c',
    `echo go; while [ ! -s ${memberLock}.meta ]; do sleep 0.05; done; cat ${memberLock}.meta > ${d.dir}/meta; while [ ! -e ${d.dir}/done ]; do sleep 0.05; done`,
  ]);
  await job.waitForStdout('go');
  await waitForFile(join(d.dir, 'meta'));
  // The journal is appended off the start path: wait (bounded) for the started record.
  const journal = await until(
    () => {
      const text = readFileSync(join(d.stateDir, JOURNAL_FILE), 'utf8');
      return text.includes(JSON.stringify(memberLock)) ? text : undefined;
    },
    10_000,
    'the journal to name the member lock file',
  );
  t.true(journal.includes('"boards/rpi4-b"'));
  writeFileSync(join(d.dir, 'done'), '');
  const r = await job.done;
  t.is(r.code, 0, r.stderr);
  t.regex(readFileSync(join(d.dir, 'meta'), 'utf8'), /"pid"/, 'the member lock file has a .meta while held');
  const result = readJson<{ members: unknown; locks: Array<{ name: string; path: string; wait_ms: number }> }>(printedPaths(r.stderr).result!);
  t.deepEqual(result.members, { boards: [{ name: 'rpi4-b', properties: { arch: 'arm64' } }] });
  t.deepEqual(result.locks, [{ name: 'boards/rpi4-b', scope: 'local', mode: 'exclusive', path: memberLock, wait_ms: result.locks[0]!.wait_ms }]);
  const granted = await events.waitFor((e) => e.type === 'granted' && e.locks.includes(memberLock), 'granted with the member');
  const exited = await events.waitFor((e) => e.type === 'exited' && e.id === granted.id, 'exited with the member');
  t.true(exited.locks.includes(memberLock));
});

test('kill -9 with members held: the re-adopted --detach run keeps its member, the attached run leaves none held', async (t) => {
  const dir = poolDir();
  const d = await startDaemon(t, { dir });
  cleanupRunsUnder(t, dir);
  const det = await detachedHolder(d, 'det', ['--pool', 'boards', '--member', 'rpi4-a']);
  const attached = lockdSpawn(null, d, ['run', '--pool', 'boards', '--member', 'rpi4-b', '--', 'sh', '-c', 'echo held; exec sleep 60']);
  await attached.waitForStdout('held');
  const before = await statusJson(d);
  const leaderB = before.locks.find((l) => l.name === 'boards/rpi4-b')!.holders[0]!.pid!;
  await kill9(d);
  const d2 = await startDaemon(t, { dir });
  const st = await statusJson(d2);
  const a = st.locks.find((l) => l.name === 'boards/rpi4-a');
  t.is(a?.holders[0]?.id, det.runId, 'the adopted run holds its member before anyone is served');
  t.deepEqual(await waitPidsGone([leaderB]), [], "the attached run's job was stopped with its daemon");
  t.falsy(
    st.locks.find((l) => l.name === 'boards/rpi4-b' && l.holders.length > 0),
    'no phantom holder of the attached run member',
  );
  const busy = await lockd(d2, ['run', '--wait', '0', '--pool', 'boards', '--member', 'rpi4-a', '--', 'true']);
  t.is(busy.code, 75, 'the adopted member is not granted twice');
  const free = await lockd(d2, ['run', '--wait', '0', '--pool', 'boards', '--where', 'arch=arm64', '--', 'sh', '-c', 'echo "$LOCKD_MEMBERS_boards"']);
  t.is(free.stdout, 'rpi4-b\n', free.stderr);
  // Queued for the adopted member; granted once the adopted run ends.
  const next = lockdSpawn(t, d2, ['run', '--wait', 'inf', '--pool', 'boards', '--member', 'rpi4-a', '--', 'sh', '-c', 'echo "$LOCKD_MEMBERS_boards"']);
  await until(async () => ((await statusJson(d2)).locks.find((l) => l.name === 'boards/rpi4-a')?.waiters.length ? true : undefined), 20_000, 'the run to queue');
  det.release();
  const n = await next.done;
  t.is(n.code, 0, n.stderr);
  t.is(n.stdout, 'rpi4-a\n');
  await attached.done;
  t.true(existsSync(join(d2.stateDir, JOURNAL_FILE)));
});
