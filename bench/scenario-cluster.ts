/**
 * Scenario 7, cluster locks (docs/cluster.md): uncontended `lockd run --global NAME -- true` on a --cluster daemon
 * against `etcdctl lock`, the daemon's own start latency with and without etcd, and the cross-host handoff, on an
 * etcd of the bench's own (cluster.ts). Without etcd/etcdctl the scenario is reported as skipped, with the reason.
 */
import { ms, ratio, target, type ScenarioResult } from './report.js';
import type { Sizes } from './sizes.js';
import { runClusterBench } from './cluster.js';

export async function clusterScenario(size: Sizes['cluster']): Promise<Omit<ScenarioResult, 'seconds'>> {
  const r = await runClusterBench({ warmup: size.warmup, iterations: size.iterations, handoffs: size.handoffs });
  const base = {
    name: 'cluster',
    title: 'lockd run --global NAME -- true on a --cluster daemon vs etcdctl lock; cross-host handoff',
    size: { warmup_rounds: size.warmup, counted_rounds: size.iterations, handoffs: size.handoffs },
  };
  if (!r.available) {
    return { ...base, metrics: { available: false, reason: r.reason }, rows: [], targets: [], notes: [], skipped: r.reason ?? 'unavailable' };
  }
  const run = r.lockdRunMs!;
  const hostOnly = r.lockdHostOnlyRunMs!;
  const node = r.nodeMs!;
  const ctl = r.etcdctlLockMs!;
  const api = r.apiClusterStartMs!;
  const apiHost = r.apiHostOnlyStartMs!;
  const h = r.handoffMs!;
  return {
    ...base,
    metrics: {
      available: true,
      lockd_run_cluster_ms: run,
      lockd_run_host_only_ms: hostOnly,
      node_e0_ms: node,
      etcdctl_lock_ms: ctl,
      lockd_over_etcdctl_ratio: r.ratioMedian,
      lockd_over_etcdctl_paired_ratio_median: r.ratioPairedMedian,
      api_start_cluster_ms: api,
      api_start_host_only_ms: apiHost,
      cross_host_handoff_ms: h,
      probe: r.probe,
    },
    rows: [
      {
        measurement: `lockd run --global (cluster) (median of ${run.n})`,
        value: ms(run.median),
        detail: `p10 ${ms(run.p10)} / p90 ${ms(run.p90)}; ${ratio(r.ratioMedian)} of etcdctl lock (per-round ratios: ${ratio(r.ratioPairedMedian)})`,
      },
      { measurement: 'etcdctl lock', value: ms(ctl.median), detail: `p10 ${ms(ctl.p10)} / p90 ${ms(ctl.p90)}` },
      { measurement: 'lockd run --global --host-only', value: ms(hostOnly.median), detail: `same daemon, no etcd; cluster − host-only ${ms(run.median - hostOnly.median)}` },
      { measurement: 'node -e 0', value: ms(node.median), detail: `the floor of any Node CLI; ${ratio(node.median / ctl.median)} of etcdctl lock` },
      { measurement: 'daemon: request → started, cluster', value: ms(api.median, 2), detail: `host-only ${ms(apiHost.median, 2)}; p90 ${ms(api.p90, 2)} vs ${ms(apiHost.p90, 2)}` },
      { measurement: `cross-host handoff p50 (${h.n} gaps)`, value: ms(h.median, 2), detail: `p10 ${ms(h.p10, 2)} / p90 ${ms(h.p90, 2)}` },
      { measurement: 'cross-host handoff p99', value: ms(h.p99, 2), detail: `max ${ms(h.max, 2)}` },
    ],
    targets: [target('lockd run --global / etcdctl lock (medians)', r.ratioMedian, '<=', 1.2, 'x')],
    notes: [
      'uncontended: node -e 0, lockd run (cluster), lockd run --host-only and etcdctl lock interleaved, order rotated per round; etcd on loopback, data in a temp dir',
      "cross-host handoff: two daemons on one machine and one etcd, runs queued alternately on each; gap = one child's last instruction → the other host's next child's first",
      `probe: ${r.probe}`,
    ],
  };
}
