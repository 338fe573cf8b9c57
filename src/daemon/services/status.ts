/** `lockd status` and `lockd inspect`: who holds each lock, who waits behind whom, and for about how long. */
import { sep } from 'node:path';
import type { Connection } from '../server/connection.js';
import type { DaemonInfo } from '../../protocol/messages.js';
import type { LockTable } from '../locks/lock-table.js';
import type { ClusterService } from '../locks/cluster-port.js';
import type { RunJob } from '../jobs/run-job.js';
import type { HoldManager } from './holds.js';
import type { AdoptedRuns } from '../records/adopt.js';
import type { DurationStats } from '../records/duration-stats.js';
import type { Callers } from '../ports.js';
import type { LockRef, LockStatus, StatusSnapshot } from '../../protocol/messages.js';
import { canonicalPath, resolveLock } from '../records/lock-resolve.js';
import type { LockSnapshot } from '../locks/lock-table.js';
import type { Owner } from '../locks/owner.js';
import { snapshotEtas } from '../locks/wait-estimate.js';

/** What status and inspect read: the table, the live runs and holds, past durations, who asks. */
export interface StatusSource {
  info(): DaemonInfo;
  readonly startedAt: number;
  readonly table: LockTable<Owner>;
  readonly runs: ReadonlyMap<string, RunJob>;
  readonly holds: Pick<HoldManager, 'list'>;
  readonly adopted: Pick<AdoptedRuns, 'list'> | null;
  readonly durations: Pick<DurationStats, 'typical'>;
  readonly cluster: ClusterService | null;
  readonly callers: Callers;
  readonly globalDir: string;
}

function lockStatus(core: StatusSource, snap: LockSnapshot<Owner>, now: number): LockStatus {
  const meta = snap.holders[0]?.meta ?? snap.waiters[0]?.meta;
  const lock = meta?.locks.find((l) => l.key === snap.key);
  // A run is expected to take the typical time; an explicit hold ends when its owner says so.
  const etas = snapshotEtas(snap, core.durations.typical(snap.key), now, (o) => o.kind === 'run');
  // Objects are written out field by field (same keys, same order as holderInfo's): a spread builds each one
  // property by property, which for 10,000 waiters was most of the snapshot's cost, and JSON.stringify is faster
  // on objects that all share one shape.
  const holders: LockStatus['holders'] = [];
  for (const h of snap.holders) {
    const o = h.meta;
    holders.push({
      kind: o.kind,
      id: o.id,
      pid: o.pid,
      holder: o.holder,
      user: o.user,
      uid: o.uid,
      command_line: o.commandLine,
      // A holder's "since" is when it got the lock (its meta says when it asked).
      since_utc: isoOf(h.grantedAt),
      cwd: o.cwd,
      mode: h.mode,
      slot_index: h.slotIndex ?? null,
      nested: h.nested,
      elapsed_ms: now - h.grantedAt,
      fencing_token: h.fencingToken,
    });
  }
  const blockedBy = core.table.blockerIdsByWaiter(snap.key);
  const waiters: LockStatus['waiters'] = [];
  for (let i = 0; i < snap.waiters.length; i++) {
    const w = snap.waiters[i]!;
    const o = w.meta;
    waiters.push({
      kind: o.kind,
      id: o.id,
      pid: o.pid,
      holder: o.holder,
      user: o.user,
      uid: o.uid,
      command_line: o.commandLine,
      since_utc: isoOf(o.since),
      cwd: o.cwd,
      position: w.position,
      mode: w.mode,
      wants: wantsOf(o),
      waiting_ms: now - w.since,
      // Holders in its way first (on any of its locks), then waiters ahead of it; each once.
      blocked_by: blockedBy[i] ?? core.table.blockerIdsOf(w.requestId),
      estimated_wait_ms: etas[i] ?? null,
      priority: w.priority ?? 0,
    });
  }
  const member = core.table.memberOf(snap.key);
  if (member) {
    const def = core.table
      .pools()
      .find((d) => d.name === member.pool)
      ?.members.find((m) => m.name === member.member);
    return {
      key: snap.key,
      name: `${member.pool}/${member.member}`,
      scope: 'local',
      mode: snap.mode,
      capacity: snap.capacity,
      holders,
      waiters,
      estimated_wait_ms: etas[0] ?? null,
      pool: member.pool,
      member: member.member,
      // A member removed from lockd.json while held has no properties any more; it goes once released.
      properties: def ? { ...def.properties } : null,
      disabled: def?.disabled === true,
    };
  }
  return {
    key: snap.key,
    name: lock?.name ?? snap.key,
    scope: lock?.scope ?? 'local',
    mode: snap.mode,
    capacity: snap.capacity,
    holders,
    waiters,
    estimated_wait_ms: etas[0] ?? null,
  };
}

let isoSecond = NaN;
let isoPrefix = '';

/**
 * new Date(ms).toISOString(), with the part up to the second cached: a snapshot formats thousands of times that
 * fall within a few seconds of each other (queued waiters), and the full conversion was a tenth of its cost.
 */
export function isoOf(ms: number): string {
  if (!Number.isSafeInteger(ms)) return new Date(ms).toISOString();
  const second = Math.floor(ms / 1000);
  if (second !== isoSecond) {
    const iso = new Date(second * 1000).toISOString();
    if (!iso.endsWith('.000Z')) return new Date(ms).toISOString();
    isoSecond = second;
    isoPrefix = iso.slice(0, -4);
  }
  const frac = ms - second * 1000;
  return `${isoPrefix + (frac < 10 ? '00' : frac < 100 ? '0' : '') + frac}Z`;
}

/** What a waiter asked for, as the user wrote it: `name`, `name:shared`, `name:slots=N`. */
function wantsOf(o: Owner): string[] {
  return o.locks.map((l) => (l.mode === 'exclusive' ? l.name : l.mode === 'shared' ? `${l.name}:shared` : `${l.name}:slots=${l.slots ?? '?'}`));
}

/** Is this lock file under the build root (canonical paths on both sides)? */
function underRoot(key: string, root: string): boolean {
  return key.startsWith(root.endsWith(sep) ? root : root + sep);
}

export function buildStatus(core: StatusSource, root: string | null): StatusSnapshot {
  const now = Date.now();
  let locks = core.table.snapshot().map((s) => lockStatus(core, s, now));
  let inScope: ((keys: string[]) => boolean) | null = null;
  if (root) {
    // --root narrows the local locks to that build root; global locks concern every root, so they stay.
    const canon = canonicalPath(root);
    locks = locks.filter((l) => l.scope !== 'local' || underRoot(l.key, canon));
    const keys = new Set(locks.map((l) => l.key));
    inScope = (lockKeys) => lockKeys.some((k) => keys.has(k));
  }
  const runs = [...core.runs.values()].filter((j) => inScope?.(j.locks.map((l) => l.key)) ?? true);
  const holds = core.holds.list().filter((h) => inScope?.(h.locks.map((l) => l.key)) ?? true);
  // --detach runs re-adopted after a daemon restart hold locks too (adopt.ts); they are listed with the others.
  const adopted = (core.adopted?.list() ?? []).filter((a) => inScope?.(a.rec.locks.map((l) => l.key)) ?? true);
  const info = core.info();
  return {
    daemon: {
      version: info.version,
      pid: process.pid,
      uptime_ms: now - core.startedAt,
      mode: info.mode,
      socket: info.socket,
      state_dir: info.state_dir,
      ...(info.launcher ? { launcher: info.launcher } : {}),
    },
    locks,
    runs: runs
      .map((j): StatusSnapshot['runs'][number] => ({
        run_id: j.runId,
        pid: j.pid,
        holder: j.req.holder,
        user: j.req.user,
        command_line: j.owner.commandLine ?? j.req.argv.join(' '),
        state: j.state === 'queued' || j.state === 'starting' ? 'queued' : j.state === 'running' ? 'running' : 'stopping',
        since_utc: new Date(j.startedAt ?? j.queuedAt).toISOString(),
        locks: j.locks.map((l) => l.name),
        detach: j.detached,
      }))
      .concat(
        adopted.map((a) => ({
          run_id: a.rec.run_id,
          pid: a.rec.pid,
          holder: a.rec.holder,
          user: a.rec.user,
          command_line: a.rec.command_line,
          state: 'running' as const,
          since_utc: new Date(a.rec.started_at ?? a.rec.queued_at).toISOString(),
          locks: a.rec.locks.map((l) => l.name),
          detach: true,
        })),
      ),
    holds: holds.map((h) => ({
      hold_id: h.id,
      holder: h.owner.holder,
      user: h.owner.user,
      locks: h.locks.map((l) => l.name),
      since_utc: isoOf(h.grant?.grantedAt ?? h.owner.since),
      ttl_ms: h.ttlMs,
      expires_utc: h.expiresAt ? new Date(h.expiresAt).toISOString() : null,
    })),
  };
}

export function buildInspect(core: StatusSource, conn: Connection, ref: LockRef): void | Promise<void> {
  const lock = resolveLock(ref, { globalDir: core.globalDir, callerUid: core.callers.uidOf(conn), clusterPrefix: core.cluster?.prefix ?? null });
  // A cluster lock lives in etcd (every host's holders and waiters), not in this daemon's table.
  if (lock.scope === 'cluster' && core.cluster) return core.cluster.inspect(lock.key).then((l) => conn.end({ type: 'inspect', key: lock.key, lock: l }));
  const snap = core.table.snapshotKey(lock.key);
  conn.end({ type: 'inspect', key: lock.key, lock: snap ? lockStatus(core, snap, Date.now()) : null });
}
