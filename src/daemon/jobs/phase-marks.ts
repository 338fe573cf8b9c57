/**
 * The moments of a job's handoff (exit seen → locks released → next granted → lock files taken → launch → launched),
 * published on the diagnostics channel `lockd:job-phase` for the benchmark's per-phase breakdown (bench/phase-preload.ts).
 * With no subscriber — always, outside the bench — a mark is one boolean check.
 */
import { channel } from 'node:diagnostics_channel';

export type JobPhase = 'exit_seen' | 'released' | 'granted' | 'files_taken' | 'launch' | 'launched';

export interface PhaseMark {
  phase: JobPhase;
  run_id: string;
  pid: number | null;
  /** CLOCK_MONOTONIC in ms (process.hrtime), the clock of the bench's stamp probe. */
  t: number;
}

const phases = channel('lockd:job-phase');

export function markPhase(phase: JobPhase, runId: string, pid: number | null = null): void {
  if (phases.hasSubscribers) phases.publish({ phase, run_id: runId, pid, t: Number(process.hrtime.bigint()) / 1e6 } satisfies PhaseMark);
}
