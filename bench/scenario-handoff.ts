/**
 * Scenario 2, handoff latency: jobs queued on one exclusive lock (queued behind an explicit hold, so every one is
 * waiting before the first starts), then the hold is released and the jobs run back to back. Each child stamps its
 * first and last instruction (stamp.ts); the gap between one child's end and the next child's start is the handoff.
 */
import { join } from 'node:path';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { REPO, startBenchDaemon } from './bench-daemon.js';
import { acquireHold, inBatches, localLock, releaseHold, submitRun } from './lockd-api.js';
import { ms, target, type ScenarioResult } from './report.js';
import type { Sizes } from './sizes.js';
import { buildStampProbe, handoffGaps, readStamps, type Stamp } from './stamp.js';
import { roundSummary, summarize } from './stats.js';

const PHASE_PRELOAD = join(REPO, 'dist', 'bench', 'phase-preload.js');

interface PhaseMark {
  phase: string;
  run_id: string;
  pid: number | null;
  t: number;
}

/**
 * The handoff split into the daemon's phases (its diagnostics-channel marks, one clock) between the previous job's
 * exit and the next job's first instruction (the C probe's stamps, CLOCK_MONOTONIC like the marks; with the sh
 * fallback's wall-clock stamps the two phases that compare both clocks are left out).
 */
const PHASES: Array<[string, (p: Record<string, number>, n: Record<string, number>, end: number, start: number) => number]> = [
  ['child exit → exit seen', (p, _n, end) => p.exit_seen! - end],
  ['exit seen → locks released', (p) => p.released! - p.exit_seen!],
  ['released → next granted', (p, n) => n.granted! - p.released!],
  ['granted → lock files taken', (_p, n) => n.files_taken! - n.granted!],
  ['files taken → launch (log opened)', (_p, n) => n.launch! - n.files_taken!],
  ['launch call (spawn)', (_p, n) => n.launched! - n.launch!],
  ['launched → first instruction (exec)', (_p, n, _e, start) => start - n.launched!],
];

export async function handoffScenario(size: Sizes['handoff'], launcher: string): Promise<Omit<ScenarioResult, 'seconds'>> {
  const d = await startBenchDaemon(existsSync(PHASE_PRELOAD) ? { nodeArgs: ['--import', PHASE_PRELOAD], daemonEnv: { LOCKD_BENCH_PHASES: join(REPO, 'bench', `.phases-${process.pid}.jsonl`) } } : {});
  const phasesFile = join(REPO, 'bench', `.phases-${process.pid}.jsonl`);
  const allStamps: Stamp[][] = [];
  let breakdown: Array<{ phase: string; ms: ReturnType<typeof roundSummary> }> = [];
  try {
    const probe = buildStampProbe(d.dir);
    const gaps: number[] = [];
    for (let batch = 0; batch < size.batches; batch++) {
      const file = join(d.dir, `stamps-${batch}.txt`);
      const lockName = `handoff-${batch}`;
      const gate = acquireHold(d, localLock(lockName, d.dir), d.dir);
      const { holdId } = await gate.acquired;
      // Submit in order, each queued before the next is sent, so the queue order is the submission order.
      const runs = await inBatches(
        Array.from({ length: size.jobs }, (_, i) => i),
        1,
        async () => {
          const r = submitRun(d, ['--lock', lockName, '--', ...probe.argv(file)], d.dir);
          await r.queued;
          return r;
        },
      );
      await releaseHold(d, holdId, d.dir);
      const outcomes = await Promise.all(runs.map((r) => r.finished));
      const bad = outcomes.filter((o) => o.outcome.exit_code !== 0);
      if (bad.length) throw new Error(`${bad.length} handoff jobs failed, e.g. ${bad[0]!.outcome.reason}: ${bad[0]!.outcome.message ?? ''}`);
      if (!existsSync(file)) throw new Error('no stamps were written');
      const stamps = readStamps(file);
      allStamps.push(stamps);
      gaps.push(...handoffGaps(stamps));
    }
    await d.stop();
    if (existsSync(phasesFile)) {
      const marks = readFileSync(phasesFile, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as PhaseMark);
      breakdown = phaseBreakdownAll(marks, allStamps).filter((b) => probe.kind !== 'sh-date' || !CROSS_CLOCK.has(b.phase));
    }
    const s = roundSummary(summarize(gaps));
    return {
      name: 'handoff_latency',
      title: `exit of one job → first instruction of the next, ${size.jobs} jobs on one exclusive lock (${launcher} launcher)`,
      size: { jobs_per_batch: size.jobs, batches: size.batches, probe: probe.kind, launcher },
      metrics: { gaps_ms: s, probe: probe.kind, launcher, phases_ms: breakdown },
      rows: [
        { measurement: `handoff p50 (${s.n} gaps)`, value: ms(s.median, 2), detail: `p10 ${ms(s.p10, 2)} / p90 ${ms(s.p90, 2)}` },
        { measurement: 'handoff p99', value: ms(s.p99, 2), detail: `max ${ms(s.max, 2)}` },
        ...breakdown.map((b) => ({ measurement: `  phase: ${b.phase}`, value: ms(b.ms.median, 3), detail: `p90 ${ms(b.ms.p90, 3)}` })),
      ],
      targets: [target('handoff p50', s.median, '<=', 2, 'ms'), target('handoff p99', s.p99, '<=', 10, 'ms')],
      notes: [
        `probe: ${probe.kind === 'sh-date' ? "sh -c 'date' (no C compiler found: sh and date start-up are inside every gap)" : `a ${probe.kind === 'c-static' ? 'static' : 'dynamically linked'} C program stamping CLOCK_MONOTONIC as its first and last act`}`,
      ],
    };
  } finally {
    await d.stop();
    rmQuietly(phasesFile);
  }
}

/** The phases that compare a stamp with a mark: meaningless when the stamps are wall-clock (the sh probe). */
const CROSS_CLOCK = new Set(['child exit → exit seen', 'launched → first instruction (exec)']);

function phaseBreakdownAll(marks: PhaseMark[], batches: Stamp[][]): Array<{ phase: string; ms: ReturnType<typeof roundSummary> }> {
  // Each batch is its own queue: gaps never span two batches.
  const merged = PHASES.map(([phase]) => ({ phase, values: [] as number[] }));
  for (const stamps of batches) {
    const one = phaseBreakdownRaw(marks, stamps);
    one.forEach((v, i) => {
      merged[i]!.values.push(...v);
    });
  }
  return merged.map((m) => ({ phase: m.phase, ms: roundSummary(summarize(m.values)) }));
}

function phaseBreakdownRaw(marks: PhaseMark[], stamps: Stamp[]): number[][] {
  const byRun = new Map<string, Record<string, number>>();
  const runOfPid = new Map<number, string>();
  for (const m of marks) {
    const r = byRun.get(m.run_id) ?? {};
    r[m.phase] = m.t;
    byRun.set(m.run_id, r);
    if (m.phase === 'launched' && m.pid !== null) runOfPid.set(m.pid, m.run_id);
  }
  const values: number[][] = PHASES.map(() => []);
  let prev: { pid: number; end: number } | null = null;
  for (const s of stamps) {
    const t = Number(s.ns) / 1e6;
    if (s.kind === 'E') {
      prev = { pid: s.pid, end: t };
      continue;
    }
    if (!prev) continue;
    const p = byRun.get(runOfPid.get(prev.pid) ?? '');
    const n = byRun.get(runOfPid.get(s.pid) ?? '');
    if (p && n) {
      PHASES.forEach(([, f], i) => {
        const v = f(p, n, prev!.end, t);
        if (Number.isFinite(v)) values[i]!.push(v);
      });
    }
  }
  return values;
}

function rmQuietly(file: string): void {
  try {
    rmSync(file, { force: true });
  } catch {
    // nothing to remove
  }
}
