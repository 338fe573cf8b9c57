/**
 * `npm run bench` works: the smallest size (--smoke) runs every scenario against its own daemons and writes a
 * results file with an entry for each. Timings are deliberately not asserted: this suite runs on loaded machines,
 * and the bench reports its targets itself.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './helpers/lockd.js';
import { entryNames } from '../bench/scenario-names.js';
import { etcdAvailability } from './helpers/etcd.js';

const BENCH = join(REPO, 'dist', 'bench', 'main.js');

interface ScenarioEntry {
  name: string;
  rows: unknown[];
  metrics: Record<string, unknown>;
  targets: unknown[];
  error?: string;
  skipped?: string;
}

test('bench --smoke runs every scenario and records each in results.json', async (t) => {
  t.timeout(600_000);
  t.true(existsSync(BENCH), 'dist/bench/main.js is built (npx tsc -p tsconfig.json)');
  const dir = mkdtempSync('/tmp/ld-bench-');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'results.json');
  const proc = spawn(process.execPath, [BENCH, '--smoke', '--out', out], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  t.teardown(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  const code = await new Promise<number | null>((resolve) => proc.once('close', (c) => resolve(c)));
  t.is(code, 0, `bench failed:\n${stdout}\n${stderr}`);

  const report = JSON.parse(readFileSync(out, 'utf8')) as { mode: string; launchers: Array<'native' | 'portable'>; scenarios: Record<string, ScenarioEntry> };
  t.is(report.mode, 'smoke');
  // The portable launcher always runs; native runs too where the addon loads (then the portable passes are `@portable`).
  t.true(report.launchers.includes('portable'));
  t.deepEqual(Object.keys(report.scenarios).sort(), entryNames(report.launchers).sort());
  // The cluster scenario needs etcd: without it, it must say so (skipped, with the reason), never fail.
  const etcd = etcdAvailability();
  for (const name of entryNames(report.launchers)) {
    const s = report.scenarios[name]!;
    t.is(s.error, undefined, `${name} failed: ${s.error ?? ''}`);
    if (name === 'cluster' && !etcd.ok) {
      t.regex(s.skipped ?? '', /etcd/, 'without etcd the cluster scenario is skipped and says why');
      t.true(stdout.includes(s.skipped!), 'the reason is printed in the table');
      continue;
    }
    t.is(s.skipped, undefined, `${name} was skipped: ${s.skipped ?? ''}`);
    t.true(s.rows.length > 0, `${name} printed no rows`);
    t.true(Object.keys(s.metrics).length > 0, `${name} recorded no metrics`);
    t.true(s.targets.length > 0, `${name} has no target`);
  }
  // The table names every scenario.
  for (const name of entryNames(report.launchers)) t.true(stdout.includes(name), `${name} missing from the printed table`);
});
