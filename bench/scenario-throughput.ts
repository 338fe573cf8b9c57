/**
 * Scenario 3, serialized throughput: N `true` jobs queued on one lock, from the first grant to the last exit,
 * against N `flock f true` processes queued on one file. Both queues are fully formed behind a holder before the
 * clock starts; rounds alternate which side goes first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startBenchDaemon, type BenchDaemon } from './bench-daemon.js';
import { acquireHold, inBatches, localLock, releaseHold, submitRun } from './lockd-api.js';
import { ms, ratio, target, type ScenarioResult } from './report.js';
import type { Sizes } from './sizes.js';
import { median, round } from './stats.js';
import { nowMs, sleep } from './timing.js';
import { which } from './which.js';

async function lockdRound(d: BenchDaemon, jobs: number, lockName: string): Promise<number> {
  const gate = acquireHold(d, localLock(lockName, d.dir), d.dir);
  const { holdId } = await gate.acquired;
  const runs = await inBatches(
    Array.from({ length: jobs }, (_, i) => i),
    16,
    async () => {
      const r = submitRun(d, ['--lock', lockName, '--', 'true'], d.dir);
      await r.queued;
      return r;
    },
  );
  const t0 = nowMs();
  await releaseHold(d, holdId, d.dir);
  const done = await Promise.all(runs.map((r) => r.finished));
  const bad = done.filter((o) => o.outcome.exit_code !== 0);
  if (bad.length) throw new Error(`${bad.length} lockd jobs failed: ${bad[0]!.outcome.reason}`);
  return Math.max(...done.map((o) => o.at)) - t0;
}

/** Blocked flock waiters on the file's inode, from /proc/locks ("->" lines are waiters). */
function flockWaiters(file: string): number {
  const ino = statSync(file).ino;
  return readFileSync('/proc/locks', 'utf8')
    .split('\n')
    .filter((l) => l.includes('->') && l.includes('FLOCK') && new RegExp(`:${ino} `).test(l)).length;
}

async function flockRound(flock: string, dir: string, jobs: number): Promise<number> {
  const file = join(dir, 'throughput.flock');
  writeFileSync(file, '');
  // The holder keeps the lock until its stdin closes.
  const holder = spawn(flock, [file, 'cat'], { stdio: ['pipe', 'ignore', 'ignore'] });
  const holderExit = new Promise<void>((r) => holder.once('exit', () => r()));
  const children: ChildProcess[] = [];
  try {
    // Wait (bounded) until the holder has the lock, then queue everyone and wait until all are blocked.
    const deadline = Date.now() + 30_000;
    while (!readFileSync('/proc/locks', 'utf8').includes(`:${statSync(file).ino} `)) {
      if (Date.now() > deadline) throw new Error('flock holder did not take the lock within 30 s');
      await sleep(10);
    }
    const exits: Array<Promise<number>> = [];
    for (let i = 0; i < jobs; i++) {
      const c = spawn(flock, [file, 'true'], { stdio: 'ignore' });
      children.push(c);
      exits.push(new Promise((r) => c.once('exit', () => r(nowMs()))));
    }
    while (flockWaiters(file) < jobs) {
      if (Date.now() > deadline) throw new Error(`only ${flockWaiters(file)} of ${jobs} flock processes queued within 30 s`);
      await sleep(10); // /proc/locks has no change notification
    }
    const t0 = nowMs();
    holder.stdin!.end();
    const ends = await Promise.all(exits);
    return Math.max(...ends) - t0;
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    if (holder.exitCode === null) holder.kill('SIGKILL');
    await holderExit;
  }
}

export async function throughputScenario(size: Sizes['throughput']): Promise<Omit<ScenarioResult, 'seconds'>> {
  const d = await startBenchDaemon();
  const notes: string[] = [];
  try {
    const flock = process.platform === 'linux' ? which('flock') : null;
    if (!flock) notes.push('flock(1) or /proc/locks not available: the flock side is skipped');
    // Warm-up: one small lockd round (first-run lazy work in the daemon) before anything counts.
    await lockdRound(d, Math.min(20, size.jobs), 'throughput-warmup');
    const lockdTimes: number[] = [];
    const flockTimes: number[] = [];
    for (let r = 0; r < size.rounds; r++) {
      const lockdFirst = r % 2 === 0;
      if (lockdFirst) lockdTimes.push(await lockdRound(d, size.jobs, `throughput-${r}`));
      if (flock) flockTimes.push(await flockRound(flock, d.dir, size.jobs));
      if (!lockdFirst) lockdTimes.push(await lockdRound(d, size.jobs, `throughput-${r}`));
    }
    const l = median(lockdTimes);
    const f = flockTimes.length ? median(flockTimes) : null;
    const rel = f ? l / f : null;
    return {
      name: 'serialized_throughput',
      title: `${size.jobs} queued \`true\` jobs on one lock: first grant → last exit, vs flock(1)`,
      size: { jobs: size.jobs, rounds: size.rounds },
      metrics: {
        lockd_ms: round(l),
        lockd_rounds_ms: lockdTimes.map((v) => round(v)),
        lockd_jobs_per_s: round((size.jobs * 1000) / l),
        flock_ms: f === null ? null : round(f),
        flock_rounds_ms: flockTimes.map((v) => round(v)),
        flock_jobs_per_s: f === null ? null : round((size.jobs * 1000) / f),
        lockd_over_flock_ratio: rel === null ? null : round(rel),
      },
      rows: [
        { measurement: `lockd: ${size.jobs} jobs (median of ${lockdTimes.length})`, value: ms(l, 0), detail: `${((size.jobs * 1000) / l).toFixed(0)} jobs/s; ${(l / size.jobs).toFixed(2)} ms/job` },
        {
          measurement: `flock: ${size.jobs} processes`,
          value: f === null ? 'n/a' : ms(f, 0),
          detail: f === null ? 'skipped' : `${((size.jobs * 1000) / f).toFixed(0)} jobs/s; lockd/flock ${ratio(rel)}`,
        },
      ],
      targets: [target('lockd / flock time', rel, '<=', 1.5, 'x')],
      notes,
    };
  } finally {
    await d.stop();
  }
}
