/**
 * A run's pool members (lockd run --pool), as the job and its records see them: the lock-table claim of a PoolRef,
 * the members with their properties, LOCKD_MEMBERS_<pool> / LOCKD_MEMBERS_FILE, the member locks in the manifest and
 * the grant, and the members in result.json. Pure, apart from writing members.json. Kept out of run-job.ts so that
 * the run's life stays readable there.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GrantInfo, PoolRef } from '../../protocol/messages.js';
import type { GrantedClaim, PoolClaim, PoolDefinition } from '../locks/lock-table.js';
import type { RunManifest } from '../../runs/manifest.js';
import type { RunResult } from '../../runs/result.js';
import { isClusterKey } from '../locks/cluster-keys.js';

export const MEMBERS_FILE = 'members.json';

export type Members = Record<string, Array<{ name: string; properties: Record<string, string> }>>;

export function toPoolClaim(p: PoolRef): PoolClaim {
  return { pool: p.pool, count: p.count, ...(Object.keys(p.where).length > 0 ? { where: p.where } : {}), ...(p.member !== null ? { member: p.member } : {}) };
}

function propertiesOf(defs: readonly PoolDefinition[], c: GrantedClaim): Record<string, string> {
  return { ...(defs.find((d) => d.name === c.pool)?.members.find((m) => m.name === c.member)?.properties ?? {}) };
}

/** The members of a grant with their properties, by pool; null when it has none. */
export function membersOf(claims: readonly GrantedClaim[], defs: readonly PoolDefinition[]): Members | null {
  const mine = claims.filter((c) => c.member !== undefined);
  if (mine.length === 0) return null;
  const out: Members = {};
  for (const c of mine) (out[c.pool!] ??= []).push({ name: c.member!, properties: propertiesOf(defs, c) });
  return out;
}

/** LOCKD_MEMBERS_<pool>=a,b and LOCKD_MEMBERS_FILE; members.json is written into `ioDir` (the run dir). */
export function addMemberEnv(env: Record<string, string>, members: Members, dir: string, ioDir: string): void {
  for (const [pool, list] of Object.entries(members)) env[`LOCKD_MEMBERS_${pool.replace(/[^A-Za-z0-9_]/g, '_')}`] = list.map((m) => m.name).join(',');
  env.LOCKD_MEMBERS_FILE = join(dir, MEMBERS_FILE);
  writeFileSync(join(ioDir, MEMBERS_FILE), `${JSON.stringify(members, null, 2)}\n`, { mode: 0o644 });
}

/** The started manifest with the member locks (named POOL/MEMBER) and the members. */
export function withMembers(m: RunManifest, claims: readonly GrantedClaim[], members: Members | null): RunManifest {
  if (!members) return m;
  for (const c of claims) {
    if (c.member === undefined) continue;
    m.locks.push({ name: `${c.pool}/${c.member}`, scope: isClusterKey(c.key) ? 'cluster' : 'local', mode: 'exclusive', path: c.key, fencing_token: c.fencingToken });
  }
  m.members = members;
  return m;
}

/** The member locks as the started manifest lists them (the grant itself is gone once released). */
export function memberLocks(m: RunManifest | null): RunManifest['locks'] {
  if (!m?.members) return [];
  const names = new Set(Object.entries(m.members).flatMap(([p, ms]) => ms.map((x) => `${p}/${x.name}`)));
  return m.locks.filter((l) => names.has(l.name));
}

/** A member claim as `started` and status report it. */
export function memberGrantInfo(c: GrantedClaim, defs: readonly PoolDefinition[], waitMs: number): GrantInfo {
  return {
    name: `${c.pool}/${c.member}`,
    scope: isClusterKey(c.key) ? 'cluster' : 'local',
    mode: c.mode,
    path: c.key,
    slot_index: null,
    fencing_token: c.fencingToken,
    wait_ms: waitMs,
    pool: c.pool!,
    member: c.member!,
    properties: propertiesOf(defs, c),
  };
}

/** result.json with the members (and their locks) and, for a superseded run, who superseded it. */
export function resultWithMembers(r: RunResult, m: RunManifest | null, supersededBy: string | null): RunResult {
  const wait = r.locks[0]?.wait_ms ?? r.queue_wait_ms;
  for (const l of memberLocks(m)) r.locks.push({ name: l.name, scope: l.scope, mode: 'exclusive', path: l.path, wait_ms: wait });
  if (m?.members) r.members = m.members;
  if (r.reason === 'superseded' && supersededBy) r.superseded_by = supersededBy;
  return r;
}
