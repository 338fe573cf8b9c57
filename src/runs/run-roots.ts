/**
 * The runs roots a daemon has recorded runs under, kept in `<state-dir>/run-roots.json` so that `lockd runs`,
 * `logs`, `result` and `wait` find a run recorded with `--root build` (its dir is build/runs/ID) without being
 * told `--root` again. The daemon remembers each root the first time it uses it, written at once (temp file and
 * rename, no fsync: only a new root costs a write, and a `lockd logs ID` right after the run must see it); the CLI
 * only reads. Most recently first-used first, at most MAX_ROOTS; a root that is gone is
 * skipped by the readers, never an error.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const RUN_ROOTS_FILE = 'run-roots.json';
const MAX_ROOTS = 200;

/** The remembered roots of the daemon whose state dir this is ([] when none or unreadable). */
export function readRunRoots(stateDir: string): string[] {
  try {
    const v = JSON.parse(readFileSync(join(stateDir, RUN_ROOTS_FILE), 'utf8')) as { roots?: unknown };
    return Array.isArray(v.roots) ? v.roots.filter((r): r is string => typeof r === 'string').map((r) => resolve(r)) : [];
  } catch {
    return [];
  }
}

/** The daemon's side: remembers roots, writing the file only when a new one appears (one write at a time). */
export class RunRoots {
  private readonly roots: string[];
  constructor(private readonly stateDir: string) {
    this.roots = readRunRoots(stateDir);
  }

  remember(root: string): void {
    const r = resolve(root);
    if (this.roots.includes(r)) return;
    this.roots.unshift(r);
    this.roots.length = Math.min(this.roots.length, MAX_ROOTS);
    // A failed write costs only the convenience (the user can still pass --root); it never fails a run.
    const target = join(this.stateDir, RUN_ROOTS_FILE);
    try {
      writeFileSync(`${target}.${process.pid}.tmp`, `${JSON.stringify({ roots: this.roots })}\n`);
      renameSync(`${target}.${process.pid}.tmp`, target);
    } catch {
      // see above
    }
  }
}
