/**
 * Crashes at random points, checked against invariants rather than scripted outcomes.
 *
 * Daemon: rounds of mixed runs (attached and --detach, contending for a few exclusive locks, so some are queued,
 * some starting, running, exiting or writing results) end with a SIGKILL of the daemon after a random delay;
 * after each restart: no lock is held by a process that no longer exists, no process of an old run survives unless
 * it belongs to a re-adopted --detach run, and the jobs' own timeline shows no lock granted twice — across the
 * crashes too. At the end every run directory with a manifest has a result.json.
 *
 * Clients: `lockd run` processes SIGKILLed at random points leave no orphaned tree and no held lock, and every
 * run they started is recorded.
 *
 * Short by default; LOCKD_TEST_LONG=1 runs many more rounds and clients. Seeds are printed (LOCKD_CRASH_SEED).
 */
import test from 'ava';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, lockdSpawn, tempDir, readJson, pidAlive, type Daemon } from './helpers/lockd.js';
import { apiRun, cleanupRunsUnder, kill9, prng, runProcessesUnder, seedFromEnv, statusOf, until, within, LONG } from './helpers/crash-kit.js';
import { parseTimeline, timelineScript, violations, msToNs, type Interval } from './helpers/timeline.js';

const LOCKS = ['c1', 'c2', 'c3'];

/** Run dirs under the runs root: id → has manifest, has result. */
function runDirs(runsRoot: string): Array<{ id: string; manifest: boolean; result: boolean }> {
  if (!existsSync(runsRoot)) return [];
  return readdirSync(runsRoot)
    .filter((n) => !n.startsWith('.'))
    .map((id) => ({ id, manifest: existsSync(join(runsRoot, id, 'manifest.json')), result: existsSync(join(runsRoot, id, 'result.json')) }));
}

/** The invariants that must hold whenever a daemon has finished starting. */
async function checkInvariants(t: import('ava').ExecutionContext, d: Daemon, dir: string, round: number): Promise<void> {
  const st = await statusOf(d);
  const holders = st.locks.flatMap((l) => l.holders.map((h) => ({ lock: l.name, ...h })));
  for (const h of holders) {
    if (h.kind !== 'run' || h.pid === null || pidAlive(h.pid)) continue;
    // A run that has just exited still holds its lock until the daemon has seen the exit (a moment, longer with the
    // portable launcher's SIGCHLD path). A phantom lock is one that stays held: give the release a bounded while.
    const released = await until(
      async () => ((await statusOf(d)).locks.some((l) => l.name === h.lock && l.holders.some((x) => x.id === h.id)) ? undefined : true),
      10_000,
      `the lock of run ${h.id}, whose process is gone, to be released`,
    ).catch(() => false);
    t.true(released, `round ${round}: ${h.lock} is still held by run ${h.id} whose process ${h.pid} is gone`);
  }
  // A holder id appears at most once per exclusive lock (no lock granted twice).
  for (const l of st.locks) t.true(l.holders.length <= 1, `round ${round}: ${l.name} has ${l.holders.length} holders`);
  // Every live process of any run belongs to a run this daemon supervises (its own, or re-adopted).
  const live = new Set([...st.runs.map((r) => r.run_id), ...holders.map((h) => h.id)]);
  for (const p of await runProcessesUnder(dir)) {
    const runId = p.value.split('/').at(-1)!;
    // (A run the new daemon has just started is in st.runs; anything else is a survivor of a lost run.)
    if (!live.has(runId)) {
      const again = await statusOf(d);
      const stillUnknown = ![...again.runs.map((r) => r.run_id), ...again.locks.flatMap((l) => l.holders.map((h) => h.id))].includes(runId);
      t.false(stillUnknown && pidAlive(p.pid), `round ${round}: process ${p.pid} of run ${runId} survived, and no daemon supervises it`);
    }
  }
}

test(`SIGKILL of the daemon at random points of ${LONG ? 20 : 3} rounds of runs: the invariants hold after every restart`, async (t) => {
  const seed = seedFromEnv('LOCKD_CRASH_SEED');
  t.log(`seed ${seed} (replay with LOCKD_CRASH_SEED=${seed})`);
  const rand = prng(seed);
  const dir = tempDir();
  cleanupRunsUnder(t, dir);
  const root = join(dir, 'root');
  const runsRoot = join(root, 'runs');
  const timeline = join(dir, 'timeline');
  const plans = new Map<string, string>();
  const rounds = LONG ? 20 : 3;
  const perRound = LONG ? 24 : 10;
  let d = await startDaemon(t, { dir });
  for (let round = 0; round < rounds; round++) {
    const pending: Array<Promise<unknown>> = [];
    let someNamed!: () => void;
    const firstNamed = new Promise<void>((r) => (someNamed = r));
    for (let i = 0; i < perRound; i++) {
      const lock = LOCKS[Math.floor(rand() * LOCKS.length)]!;
      const detach = rand() < 0.3;
      const work = `sleep 0.${Math.floor(rand() * 4)}${Math.floor(rand() * 10)}`;
      const args = ['-q', '--root', root, '--keep', '0', '--lock', lock, '--wait', 'inf', ...(detach ? ['--detach'] : []), '--', 'sh', '-c', timelineScript(timeline, work)];
      pending.push(
        (async () => {
          const run = await apiRun(d, args).catch(() => null);
          if (!run) return;
          const named = await within(run.named, 30_000, 'a run id').catch(() => null);
          if (named) {
            plans.set(named.runId, lock);
            someNamed();
          }
          await within(run.done, 60_000, 'the run or the lost connection');
        })(),
      );
    }
    // Kill at a random point once the daemon has taken up work (however loaded the machine): while clients
    // connect, queue, start, run, exit or record.
    await within(firstNamed, 30_000, 'the daemon to take up a run');
    await new Promise((r) => setTimeout(r, Math.floor(rand() * 600)));
    await kill9(d);
    await within(Promise.all(pending), 60_000, 'every client of the killed daemon to see the end');
    d = await startDaemon(t, { dir });
    const passedBefore = t.passed;
    await checkInvariants(t, d, dir, round);
    // (For whoever reads a failure: what the daemon that broke an invariant logged.)
    if (passedBefore && !t.passed) t.log(`round ${round} daemon.log:\n${readFileSync(join(d.stateDir, 'daemon.log'), 'utf8').slice(-4000)}`);
  }

  // Let the last daemon settle everything (adopted runs end on their own), then every run is recorded.
  await until(async () => ((await statusOf(d)).locks.length === 0 ? true : undefined), 60_000, 'every adopted run to end');
  const dirs = await until(
    () => {
      const all = runDirs(runsRoot);
      return all.every((r) => !r.manifest || r.result) ? all : undefined;
    },
    20_000,
    'every run with a manifest to have its result.json',
  ).catch(() => runDirs(runsRoot));
  const unrecorded = dirs.filter((r) => r.manifest && !r.result).map((r) => r.id);
  t.deepEqual(unrecorded, [], 'every run directory with a manifest has a result.json');
  t.true(dirs.length >= rounds, `runs were made (${dirs.length})`);
  t.deepEqual(await runProcessesUnder(dir), [], 'nothing of any run is left');

  // No lock granted twice, across the crashes: the jobs' own start/end times per lock. A killed job has no end
  // line; its result.json end time (written once its tree was gone, before the lock could be taken) closes it.
  const { starts, ends } = parseTimeline(timeline);
  const intervals: Interval[] = [];
  for (const [runId, s] of starts) {
    const lock = plans.get(runId);
    if (!lock) continue;
    let end = ends.get(runId);
    if (end === undefined) {
      const resPath = join(runsRoot, runId, 'result.json');
      if (!existsSync(resPath)) continue;
      end = msToNs(Date.parse(String(readJson(resPath).end_time_utc)));
    }
    intervals.push({ runId, start: s.at, end, claims: [{ lock, mode: 'exclusive' }], slotOf: {} });
  }
  t.true(intervals.length > 0);
  t.deepEqual(violations(intervals), []);
});

test(`SIGKILL of ${LONG ? 200 : 16} clients at random points: no orphaned tree, no held lock, every run recorded`, async (t) => {
  const seed = seedFromEnv('LOCKD_CRASH_SEED');
  t.log(`seed ${seed} (replay with LOCKD_CRASH_SEED=${seed})`);
  const rand = prng(seed);
  const d = await startDaemon(t);
  cleanupRunsUnder(t, d.dir);
  const root = join(d.dir, 'root');
  const n = LONG ? 200 : 16;
  const clients = Array.from({ length: n }, () => {
    const lock = LOCKS[Math.floor(rand() * LOCKS.length)]!;
    // A job with a child, so a half-killed tree would show.
    return lockdSpawn(t, d, ['run', '--root', root, '--keep', '0', '--lock', lock, '--wait', 'inf', '--', 'sh', '-c', 'sleep 30 & echo started; wait']);
  });
  await Promise.all(
    clients.map(async (c) => {
      await new Promise((r) => setTimeout(r, Math.floor(rand() * 1500)));
      c.proc.kill('SIGKILL');
      await within(c.done, 20_000, 'a killed client to be gone');
    }),
  );
  // The daemon notices each lost client: queued ones leave the queue, running trees are killed.
  const held = await until(
    async () => {
      const st = await statusOf(d);
      return st.locks.length === 0 ? st.locks : undefined;
    },
    30_000,
    'every lock to be released',
  ).catch(async () => (await statusOf(d)).locks);
  t.deepEqual(held, [], `locks still held: ${JSON.stringify(await statusOf(d))}`);
  const left = await until(
    async () => {
      const p = await runProcessesUnder(d.dir);
      return p.length === 0 ? p : undefined;
    },
    30_000,
    'every job tree to be killed',
  ).catch(() => runProcessesUnder(d.dir));
  t.deepEqual(left, [], 'no orphaned process');
  const runsRoot = join(root, 'runs');
  const dirs = await until(
    () => {
      const all = runDirs(runsRoot);
      return all.every((r) => !r.manifest || r.result) ? all : undefined;
    },
    20_000,
    'every run to be recorded',
  ).catch(() => runDirs(runsRoot));
  t.deepEqual(
    dirs.filter((r) => r.manifest && !r.result).map((r) => r.id),
    [],
  );
  for (const r of dirs.filter((x) => x.result)) {
    const res = readJson(join(runsRoot, r.id, 'result.json'));
    t.is(res.reason, 'client_lost', `run ${r.id}: ${String(res.reason)}`);
  }
  t.true(pidAlive(d.pid!));
  t.deepEqual((await statusOf(d)).runs, []);
});
