/**
 * A fixed-bucket histogram, as Prometheus defines one: pure counting (no clock, no I/O), so the metrics collector can
 * observe on the lock handoff path for the price of a short loop and a few additions.
 */
import type { HistogramSnapshot } from '../../protocol/messages.js';

/**
 * Waits and holds on a lab's locks run from a grant with no wait (0 s) to a board kept for a night: the bounds step
 * from 1 ms to 8 h so that both "most grants wait under a second" and "that run held the board for 2 h" can be read.
 */
export const LOCK_TIME_BUCKETS: readonly number[] = [0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 28800];

/**
 * A handoff is lockd's own time (lock files, the log, the spawn): normally a few milliseconds, seconds only when an
 * outside flock(1) user sits on a lock file. Finer bounds there, for an alert on a slow handoff.
 */
export const HANDOFF_BUCKETS: readonly number[] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class Histogram {
  /** Per bucket (not cumulative); the last one is above the largest bound. */
  private readonly counts: number[];
  private sum = 0;
  private count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }

  /** One observation, in the bounds' unit (seconds). Negative or non-finite values (a clock oddity) count as 0. */
  observe(value: number): void {
    const v = Number.isFinite(value) && value > 0 ? value : 0;
    let i = 0;
    while (i < this.bounds.length && v > this.bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += v;
    this.count++;
  }

  snapshot(): HistogramSnapshot {
    return { buckets: [...this.bounds], counts: [...this.counts], sum: this.sum, count: this.count };
  }
}
