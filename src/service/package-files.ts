/**
 * Where this lockd installation lives: the package root (which ships systemd/ and launchd/ templates) and
 * the bin/lockd.js that service units must run. Found from this module's own location, so it is right for
 * an npm global install, a git checkout and the TypeScript sources run by tests alike.
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LockdError } from '../util/errors.js';

/** The directory holding lockd's package.json (walks up: dist/src/service/ or src/service/). */
export function packageRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: unknown }).name === 'lockd') return dir;
      } catch {
        /* not ours; keep walking */
      }
    }
    if (dirname(dir) === dir) throw new LockdError('package_not_found', `cannot find lockd's package directory above ${from}`);
  }
}

/** Absolute, symlink-free path of the `lockd` entry script (bin/lockd.js) of this installation. */
export function lockdScriptPath(root: string = packageRoot()): string {
  const script = join(root, 'bin', 'lockd.js');
  if (!existsSync(script)) throw new LockdError('package_not_found', `${script} is missing; is this lockd installation complete?`);
  return realpathSync(script);
}

/** Read a template shipped in the package (e.g. `systemd/user/lockd.service`). */
export function readTemplate(relPath: string, root: string = packageRoot()): string {
  try {
    return readFileSync(join(root, relPath), 'utf8');
  } catch (e) {
    throw new LockdError('template_missing', `the service template ${relPath} is missing from ${root}: ${(e as Error).message}`);
  }
}
