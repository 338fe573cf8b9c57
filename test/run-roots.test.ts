/**
 * Issue 21 point 5: a run recorded under `--root build` (build/runs/ID) is found by `lockd runs`, `logs`, `result`
 * and `wait` without `--root` again: the daemon remembers the runs roots it used in <state-dir>/run-roots.json.
 */
import test from 'ava';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { lockd, readJson, startDaemon, waitForFile } from './helpers/lockd.js';
import { runIdOf } from './helpers/operate.js';

test('runs, logs, result and wait find a run recorded under --root without being told the root', async (t) => {
  const d = await startDaemon(t);
  const build = join(d.dir, 'build');
  mkdirSync(build);
  const r = await lockd(d, ['run', '--root', build, '--lock', 'x', '--', 'sh', '-c', 'echo from-build; exit 4']);
  t.is(r.code, 4, r.stderr);
  const id = runIdOf(r.stderr);
  await waitForFile(join(d.stateDir, 'run-roots.json'));
  t.deepEqual(readJson<{ roots: string[] }>(join(d.stateDir, 'run-roots.json')).roots, [join(build, 'runs')]);
  // A second run in the default root, so the listing merges both roots.
  const plain = await lockd(d, ['run', '--lock', 'y', '--', 'true']);
  t.is(plain.code, 0, plain.stderr);

  const listed = await lockd(d, ['runs', '--json']);
  t.is(listed.code, 0, listed.stderr);
  const runs = JSON.parse(listed.stdout) as Array<{ run_id: string; dir: string }>;
  t.true(
    runs.some((x) => x.run_id === id && x.dir === join(build, 'runs', id)),
    listed.stdout,
  );
  t.true(
    runs.some((x) => x.run_id === runIdOf(plain.stderr)),
    listed.stdout,
  );
  const logs = await lockd(d, ['logs', id]);
  t.is(logs.code, 0, logs.stderr);
  t.is(logs.stdout, 'from-build\n');
  const result = await lockd(d, ['result', id]);
  t.is(result.code, 0, result.stderr);
  t.is((JSON.parse(result.stdout) as { exit_code: number }).exit_code, 4);
  t.is((await lockd(d, ['wait', id])).code, 4);
  // An explicit root elsewhere is taken at its word: the run is not there.
  const elsewhere = await lockd(d, ['result', '--runs-root', join(d.dir, 'other'), id]);
  t.is(elsewhere.code, 2, elsewhere.stderr);
});
