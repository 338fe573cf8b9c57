/**
 * Issue 21 point 6: `npm install` is quiet on success and the first `npx lockd` of a clone is not a hidden rebuild.
 * - install step (scripts/install-native.mjs): with the prebuilt addon matching, it prints nothing and runs no
 *   node-gyp; when no addon can be had, one explanation (and the tail of the build log), never a failed install;
 * - prepare links node_modules/.bin/lockd to the clone's own lockd (scripts/link-bin.mjs): the native client when it is
 *   fresh and passes its self-check, else bin/lockd.js; npx then runs the clone's own bin instead of installing the
 *   clone into its cache and running its scripts first (`--no`: an install would fail).
 * Timings are in the report and docs/performance.md, not asserted here.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO, tempDir } from './helpers/lockd.js';

test('the install step prints nothing when the prebuilt addon loads', (t) => {
  const r = spawnSync(process.execPath, [join(REPO, 'scripts', 'install-native.mjs')], { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout, '');
  t.is(r.stderr, '');
});

test('without a loadable addon the install step explains in a few lines and still succeeds', (t) => {
  const dir = tempDir('inst');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'scripts'));
  copyFileSync(join(REPO, 'scripts', 'install-native.mjs'), join(dir, 'scripts', 'install-native.mjs'));
  symlinkSync(join(REPO, 'node_modules'), join(dir, 'node_modules'));
  writeFileSync(join(dir, 'package.json'), '{"name":"lockd-no-addon","version":"0.0.0","type":"module"}');
  writeFileSync(join(dir, 'binding.gyp'), '{ "targets": [ { "target_name": "lockd", "sources": [ "missing.c" ] } ] }');
  // No node-gyp to be found: the build cannot succeed, whatever compilers this machine has.
  const r = spawnSync(process.execPath, [join(dir, 'scripts', 'install-native.mjs')], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 120_000,
    env: { PATH: '/nonexistent', HOME: dir },
  });
  t.is(r.status, 0, r.stderr);
  const lines = r.stderr.trimEnd().split('\n');
  t.regex(lines.at(-1)!, /^lockd: no native addon for this platform .*portable launcher/);
  t.true(lines.length <= 22, r.stderr);
});

test('prepare links node_modules/.bin/lockd, so npx lockd runs the clone bin without installing anything', async (t) => {
  const link = spawnSync(process.execPath, [join(REPO, 'scripts', 'link-bin.mjs')], { cwd: REPO, encoding: 'utf8' });
  t.is(link.status, 0, link.stderr);
  t.is(link.stderr, '');
  // The prebuilt native client when it was built from this tree's sources (test/native-addon checks that it is,
  // so a stale one fails there); else the Node CLI.
  const prebuilt = join(REPO, 'prebuilds', `${process.platform}-${process.arch}`, 'lockd-fast');
  const { fastClientFingerprint } = (await import(pathToFileURL(join(REPO, 'native', 'client', 'build.mjs')).href)) as { fastClientFingerprint(): string };
  const fresh = existsSync(prebuilt) && readFileSync(`${prebuilt}.sources`, 'utf8').trim() === fastClientFingerprint();
  t.is(readlinkSync(join(REPO, 'node_modules', '.bin', 'lockd')), fresh ? join('..', '..', 'prebuilds', `${process.platform}-${process.arch}`, 'lockd-fast') : join('..', '..', 'bin', 'lockd.js'));
  const direct = spawnSync(join(REPO, 'node_modules', '.bin', 'lockd'), ['--version'], { cwd: REPO, encoding: 'utf8', timeout: 60_000, env: { ...process.env, LOCKD_FAST_DEBUG: '1' } });
  t.regex(direct.stdout, /^lockd \d+\.\d+\.\d+\n$/);
  if (fresh) t.regex(direct.stderr, /^lockd-fast: handing over to the Node CLI: not `lockd run`$/m);
  // npx in the clone runs the clone's own tracked bin/lockd (the JS stand-in): npm links the project itself.
  const npx = spawnSync('npx', ['--offline', '--no', '--', 'lockd', '--version'], { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
  t.is(npx.status, 0, npx.stderr);
  t.regex(npx.stdout, /^lockd \d+\.\d+\.\d+\n$/);
});
