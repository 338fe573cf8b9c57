/**
 * Scenario 1, wrapper overhead: the wall time of `lockd run --lock x -- true` against a warm daemon, next to
 * `node -e 0` (the floor: any Node CLI pays it), `flock f true` and `etcdctl lock x true` (when etcd is installed).
 * Commands are interleaved round by round (order rotated) so machine load hits all of them alike; medians count.
 * A second, traced pass splits lockd's time into phases (see trace-preload.ts).
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CLI, REPO, benchTempDir, startBenchDaemon, type BenchDaemon } from './bench-daemon.js';
import { startEtcd, etcdAvailable, type EtcdServer } from './etcd.js';
import { ms, ratio, target, type Row, type ScenarioResult } from './report.js';
import type { Sizes } from './sizes.js';
import { median, roundSummary, summarize, round } from './stats.js';
import { timeCommand } from './timing.js';
import { which } from './which.js';

interface Contender {
  name: string;
  cmd: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
}

const TRACE_PRELOAD = join(REPO, 'dist', 'bench', 'trace-preload.js');

export async function wrapperScenario(size: Sizes['wrapper']): Promise<Omit<ScenarioResult, 'seconds'>> {
  const notes: string[] = [];
  const d = await startBenchDaemon();
  let etcd: EtcdServer | null = null;
  try {
    const contenders: Contender[] = [
      { name: 'node -e 0', cmd: process.execPath, args: ['-e', '0'], env: d.env, cwd: d.dir },
      { name: 'lockd run', cmd: process.execPath, args: [CLI, 'run', '-q', '--lock', 'x', '--', 'true'], env: d.env, cwd: d.dir },
    ];
    const unbundled = unbundledClientShim(d.dir);
    if (unbundled) contenders.push({ name: 'lockd run (unbundled)', cmd: process.execPath, args: [unbundled, 'run', '-q', '--lock', 'x', '--', 'true'], env: d.env, cwd: d.dir });
    else notes.push('the client is not bundled (or no main.unbundled.js): no bundled/unbundled comparison');
    const flock = which('flock');
    if (flock) contenders.push({ name: 'flock', cmd: flock, args: [join(d.dir, 'flock.lock'), 'true'], env: d.env, cwd: d.dir });
    else notes.push('flock(1) not installed: comparison skipped');
    if (etcdAvailable()) {
      try {
        etcd = await startEtcd(d.dir);
      } catch (e) {
        notes.push(`etcd installed but did not start: ${(e as Error).message.split('\n')[0]}`);
      }
      if (etcd) contenders.push({ name: 'etcdctl lock', cmd: etcd.etcdctl, args: ['--endpoints', etcd.endpoint, 'lock', 'x', 'true'], env: d.env, cwd: d.dir });
    } else {
      notes.push('etcd/etcdctl not installed: the etcdctl lock comparison is skipped');
    }

    const samples = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
    const failures = new Map<string, string>();
    // lockd/node within one round: the two ran seconds apart at most, so load drift cancels out of the ratio.
    const pairedRatios: number[] = [];
    for (let round_ = 0; round_ < size.warmup + size.rounds; round_++) {
      // Rotate the order each round: nobody always runs right after the daemon's background work.
      const order = contenders.map((_, i) => contenders[(i + round_) % contenders.length]!);
      const thisRound = new Map<string, number>();
      for (const c of order) {
        const r = await timeCommand(c.cmd, c.args, { env: c.env, cwd: c.cwd });
        if (r.code !== 0) failures.set(c.name, `exit ${r.code}: ${r.stderr.trim().split('\n').pop() ?? ''}`);
        if (round_ >= size.warmup && r.code === 0) {
          samples.get(c.name)!.push(r.ms);
          thisRound.set(c.name, r.ms);
        }
      }
      const l = thisRound.get('lockd run');
      const n = thisRound.get('node -e 0');
      if (l !== undefined && n !== undefined) pairedRatios.push(l / n);
    }
    for (const [name, why] of failures) notes.push(`${name} failed at least once (${why}); failed runs are not counted`);

    const stats = Object.fromEntries([...samples].map(([k, v]) => [k, roundSummary(summarize(v))]));
    const floor = median(samples.get('node -e 0')!);
    const lockd = median(samples.get('lockd run')!);
    const rows: Row[] = [];
    for (const c of contenders) {
      const s = stats[c.name]!;
      rows.push({
        measurement: `${c.name} (median of ${s.n})`,
        value: ms(s.median),
        detail: `p10 ${ms(s.p10)} / p90 ${ms(s.p90)}; ${ratio(s.median / floor)} of node -e 0`,
      });
    }
    rows.push({
      measurement: 'lockd run overhead over node -e 0',
      value: ms(lockd - floor),
      detail: `ratio of medians ${ratio(lockd / floor)}; median of per-round ratios ${ratio(median(pairedRatios))}`,
    });
    const plain = samples.get('lockd run (unbundled)');
    if (plain?.length) rows.push({ measurement: 'bundling saves (median, unbundled - bundled)', value: ms(median(plain) - lockd) });

    const fsync = await fsyncCost(d.stateDir, size.rounds);
    rows.push({
      measurement: 'run-record write, fsync before rename (old)',
      value: ms(fsync.before, 2),
      detail: `rename first, fsync batched later (now): ${ms(fsync.after, 2)} (median of ${size.rounds}, in the state dir)`,
    });

    const breakdown = await tracedBreakdown(size.traced, notes);
    if (breakdown) {
      for (const [phase, v] of Object.entries(breakdown.phases)) rows.push({ measurement: `  phase: ${phase}`, value: ms(v, 2), detail: breakdown.describe[phase] ?? '' });
    }
    return {
      name: 'wrapper_overhead',
      title: 'lockd run --lock x -- true vs node -e 0, flock, etcdctl lock',
      size: { warmup_rounds: size.warmup, counted_rounds: size.rounds, traced_runs: size.traced },
      metrics: {
        commands: stats,
        lockd_over_node_ratio: round(lockd / floor),
        lockd_over_node_paired_ratio_median: round(median(pairedRatios)),
        record_write_ms: { fsync_before_rename: round(fsync.before), rename_then_deferred_fsync: round(fsync.after) },
        lockd_overhead_ms: round(lockd - floor),
        flock_ms: stats.flock?.median ?? null,
        etcdctl_ms: stats['etcdctl lock']?.median ?? null,
        breakdown_ms: breakdown?.phases ?? null,
      },
      rows,
      targets: [target('lockd run / node -e 0 (medians)', lockd / floor, '<=', 1.25, 'x')],
      notes,
    };
  } finally {
    await etcd?.stop();
    await d.stop();
  }
}

/**
 * When dist/src/cli/main.js is the bundle (scripts/bundle-client.mjs), a copy of bin/lockd.js that imports the plain
 * build kept beside it instead, so both clients are measured in the same rounds. Null when there is nothing to compare.
 */
function unbundledClientShim(dir: string): string | null {
  const main = join(REPO, 'dist', 'src', 'cli', 'main.js');
  const plain = join(REPO, 'dist', 'src', 'cli', 'main.unbundled.js');
  if (!existsSync(plain) || !readFileSync(main, 'utf8').startsWith('// lockd client bundle')) return null;
  const bin = readFileSync(CLI, 'utf8').replace(/^#!.*\n/, '');
  if (!bin.includes("'../dist/src/cli/main.js'")) return null;
  const shim = join(dir, 'lockd-unbundled.mjs');
  writeFileSync(shim, bin.replace("'../dist/src/cli/main.js'", JSON.stringify(pathToFileURL(plain).href)));
  return shim;
}

/**
 * What a durable run-record write costs here: writeJsonAtomic with its fsyncs before the rename (how result.json and
 * manifest.json were written on every run's path) against the rename-first order the daemon uses now. Alternated,
 * in the bench daemon's state dir (same filesystem as the runs).
 */
async function fsyncCost(dir: string, n: number): Promise<{ before: number; after: number }> {
  const { writeJsonAtomic } = await import('../src/runs/atomic-write.js');
  const record = { schema_version: 1, padding: 'x'.repeat(900) };
  const before: number[] = [];
  const after: number[] = [];
  for (let i = 0; i < Math.max(3, n); i++) {
    let t0 = performance.now();
    await writeJsonAtomic(join(dir, 'fsync-probe-a.json'), record);
    before.push(performance.now() - t0);
    t0 = performance.now();
    await writeJsonAtomic(join(dir, 'fsync-probe-b.json'), record, { sync: 'after-rename' });
    after.push(performance.now() - t0);
  }
  return { before: median(before), after: median(after) };
}

interface TraceRecord {
  role: 'client' | 'daemon';
  pid: number;
  client_pid: number | null;
  marks: Array<[string, number]>;
}

const PHASES: Array<[string, string, string, string]> = [
  // [phase, from mark, to mark, what it is]
  ['node start-up', 'spawned', 'c:preload', 'exec + Node bootstrap until the first user module runs'],
  ['client modules + request', 'c:preload', 'c:connect_call', 'loading lockd, parsing options, building the request'],
  ['connect + send', 'c:connect_call', 'c:send:run', 'socket connect, hello + run written (one write)'],
  ['daemon: accept → spawn', 'c:send:run', 'd:spawn_call', 'frame in, validation, run dir, manifest, grant, flock, log file'],
  ['daemon: spawn', 'd:spawn_call', 'd:spawn_return', 'fork/exec of the child'],
  ['child runs + exits', 'd:spawn_return', 'd:child_exit', '`true` itself, plus started bookkeeping'],
  ['daemon: exit → finished', 'd:child_exit', 'd:send:finished', 'release, output drained, result.json'],
  ['finished → client exit', 'd:send:finished', 'c:exit', 'frame to the client, client teardown'],
  ['process exit', 'c:exit', 'exited', 'Node exit to the parent seeing it'],
];

/**
 * Run `lockd run` `n` times with the trace preload in both the client and a second daemon, match client and daemon
 * records by the client's pid, and return the median of each phase (ms).
 */
async function tracedBreakdown(n: number, notes: string[]): Promise<{ phases: Record<string, number>; describe: Record<string, string> } | null> {
  if (n <= 0) return null;
  if (!existsSync(TRACE_PRELOAD)) {
    notes.push(`no ${TRACE_PRELOAD}: phase breakdown skipped (run through npm run bench)`);
    return null;
  }
  const scratch = benchTempDir();
  const traceFile = join(scratch, 'trace.jsonl');
  const preload = ['--import', pathToFileURL(TRACE_PRELOAD).href];
  let d: BenchDaemon | null = null;
  try {
    d = await startBenchDaemon({ nodeArgs: preload, daemonEnv: { LOCKD_BENCH_TRACE: traceFile, LOCKD_BENCH_TRACE_ROLE: 'daemon' } });
    const spawnedAt = new Map<number, { spawned: number; exited: number }>();
    for (let i = 0; i < n + 2; i++) {
      const t0 = performance.timeOrigin + performance.now();
      const r = await new Promise<{ pid: number; exited: number; code: number | null }>((resolve, reject) => {
        const child = spawn(process.execPath, [...preload, CLI, 'run', '-q', '--lock', 'x', '--', 'true'], {
          env: { ...d!.env, LOCKD_BENCH_TRACE: traceFile, LOCKD_BENCH_TRACE_ROLE: 'client' },
          cwd: d!.dir,
          stdio: 'ignore',
        });
        child.once('error', reject);
        child.once('exit', (code) => resolve({ pid: child.pid!, exited: performance.timeOrigin + performance.now(), code }));
      });
      // The first two are warm-up (the daemon's first run pays for lazy work).
      if (i >= 2 && r.code === 0) spawnedAt.set(r.pid, { spawned: t0, exited: r.exited });
    }
    const records = readFileSync(traceFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as TraceRecord);
    const perPhase = new Map<string, number[]>(PHASES.map(([p]) => [p, []]));
    for (const [pid, times] of spawnedAt) {
      const c = records.find((r) => r.role === 'client' && r.pid === pid);
      const dd = records.find((r) => r.role === 'daemon' && r.client_pid === pid);
      if (!c || !dd) continue;
      const at = new Map<string, number>([
        ['spawned', times.spawned],
        ['exited', times.exited],
      ]);
      for (const [k, v] of c.marks) if (!at.has(`c:${k}`)) at.set(`c:${k}`, v);
      for (const [k, v] of dd.marks) if (!at.has(`d:${k}`)) at.set(`d:${k}`, v);
      for (const [phase, from, to] of PHASES) {
        const a = at.get(from);
        const b = at.get(to);
        if (a !== undefined && b !== undefined) perPhase.get(phase)!.push(b - a);
      }
    }
    const phases = Object.fromEntries([...perPhase].filter(([, v]) => v.length).map(([k, v]) => [k, round(median(v), 2)]));
    notes.push(
      `phase breakdown: medians over ${spawnedAt.size} traced runs (the trace preload itself adds ~1 ms to node start-up); phases of different runs do not sum exactly to the untraced median`,
    );
    return { phases, describe: Object.fromEntries(PHASES.map(([p, , , what]) => [p, what])) };
  } finally {
    await d?.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
}
