/**
 * Cluster-lock figures (docs/cluster.md) for the bench table, on an etcd of the bench's own (loopback, temp dir):
 *
 *  - uncontended acquire-and-run, as a shell user feels it: `lockd run --global NAME -- true` on a daemon with
 *    --cluster, against `etcdctl lock <prefix>/NAME true` (etcd's own recipe, one process per lock), with
 *    `node -e 0` (the floor of any Node CLI) and `lockd run --global NAME --host-only -- true` (same daemon, no etcd)
 *    in the same rounds, so the part of the gap that is etcd and the part that is Node are both visible;
 *  - the same inside the daemon (request sent → child started, through the Node API), for a cluster lock and for a
 *    --host-only global lock on the same daemon, so the cost of going through etcd is visible on its own;
 *  - cross-host handoff: two daemons ("hosts") take turns on one cluster lock; the gap is from the end stamp of
 *    one host's child to the start stamp of the other host's next child (release → etcd delete → watch event →
 *    grant → spawn).
 *
 * No etcd installed (or it would not start): `available: false` with the reason, and no figures. A failure of
 * lockd itself throws (the bench reports the scenario as FAILED). Every wait is bounded.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { benchTempDir, startBenchDaemon, CLI, type BenchDaemon } from './bench-daemon.js';
import { startEtcd, etcdAvailable, type EtcdServer } from './etcd.js';
import { submitRun } from './lockd-api.js';
import { buildStampProbe, handoffGaps, readStamps } from './stamp.js';
import { median, roundSummary, summarize, type Summary } from './stats.js';
import { nowMs, timeCommand } from './timing.js';

export interface ClusterBenchOptions {
  /** Uncounted rounds first (default 3). */
  warmup?: number;
  /** Samples of each uncontended measurement (default 20). */
  iterations?: number;
  /** Cross-host handoffs to measure (default 20). */
  handoffs?: number;
  /** Lease TTL of the bench daemons in seconds (default 10, the production default). */
  ttlSeconds?: number;
}

export interface ClusterBenchResult {
  available: boolean;
  /** Why there are no figures (etcd or etcdctl missing, or etcd would not start), else null. */
  reason: string | null;
  /** Wall time of `lockd run --global NAME -- true` (CLI process included), ms. */
  lockdRunMs: Summary | null;
  /** Wall time of `lockd run --global NAME --host-only -- true` on the same daemon (no etcd), ms. */
  lockdHostOnlyRunMs: Summary | null;
  /** Wall time of `node -e 0`, ms. */
  nodeMs: Summary | null;
  /** Wall time of `etcdctl lock <prefix>/NAME true`, ms. */
  etcdctlLockMs: Summary | null;
  /** median(lockd run) / median(etcdctl lock). */
  ratioMedian: number | null;
  /** Median over rounds of lockd run / etcdctl lock measured in the same round. */
  ratioPairedMedian: number | null;
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

function unavailable(reason: string): ClusterBenchResult {
  return {
    available: false,
    reason,
    lockdRunMs: null,
    lockdHostOnlyRunMs: null,
    nodeMs: null,
    etcdctlLockMs: null,
    ratioMedian: null,
    ratioPairedMedian: null,
    apiClusterStartMs: null,
    apiHostOnlyStartMs: null,
    handoffMs: null,
    probe: null,
  };
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

interface Contender {
  name: 'node' | 'cluster' | 'host-only' | 'etcdctl';
  cmd: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export async function runClusterBench(opts: ClusterBenchOptions = {}): Promise<ClusterBenchResult> {
  const warmup = opts.warmup ?? 3;
  const iterations = opts.iterations ?? 20;
  const handoffs = opts.handoffs ?? 20;
  const ttl = opts.ttlSeconds ?? 10;
  if (!etcdAvailable()) return unavailable('etcd and etcdctl are not installed (apt-get install etcd-server etcd-client)');
  const dir = benchTempDir();
  let etcd: EtcdServer | null = null;
  const daemons: BenchDaemon[] = [];
  try {
    try {
      etcd = await startEtcd(dir);
    } catch (e) {
      return unavailable(`etcd is installed but did not start: ${(e as Error).message.split('\n')[0]}`);
    }
    if (!etcd) return unavailable('etcd is not available');
    const endpoint = etcd.endpoint.replace(/^https?:\/\//, '');
    for (const host of ['bench-a', 'bench-b']) {
      daemons.push(
        await startBenchDaemon({
          daemonEnv: { LOCKD_CLUSTER: `etcd://${endpoint}`, LOCKD_CLUSTER_PREFIX: PREFIX, LOCKD_CLUSTER_TTL: String(ttl), LOCKD_CLUSTER_HOST: host },
        }),
      );
    }
    const [a, b] = daemons as [BenchDaemon, BenchDaemon];
    // Each host its own build root (runs go to <root>/runs), as docs/cluster.md suggests: the hosts' run records stay
    // apart (a shared root works too: GC keeps other daemons' unfinished runs for a day).
    const workOf = (d: BenchDaemon) => {
      const w = join(d.dir, 'work');
      mkdirSync(w, { recursive: true });
      return w;
    };
    const work = workOf(a);
    const workB = workOf(b);

    // 1. Uncontended, as a shell user: every command once per round, the order rotated per round, so load drift
    //    hits all of them alike. The first rounds warm up (leases granted, code paths loaded) and are not counted.
    const contenders: Contender[] = [
      { name: 'node', cmd: process.execPath, args: ['-e', '0'] },
      { name: 'cluster', cmd: process.execPath, args: [CLI, 'run', '--global', 'u', '-q', '--', 'true'], env: a.env, cwd: work },
      { name: 'host-only', cmd: process.execPath, args: [CLI, 'run', '--global', 'u', '--host-only', '-q', '--', 'true'], env: a.env, cwd: work },
      { name: 'etcdctl', cmd: etcd.etcdctl, args: ['--endpoints', etcd.endpoint, 'lock', `${PREFIX}/u`, 'true'] },
    ];
    const samples = new Map<Contender['name'], number[]>(contenders.map((c) => [c.name, []]));
    const paired: number[] = [];
    for (let round = 0; round < warmup + iterations; round++) {
      const thisRound = new Map<string, number>();
      for (let i = 0; i < contenders.length; i++) {
        const c = contenders[(i + round) % contenders.length]!;
        const r = await timeCommand(c.cmd, c.args, { env: c.env ?? a.env, cwd: c.cwd ?? work, timeoutMs: 60_000 });
        if (r.code !== 0) throw new Error(`${c.name} (${[c.cmd, ...c.args].join(' ')}) failed (exit ${r.code}): ${r.stderr.trim()}`);
        if (round >= warmup) {
          samples.get(c.name)!.push(r.ms);
          thisRound.set(c.name, r.ms);
        }
      }
      if (round >= warmup) paired.push(thisRound.get('cluster')! / thisRound.get('etcdctl')!);
    }

    // 2. Inside the daemon: cluster lock vs --host-only global lock, request → started.
    const apiCluster: number[] = [];
    const apiHost: number[] = [];
    for (let i = 0; i < warmup + iterations; i++) {
      for (const [args, into] of [
        [['--global', 'api'], apiCluster],
        [['--global', 'api', '--host-only'], apiHost],
      ] as const) {
        const t0 = nowMs();
        const h = submitRun(a, [...args, '--', 'true'], work);
        const started = await withTimeout(h.started, 30_000, 'a run start');
        if (i >= warmup) into.push(started - t0);
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
      const h = i % 2 === 0 ? submitRun(b, ['--global', 'h', '--', ...probe.argv(stamps)], workB) : submitRun(a, ['--global', 'h', '--', ...probe.argv(stamps)], work);
      await withTimeout(h.queued, 30_000, 'queueing');
      runs.push(h);
    }
    await withTimeout(gate.finished, 60_000, 'the first holder to end');
    for (const h of runs) {
      const { outcome } = await withTimeout(h.finished, 60_000, 'a handoff run');
      if (outcome.exit_code !== 0) throw new Error(`a handoff run failed: ${outcome.reason} ${outcome.message ?? ''}`);
    }
    const gaps = handoffGaps(readStamps(stamps));

    const lockdSummary = roundSummary(summarize(samples.get('cluster')!));
    const ctlSummary = roundSummary(summarize(samples.get('etcdctl')!));
    return {
      available: true,
      reason: null,
      lockdRunMs: lockdSummary,
      lockdHostOnlyRunMs: roundSummary(summarize(samples.get('host-only')!)),
      nodeMs: roundSummary(summarize(samples.get('node')!)),
      etcdctlLockMs: ctlSummary,
      ratioMedian: ctlSummary.median > 0 ? Math.round((lockdSummary.median / ctlSummary.median) * 1000) / 1000 : null,
      ratioPairedMedian: paired.length ? Math.round(median(paired) * 1000) / 1000 : null,
      apiClusterStartMs: roundSummary(summarize(apiCluster)),
      apiHostOnlyStartMs: roundSummary(summarize(apiHost)),
      handoffMs: roundSummary(summarize(gaps)),
      probe: probe.kind,
    };
  } finally {
    for (const d of daemons) await d.stop().catch(() => undefined);
    if (etcd) await etcd.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}
