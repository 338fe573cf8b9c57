/**
 * The environment a job starts with: the caller's, plus what lockd tells it: its run id and dir, the locks it holds,
 * the daemon's socket for nested runs, slot indexes and fencing tokens (docs/cluster.md, "Fencing"). Pure.
 */
import type { RunRequest } from '../../protocol/messages.js';
import type { GrantedClaim } from '../locks/lock-table.js';
import type { ResolvedLock } from '../records/lock-resolve.js';

/** A lock's name as an environment variable suffix: anything but [A-Za-z0-9_] becomes `_`. */
function envName(name: string): string {
  return name.replace(/[^A-Za-z0-9_]/g, '_');
}

export function childEnv(req: RunRequest, run: { runId: string; dir: string; socketPath: string; locks: readonly ResolvedLock[] }, claims: readonly GrantedClaim[]): Record<string, string> {
  const env: Record<string, string> = { ...req.env };
  env.LOCKD_RUN_ID = run.runId;
  env.LOCKD_LOCKS = run.locks.map((l) => l.key).join(':');
  env.LOCKD_SOCKET = run.socketPath;
  env.LOCKD_RUN_DIR = run.dir;
  let maxToken = 0;
  for (const c of claims) {
    maxToken = Math.max(maxToken, c.fencingToken);
    const lock = run.locks.find((l) => l.key === c.key);
    if (lock && c.slotIndex !== undefined) env[`LOCKD_SLOT_${envName(lock.name)}`] = String(c.slotIndex);
    // Per lock too: tokens of different locks (a local counter, an etcd revision) are not comparable.
    if (lock) env[`LOCKD_FENCING_TOKEN_${envName(lock.name)}`] = String(c.fencingToken);
    // A pool member by POOL/MEMBER (a board's token: a cluster member's is the etcd revision of its grant).
    else if (c.member !== undefined) env[`LOCKD_FENCING_TOKEN_${envName(`${c.pool}/${c.member}`)}`] = String(c.fencingToken);
  }
  env.LOCKD_FENCING_TOKEN = String(maxToken);
  return env;
}
