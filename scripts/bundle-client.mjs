#!/usr/bin/env node
/**
 * Bundle the client's hot path into one file: dist/src/cli/main.js (what bin/lockd.js imports) is replaced by a
 * single-module build of itself with the `run` command and everything it imports inlined, so `lockd run` loads three
 * modules (bin, this bundle, util/errors.js) instead of fifteen. Run after `tsc` (npm's `prepare` does both).
 *
 * What stays outside the bundle, on purpose:
 * - every other command (`./commands/<name>.js`, imported lazily by main's COMMANDS table): they are not on the hot
 *   path, and the daemon (`lockd daemon`) must keep running from the plain compiled files;
 * - util/errors.js: LockdError is checked with instanceof, so there must be exactly one copy of the class that both
 *   the bundle and the external commands see;
 * - client/autostart.js: needed only when no daemon answers, and it would pull node:child_process into every start;
 * - npm packages (none are on the client path; if one ever is, node resolves it as usual).
 * A later plain `tsc` overwrites the bundle with the unbundled main.js, which is equivalent, only slower to load.
 * The unbundled main.js is kept as main.unbundled.js (imported by nothing; the bench compares the two).
 * Without esbuild (a production-only install) this prints a note and leaves the unbundled build in place.
 */
import { copyFileSync, readFileSync, renameSync, rmSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BUNDLE_BANNER = '// lockd client bundle (scripts/bundle-client.mjs): edit src/, not this file';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const target = join(root, 'dist', 'src', 'cli', 'main.js');

/** True when dist/src/cli/main.js is already the bundle (tsc has not rewritten it since). */
export function isBundled(file = target) {
  try {
    return readFileSync(file, 'utf8').startsWith(BUNDLE_BANNER);
  } catch {
    return false;
  }
}

/**
 * Bundle in place; returns 'bundled', 'already-bundled' or a reason it did not. With `inputsOnly`, builds to nothing
 * and returns the list of the modules the bundle would inline (repo-relative): the test that keeps the hot path small
 * reads it.
 */
export async function bundleClient({ quiet = false, inputsOnly = false } = {}) {
  if (!existsSync(target)) return `no ${target}: run tsc first`;
  if (!inputsOnly && isBundled()) return 'already-bundled';
  let esbuild;
  try {
    esbuild = await import('esbuild');
  } catch {
    return 'esbuild is not installed (dev dependency): keeping the unbundled client';
  }
  const cliDir = dirname(target);
  const errorsFile = join(root, 'dist', 'src', 'util', 'errors.js');
  const autostartFile = join(root, 'dist', 'src', 'client', 'autostart.js');
  const tmp = join(cliDir, `.main.bundle.${process.pid}.tmp.js`);
  const keepOutside = {
    name: 'lockd-client-externals',
    setup(build) {
      // The lazily imported commands, except run: left as imports relative to main.js (same directory).
      build.onResolve({ filter: /^\.\/commands\/[^/]+\.js$/ }, (args) => {
        // The table that imports them (registry.js) sits beside main.js, so the relative path stays right in the bundle.
        if (dirname(args.importer) !== cliDir || args.path === './commands/run.js') return undefined;
        return { path: args.path, external: true };
      });
      // One LockdError class for everyone (see above).
      build.onResolve({ filter: /\/errors\.js$/ }, (args) => {
        if (join(args.resolveDir, args.path) !== errorsFile) return undefined;
        return { path: '../util/errors.js', external: true };
      });
      // Auto-start is imported lazily and only when no daemon answers; inlined, its node:child_process import would
      // be loaded by every run.
      build.onResolve({ filter: /\/autostart\.js$/ }, (args) => {
        if (join(args.resolveDir, args.path) !== autostartFile) return undefined;
        return { path: '../client/autostart.js', external: true };
      });
    },
  };
  try {
    const result = await esbuild.build({
      // Listing inputs of an already bundled tree: start from the plain build kept beside it.
      entryPoints: [inputsOnly && isBundled() ? join(cliDir, 'main.unbundled.js') : target],
      outfile: tmp,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      banner: { js: BUNDLE_BANNER },
      legalComments: 'none',
      logLevel: quiet ? 'error' : 'warning',
      plugins: [keepOutside],
      metafile: inputsOnly,
      write: !inputsOnly,
    });
    if (inputsOnly) return Object.keys(result.metafile.inputs);
    // The plain build stays next to it, so `npm run bench` can show what bundling buys (side by side).
    copyFileSync(target, join(cliDir, 'main.unbundled.js'));
    // Atomic swap: a lockd started meanwhile loads the old main.js or the new one, never half of one.
    renameSync(tmp, target);
  } finally {
    rmSync(tmp, { force: true });
  }
  return 'bundled';
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const outcome = await bundleClient();
  if (outcome !== 'bundled' && outcome !== 'already-bundled') process.stderr.write(`lockd: client not bundled: ${outcome}\n`);
}
