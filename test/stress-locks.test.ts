/**
 * 200 concurrent clients with random lock sets (exclusive, shared and slots; 1–3 locks each) against one daemon
 * on a small machine. The jobs log when they hold their locks; the checker proves there was never an overlap the
 * modes forbid (nor a slot index used twice at once), and that every request completed or failed with a
 * recorded reason in its result.json. Default: 200 clients × 1 run; LOCKD_TEST_LONG=1: 200 clients × 10 runs.
 * Clients use the Node API (one in-process connection each) instead of 200 CLI processes.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, readJson } from './helpers/lockd.js';
import { apiRun, cleanupRunsUnder, statusOf, within, prng, seedFromEnv, runProcessesUnder, LONG } from './helpers/crash-kit.js';
import { parseTimeline, timelineScript, violations, msToNs, type Claim, type Interval } from './helpers/timeline.js';
import type { RunOutcome } from '../src/protocol/messages.js';

const CLIENTS = 200;
const ROUNDS = LONG ? 10 : 1;

const EXCLUSIVE_OR_SHARED = ['e1', 'e2', 'e3', 'e4'];
const SLOTS: Record<string, number> = { s1: 3, s2: 2 };

test(`${CLIENTS} concurrent clients × ${ROUNDS} run(s) with random lock sets: no forbidden overlap, every request accounted for`, async (t) => {
  const seed = seedFromEnv('LOCKD_STRESS_SEED');
  t.log(`seed ${seed} (replay with LOCKD_STRESS_SEED=${seed})`);
  const rand = prng(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
  const d = await startDaemon(t);
  cleanupRunsUnder(t, d.dir);
  const root = join(d.dir, 'root');
  const timeline = join(d.dir, 'timeline');

  const plans = new Map<string, Claim[]>();
  const outcomes: Array<{ claims: Claim[]; outcome: RunOutcome | null; wait0: boolean }> = [];
  const client = async (c: number) => {
    for (let round = 0; round < ROUNDS; round++) {
      const all = [...EXCLUSIVE_OR_SHARED, ...Object.keys(SLOTS)];
      const n = 1 + Math.floor(rand() * 3);
      const names = new Set<string>();
      while (names.size < n) names.add(pick(all));
      const claims: Claim[] = [...names].map((name) => (SLOTS[name] ? { lock: name, mode: 'slots', slots: SLOTS[name] } : { lock: name, mode: rand() < 0.4 ? 'shared' : 'exclusive' }));
      const lockArgs = claims.flatMap((cl) => ['--lock', cl.mode === 'slots' ? `${cl.lock}:slots=${cl.slots}` : cl.mode === 'shared' ? `${cl.lock}:shared` : cl.lock]);
      // Most wait as long as it takes; some give up at once, so refusals are exercised (and must be recorded).
      const wait0 = rand() < 0.1;
      const work = `sleep 0.0${Math.floor(rand() * 5)}`;
      const run = await apiRun(d, [
        '-q',
        '--root',
        root,
        '--keep',
        '0',
        ...lockArgs,
        '--wait',
        wait0 ? '0' : 'inf',
        '--',
        'sh',
        '-c',
        timelineScript(
          timeline,
          work,
          claims.filter((x) => x.mode === 'slots').map((x) => x.lock),
        ),
      ]);
      const named = await within(run.named, 120_000, `client ${c} to be queued`).catch(() => null);
      if (named) plans.set(named.runId, claims);
      const outcome = await within(run.done, 300_000, `client ${c} to finish`);
      outcomes.push({ claims, outcome, wait0 });
    }
  };
  const started = Date.now();
  await Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));
  t.log(`${outcomes.length} runs in ${Date.now() - started} ms`);

  // Every request completed, or failed with a recorded reason.
  t.is(outcomes.length, CLIENTS * ROUNDS);
  const missing = outcomes.filter((o) => o.outcome === null);
  t.deepEqual(missing, [], 'every request got an outcome');
  for (const { outcome, wait0 } of outcomes) {
    if (!outcome) continue;
    t.true(existsSync(outcome.result_path), `result.json for ${outcome.run_id}`);
    const res = readJson(outcome.result_path);
    t.is(res.reason, outcome.reason, 'the client and the record agree');
    if (outcome.exit_code !== 0) t.true(wait0 && outcome.reason === 'lock_busy', `only --wait 0 runs may fail, with lock_busy: ${outcome.run_id} ${outcome.reason}`);
  }
  const passed = outcomes.filter((o) => o.outcome?.exit_code === 0).length;
  t.true(passed >= CLIENTS * ROUNDS * 0.8, `${passed} runs passed`);

  // No overlap the modes forbid, from the jobs' own clocks.
  const { starts, ends } = parseTimeline(timeline);
  const intervals: Interval[] = [];
  for (const { outcome } of outcomes) {
    if (outcome?.exit_code !== 0) continue;
    const s = starts.get(outcome.run_id);
    const e = ends.get(outcome.run_id);
    t.truthy(s && e, `the job of ${outcome.run_id} logged its start and end`);
    if (s && e) intervals.push({ runId: outcome.run_id, start: s.at, end: e, claims: plans.get(outcome.run_id) ?? [], slotOf: s.slotOf });
  }
  t.is(intervals.length, passed);
  t.deepEqual(violations(intervals), []);
  // The checker is not vacuous: the same history with one interval stretched over another is caught.
  const ex = intervals.filter((iv) => iv.claims.some((c) => c.lock === 'e1' && c.mode === 'exclusive'));
  if (ex.length >= 2) {
    const forged = intervals.map((iv) => (iv === ex[1] ? { ...iv, start: ex[0]!.start, end: ex[0]!.end + msToNs(1) } : iv));
    t.true(violations(forged).length > 0, 'a forged overlap is detected');
  }
  t.deepEqual((await statusOf(d)).locks, [], 'nothing is held afterwards');
  t.deepEqual(await runProcessesUnder(d.dir), [], 'no process outlived its run');
});
