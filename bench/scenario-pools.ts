/**
 * Scenario 8, pool drain: 8 named members (4 arm64, 4 x86_64) and a burst of mixed jobs submitted at once: any
 * member, an arm64 one, 2 members, 4 arm64 members, each sleeping a fixed time. Reports the time to drain the queue
 * and the member time left idle, each against the ideal schedule's lower bound (all work packed onto the members
 * with no gap: max(total member-time / 8, arm64-only member-time / 4), and the longest single job). The gap is the
 * cost of the grant rules (FIFO per member with backfill, never line-skipping) plus the per-job start cost.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startBenchDaemon } from './bench-daemon.js';
import { submitRun } from './lockd-api.js';
import { ms, ratio, target, type ScenarioResult } from './report.js';
import type { Sizes } from './sizes.js';
import { round } from './stats.js';
import { nowMs } from './timing.js';

interface Job {
  args: string[];
  members: number;
  arm64Only: boolean;
  ms: number;
}

/** A fixed mix (deterministic: the same jobs every run): 50% any 1, 25% arm64 1, 15% any 2, 10% arm64 4. */
function mix(n: number, jobMs: number): Job[] {
  let seed = 16;
  const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  return Array.from({ length: n }, () => {
    const r = rand();
    const dur = jobMs * (1 + Math.floor(rand() * 3));
    if (r < 0.5) return { args: ['--pool', 'boards'], members: 1, arm64Only: false, ms: dur };
    if (r < 0.75) return { args: ['--pool', 'boards', '--where', 'arch=arm64'], members: 1, arm64Only: true, ms: dur };
    if (r < 0.9) return { args: ['--pool', 'boards:2'], members: 2, arm64Only: false, ms: dur };
    return { args: ['--pool', 'boards:4', '--where', 'arch=arm64'], members: 4, arm64Only: true, ms: dur };
  });
}

export async function poolScenario(size: Sizes['pools']): Promise<Omit<ScenarioResult, 'seconds'>> {
  const d = await startBenchDaemon();
  try {
    const members: Record<string, Record<string, string>> = {};
    for (let i = 0; i < 4; i++) members[`arm-${i}`] = { arch: 'arm64' };
    for (let i = 0; i < 4; i++) members[`x86-${i}`] = { arch: 'x86_64' };
    writeFileSync(join(d.env.LOCKD_STATE_DIR!, 'lockd.json'), JSON.stringify({ pools: { boards: { members } } }));
    const jobs = mix(size.jobs, size.jobMs);
    const t0 = nowMs();
    const handles = jobs.map((j) => submitRun(d, [...j.args, '--', 'sleep', String(j.ms / 1000)], d.dir));
    const done = await Promise.all(handles.map(async (h) => ({ started: await h.started, finished: await h.finished })));
    const drain = Math.max(...done.map((x) => x.finished.at)) - t0;
    const failed = done.filter((x) => x.finished.outcome.exit_code !== 0).length;
    // Busy member-time as the clients saw it (start to finish, so it includes each job's start and record cost).
    const busy = done.reduce((s, x, i) => s + jobs[i]!.members * (x.finished.at - x.started), 0);
    const work = jobs.reduce((s, j) => s + j.members * j.ms, 0);
    const armWork = jobs.filter((j) => j.arm64Only).reduce((s, j) => s + j.members * j.ms, 0);
    const ideal = Math.max(work / 8, armWork / 4, ...jobs.map((j) => j.ms));
    const idle = 8 * drain - busy;
    const idealIdle = 8 * ideal - work;
    return {
      name: 'pool_drain',
      title: `pool of 8 members, ${size.jobs} mixed jobs submitted at once`,
      size: { members: 8, jobs: size.jobs, job_ms: size.jobMs },
      metrics: {
        drain_ms: round(drain),
        ideal_drain_ms: round(ideal),
        drain_vs_ideal: round(drain / ideal),
        idle_member_ms: round(idle),
        ideal_idle_member_ms: round(idealIdle),
        busy_member_ms: round(busy),
        work_member_ms: work,
        failed_jobs: failed,
      },
      rows: [
        { measurement: 'time to drain the queue', value: ms(drain, 0), detail: `ideal ≥ ${ms(ideal, 0)}, ${ratio(drain / ideal)}` },
        { measurement: 'member time left idle', value: ms(idle, 0), detail: `ideal ${ms(idealIdle, 0)} (of ${ms(8 * drain, 0)} member-time)` },
      ],
      // Loose on purpose: the ideal is a lower bound that ignores every job's start cost.
      targets: [target('jobs failed', failed, '<=', 0, 'jobs'), target('drain time / ideal bound', round(drain / ideal), '<=', 2, 'x')],
      notes: [
        'mix: 50% any 1, 25% arm64 1, 15% any 2, 10% arm64 4 (4 of the 8 are arm64); each sleeps 1-3 x job_ms',
        'ideal = max(member-time / 8, arm64-only member-time / 4, longest job): a lower bound, not an achievable schedule',
        `${failed} job(s) failed`,
      ],
    };
  } finally {
    await d.stop();
  }
}
