/**
 * Cluster-lock figures (docs/cluster.md) for the bench table, on an etcd of the bench's own (loopback, temp dir):
 *
 *  - uncontended acquire-and-run, as a shell user feels it: `lockd run --global NAME -- true` on a daemon with
 *    --cluster, against `etcdctl lock <prefix>/NAME true` (etcd's own recipe, one process per lock);
 *  - the same inside the daemon (request sent → child started, through the Node API), for a cluster lock and for a
 *    --host-only global lock on the same daemon, so the cost of going through etcd is visible on its own;
 *  - cross-host handoff: two daemons ("hosts") take turns on one cluster lock; the gap is from the end stamp of
 *    one host's child to the start stamp of the other host's next child (release → etcd delete → watch event →
 *    grant → spawn).
 *
 * No etcd installed: `available: false` with the reason, and no figures. Every wait is bounded.
 */
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { rmSync } from 'node:fs';
import { benchTempDir, startBenchDaemon, CLI, type BenchDaemon } from './bench-daemon.js';
import { startEtcd, etcdAvailable, type EtcdServer } from './etcd.js';
import { submitRun } from './lockd-api.js';
import { buildStampProbe, handoffGaps, readStamps } from './stamp.js';
import { roundSummary, summarize, type Summary } from './stats.js';
import { nowMs, timeCommand } from './timing.js';

export interface ClusterBenchOptions {
  /** Samples of each uncontended measurement (default 20). */
  iterations?: number;
  /** Cross-host handoffs to measure (default 20). */
  handoffs?: number;
  /** Lease TTL of the bench daemons in seconds (default 10, the production default). */
  ttlSeconds?: number;
}

export interface ClusterBenchResult {
  available: boolean;
  /** Why there are no figures (etcd or etcdctl missing, or a failure), else null. */
  reason: string | null;
  /** Wall time of `lockd run --global NAME -- true` (CLI process included), ms. */
  lockdRunMs: Summary | null;
  /** Wall time of `etcdctl lock <prefix>/NAME true`, ms. */
  etcdctlLockMs: Summary | null;
  /** median(lockd run) / median(etcdctl lock). */
  ratioMedian: number | null;
  /** Inside the daemon: request sent → child started, cluster lock, ms. */
  apiClusterStartMs: Summary | null;
  /** Same daemon, same path, a --host-only global lock (no etcd), ms. */
  apiHostOnlyStartMs: Summary | null;
  /** Child end on one host → child start on the other host, ms. */
  handoffMs: Summary | null;
  /** What stamps the handoff (a static C probe when a compiler is around, else sh + date). */
  probe: string | null;
}

const PREFIX = 'lockd-bench';

function empty(reason: string): ClusterBenchResult {
  return { available: false, reason, lockdRunMs: null, etcdctlLockMs: null, ratioMedian: null, apiClusterStartMs: null, apiHostOnlyStartMs: null, handoffMs: null, probe: null };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms);
    }),
  ]);
}

export async function runClusterBench(opts: ClusterBenchOptions = {}): Promise<ClusterBenchResult> {
  const iterations = opts.iterations ?? 20;
  const handoffs = opts.handoffs ?? 20;
  const ttl = opts.ttlSeconds ?? 10;
  if (!etcdAvailable()) return empty('etcd and etcdctl are not installed (apt-get install etcd-server etcd-client)');
  const dir = benchTempDir();
  let etcd: EtcdServer | null = null;
  const daemons: BenchDaemon[] = [];
  try {
    etcd = await startEtcd(dir);
    if (!etcd) return empty('etcd is not available');
    const endpoint = etcd.endpoint.replace(/^https?:\/\//, '');
    for (const host of ['bench-a', 'bench-b']) {
      daemons.push(
        await startBenchDaemon({
          daemonEnv: { LOCKD_CLUSTER: `etcd://${endpoint}`, LOCKD_CLUSTER_PREFIX: PREFIX, LOCKD_CLUSTER_TTL: String(ttl), LOCKD_CLUSTER_HOST: host },
        }),
      );
    }
    const [a, b] = daemons as [BenchDaemon, BenchDaemon];
    const work = join(dir, 'work');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(work, { recursive: true });

    // Warm-up: leases granted, code paths loaded, on both hosts.
    for (const d of daemons) {
      const r = await timeCommand(process.execPath, [CLI, 'run', '--global', 'warm', '-q', '--', 'true'], { env: d.env, cwd: work, timeoutMs: 60_000 });
      if (r.code !== 0) throw new Error(`warm-up run failed (${r.code}): ${r.stderr}`);
    }

    // 1. Uncontended, as a shell user: lockd run vs etcdctl lock, interleaved so load drifts hit both alike.
    const lockdMs: number[] = [];
    const ctlMs: number[] = [];
    for (let i = 0; i < iterations; i++) {
      const l = await timeCommand(process.execPath, [CLI, 'run', '--global', 'u', '-q', '--', 'true'], { env: a.env, cwd: work, timeoutMs: 60_000 });
      if (l.code !== 0) throw new Error(`lockd run failed (${l.code}): ${l.stderr}`);
      lockdMs.push(l.ms);
      const c = await timeCommand(etcd.etcdctl, ['--endpoints', etcd.endpoint, 'lock', `${PREFIX}/u`, 'true'], { timeoutMs: 60_000 });
      if (c.code !== 0) throw new Error(`etcdctl lock failed (${c.code}): ${c.stderr}`);
      ctlMs.push(c.ms);
    }

    // 2. Inside the daemon: cluster lock vs --host-only global lock, request → started.
    const apiCluster: number[] = [];
    const apiHost: number[] = [];
    for (let i = 0; i < iterations; i++) {
      for (const [args, into] of [
        [['--global', 'api'], apiCluster],
        [['--global', 'api', '--host-only'], apiHost],
      ] as const) {
        const t0 = nowMs();
        const h = submitRun(a, [...args, '--', 'true'], work);
        const started = await withTimeout(h.started, 30_000, 'a run start');
        into.push(started - t0);
        await withTimeout(h.finished, 30_000, 'a run end');
      }
    }

    // 3. Cross-host handoff: runs queued alternately on the two hosts (each queued before the next is sent, so the
    //    FIFO by etcd revision alternates hosts); the gap from one child's end to the next child's start.
    const probe = buildStampProbe(dir);
    const stamps = join(dir, 'stamps');
    writeFileSync(stamps, '');
    // A first holder keeps the lock while the queue fills, so every measured handoff is a real cross-host one.
    const gate = submitRun(a, ['--global', 'h', '--', 'sh', '-c', 'sleep 1'], work);
    await withTimeout(gate.started, 30_000, 'the first holder');
    const runs = [];
    for (let i = 0; i < handoffs + 1; i++) {
      const h = submitRun(i % 2 === 0 ? b : a, ['--global', 'h', '--', ...probe.argv(stamps)], work);
      await withTimeout(h.queued, 30_000, 'queueing');
      runs.push(h);
    }
    await withTimeout(gate.finished, 60_000, 'the first holder to end');
    for (const h of runs) await withTimeout(h.finished, 60_000, 'a handoff run');
    const gaps = handoffGaps(readStamps(stamps));

    const lockdSummary = roundSummary(summarize(lockdMs));
    const ctlSummary = roundSummary(summarize(ctlMs));
    return {
      available: true,
      reason: null,
      lockdRunMs: lockdSummary,
      etcdctlLockMs: ctlSummary,
      ratioMedian: ctlSummary.median > 0 ? Math.round((lockdSummary.median / ctlSummary.median) * 1000) / 1000 : null,
      apiClusterStartMs: roundSummary(summarize(apiCluster)),
      apiHostOnlyStartMs: roundSummary(summarize(apiHost)),
      handoffMs: roundSummary(summarize(gaps)),
      probe: probe.kind,
    };
  } catch (e) {
    return empty(`cluster bench failed: ${(e as Error).message}`);
  } finally {
    for (const d of daemons) await d.stop().catch(() => undefined);
    if (etcd) await etcd.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}
