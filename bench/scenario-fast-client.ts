/**
 * The native fast client (issue 20, native/client/): `lockd-fast run -q --lock x -- true` against the Node client
 * and `flock f true` (wall time, interleaved rounds, medians), the client's own CPU per call (the `times` of a shell
 * that runs nothing but the client: the job is the daemon's child, not the shell's), and the stress of many parallel
 * callers on two locks, jobs per second, native next to the Node client in the same run.
 * LOCKD_BENCH_BASELINE=/path/to/other/lockd/bin/lockd.js adds the same native client against a daemon of that tree,
 * interleaved in the same rounds: a daemon change measured before/after under the same load.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, REPO, startBenchDaemon } from './bench-daemon.js';
import { ms, ratio, target, type Row, type ScenarioResult } from './report.js';
import type { Sizes } from './sizes.js';
import { median, round, roundSummary, summarize } from './stats.js';
import { nowMs, timeCommand } from './timing.js';
import { which } from './which.js';

export const FAST_CLIENT = join(REPO, 'prebuilds', `${process.platform}-${process.arch}`, 'lockd-fast');

function sh(script: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn('sh', ['-c', script, ...args], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    p.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-2000)));
    p.once('error', reject);
    p.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** `times` prints the shell's own, then its children's user and system time, e.g. `0m0.012s 0m0.034s`. */
function childrenCpuMs(timesOutput: string): number | null {
  const lines = timesOutput.trim().split('\n');
  const m = /(\d+)m([\d.]+)s\s+(\d+)m([\d.]+)s/.exec(lines[lines.length - 1] ?? '');
  if (!m) return null;
  return (Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4])) * 1000;
}

/** CPU per call of `PROGRAM ARGS...` run `calls` times in one shell. */
async function cpuPerCall(program: string[], calls: number, env: NodeJS.ProcessEnv, cwd: string): Promise<number | null> {
  const r = await sh(`n=$1; shift; i=0; while [ $i -lt $n ]; do "$@" >/dev/null 2>&1 || exit 1; i=$((i+1)); done; times`, ['cpu', String(calls), ...program], env, cwd);
  if (r.code !== 0) return null;
  const total = childrenCpuMs(r.stdout);
  return total === null ? null : total / calls;
}

/** `callers` shells in parallel, each running its share of `jobs` runs on lock a or b (alternating): jobs/s. */
async function stress(program: string[], jobs: number, callers: number, env: NodeJS.ProcessEnv, cwd: string): Promise<{ jobsPerSecond: number; failures: number }> {
  const per = Math.ceil(jobs / callers);
  const t0 = nowMs();
  const results = await Promise.all(
    Array.from({ length: callers }, (_, c) =>
      sh(`n=$1; l=$2; shift 2; i=0; while [ $i -lt $n ]; do "$@" run -q --wait inf --lock "$l" -- true || exit 1; i=$((i+1)); done`, ['stress', String(per), c % 2 ? 'a' : 'b', ...program], env, cwd),
    ),
  );
  const seconds = (nowMs() - t0) / 1000;
  return { jobsPerSecond: (per * callers) / seconds, failures: results.filter((r) => r.code !== 0).length };
}

export async function fastClientScenario(size: Sizes['fastClient']): Promise<Omit<ScenarioResult, 'seconds'>> {
  if (!existsSync(FAST_CLIENT)) {
    return { name: 'fast_client', title: 'native lockd run client', size: {}, metrics: {}, rows: [], targets: [], notes: [], skipped: `no native client at ${FAST_CLIENT} (npm run build:native)` };
  }
  const notes: string[] = [];
  const d = await startBenchDaemon();
  const baselineCli = process.env.LOCKD_BENCH_BASELINE;
  const base = baselineCli ? await startBenchDaemon({ cli: baselineCli }) : null;
  try {
    const flock = which('flock');
    const contenders: Array<{ name: string; cmd: string; args: string[]; env?: NodeJS.ProcessEnv; cwd?: string }> = [
      { name: 'lockd-fast run', cmd: FAST_CLIENT, args: ['run', '-q', '--lock', 'x', '--', 'true'] },
      ...(base ? [{ name: 'lockd-fast run, baseline daemon', cmd: FAST_CLIENT, args: ['run', '-q', '--lock', 'x', '--', 'true'], env: base.env, cwd: base.dir }] : []),
      { name: 'lockd run (Node)', cmd: process.execPath, args: [CLI, 'run', '-q', '--lock', 'x', '--', 'true'] },
      ...(flock ? [{ name: 'flock', cmd: flock, args: [join(d.dir, 'flock.lock'), 'true'] }] : []),
    ];
    if (!flock) notes.push('flock(1) not installed: the flock comparison is skipped');
    const samples = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
    for (let r = 0; r < size.warmup + size.rounds; r++) {
      const order = contenders.map((_, i) => contenders[(i + r) % contenders.length]!);
      for (const c of order) {
        const t = await timeCommand(c.cmd, c.args, { env: c.env ?? d.env, cwd: c.cwd ?? d.dir });
        if (t.code !== 0) notes.push(`${c.name} failed: exit ${t.code} ${t.stderr.trim().split('\n').pop() ?? ''}`);
        else if (r >= size.warmup) samples.get(c.name)!.push(t.ms);
      }
    }
    const stats = Object.fromEntries([...samples].map(([k, v]) => [k, roundSummary(summarize(v))]));
    const fast = median(samples.get('lockd-fast run')!);
    const node = median(samples.get('lockd run (Node)')!);
    const flockMs = flock ? median(samples.get('flock')!) : null;
    const baseMs = base ? median(samples.get('lockd-fast run, baseline daemon')!) : null;
    if (base) notes.push(`baseline daemon: ${baselineCli}`);
    const rows: Row[] = contenders.map((c) => {
      const s = stats[c.name]!;
      return { measurement: `${c.name} (median of ${s.n})`, value: ms(s.median), detail: `p10 ${ms(s.p10)} / p90 ${ms(s.p90)}${flockMs ? `; ${ratio(s.median / flockMs)} of flock` : ''}` };
    });

    const cpuFast = await cpuPerCall([FAST_CLIENT, 'run', '-q', '--lock', 'x', '--', 'true'], size.cpuCalls, d.env, d.dir);
    const cpuNode = await cpuPerCall([process.execPath, CLI, 'run', '-q', '--lock', 'x', '--', 'true'], Math.max(5, Math.round(size.cpuCalls / 10)), d.env, d.dir);
    rows.push({ measurement: `client CPU per call, lockd-fast (${size.cpuCalls} calls)`, value: ms(cpuFast, 2), detail: `Node client ${ms(cpuNode, 1)}` });

    const sFast = await stress([FAST_CLIENT], size.stressJobs, size.stressCallers, d.env, d.dir);
    const sNode = await stress([process.execPath, CLI], size.nodeStressJobs, size.stressCallers, d.env, d.dir);
    if (sFast.failures || sNode.failures) notes.push(`stress callers that failed: native ${sFast.failures}, Node ${sNode.failures}`);
    rows.push({
      measurement: `stress: ${size.stressJobs} jobs from ${size.stressCallers} callers on two locks, lockd-fast`,
      value: `${sFast.jobsPerSecond.toFixed(1)} jobs/s`,
      detail: `Node client (${size.nodeStressJobs} jobs): ${sNode.jobsPerSecond.toFixed(1)} jobs/s; ${ratio(sFast.jobsPerSecond / sNode.jobsPerSecond)}`,
    });
    return {
      name: 'fast_client',
      title: 'native lockd run client vs the Node client and flock',
      size: { ...size },
      metrics: {
        commands: stats,
        fast_over_flock_ratio: flockMs ? round(fast / flockMs) : null,
        ...(baseMs !== null ? { baseline_over_flock_ratio: flockMs ? round(baseMs / flockMs) : null } : {}),
        fast_over_node_ratio: round(fast / node),
        client_cpu_ms_per_call: { native: cpuFast === null ? null : round(cpuFast), node: cpuNode === null ? null : round(cpuNode) },
        stress_jobs_per_second: { native: round(sFast.jobsPerSecond), node: round(sNode.jobsPerSecond) },
      },
      rows,
      targets: [
        target('lockd-fast run / flock f true (median)', flockMs ? fast / flockMs : null, '<=', 3, 'x'),
        target('client CPU per call (lockd-fast)', cpuFast, '<=', 5, 'ms'),
        target('stress throughput, lockd-fast / Node client (same run)', sFast.jobsPerSecond / sNode.jobsPerSecond, '>=', 5, 'x'),
      ],
      notes,
    };
  } finally {
    await d.stop();
    await base?.stop();
  }
}
