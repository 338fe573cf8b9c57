/**
 * Issue 20 point 3, one command for users: a real `npm install` of the packed package makes `lockd` (bin/lockd) the
 * native `lockd run` client where it works, and leaves the JS stand-in everywhere else (native/client/place-bin.mjs).
 * - the package is packed from this tree (`npm pack`), then installed into a temp project, globally into a temp
 *   prefix (`npm install -g --prefix`), and run through npx (a project's bin, and npx's own cache). Its dependencies are bundled into the tarball (copied
 *   from this tree's node_modules) only so the installs work with `--offline` and an empty cache: the bin placement,
 *   the links and the scripts are npm's own;
 * - proof that the native client ran: the linked file is an ELF executable, and with LOCKD_FAST_DEBUG=1 it says
 *   when it hands over (it must for `status`, it must not for `run`);
 * - a git checkout's bin/lockd never changes; a native client that fails its self-check leaves (or puts back) the
 *   JS stand-in. Windows keeps the JS bin by rule (the Wine suite runs bin/lockd.js).
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO, startDaemon, tempDir } from './helpers/lockd.js';

const { STAND_IN, isNativeFile } = (await import(pathToFileURL(join(REPO, 'native', 'client', 'place-bin.mjs')).href)) as {
  STAND_IN: string;
  isNativeFile(path: string): boolean;
};

const HANDOVER = /^lockd-fast: handing over to the Node CLI/m;
const VERSION = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version as string;

function sh(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv }) {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout ?? '', stderr: `${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

/** `npm pack` of this tree, with the production dependencies bundled (see the header). Returns the tarball path. */
function packWithBundledDeps(dir: string): string {
  const packed = sh('npm', ['pack', '--ignore-scripts', '--pack-destination', dir], { cwd: REPO });
  if (packed.code !== 0) throw new Error(packed.stderr);
  const tgz = join(dir, packed.stdout.trim().split('\n').at(-1)!);
  const stage = join(dir, 'stage');
  mkdirSync(stage);
  const untar = sh('tar', ['-xzf', tgz, '-C', stage], { cwd: dir });
  if (untar.code !== 0) throw new Error(untar.stderr);
  const pkgDir = join(stage, 'package');
  const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean; devOptional?: boolean }> };
  for (const [key, entry] of Object.entries(lock.packages)) {
    if (!key.startsWith('node_modules/') || entry.dev || entry.devOptional) continue;
    cpSync(join(REPO, key), join(pkgDir, key), { recursive: true, verbatimSymlinks: true });
  }
  const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
  pkg.bundleDependencies = Object.keys(pkg.dependencies);
  writeFileSync(join(pkgDir, 'package.json'), JSON.stringify(pkg, null, 2));
  rmSync(tgz);
  const repacked = sh('npm', ['pack', '--ignore-scripts', '--pack-destination', dir], { cwd: pkgDir });
  if (repacked.code !== 0) throw new Error(repacked.stderr);
  return join(dir, repacked.stdout.trim().split('\n').at(-1)!);
}

/** npm with its own empty cache, offline: nothing is fetched. */
function npm(args: string[], cwd: string, cache: string) {
  return sh('npm', [...args, '--offline', '--cache', cache, '--no-audit', '--no-fund', '--loglevel=error'], { cwd });
}

let work = '';
let tarball = '';
test.before(() => {
  work = tempDir('ib');
  tarball = packWithBundledDeps(work);
});
test.after.always(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

test('npm install makes lockd the native client: run runs natively, status hands over, npx lockd run works', async (t) => {
  const project = join(work, 'project');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), '{"name":"uses-lockd","version":"1.0.0","private":true}');
  const inst = npm(['install', tarball], project, join(work, 'cache-local'));
  t.is(inst.code, 0, inst.stderr);
  const bin = join(project, 'node_modules', '.bin', 'lockd');
  t.true(isNativeFile(realpathSync(bin)), 'node_modules/.bin/lockd is the native client');
  t.true(realpathSync(bin).endsWith(join('node_modules', 'lockd', 'bin', 'lockd')));
  t.false(isNativeFile(join(project, 'node_modules', 'lockd', 'bin', 'lockd.js')), 'bin/lockd.js stays the Node CLI');

  const d = await startDaemon(t);
  const env = { ...d.env, LOCKD_FAST_DEBUG: '1' };
  const run = sh(bin, ['run', '-q', '--', 'echo', 'native-run'], { cwd: project, env });
  t.is(run.code, 0, run.stderr);
  t.is(run.stdout, 'native-run\n');
  t.notRegex(run.stderr, HANDOVER);
  const truth = sh(bin, ['run', '-q', '--', 'true'], { cwd: project, env });
  t.is(truth.code, 0, truth.stderr);
  const failing = sh(bin, ['run', '-q', '--', 'sh', '-c', 'exit 7'], { cwd: project, env });
  t.is(failing.code, 7, failing.stderr);

  const status = sh(bin, ['status'], { cwd: project, env });
  t.is(status.code, 0, status.stderr);
  t.regex(status.stderr, /handing over to the Node CLI: not `lockd run`/);
  t.regex(status.stdout, new RegExp(`^lockd ${VERSION}, pid ${d.pid}`));

  const npx = sh('npx', ['--offline', '--no', 'lockd', 'run', '--', 'echo', 'hello'], { cwd: project, env });
  t.is(npx.code, 0, npx.stderr);
  t.is(npx.stdout, 'hello\n');
  t.notRegex(npx.stderr, HANDOVER);

  const alias = sh(join(project, 'node_modules', '.bin', 'lockd-fast'), ['run', '-q', '--', 'echo', 'alias'], { cwd: project, env });
  t.is(alias.code, 0, alias.stderr);
  t.is(alias.stdout, 'alias\n');
});

test('npm install -g links lockd to the native client, found by its bare name on PATH', async (t) => {
  const prefix = join(work, 'global');
  const inst = npm(['install', '-g', '--prefix', prefix, tarball], work, join(work, 'cache-global'));
  t.is(inst.code, 0, inst.stderr);
  t.true(isNativeFile(realpathSync(join(prefix, 'bin', 'lockd'))));
  const d = await startDaemon(t);
  const env = { ...d.env, PATH: `${join(prefix, 'bin')}:${process.env.PATH}`, LOCKD_FAST_DEBUG: '1' };
  const run = sh('lockd', ['run', '-q', '--', 'echo', 'global-run'], { cwd: d.dir, env });
  t.is(run.code, 0, run.stderr);
  t.is(run.stdout, 'global-run\n');
  t.notRegex(run.stderr, HANDOVER);
  const version = sh('lockd', ['--version'], { cwd: d.dir, env });
  t.is(version.stdout, `lockd ${VERSION}\n`);
  t.regex(version.stderr, HANDOVER);
});

test('npx with the package not installed (its own cache, as `npx lockd` from the registry) runs the native client', async (t) => {
  const d = await startDaemon(t);
  const cache = join(work, 'cache-npx');
  const env = { ...d.env, LOCKD_FAST_DEBUG: '1' };
  const npx = sh('npx', ['--offline', '--cache', cache, '--yes', '--package', tarball, '--', 'lockd', 'run', '-q', '--', 'echo', 'via-npx'], { cwd: d.dir, env });
  t.is(npx.code, 0, npx.stderr);
  t.is(npx.stdout, 'via-npx\n');
  t.notRegex(npx.stderr, HANDOVER);
  const status = sh('npx', ['--offline', '--cache', cache, '--yes', '--package', tarball, '--', 'lockd', 'status'], { cwd: d.dir, env });
  t.is(status.code, 0, status.stderr);
  t.regex(status.stderr, HANDOVER);
  t.regex(status.stdout, new RegExp(`^lockd ${VERSION}, pid ${d.pid}`));
});

test('a native client that fails its self-check leaves lockd the JS bin, and a re-run puts the stand-in back', (t) => {
  const project = join(work, 'broken');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), '{"name":"uses-lockd-broken","version":"1.0.0","private":true}');
  const inst = npm(['install', tarball], project, join(work, 'cache-broken'));
  t.is(inst.code, 0, inst.stderr);
  const pkg = join(project, 'node_modules', 'lockd');
  t.true(isNativeFile(join(pkg, 'bin', 'lockd')));
  // A client that runs but cannot hand over (as a binary for another libc would fail to start at all).
  const prebuilt = join(pkg, 'prebuilds', `${process.platform}-${process.arch}`, 'lockd-fast');
  writeFileSync(prebuilt, '#!/bin/sh\nexit 1\n');
  chmodSync(prebuilt, 0o755);
  const again = sh(process.execPath, [join(pkg, 'native', 'client', 'build.mjs'), '--install'], { cwd: pkg });
  t.is(again.code, 0, again.stderr);
  t.is(again.stderr, '');
  t.is(readFileSync(join(pkg, 'bin', 'lockd'), 'utf8'), STAND_IN);
  const v = sh(join(project, 'node_modules', '.bin', 'lockd'), ['--version'], { cwd: project });
  t.is(v.stdout, `lockd ${VERSION}\n`, v.stderr);
});

test('in a git checkout the install step never changes the tracked bin/lockd', (t) => {
  t.is(readFileSync(join(REPO, 'bin', 'lockd'), 'utf8'), STAND_IN, 'bin/lockd is the stand-in place-bin.mjs writes back');
  const r = sh(process.execPath, [join(REPO, 'native', 'client', 'build.mjs'), '--install'], { cwd: REPO });
  t.is(r.code, 0, r.stderr);
  t.is(r.stderr, '');
  t.is(readFileSync(join(REPO, 'bin', 'lockd'), 'utf8'), STAND_IN);
  const git = sh('git', ['status', '--porcelain', '--', 'bin'], { cwd: REPO });
  t.is(git.stdout, '');
});
