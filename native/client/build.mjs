#!/usr/bin/env node
/**
 * Build lockd-fast, the native `lockd run` client (native/client/*.c), with the system C compiler. No node-gyp: it is
 * a plain executable with no Node headers, so one `cc` line is the whole build.
 *   node native/client/build.mjs --prebuild   prebuilds/<platform>-<arch>/lockd-fast and its .sources fingerprint
 *                                              (npm run build:native; the linux-x64 one is committed)
 *   node native/client/build.mjs --install    at npm install: build/lockd-fast, unless a prebuild fits this platform;
 *                                              then bin/lockd becomes the native client where it passes its self-check
 *                                              (place-bin.mjs); never fails the install (no compiler, or no fit: `lockd`
 *                                              and `lockd-fast` run the Node CLI)
 *   node native/client/build.mjs --sanitize   build/lockd-fast-asan with -fsanitize=address,undefined (the tests'
 *                                              LOCKD_FAST_BIN points at it in the sanitizer pass)
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { placeBin } from './place-bin.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const platformDir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
export const PREBUILT = join(platformDir, 'lockd-fast');

const sources = () =>
  readdirSync(here)
    .filter((f) => /\.(c|h)$/.test(f))
    .sort();

/** sha256 over native/client/*.c and *.h (names and contents): tells a stale prebuilt binary from a fresh one. */
export function fastClientFingerprint() {
  const h = createHash('sha256');
  for (const f of sources()) h.update(`${f}\0`).update(readFileSync(join(here, f))).update('\0');
  return h.digest('hex');
}

function compile(out, extra = []) {
  mkdirSync(dirname(out), { recursive: true });
  const cc = process.env.CC || 'cc';
  const files = sources()
    .filter((f) => f.endsWith('.c'))
    .map((f) => join(here, f));
  execFileSync(cc, ['-std=gnu99', '-Wall', '-Wextra', '-O2', ...extra, '-o', out, ...files, '-lm'], { stdio: 'inherit' });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const mode = process.argv[2];
  if (mode === '--prebuild') {
    compile(PREBUILT, ['-s']);
    writeFileSync(`${PREBUILT}.sources`, `${fastClientFingerprint()}\n`);
  } else if (mode === '--sanitize') {
    compile(join(root, 'build', 'lockd-fast-asan'), ['-g', '-O1', '-fno-omit-frame-pointer', '-fsanitize=address,undefined', '-fno-sanitize-recover=all']);
  } else if (mode === '--install') {
    if (process.platform !== 'win32' && !existsSync(PREBUILT)) {
      try {
        compile(join(root, 'build', 'lockd-fast'));
      } catch {
        console.warn('lockd: no C compiler for the fast `lockd run` client: lockd and lockd-fast run the Node CLI instead');
      }
    }
    try {
      placeBin(root);
    } catch {
      // placeBin never throws by design; an install never fails for the fast path either way
    }
  } else {
    console.error('usage: node native/client/build.mjs --prebuild|--install|--sanitize');
    process.exit(2);
  }
}
