/**
 * One command for users (issue 20 pt 3): at npm install, `lockd` (package.json bin → bin/lockd) becomes the native
 * `lockd run` client where that client works, so `lockd run ...` pays ~1 ms instead of a Node start-up, and every
 * other verb is handed to the Node CLI (bin/lockd.js) by the native client itself.
 *
 * Why bin/lockd is the file replaced and bin/lockd.js is not: the native client needs a JS entry to hand over to that
 * is never replaced, and bin/lockd.js is that entry everywhere already (the native client's lookup, auto-start's
 * `lockd daemon`, `bin/lockd-fast`, the Wine suite, and users' own `node …/bin/lockd.js`). bin/lockd is only a
 * two-line JS stand-in that imports it.
 *
 * The rules (like esbuild's install script, which swaps its JS bin for its binary where the binary works):
 * - only in a copy npm unpacked (the package root lies under a node_modules directory and is not a git checkout), so
 *   a tracked file of a clone never changes and a folder installed with `npm install ./dir` (a symlink) is left as is;
 * - never on Windows: npm's cmd shims there run the bin with the program named on its #! line, read at install;
 * - only after a self-check: a copy placed beside bin/lockd is run by a bare name through a symlink on PATH (as npm's
 *   .bin and global links run it), must hand `--version` over to Node and print this package's version;
 * - never fails the install, prints nothing: on any failure bin/lockd is (or is put back to) the JS stand-in.
 * scripts/link-bin.mjs uses the same check for a clone's node_modules/.bin/lockd.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, realpathSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** bin/lockd as shipped (a test checks the file is exactly this): written back when the native client fails here. */
export const STAND_IN = `#!/usr/bin/env node
// The \`lockd\` command (package.json "bin"). npm's install step replaces this file with the native \`lockd run\`
// client where that client works (native/client/place-bin.mjs); it stays this JS stand-in on Windows, in a git
// checkout, and wherever the native client's self-check fails. The Node CLI itself is bin/lockd.js, which is never
// replaced: the native client hands every case it does not handle to it.
import './lockd.js';
`;

/** The native client built or shipped for this machine: a local source build first, then the prebuilt one. */
export function nativeClient(root = ROOT) {
  for (const p of [join(root, 'build', 'lockd-fast'), join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'lockd-fast')]) {
    if (existsSync(p)) return p;
  }
  return null;
}

/** True when the file starts like an executable rather than a script (ELF or Mach-O magic). */
export function isNativeFile(path) {
  try {
    const head = readFileSync(path).subarray(0, 4).toString('hex');
    return head === '7f454c46' || ['cffaedfe', 'cefaedfe', 'feedfacf', 'feedface'].includes(head);
  } catch {
    return false;
  }
}

/**
 * Run `bin` the way npm's links run it (a bare `lockd` found on PATH through a symlink, argv[0] without a slash) and
 * check that it hands `--version` over to the Node CLI. The client's own debug line proves the native code ran; the
 * version line proves it found node and the JS entry from where it lies. Its own environment knobs are cleared.
 */
export function selfCheck(bin, root = ROOT) {
  let dir;
  try {
    const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
    dir = mkdtempSync(join(tmpdir(), 'lockd-bin-check-'));
    symlinkSync(bin, join(dir, 'lockd'));
    const env = { ...process.env, PATH: `${dir}${delimiter}${process.env.PATH ?? ''}`, LOCKD_FAST_DEBUG: '1' };
    delete env.LOCKD_FAST_NODE_CLI;
    delete env.LOCKD_NODE;
    const r = spawnSync('lockd', ['--version'], { env, encoding: 'utf8', timeout: 30_000, cwd: dir });
    return r.status === 0 && r.stdout === `lockd ${version}\n` && /^lockd-fast: handing over to the Node CLI/m.test(r.stderr ?? '');
  } catch {
    return false;
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

/** Why bin/lockd must stay the JS stand-in here, or null when it may become the native client. */
export function keepStandInReason(root = ROOT) {
  if (process.platform === 'win32') return 'Windows: npm cmd shims run the bin with node';
  if (existsSync(join(root, '.git'))) return 'a git checkout: bin/lockd is a tracked file';
  let real;
  try {
    real = realpathSync(root);
  } catch {
    return 'no real path for the package';
  }
  if (!real.split(sep).includes('node_modules')) return 'not a copy npm unpacked (no node_modules above it)';
  return null;
}

/**
 * npm install's step: bin/lockd becomes the native client when the rules above allow it, else the JS stand-in.
 * Returns what it did ('native', or the reason it kept the stand-in). The swap is a rename, so bin/lockd is at every
 * moment either the old file or the new one.
 */
export function placeBin(root = ROOT) {
  const target = join(root, 'bin', 'lockd');
  const reason = keepStandInReason(root);
  if (reason) return reason;
  const native = nativeClient(root);
  const tmp = join(root, 'bin', `.lockd.${process.pid}.tmp`);
  try {
    if (native) {
      copyFileSync(native, tmp);
      chmodSync(tmp, 0o755);
      if (selfCheck(tmp, root)) {
        renameSync(tmp, target);
        return 'native';
      }
    }
  } catch {
    // fall through: the stand-in
  } finally {
    rmSync(tmp, { force: true });
  }
  try {
    if (isNativeFile(target) || !existsSync(target)) {
      writeFileSync(tmp, STAND_IN, { mode: 0o755 });
      renameSync(tmp, target);
    }
  } catch {
    // nothing more to do: an install never fails for the fast path
  } finally {
    rmSync(tmp, { force: true });
  }
  return native ? 'the native client failed its self-check here' : 'no native client for this platform';
}
