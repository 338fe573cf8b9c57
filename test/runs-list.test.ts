import test from 'ava';
import type { ExecutionContext } from 'ava';
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { buildResult } from '../src/runs/build-result.js';
import { listRuns } from '../src/runs/list.js';
import { buildManifest, withStartTime, writeManifest } from '../src/runs/manifest.js';
import { writeResult } from '../src/runs/result.js';
import { compileVerdictOptions, decideVerdict, decideWithoutChild, type ChildExit } from '../src/runs/verdict.js';
import { assertValidManifest, assertValidResult, readJson, tempDir } from './runs-helpers.js';

const T0 = Date.parse('2025-02-22T10:00:00Z');

async function addRun(t: ExecutionContext, root: string, runId: string, minute: number, exit: ChildExit | 'none' | 'lock_busy'): Promise<void> {
  const dir = path.join(root, runId);
  await mkdir(dir, { recursive: true });
  const queuedAt = new Date(T0 + minute * 60_000);
  const startTime = new Date(queuedAt.getTime() + 500);
  const queued = buildManifest({
    runId,
    command: ['make', 'test', `ARCH=${runId}`],
    cwd: root,
    holder: 'tester',
    clientPid: 7,
    queuedAt,
    lockdVersion: '0.1.0',
    env: { PATH: '/bin' },
  });
  const manifest = exit === 'lock_busy' ? queued : withStartTime(queued, startTime);
  assertValidManifest(t, await readJson(await writeManifest(dir, manifest)));
  if (exit !== 'none') {
    const policy = compileVerdictOptions();
    const result = buildResult({
      runId,
      verdict: exit === 'lock_busy' ? decideWithoutChild('lock_busy', policy) : decideVerdict(exit, null, policy),
      exit: exit === 'lock_busy' ? null : exit,
      queuedAt,
      startTime: exit === 'lock_busy' ? null : startTime,
      endTime: new Date(startTime.getTime() + 1234),
      holder: 'tester',
    });
    assertValidResult(t, await readJson(await writeResult(dir, result)));
  }
  await utimes(dir, queuedAt, queuedAt);
}

async function fixture(t: ExecutionContext): Promise<string> {
  const root = await tempDir(t);
  await addRun(t, root, '250222-1000-aaaa', 0, { kind: 'exited', code: 0 });
  await addRun(t, root, '250222-1001-bbbb', 1, { kind: 'exited', code: 2 });
  await addRun(t, root, '250222-1002-cccc', 2, { kind: 'signaled', signal: 'SIGTERM', sentBy: 'timeout' });
  await addRun(t, root, '250222-1003-dddd', 3, 'lock_busy');
  await addRun(t, root, '250222-1004-eeee', 4, 'none');
  await mkdir(path.join(root, '250222-1005-ffff')); // being created: no manifest yet
  await mkdir(path.join(root, 'scratch')); // not a run
  return root;
}

test('lists runs newest first with status, reason, duration and command line', async (t) => {
  const root = await fixture(t);
  const runs = await listRuns(root);
  t.deepEqual(
    runs.map((r) => [r.run_id, r.status, r.reason]),
    [
      ['250222-1004-eeee', 'running', null],
      ['250222-1003-dddd', 'error', 'lock_busy'],
      ['250222-1002-cccc', 'timeout', 'timeout'],
      ['250222-1001-bbbb', 'fail', 'exit_nonzero'],
      ['250222-1000-aaaa', 'pass', 'exit_zero'],
    ],
  );
  const pass = runs[4]!;
  t.is(pass.duration_ms, 1234);
  t.is(pass.command_line, 'make test ARCH=250222-1000-aaaa');
  t.is(pass.start_time_utc, '2025-02-22T10:00:00.500Z');
  t.is(pass.dir, path.join(root, '250222-1000-aaaa'));
  t.is(runs[1]!.start_time_utc, null, 'a run that never started has no start time');
  t.is(runs[1]!.duration_ms, null);
  t.is(runs[0]!.start_time_utc, '2025-02-22T10:04:00.500Z', 'a running run shows its manifest start time');
});

test('filters by status, one or several, and limits', async (t) => {
  const root = await fixture(t);
  t.deepEqual(
    (await listRuns(root, { status: 'fail' })).map((r) => r.run_id),
    ['250222-1001-bbbb'],
  );
  t.deepEqual(
    (await listRuns(root, { status: ['pass', 'running'] })).map((r) => r.run_id),
    ['250222-1004-eeee', '250222-1000-aaaa'],
  );
  t.deepEqual(
    (await listRuns(root, { limit: 2 })).map((r) => r.run_id),
    ['250222-1004-eeee', '250222-1003-dddd'],
  );
  t.deepEqual(await listRuns(root, { status: 'infra_fail' }), []);
});

test('a run without result that is not live is shown with status null; a corrupt result too', async (t) => {
  const root = await fixture(t);
  await writeFile(path.join(root, '250222-1001-bbbb', 'result.json'), '{"half": ');
  const runs = await listRuns(root, { isLive: () => false });
  const byId = new Map(runs.map((r) => [r.run_id, r]));
  t.is(byId.get('250222-1004-eeee')!.status, null);
  t.is(byId.get('250222-1001-bbbb')!.status, null);
  t.is(byId.get('250222-1001-bbbb')!.command_line, 'make test ARCH=250222-1001-bbbb');
  t.is(byId.get('250222-1000-aaaa')!.status, 'pass');
  const live = await listRuns(root, { isLive: (id) => id === '250222-1004-eeee' });
  t.is(live[0]!.status, 'running');
});

test('a missing runs root lists nothing', async (t) => {
  const base = await tempDir(t);
  t.deepEqual(await listRuns(path.join(base, 'nope')), []);
});
