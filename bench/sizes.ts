/** How big each scenario is per mode: --smoke (proves the bench works), --quick, and the full default. */

export type Mode = 'smoke' | 'quick' | 'full';

export interface Sizes {
  wrapper: { warmup: number; rounds: number; traced: number };
  handoff: { jobs: number; batches: number };
  throughput: { jobs: number; rounds: number };
  streaming: { bytes: number; slowSeconds: number; warmup: number; rounds: number };
  scale: { waiters: number; locks: number; statusSamples: number };
  /**
   * settleSeconds: after the warm-up runs, let the daemon's deferred work (10 s) finish; then wait (bounded) until the
   * main thread has not woken for quietSeconds (V8's memory reducer, every 8 s for a while after activity).
   */
  idle: { seconds: number; settleSeconds: number; quietSeconds: number };
  /** Cluster locks on a bench etcd: uncontended rounds (after warm-up) and cross-host handoffs. */
  cluster: { warmup: number; iterations: number; handoffs: number };
  /** The native client: wall-time rounds, calls for the CPU figure, the parallel stress (native; Node's smaller). */
  fastClient: { warmup: number; rounds: number; cpuCalls: number; stressJobs: number; stressCallers: number; nodeStressJobs: number };
  /** Pool drain: jobs submitted at once to a pool of 8, each sleeping 1-3 x jobMs. */
  pools: { jobs: number; jobMs: number };
}

const MiB = 1024 * 1024;

export const SIZES: Record<Mode, Sizes> = {
  smoke: {
    wrapper: { warmup: 2, rounds: 5, traced: 3 },
    handoff: { jobs: 10, batches: 1 },
    throughput: { jobs: 20, rounds: 1 },
    streaming: { bytes: 8 * MiB, slowSeconds: 0.5, warmup: 0, rounds: 1 },
    scale: { waiters: 100, locks: 10, statusSamples: 2 },
    idle: { seconds: 1, settleSeconds: 0.5, quietSeconds: 0 },
    cluster: { warmup: 1, iterations: 2, handoffs: 2 },
    fastClient: { warmup: 1, rounds: 3, cpuCalls: 10, stressJobs: 24, stressCallers: 4, nodeStressJobs: 8 },
    pools: { jobs: 24, jobMs: 20 },
  },
  quick: {
    wrapper: { warmup: 5, rounds: 25, traced: 8 },
    handoff: { jobs: 100, batches: 1 },
    throughput: { jobs: 200, rounds: 1 },
    streaming: { bytes: 64 * MiB, slowSeconds: 2, warmup: 1, rounds: 3 },
    scale: { waiters: 1000, locks: 100, statusSamples: 5 },
    idle: { seconds: 10, settleSeconds: 12, quietSeconds: 9 },
    cluster: { warmup: 3, iterations: 20, handoffs: 30 },
    fastClient: { warmup: 5, rounds: 25, cpuCalls: 100, stressJobs: 240, stressCallers: 12, nodeStressJobs: 60 },
    pools: { jobs: 200, jobMs: 50 },
  },
  full: {
    wrapper: { warmup: 10, rounds: 60, traced: 20 },
    handoff: { jobs: 100, batches: 3 },
    throughput: { jobs: 200, rounds: 3 },
    streaming: { bytes: 1024 * MiB, slowSeconds: 4, warmup: 1, rounds: 3 },
    scale: { waiters: 10_000, locks: 1000, statusSamples: 10 },
    idle: { seconds: 10, settleSeconds: 12, quietSeconds: 9 },
    cluster: { warmup: 5, iterations: 60, handoffs: 100 },
    fastClient: { warmup: 10, rounds: 60, cpuCalls: 300, stressJobs: 1200, stressCallers: 12, nodeStressJobs: 120 },
    pools: { jobs: 200, jobMs: 100 },
  },
};
