/**
 * Writing and removing the planned service files. Writes are atomic (a service manager reloading at the wrong
 * moment never reads half a unit); removal touches only files that carry our generated mark, so a hand-written
 * lockd.service is never deleted by `lockd service uninstall`.
 */
import { lstatSync, mkdirSync, readFileSync, unlinkSync } from 'node:fs';
import { writeFileAtomic } from '../runs/atomic-write.js';
import { errnoCode } from '../util/errors.js';
import { GENERATED_MARK } from './render.js';
import type { ServicePlan } from './plan.js';

export type InstallAction = 'created' | 'updated' | 'unchanged';
export type UninstallAction = 'removed' | 'absent' | 'kept_not_ours';

export interface FileOutcome<A> {
  path: string;
  action: A;
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return null;
    throw e;
  }
}

/** Write every planned file (0644: service managers and other users read them; none holds a secret). */
export async function installServiceFiles(plan: ServicePlan): Promise<FileOutcome<InstallAction>[]> {
  mkdirSync(plan.dir, { recursive: true, mode: 0o755 });
  const out: FileOutcome<InstallAction>[] = [];
  for (const f of plan.files) {
    const old = readOrNull(f.path);
    if (old === f.content) {
      out.push({ path: f.path, action: 'unchanged' });
      continue;
    }
    await writeFileAtomic(f.path, f.content, { mode: 0o644 });
    out.push({ path: f.path, action: old === null ? 'created' : 'updated' });
  }
  return out;
}

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/** Remove our files and the enable links pointing at them; report what happened to each. */
export function uninstallServiceFiles(plan: ServicePlan): FileOutcome<UninstallAction>[] {
  const out: FileOutcome<UninstallAction>[] = [];
  for (const f of plan.files) {
    const old = readOrNull(f.path);
    if (old === null) {
      out.push({ path: f.path, action: 'absent' });
    } else if (!old.includes(GENERATED_MARK)) {
      out.push({ path: f.path, action: 'kept_not_ours' });
    } else {
      unlinkSync(f.path);
      out.push({ path: f.path, action: 'removed' });
    }
  }
  // `systemctl enable` made these; removing them is what `systemctl disable` does. Units we did not write
  // stay enabled: they are someone else's.
  if (out.some((o) => o.action === 'kept_not_ours')) return out;
  for (const link of plan.enableLinks) {
    if (!isLink(link)) continue;
    unlinkSync(link);
    out.push({ path: link, action: 'removed' });
  }
  return out;
}
