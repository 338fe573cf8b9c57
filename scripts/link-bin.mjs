#!/usr/bin/env node
/**
 * Part of `prepare` in a clone: node_modules/.bin/lockd → the clone's own `lockd`, so `npx lockd` in the clone finds
 * the project's own bin at once. Without it npx does not know the project's own bins: it "installs" the clone into its
 * cache (a file: dependency) and runs its install and prepare scripts first, the whole build: 9 to 25 s, silent,
 * on the first `npx lockd` of every clone (issue 21 pt 6). Only for the clone itself (node_modules next to
 * package.json); quiet; never fails the install.
 *
 * Which `lockd` (issue 20 pt 3): the native client when it passes the same self-check as in an installed package
 * (native/client/place-bin.mjs) and, for the prebuilt one, when it was built from the sources in this tree (a stale
 * binary would run old C code); else bin/lockd.js. bin/lockd itself is tracked, so in a clone it is never replaced.
 */
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, symlinkSync, unlinkSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PREBUILT, fastClientFingerprint } from '../native/client/build.mjs';
import { nativeClient, selfCheck } from '../native/client/place-bin.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const binDir = join(root, 'node_modules', '.bin');
const link = join(binDir, 'lockd');

/** The native client to link, or null: fresh (a prebuild of these sources, or a local build) and self-checked. */
function freshNativeClient() {
  const native = nativeClient(root);
  if (!native) return null;
  if (native === PREBUILT) {
    let shipped = '';
    try {
      shipped = readFileSync(`${PREBUILT}.sources`, 'utf8').trim();
    } catch {
      return null;
    }
    if (shipped !== fastClientFingerprint()) return null;
  }
  return selfCheck(native, root) ? native : null;
}

try {
  if (existsSync(join(root, 'node_modules')) && process.platform !== 'win32') {
    mkdirSync(binDir, { recursive: true });
    const native = freshNativeClient();
    const target = native ? relative(binDir, native) : join('..', '..', 'bin', 'lockd.js');
    let current = null;
    try {
      current = lstatSync(link).isSymbolicLink() ? readlinkSync(link) : 'not a link';
    } catch {
      current = null;
    }
    if (current !== target) {
      if (current !== null) unlinkSync(link);
      symlinkSync(target, link);
    }
  }
} catch (e) {
  console.warn(`lockd: could not link node_modules/.bin/lockd (npx lockd will be slow the first time): ${e.message}`);
}
