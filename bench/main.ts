/**
 * `npm run bench [-- --quick | --smoke] [--only a,b] [--out FILE]`: every scenario side by side in one invocation,
 * a table on stdout, and the figures in bench/results.json. Each scenario starts its own daemon on a temp socket and
 * state dir and stops it by pid. See docs/performance.md for the method and the latest figures.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { REPO, setBenchLauncher, stopAllStarted } from './bench-daemon.js';
import { loadNativeLauncher } from '../src/daemon/jobs/launcher-native.js';
import { openFilesLimit } from './procfs.js';
import { renderTable, type ScenarioResult } from './report.js';
import { SIZES, type Mode, type Sizes } from './sizes.js';
import { wrapperScenario } from './scenario-wrapper.js';
import { handoffScenario } from './scenario-handoff.js';
import { throughputScenario } from './scenario-throughput.js';
import { streamingScenario } from './scenario-streaming.js';
import { scaleScenario } from './scenario-scale.js';
import { idleScenario } from './scenario-idle.js';
import { clusterScenario } from './scenario-cluster.js';
import { fastClientScenario } from './scenario-fast-client.js';
import { poolScenario } from './scenario-pools.js';
import { entryName, LAUNCHER_SHAPED, SCENARIO_NAMES, type ScenarioName } from './scenario-names.js';

type Runner = (sizes: Sizes, launcher: string) => Promise<Omit<ScenarioResult, 'seconds'>>;

const RUNNERS: Record<ScenarioName, Runner> = {
  wrapper_overhead: (s) => wrapperScenario(s.wrapper),
  handoff_latency: (s, l) => handoffScenario(s.handoff, l),
  serialized_throughput: (s) => throughputScenario(s.throughput),
  output_streaming: (s) => streamingScenario(s.streaming),
  scale: (s) => scaleScenario(s.scale),
  idle_cost: (s) => idleScenario(s.idle),
  cluster: (s) => clusterScenario(s.cluster),
  fast_client: (s) => fastClientScenario(s.fastClient),
  pool_drain: (s) => poolScenario(s.pools),
};
const SCENARIOS: Array<[ScenarioName, Runner]> = SCENARIO_NAMES.map((n) => [n, RUNNERS[n]]);
/** What the launcher shapes: job start cost, handoff, and queued throughput. */

/** File descriptors the scale scenario needs in this process (one socket per waiter) plus headroom. */
function fdsWanted(sizes: Sizes): number {
  return sizes.scale.waiters + sizes.scale.locks + 512;
}

/**
 * Node cannot raise its own RLIMIT_NOFILE; when the soft limit is too low for the scale scenario and the hard limit
 * allows more, run again under `sh -c 'ulimit -n N; exec node …'` (the daemon, a child, inherits it).
 */
function reexecWithMoreFds(wanted: number): number | null {
  const lim = openFilesLimit();
  if (!lim || lim.soft >= wanted || process.env.LOCKD_BENCH_REEXEC) return null;
  const n = Math.min(wanted, lim.hard);
  if (n <= lim.soft) return null;
  const r = spawnSync('sh', ['-c', `ulimit -n ${n} && exec "$0" "$@"`, process.execPath, ...process.execArgv, process.argv[1]!, ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, LOCKD_BENCH_REEXEC: '1' },
  });
  return r.status ?? 1;
}

/** Run scripts/bundle-client.mjs (the prepare step's second half); its outcome goes into results.json. */
async function ensureBundle(): Promise<string> {
  try {
    const mod = (await import(pathToFileURL(join(REPO, 'scripts', 'bundle-client.mjs')).href)) as { bundleClient(o: { quiet: boolean }): Promise<string> };
    return await mod.bundleClient({ quiet: true });
  } catch (e) {
    return `bundling failed: ${(e as Error).message}`;
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean' },
      smoke: { type: 'boolean' },
      only: { type: 'string' },
      out: { type: 'string' },
      'no-bundle': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`Usage: npm run bench -- [--quick | --smoke] [--only ${SCENARIO_NAMES.join(',')}] [--out FILE] [--no-bundle]\n`);
    return 0;
  }
  const mode: Mode = values.smoke ? 'smoke' : values.quick ? 'quick' : 'full';
  const sizes = SIZES[mode];
  const reexec = reexecWithMoreFds(fdsWanted(sizes));
  if (reexec !== null) return reexec;

  const only = values.only ? new Set(values.only.split(',').map((s) => s.trim())) : null;
  const unknown = only ? [...only].filter((n) => !SCENARIOS.some(([k]) => k === n)) : [];
  if (unknown.length) {
    process.stderr.write(`bench: unknown scenario(s) ${unknown.join(', ')}\n`);
    return 2;
  }
  // Measure what `npm install` produces: the bundled client (prepare = tsc + bundle). `npm run bench` has just run
  // tsc, which put the unbundled main.js back. --smoke (the test suite) leaves dist/ alone.
  const client = mode === 'smoke' || values['no-bundle'] ? { bundle: 'left as is (smoke or --no-bundle)' } : { bundle: await ensureBundle() };
  const out = resolve(values.out ?? join(REPO, 'bench', 'results.json'));
  const results: ScenarioResult[] = [];
  // The scenarios a job launcher shapes run once per launcher, side by side: native (when it loads here) and portable.
  const native = loadNativeLauncher();
  const launchers: Array<'native' | 'portable'> = native.ok ? ['native', 'portable'] : ['portable'];
  const passes: Array<[ScenarioName, Runner, 'native' | 'portable' | null]> = SCENARIOS.flatMap(([name, run]) =>
    LAUNCHER_SHAPED.has(name) ? launchers.map((l): [ScenarioName, Runner, 'native' | 'portable' | null] => [name, run, l]) : [[name, run, null]],
  );
  for (const [scenario, run, launcher] of passes) {
    if (only && !only.has(scenario)) continue;
    const name = entryName(scenario, launcher, launchers);
    setBenchLauncher(launcher);
    process.stderr.write(`bench: ${name} (${mode})…\n`);
    const t0 = performance.now();
    const loadBefore = loadavg()[0]!;
    const seconds = () => Math.round((performance.now() - t0) / 100) / 10;
    // Every figure here is wall-clock time on a shared machine: say how busy it was (the 1-minute load average).
    const load = () => ({ before: Math.round(loadBefore * 100) / 100, after: Math.round(loadavg()[0]! * 100) / 100 });
    try {
      const r = await run(sizes, launcher ?? 'default');
      const l = load();
      const launcherNote = launcher ? [`launcher: ${launcher}${native.ok ? '' : ` (native unavailable: ${native.reason})`}`] : [];
      const title = launcher && !r.title.includes('launcher') ? `${r.title} (${launcher} launcher)` : r.title;
      results.push({ ...r, name, title, notes: [...r.notes, ...launcherNote, `load average ${l.before} → ${l.after} on ${cpus().length} CPUs`], load_1m: l, seconds: seconds() });
    } catch (e) {
      results.push({ name, title: name, size: {}, metrics: {}, rows: [], targets: [], notes: [], error: (e as Error).stack ?? String(e), load_1m: load(), seconds: seconds() });
    }
  }
  const limits = openFilesLimit();
  const report = {
    generated_utc: new Date().toISOString(),
    mode,
    launchers,
    command: `npm run bench${mode === 'full' ? '' : ` -- --${mode}`}`,
    client,
    host: {
      node: process.version,
      platform: process.platform,
      kernel: release(),
      cpus: cpus().length,
      cpu_model: cpus()[0]?.model ?? null,
      memory_bytes: totalmem(),
      loadavg_1m: loadavg()[0],
      open_files_limit: limits?.soft ?? null,
    },
    scenarios: Object.fromEntries(results.map((r) => [r.name, r])),
  };
  mkdirSync(dirname(out), { recursive: true });
  // Replace, never half-write, a results file someone may be reading.
  writeFileSync(`${out}.tmp`, `${JSON.stringify(report, null, 2)}\n`);
  renameSync(`${out}.tmp`, out);
  process.stdout.write(`${renderTable(results)}\n\nresults -> ${out}\n`);
  return results.some((r) => r.error) ? 1 : 0;
}

// Interrupted: stop what the bench started (by pid), then go.
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    process.stderr.write(`bench: ${sig}: stopping the daemons it started\n`);
    void stopAllStarted().finally(() => process.exit(130));
  });
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`bench: ${(e as Error).stack ?? e}\n`);
    process.exitCode = 1;
  },
);
