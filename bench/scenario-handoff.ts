/**
 * Scenario 2, handoff latency: jobs queued on one exclusive lock (queued behind an explicit hold, so every one is
 * waiting before the first starts), then the hold is released and the jobs run back to back. Each child stamps its
 * first and last instruction (stamp.ts); the gap between one child's end and the next child's start is the handoff.
 */
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { startBenchDaemon } from './bench-daemon.js';
import { acquireHold, inBatches, localLock, releaseHold, submitRun } from './lockd-api.js';
import { ms, target, type ScenarioResult } from './report.js';
import type { Sizes } from './sizes.js';
import { buildStampProbe, handoffGaps, readStamps } from './stamp.js';
import { roundSummary, summarize } from './stats.js';

export async function handoffScenario(size: Sizes['handoff']): Promise<Omit<ScenarioResult, 'seconds'>> {
  const d = await startBenchDaemon();
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
      gaps.push(...handoffGaps(readStamps(file)));
    }
    const s = roundSummary(summarize(gaps));
    return {
      name: 'handoff_latency',
      title: `exit of one job → first instruction of the next, ${size.jobs} jobs on one exclusive lock`,
      size: { jobs_per_batch: size.jobs, batches: size.batches, probe: probe.kind },
      metrics: { gaps_ms: s, probe: probe.kind },
      rows: [
        { measurement: `handoff p50 (${s.n} gaps)`, value: ms(s.median, 2), detail: `p10 ${ms(s.p10, 2)} / p90 ${ms(s.p90, 2)}` },
        { measurement: 'handoff p99', value: ms(s.p99, 2), detail: `max ${ms(s.max, 2)}` },
      ],
      targets: [target('handoff p50', s.median, '<=', 2, 'ms'), target('handoff p99', s.p99, '<=', 10, 'ms')],
      notes: [
        `probe: ${probe.kind === 'sh-date' ? "sh -c 'date' (no C compiler found: sh and date start-up are inside every gap)" : `a ${probe.kind === 'c-static' ? 'static' : 'dynamically linked'} C program stamping CLOCK_REALTIME as its first and last act`}`,
      ],
    };
  } finally {
    await d.stop();
  }
}
