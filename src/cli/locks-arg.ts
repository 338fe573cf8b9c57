/** `--lock NAME[:shared|:slots=N]` and `--global NAME[...]` → LockRefs. Names are validated by the daemon too. */
import { resolve } from 'node:path';
import type { LockRef } from '../protocol/messages.js';
import { LockdError } from '../util/errors.js';

/** The options that name locks, the same for `lockd run`, `acquire` and `release` (one lock, one spelling). */
export const LOCK_OPTIONS = {
  root: { type: 'string' },
  arch: { type: 'string' },
  lock: { type: 'string', multiple: true },
  global: { type: 'string', multiple: true },
  'global-dir': { type: 'string' },
  'host-only': { type: 'boolean' },
} as const;

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

function parseSpec(spec: string): Pick<LockRef, 'name' | 'mode' | 'slots'> {
  const [name, modeText, ...rest] = spec.split(':');
  if (rest.length || !name) throw new LockdError('usage', `invalid lock ${JSON.stringify(spec)}: use NAME, NAME:shared or NAME:slots=N`);
  if (!NAME_RE.test(name) || name.includes('..') || name.length > 200) {
    throw new LockdError('usage', `invalid lock name ${JSON.stringify(name)}: use letters, digits, '.', '_' and '-' (starting with a letter or digit, no '..', no '/')`);
  }
  if (modeText === undefined || modeText === 'exclusive') return { name, mode: 'exclusive' };
  if (modeText === 'shared') return { name, mode: 'shared' };
  const m = /^slots=(\d+)$/.exec(modeText);
  if (m && Number(m[1]) >= 1) return { name, mode: 'slots', slots: Number(m[1]) };
  throw new LockdError('usage', `invalid lock mode ${JSON.stringify(modeText)} in ${JSON.stringify(spec)}: use shared or slots=N (N >= 1)`);
}

export interface LockArgs {
  locks: string[];
  globals: string[];
  root: string;
  arch: string | undefined;
  globalDir: string | null;
  hostOnly?: boolean;
}

export function lockRefs(a: LockArgs): LockRef[] {
  if (a.arch !== undefined && (!NAME_RE.test(a.arch) || a.arch.includes('..'))) throw new LockdError('usage', `invalid arch ${JSON.stringify(a.arch)}`);
  const root = resolve(a.root);
  const out: LockRef[] = [];
  for (const l of a.locks) out.push({ ...parseSpec(l), scope: 'local', root, ...(a.arch ? { arch: a.arch } : {}) });
  for (const g of a.globals) out.push({ ...parseSpec(g), scope: 'global', ...(a.globalDir ? { global_dir: resolve(a.globalDir) } : {}), ...(a.hostOnly ? { host_only: true } : {}) });
  return out;
}
