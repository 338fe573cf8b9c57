/**
 * Background work that should follow a burst of runs, not interleave with it: auto-GC of run directories and the
 * sweep for escaped processes (core.ts), and system mode's per-user auto-GC (system-mode.ts).
 */

/**
 * Run `fn` once nothing poked for `quietMs`, and at the latest `maxMs` after the first poke, but not sooner than
 * `minIntervalMs` after its previous run: background work that should follow a burst of runs, not interleave with
 * it. Holds a timer only while armed.
 */
export class QuietTimer {
  private timer: NodeJS.Timeout | null = null;
  private firstPokeAt = 0;

  constructor(
    private readonly quietMs: number,
    private readonly maxMs: number,
    private readonly minIntervalMs: number,
    private readonly fn: () => void,
    /** When `fn` last ran (a previous timer's round of the same work), as Date.now(). */
    private lastRunAt = -Infinity,
  ) {}

  poke(): void {
    const now = Date.now();
    if (this.timer) clearTimeout(this.timer);
    else this.firstPokeAt = now;
    const due = Math.max(this.lastRunAt + this.minIntervalMs, Math.min(now + this.quietMs, this.firstPokeAt + this.maxMs));
    this.timer = setTimeout(
      () => {
        this.timer = null;
        this.lastRunAt = Date.now();
        this.fn();
      },
      Math.max(0, due - now),
    );
  }
}

/** Timing of a kind of after-burst work: quiet time, latest start after the first request, least gap between rounds. */
export interface AfterBurstTiming {
  quietMs: number;
  maxMs: number;
  minIntervalMs: number;
}

/**
 * Auto-GC after runs: 50 ms of quiet, at most 10 s late, at most every 2 s per runs root. A GC reads every run
 * directory of its root; run after every job of a long queue it took the daemon's time away from the queue itself.
 */
export const AUTO_GC_TIMING: AfterBurstTiming = { quietMs: 50, maxMs: 10_000, minIntervalMs: 2_000 };

/**
 * One QuietTimer per key (a runs root, a user's runs root): work asked for under a key while its round is pending
 * joins that round, and the latest request's `work` is the one carried out.
 */
export class AfterBurstByKey<T> {
  private readonly pending = new Map<string, T>();
  private readonly timers = new Map<string, QuietTimer>();
  /** Keys whose round ran less than minIntervalMs ago, and when (pruned as keys are scheduled again). */
  private readonly lastRun = new Map<string, number>();

  constructor(
    private readonly timing: AfterBurstTiming,
    private readonly run: (work: T) => void,
  ) {}

  schedule(key: string, work: T): void {
    this.pending.set(key, work);
    const armed = this.timers.get(key);
    if (armed) {
      armed.poke();
      return;
    }
    const now = Date.now();
    for (const [k, at] of this.lastRun) if (now - at >= this.timing.minIntervalMs) this.lastRun.delete(k);
    const timer = new QuietTimer(
      this.timing.quietMs,
      this.timing.maxMs,
      this.timing.minIntervalMs,
      () => {
        this.timers.delete(key);
        this.lastRun.set(key, Date.now());
        const w = this.pending.get(key);
        this.pending.delete(key);
        if (w !== undefined) this.run(w);
      },
      this.lastRun.get(key),
    );
    this.timers.set(key, timer);
    timer.poke();
  }
}
