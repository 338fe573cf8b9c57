/**
 * Pinning: a `.pinned` file in a run directory keeps GC away from it (a run a
 * human is still investigating, a reference run).
 */
import { rm, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PIN_FILE } from './run-files.js';
import { isMissing } from './run-dirs.js';

/**
 * Adding or removing the mark changes the directory's mtime, which GC reads as the run's age when its id carries no
 * time: put it back, so pinning never makes a run look newer than it is.
 */
async function keepingDirTimes(dir: string, change: () => Promise<void>): Promise<void> {
  const before = await stat(dir);
  await change();
  await utimes(dir, before.atime, before.mtime);
}

export async function pinRun(dir: string): Promise<void> {
  await keepingDirTimes(dir, () => writeFile(path.join(dir, PIN_FILE), `${new Date().toISOString()}\n`));
}

export async function unpinRun(dir: string): Promise<void> {
  await keepingDirTimes(dir, () => rm(path.join(dir, PIN_FILE), { force: true }));
}

export async function isPinned(dir: string): Promise<boolean> {
  try {
    await stat(path.join(dir, PIN_FILE));
    return true;
  } catch (err) {
    if (isMissing(err)) return false;
    throw err;
  }
}
