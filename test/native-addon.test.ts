/**
 * The addon as users get it: the prebuilt linux-x64 binary shipped in the package matches the sources it was built
 * from, loads with no build directory (a machine without a compiler), exposes the launcher, is inside `npm pack`;
 * and the source build (what another platform gets) still compiles and loads.
 */
import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { REPO, tempDir } from './helpers/lockd.js';

const PREBUILT = join(REPO, 'prebuilds', 'linux-x64', 'lockd.node');
const onLinuxX64 = process.platform === 'linux' && process.arch === 'x64';

/** A copy of what the package ships (no build/, no prebuilds unless asked), with the repo's node_modules linked. */
function packageCopy(withPrebuilds: boolean): string {
  const dir = tempDir('pkg');
  for (const f of ['package.json', 'binding.gyp', 'bin', 'native', 'dist']) cpSync(join(REPO, f), join(dir, f), { recursive: true });
  if (withPrebuilds) cpSync(join(REPO, 'prebuilds'), join(dir, 'prebuilds'), { recursive: true });
  symlinkSync(join(REPO, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

const PROBE = `
const m = await import(process.argv[1]);
const l = await import(process.argv[2]);
const n = m.loadNative();
const origin = m.nativeOrigin();
const launcher = l.loadNativeLauncher();
console.log(JSON.stringify({ loaded: n !== null, file: origin.file, error: origin.error, launcher: launcher.ok ? launcher.launcher.name : launcher.reason, fns: n ? Object.keys(n).sort() : [] }));
`;

function probe(dir: string): { loaded: boolean; file: string | null; error: string | null; launcher: string; fns: string[] } {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', PROBE, join(dir, 'dist/src/util/peercred.js'), join(dir, 'dist/src/daemon/jobs/launcher-native.js')], { encoding: 'utf8' });
  return JSON.parse(out.trim());
}

test('the prebuilt binary was built from the sources in the tree (else: npm run build:native)', async (t) => {
  if (!onLinuxX64) {
    t.log(`prebuilds are for linux-x64; this is ${process.platform}-${process.arch}`);
    t.false(existsSync(join(REPO, 'prebuilds', `${process.platform}-${process.arch}`)));
    return;
  }
  t.true(existsSync(PREBUILT), 'prebuilds/linux-x64/lockd.node is in the tree');
  const { nativeSourcesFingerprint } = (await import(join(REPO, 'scripts', 'native-sources.mjs'))) as { nativeSourcesFingerprint(): string };
  t.is(readFileSync(`${PREBUILT}.sources`, 'utf8').trim(), nativeSourcesFingerprint(), 'native/ or binding.gyp changed since the prebuild: run npm run build:native and commit prebuilds/');
});

test('with no build directory and no compiler, the shipped prebuilt binary loads and gives the native launcher', (t) => {
  if (!onLinuxX64) {
    t.log('no prebuilt binary for this platform: covered by the source-build test');
    t.false(existsSync(join(REPO, 'prebuilds', `${process.platform}-${process.arch}`, 'lockd.node')));
    return;
  }
  const dir = packageCopy(true);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const p = probe(dir);
  t.true(p.loaded, p.error ?? '');
  t.is(p.file, join(dir, 'prebuilds', 'linux-x64', 'lockd.node'));
  t.is(p.launcher, 'native');
  t.deepEqual(p.fns, ['flock', 'peerCred', 'pipe', 'ptyOpen', 'ptyPump', 'ptyResize', 'recvFds', 'relayCancel', 'relayPending', 'relayStart', 'sendFds', 'signal', 'spawn']);
});

test('without any addon the launcher says why, and the portable launcher is what the daemon would use', (t) => {
  const dir = packageCopy(false);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const p = probe(dir);
  t.false(p.loaded);
  t.regex(p.launcher, /not built and no prebuilt binary loads|Linux-only/);
});

test('npm pack ships the prebuilt binary, the native sources and binding.gyp (the source build elsewhere)', (t) => {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: REPO, encoding: 'utf8' });
  const files = (JSON.parse(out) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path);
  if (onLinuxX64) t.true(files.includes('prebuilds/linux-x64/lockd.node'), files.join(' '));
  if (onLinuxX64) t.true(files.includes('prebuilds/linux-x64/lockd-reaper'), 'the per-job reaper ships beside the addon');
  for (const f of ['binding.gyp', 'native/peercred.c', 'native/launcher.c', 'native/launcher.h', 'native/reaper.c']) t.true(files.includes(f), f);
});

/** node-gyp as npm ships it (npm runs it for install scripts); null when this npm has none. */
function nodeGyp(): string | null {
  const candidates = [process.env.npm_config_node_gyp, join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')];
  return candidates.find((c): c is string => typeof c === 'string' && existsSync(c)) ?? null;
}

test('the source build compiles with -Wall -Wextra and the built addon loads first (before the prebuilt one)', (t) => {
  const gyp = nodeGyp();
  if (gyp === null) {
    t.fail('node-gyp not found beside npm');
    return;
  }
  const dir = packageCopy(true);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'build'), { recursive: true });
  const r = spawnSync(process.execPath, [gyp, 'rebuild'], { cwd: dir, encoding: 'utf8', timeout: 300_000 });
  t.is(r.status, 0, r.stderr);
  t.notRegex(r.stdout + r.stderr, /warning:/, 'the C sources build without warnings');
  const p = probe(dir);
  t.true(p.loaded, p.error ?? '');
  t.is(p.file, join(dir, 'build', 'Release', 'lockd_native.node'));
  if (process.platform === 'linux') t.is(p.launcher, 'native');
});
