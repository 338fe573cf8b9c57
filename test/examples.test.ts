/**
 * The examples run for real against a real daemon: the Makefile (parallel arches, a queue on one emulator lock,
 * a global lock, the maintenance targets), the QEMU wrapper with a stand-in emulator, and the GitHub Actions
 * workflow's structure. examples/labview needs PowerShell and is only checked for what it promises.
 */
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, REPO, lockd, readJson, startDaemon, stopProcess, type Daemon } from './helpers/lockd.js';

const MAKEFILE_DIR = join(REPO, 'examples', 'make');
const LOCKD_CMD = `${process.execPath} ${CLI}`;

interface Proc {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a program to completion (bounded: killed after the limit). */
function run(t: { teardown(fn: () => Promise<void>): void }, cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd = REPO, limitMs = 90_000): Promise<Proc> {
  const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => stopProcess(child, 3000));
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function make(t: Parameters<typeof run>[0], d: Daemon, target: string, vars: Record<string, string>, jobs = 4): Promise<Proc> {
  return run(t, 'make', ['-s', `-j${jobs}`, '-C', MAKEFILE_DIR, target, `LOCKD=${LOCKD_CMD}`, ...Object.entries(vars).map(([k, v]) => `${k}=${v}`)], d.env);
}

interface Interval {
  label: string;
  start: bigint;
  end: bigint;
}

/** The stand-in's stamps file: "start LABEL NS" / "end LABEL NS" lines, paired per label. */
function intervals(path: string): Interval[] {
  const starts = new Map<string, bigint>();
  const out: Interval[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n').filter(Boolean)) {
    const [what, label, ns] = line.split(' ') as [string, string, string];
    if (what === 'start') starts.set(label, BigInt(ns));
    else out.push({ label, start: starts.get(label)!, end: BigInt(ns) });
  }
  return out.sort((a, b) => (a.start < b.start ? -1 : 1));
}

function results(runsRoot: string): Array<Record<string, unknown>> {
  if (!existsSync(runsRoot)) return [];
  return readdirSync(runsRoot)
    .filter((id) => existsSync(join(runsRoot, id, 'result.json')))
    .map((id) => readJson(join(runsRoot, id, 'result.json')));
}

// ------------------------------------------------------------------------------------------------ Makefile

test('make -j4 test-matrix: every arch runs at the same time, each under its own qemu lock, all pass', async (t) => {
  const d = await startDaemon(t);
  const build = join(d.dir, 'build');
  const stamps = join(d.dir, 'stamps');
  // The stand-ins wait for each other: the target only succeeds if all three arches really overlap.
  const r = await make(t, d, 'test-matrix', { BUILD_ROOT: build, STAMPS: stamps, ARCHES: 'x86_64 riscv64 aarch64', STAND_IN_MEET: join(d.dir, 'meet'), STAND_IN_MEET_COUNT: '3' });
  t.is(r.code, 0, r.stderr);
  const iv = intervals(stamps);
  t.deepEqual(iv.map((i) => i.label).sort(), ['test-aarch64', 'test-riscv64', 'test-x86_64']);
  const lastStart = iv.reduce((m, i) => (i.start > m ? i.start : m), 0n);
  const firstEnd = iv.reduce((m, i) => (i.end < m ? i.end : m), iv[0]!.end);
  t.true(lastStart < firstEnd, 'all three sessions were running at once');
  for (const arch of ['x86_64', 'riscv64', 'aarch64']) t.true(existsSync(join(build, arch, '.locks', 'qemu.lock')), arch);
  const res = results(join(build, 'runs'));
  t.is(res.length, 3);
  for (const x of res) {
    t.is(x.status, 'pass');
    t.is(x.reason, 'structured_passed');
  }
});

test('make -j4 test-suites: suites on one arch queue for the same emulator lock and never overlap', async (t) => {
  const d = await startDaemon(t);
  const build = join(d.dir, 'build');
  const stamps = join(d.dir, 'stamps');
  const r = await make(t, d, 'test-suites', { BUILD_ROOT: build, STAMPS: stamps, ARCH: 'riscv64', SUITES: 'boot smoke net', LOCK_WAIT: '120' });
  t.is(r.code, 0, r.stderr);
  const iv = intervals(stamps);
  t.deepEqual(iv.map((i) => i.label).sort(), ['suite-boot', 'suite-net', 'suite-smoke']);
  for (let i = 1; i < iv.length; i++) t.true(iv[i - 1]!.end < iv[i]!.start, `${iv[i - 1]!.label} ended before ${iv[i]!.label} started`);
  // The later ones really waited for the lock (lockd said so), and all three ran under the same lock file.
  t.regex(r.stderr, /lockd: waiting for qemu/);
  const res = results(join(build, 'runs'));
  t.is(res.length, 3);
  const lockPaths = new Set(res.map((x) => (x.locks as Array<{ path: string }>)[0]!.path));
  t.deepEqual([...lockPaths], [join(build, 'riscv64', '.locks', 'qemu.lock')]);
});

test('make test fails when the guest reports a failed test; LOCK_WAIT and TEST_LOCK_WAIT become --wait', async (t) => {
  const d = await startDaemon(t);
  const build = join(d.dir, 'build');
  const r = await make(t, d, 'test', { BUILD_ROOT: build, STAMPS: join(d.dir, 'stamps'), STAND_IN_FAIL: '1', LOCK_WAIT: '5' }, 1);
  t.not(r.code, 0);
  const [res] = results(join(build, 'runs'));
  t.is(res!.status, 'fail');
  t.is(res!.reason, 'structured_failed');
  // The dry runs show the flag mapping without running anything.
  const dry = (vars: string[]) => spawnSync('make', ['-n', '-C', MAKEFILE_DIR, ...vars], { encoding: 'utf8' }).stdout;
  t.regex(dry(['test', 'LOCK_WAIT=7']), /--wait 7 /);
  t.regex(dry(['test', 'LOCK_WAIT=7', 'TEST_LOCK_WAIT=9']), /--wait 9 /);
  t.regex(dry(['run', 'RUN_LOCK_WAIT=inf']), /--wait inf /);
  t.notRegex(dry(['test']), /--wait/);
  t.regex(dry(['test']), /^lockd run --root build --arch x86_64 --lock qemu/m);
  t.regex(dry(['gc-runs']), /^lockd gc --root build --keep 20$/m);
  t.regex(dry(['gc-runs', 'RUNS_KEEP=3']), /--keep 3$/m);
});

test('make deps runs under the global lock deps-fetch; make run runs one session for the arch', async (t) => {
  const d = await startDaemon(t);
  const build = join(d.dir, 'build');
  const stamps = join(d.dir, 'stamps');
  const deps = await make(t, d, 'deps', { BUILD_ROOT: build, STAMPS: stamps });
  t.is(deps.code, 0, deps.stderr);
  const [depsRes] = results(join(d.stateDir, 'runs'));
  t.like((depsRes!.locks as unknown[])[0], { name: 'deps-fetch', scope: 'global' });
  const r = await make(t, d, 'run', { BUILD_ROOT: build, STAMPS: stamps, ARCH: 'aarch64' });
  t.is(r.code, 0, r.stderr);
  t.deepEqual(
    intervals(stamps).map((i) => i.label),
    ['deps', 'run-aarch64'],
  );
  t.true(existsSync(join(build, 'aarch64', '.locks', 'qemu.lock')));
});

test('make gc-runs, lock-status and lock-clean-stale drive lockd gc/status/clean-stale (each checked when the command exists)', async (t) => {
  const d = await startDaemon(t);
  const build = join(d.dir, 'build');
  const stamps = join(d.dir, 'stamps');
  const available = async (cmd: string) => (await lockd(d, [cmd, '--help'])).code === 0;
  // Some runs to collect and some lock files to look at.
  const r = await make(t, d, 'test-suites', { BUILD_ROOT: build, STAMPS: stamps, SUITES: 'a b c', LOCK_WAIT: '120' });
  t.is(r.code, 0, r.stderr);
  t.is(results(join(build, 'runs')).length, 3);
  let checked = 0;
  if (await available('gc')) {
    const gc = await make(t, d, 'gc-runs', { BUILD_ROOT: build, RUNS_KEEP: '1' }, 1);
    t.is(gc.code, 0, gc.stderr);
    t.is(results(join(build, 'runs')).length, 1);
    checked++;
  } else t.log('lockd gc is not available yet: gc-runs not exercised');
  if (await available('status')) {
    const st = await make(t, d, 'lock-status', { BUILD_ROOT: build }, 1);
    t.is(st.code, 0, st.stderr);
    checked++;
  } else t.log('lockd status is not available yet: lock-status not exercised');
  if (await available('clean-stale')) {
    const cs = await make(t, d, 'lock-clean-stale', { BUILD_ROOT: build }, 1);
    t.is(cs.code, 0, cs.stderr);
    checked++;
  } else t.log('lockd clean-stale is not available yet: lock-clean-stale not exercised');
  t.log(`${checked} of 3 maintenance targets exercised`);
  // Whatever exists, the targets name the right commands.
  const dry = spawnSync('make', ['-n', '-C', MAKEFILE_DIR, 'lock-status', 'lock-clean-stale', 'BUILD_ROOT=/b'], { encoding: 'utf8' }).stdout;
  t.regex(dry, /^lockd status --root \/b$/m);
  t.regex(dry, /^lockd clean-stale --root \/b$/m);
});

// ------------------------------------------------------------------------------------------------ QEMU wrapper

/** A stand-in for qemu-system-$ARCH: records its arguments, prints what a guest test harness prints. */
function fakeQemu(dir: string, failed: number): string {
  const path = join(dir, 'fake-qemu');
  writeFileSync(
    path,
    `#!/bin/sh
printf '%s\\n' "$@" > "${join(dir, 'qemu-args')}"
echo "Linux version 6.x (stand-in)"
echo 'TEST_RESULT_JSON: {"schema_version":1,"failed":${failed},"done":true}'
echo 'TEST_SUMMARY: failed=${failed}'
# Emulators exit with codes that say nothing about the guest's tests: lockd ignores this one.
exit 3
`,
  );
  chmodSync(path, 0o755);
  return path;
}

test('run-qemu-session.sh runs QEMU under the per-arch qemu lock, judges the guest output and prints the result path', async (t) => {
  const d = await startDaemon(t);
  const hasQemu = spawnSync('sh', ['-c', 'command -v qemu-system-riscv64'], { stdio: 'ignore' }).status === 0;
  t.log(hasQemu ? 'qemu-system-riscv64 is installed, but no guest image exists here: using the stand-in' : 'qemu-system-riscv64 is absent: using the stand-in');
  const build = join(d.dir, 'build');
  const env = { ...d.env, ARCH: 'riscv64', BUILD_ROOT: build, QEMU: fakeQemu(d.dir, 0), LOCKD: LOCKD_CMD, SESSION_TIMEOUT: '60' };
  const r = await run(t, 'sh', [join(REPO, 'examples', 'qemu', 'run-qemu-session.sh'), '-s'], env, d.dir);
  t.is(r.code, 0, r.stderr);
  const m = /^result: (.+)$/m.exec(r.stdout);
  t.truthy(m, r.stdout);
  const res = readJson(m![1]!);
  t.is(res.status, 'pass');
  t.is(res.reason, 'structured_passed');
  t.is(res.child_exit_code, 3);
  t.like((res.locks as unknown[])[0], { name: 'qemu', scope: 'local', path: join(build, 'riscv64', '.locks', 'qemu.lock') });
  t.true(m![1]!.startsWith(join(build, 'runs', 'qemu-riscv64-')));
  const args = readFileSync(join(d.dir, 'qemu-args'), 'utf8').split('\n');
  t.deepEqual(args.slice(0, 2), ['-machine', 'virt']);
  t.true(args.includes('-nographic') && args.includes('-no-reboot'));
  t.is(args[args.indexOf('-kernel') + 1], join(build, 'riscv64', 'Image'));
  t.is(args[args.indexOf('-append') + 1], 'console=ttyS0 panic=-1');
  t.is(args[args.length - 2], '-s', "the caller's extra arguments come last");
});

test('run-qemu-session.sh exits 1 with the result path when the guest reports failures, 2 for an unknown arch', async (t) => {
  const d = await startDaemon(t);
  const env = { ...d.env, ARCH: 'x86_64', BUILD_ROOT: join(d.dir, 'build'), QEMU: fakeQemu(d.dir, 2), LOCKD: LOCKD_CMD };
  const r = await run(t, 'sh', [join(REPO, 'examples', 'qemu', 'run-qemu-session.sh')], env, d.dir);
  t.is(r.code, 1, r.stderr);
  const m = /^result: (.+)$/m.exec(r.stdout);
  t.is(readJson(m![1]!).reason, 'structured_failed');
  t.deepEqual(readFileSync(join(d.dir, 'qemu-args'), 'utf8').split('\n').slice(0, 4), ['-machine', 'q35', '-cpu', 'max']);
  const bad = await run(t, 'sh', [join(REPO, 'examples', 'qemu', 'run-qemu-session.sh')], { ...env, ARCH: 'sparc64' }, d.dir);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /no machine defaults for ARCH=sparc64; set QEMU_MACHINE/);
});

// ------------------------------------------------------------------------------------------------ GitHub Actions

interface Step {
  name?: string;
  run?: string;
  if?: string;
  uses?: string;
}
interface Workflow {
  on?: unknown;
  jobs: Record<string, { 'runs-on': unknown; strategy?: { matrix?: Record<string, unknown> }; steps: Step[] }>;
}

/** The workflow as data: python3's yaml (BaseLoader keeps `on` a string key) when it is there, else null. */
function loadYaml(path: string): Workflow | null {
  const r = spawnSync('python3', ['-c', 'import json,sys,yaml; print(json.dumps(yaml.load(open(sys.argv[1]), Loader=yaml.BaseLoader)))', path], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  return JSON.parse(r.stdout) as Workflow;
}

test('github-actions/board.yml: a matrix queueing on the lab board with lockd run, and acquire/release around steps', (t) => {
  const path = join(REPO, 'examples', 'github-actions', 'board.yml');
  const text = readFileSync(path, 'utf8');
  t.false(text.includes('\t'), 'YAML forbids tabs for indentation');
  const wf = loadYaml(path);
  if (wf === null) {
    t.log('python3 yaml is not available: checked the structure with patterns only');
    t.regex(text, /^jobs:$/m);
    t.regex(text, /^ {6}matrix:$/m);
    t.regex(text, /lockd run --global lab-board --wait 3600/);
    t.regex(text, /lockd acquire .*>> "\$GITHUB_ENV"/);
    t.regex(text, /if: always\(\)/);
    return;
  }
  t.truthy(wf.on);
  const runJobs = Object.values(wf.jobs).filter((j) => j.steps.some((s) => /lockd run --global lab-board --wait 3600/.test(s.run ?? '')));
  t.is(runJobs.length, 1);
  t.truthy(runJobs[0]!.strategy?.matrix, 'the lockd run job is a matrix');
  t.deepEqual(runJobs[0]!['runs-on'], ['self-hosted', 'lab']);
  const holdJob = Object.values(wf.jobs).find((j) => j.steps.some((s) => /lockd acquire/.test(s.run ?? '')))!;
  t.truthy(holdJob);
  const steps = holdJob.steps;
  const acquire = steps.findIndex((s) => /lockd acquire --global lab-board .*>> "\$GITHUB_ENV"/.test(s.run ?? ''));
  const release = steps.findIndex((s) => /lockd release "\$LOCKD_HOLD_ID"/.test(s.run ?? ''));
  t.true(acquire >= 0 && release > acquire + 1, 'steps run between acquire and release');
  t.regex(steps[release]!.if ?? '', /^always\(\)/);
  t.is(release, steps.length - 1, 'release is the last step');
});

// ------------------------------------------------------------------------------------------------ LabVIEW

test('labview example (not runnable here: needs PowerShell): the four actions, the lockd commands and the exit-code table', (t) => {
  const ps1 = readFileSync(join(REPO, 'examples', 'labview', 'Session-Lock.ps1'), 'utf8');
  for (const action of ['Acquire', 'Release', 'Heartbeat', 'Inspect']) t.regex(ps1, new RegExp(`^\\s+'${action}' \\{$`, 'm'), action);
  for (const cmd of ["'acquire', '--global'", "'heartbeat'", "'release'", "'inspect', $LockName, '--global', '--json'"]) t.true(ps1.includes(cmd), cmd);
  t.regex(ps1, /\$EXIT_QUEUE_TIMEOUT = 11/);
  t.regex(ps1, /\$LOCKD_NOT_OBTAINED = 75/);
  t.regex(ps1, /GITHUB_OUTPUT/);
  const readme = readFileSync(join(REPO, 'examples', 'labview', 'README.md'), 'utf8');
  t.regex(readme, /^\| 10 +\| stale lock found +\| \*\*not applicable\*\*/m);
  t.regex(readme, /^\| 11 +\| queue timeout +\| 11: `lockd acquire` exit 75/m);
  t.regex(readme, /Not runnable in lockd's own test suite/);
});
