/**
 * The page's two static files, shipped in the npm package (package.json `files` has src/web/assets): read once at
 * start-up from wherever this module runs (dist/src/web/ in the package, src/web/ under tsx), never fetched.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { LockdError } from '../util/errors.js';

export interface Asset {
  body: Buffer;
  type: string;
}

function assetsDir(): string {
  for (const rel of ['./assets/', '../../../src/web/assets/']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(`${dir}live.js`)) return dir;
  }
  throw new LockdError('internal', 'lockd web: its assets (src/web/assets/live.js) are missing from this installation');
}

export function loadAssets(): Map<string, Asset> {
  const dir = assetsDir();
  return new Map([
    ['/assets/live.js', { body: readFileSync(`${dir}live.js`), type: 'text/javascript; charset=utf-8' }],
    ['/assets/style.css', { body: readFileSync(`${dir}style.css`), type: 'text/css; charset=utf-8' }],
  ]);
}
