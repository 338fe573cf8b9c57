/**
 * Names of the files inside a run directory and a tolerant JSON reader for
 * them. The names are part of the public contract (test farms read them).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { LockdError } from '../util/errors.js';

export const MANIFEST_FILE = 'manifest.json';
export const RESULT_FILE = 'result.json';
/** Default name of the combined stdout+stderr log inside a run directory. */
export const LOG_FILE = 'output.log';
/** Marker file: a pinned run is never garbage-collected. */
export const PIN_FILE = '.pinned';

/** Current version of manifest.json and result.json. */
export const RUN_SCHEMA_VERSION = 1;

/**
 * Read and parse `<dir>/<name>`. Returns null when the file (or the directory)
 * does not exist, because a run directory is filled step by step and can be
 * removed by GC at any time; throws `corrupt_run_file` for unparseable JSON.
 */
export async function readRunJson(dir: string, name: string): Promise<unknown | null> {
  const file = path.join(dir, name);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw err;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new LockdError('corrupt_run_file', `${file} is not valid JSON: ${(err as Error).message}`, { file });
  }
}
