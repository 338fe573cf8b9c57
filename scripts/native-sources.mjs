#!/usr/bin/env node
// The fingerprint of the addon's sources (binding.gyp, native/*.c, native/*.h), kept beside the prebuilt binary
// (prebuilds/linux-x64/lockd.node.sources) so a test can tell a prebuild that no longer matches its sources.
//   node scripts/native-sources.mjs           print the fingerprint
//   node scripts/native-sources.mjs --write   write it next to the prebuilt binary (npm run build:native does)
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const SOURCES_FILE = join(root, 'prebuilds', 'linux-x64', 'lockd.node.sources');

export function nativeSourcesFingerprint() {
  const files = [
    'binding.gyp',
    ...readdirSync(join(root, 'native'))
      .filter((f) => /\.(c|h)$/.test(f))
      .sort()
      .map((f) => `native/${f}`),
  ];
  const h = createHash('sha256');
  for (const f of files)
    h.update(`${f}\0`)
      .update(readFileSync(join(root, f)))
      .update('\0');
  return h.digest('hex');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const fp = nativeSourcesFingerprint();
  if (process.argv.includes('--write')) writeFileSync(SOURCES_FILE, `${fp}\n`);
  process.stdout.write(`${fp}\n`);
}
