#!/usr/bin/env node
/**
 * Part of `prepare` in a clone: node_modules/.bin/lockd → bin/lockd.js, so `npx lockd` in the clone finds the
 * project's own bin at once. Without it npx does not know the project's own bins: it "installs" the clone into its
 * cache (a file: dependency) and runs its install and prepare scripts first, the whole build: 9 to 25 s, silent,
 * on the first `npx lockd` of every clone (issue 21 pt 6). Only for the clone itself (node_modules next to
 * package.json); quiet; never fails the install.
 */
import { existsSync, lstatSync, mkdirSync, readlinkSync, symlinkSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const binDir = join(root, 'node_modules', '.bin');
const link = join(binDir, 'lockd');
const target = join('..', '..', 'bin', 'lockd.js');

try {
  if (existsSync(join(root, 'node_modules')) && process.platform !== 'win32') {
    mkdirSync(binDir, { recursive: true });
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
