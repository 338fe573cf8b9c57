/**
 * Loaded with `node --import` into a bench daemon: collects the daemon's handoff phase marks (the diagnostics channel
 * `lockd:job-phase`, src/daemon/jobs/phase-marks.ts) in memory and writes them, one JSON line each, to
 * $LOCKD_BENCH_PHASES when the daemon exits, so writing them costs nothing during the measurement.
 */
import { subscribe } from 'node:diagnostics_channel';
import { writeFileSync } from 'node:fs';

const out = process.env.LOCKD_BENCH_PHASES;
const marks: unknown[] = [];
if (out) {
  subscribe('lockd:job-phase', (m) => {
    marks.push(m);
  });
  process.on('exit', () => {
    writeFileSync(out, marks.map((m) => JSON.stringify(m)).join('\n') + (marks.length ? '\n' : ''));
  });
}
