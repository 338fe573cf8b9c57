/**
 * Where lockd-reaper is (native/reaper.c): a job's own subreaper, which the native launcher puts between the daemon
 * and the job where the host gives no writable cgroup v2, so a descendant that loses its parent (a double fork,
 * `setsid cmd &`) lands in the job's tree instead of init's. Found like the addon (node-gyp-build's order): a local
 * source build in build/Release first, else the prebuilt binary the package ships in prebuilds/<platform>-<arch>/.
 * Null when neither is there (the tree is then found as by the portable launcher; docs/crash-safety.md).
 */
import { accessSync, constants as fsConstants } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../util/peercred.js';
import type { LaunchFailure } from './launcher.js';

let cached: string | null | undefined;

export function reaperPath(): string | null {
  if (cached !== undefined) return cached;
  cached = null;
  if (process.platform !== 'linux' || process.env.LOCKD_REAPER === 'off') return cached;
  const root = packageRoot();
  if (root === null) return cached;
  for (const p of [join(root, 'build', 'Release', 'lockd-reaper'), join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'lockd-reaper')]) {
    try {
      accessSync(p, fsConstants.X_OK);
      cached = p;
      break;
    } catch {
      // try the next
    }
  }
  return cached;
}

/** The reaper's command line for a job: grace, the exec candidates, then the job's own argv. */
export function reaperArgv(path: string, graceMs: number, candidates: readonly string[], argv: readonly string[]): string[] {
  return [path, String(Math.max(0, Math.round(graceMs))), String(candidates.length), ...candidates, '--', ...argv];
}

const ERRNO_NAMES: Record<number, string> = { 2: 'ENOENT', 8: 'ENOEXEC', 13: 'EACCES', 20: 'ENOTDIR', 21: 'EISDIR', 40: 'ELOOP' };

/** What the reaper wrote to its report pipe: "E<errno>\n" when the command could not be executed, else nothing. */
export function parseReaperReport(text: string, file: string): LaunchFailure | undefined {
  const m = /^E(\d+)\n?$/.exec(text);
  if (!m) return undefined;
  const errno = Number(m[1]);
  const code = ERRNO_NAMES[errno] ?? `E${errno}`;
  return { code, message: `${file}: cannot execute (${code})` };
}
