#!/usr/bin/env node
// Ships lockd-reaper (native/reaper.c, built by node-gyp beside the addon) in prebuilds/<platform>-<arch>/, where
// src/daemon/jobs/reaper.ts finds it when there is no local build. Run by `npm run build:native` after prebuildify.
import { chmodSync, copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const built = join(root, 'build', 'Release', 'lockd-reaper');
if (process.platform !== 'linux') {
  process.stdout.write('lockd-reaper is Linux-only: nothing to ship\n');
} else if (!existsSync(built)) {
  process.stderr.write(`lockd-reaper was not built (${built} is missing)\n`);
  process.exit(1);
} else {
  const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  mkdirSync(dir, { recursive: true });
  copyFileSync(built, join(dir, 'lockd-reaper'));
  chmodSync(join(dir, 'lockd-reaper'), 0o755);
  process.stdout.write(`shipped ${join(dir, 'lockd-reaper')}\n`);
}
