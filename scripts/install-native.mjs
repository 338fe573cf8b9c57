#!/usr/bin/env node
/**
 * npm's `install` step for lockd's native addon, quiet unless something fails (issue 21 pt 6).
 * A prebuilt binary for this platform (prebuilds/<platform>-<arch>/, N-API, so any Node >= 20 loads it) or an earlier
 * local build: nothing to do, nothing printed, no node-gyp. Otherwise node-gyp-build compiles it from native/; its
 * ~40 lines of compiler output are kept, not shown: one line says the addon was built, or, when the build fails, the
 * tail of that output and what lockd does without the addon (it still works: portable launcher, perl flock helper,
 * framed output, no system mode). Never fails the install.
 */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');

const FALLBACK = 'lockd: no native addon for this platform (no prebuilt binary, and it could not be built): jobs use the portable launcher, flock uses the perl helper, system mode is unavailable';

/** The addon node-gyp-build would load now (prebuild or local build), or null. Loading it proves it matches. */
export function loadableAddon() {
  try {
    const path = require('node-gyp-build').path(root);
    require(path);
    return path;
  } catch {
    return null;
  }
}

function main() {
  if (loadableAddon()) return 0;
  let bin;
  try {
    bin = require.resolve('node-gyp-build/bin.js');
  } catch {
    console.warn(FALLBACK);
    return 0;
  }
  const r = spawnSync(process.execPath, [bin], { cwd: root, encoding: 'utf8', env: process.env, maxBuffer: 64 * 1024 * 1024 });
  if (r.status === 0 && loadableAddon()) {
    console.warn('lockd: built the native addon from source (no prebuilt binary for this platform)');
    return 0;
  }
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.trimEnd().split('\n').slice(-20).join('\n');
  if (out) console.warn(`${out}\n`);
  console.warn(FALLBACK);
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main();
