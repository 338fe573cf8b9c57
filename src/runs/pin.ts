/**
 * Pinning: a `.pinned` file in a run directory keeps GC away from it (a run a
 * human is still investigating, a reference run).
 */
import { rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PIN_FILE } from './run-files.js';
import { isMissing } from './run-dirs.js';

export async function pinRun(dir: string): Promise<void> {
  await writeFile(path.join(dir, PIN_FILE), `${new Date().toISOString()}\n`);
}

export async function unpinRun(dir: string): Promise<void> {
  await rm(path.join(dir, PIN_FILE), { force: true });
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
