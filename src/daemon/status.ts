/** `lockd status` and `lockd inspect`: who holds each lock, who waits behind whom, and for about how long. */
import type { Connection } from './connection.js';
import type { DaemonCore } from './core.js';
import type { LockRef, LockStatus, StatusSnapshot } from '../protocol/messages.js';
import { holderInfo } from './owner.js';
import { resolveLock } from './lock-resolve.js';
import type { LockSnapshot } from './lock-table.js';
import type { Owner } from './owner.js';

function lockStatus(core: DaemonCore, snap: LockSnapshot<Owner>, now: number): LockStatus {
  const meta = snap.holders[0]?.meta ?? snap.waiters[0]?.meta;
  const lock = meta?.locks.find((l) => l.key === snap.key);
  const typical = core.durations.typical(snap.key);
  // ETA for the head waiter: what the longest-running current holder has left of a typical run.
  let eta: number | null = null;
  if (snap.waiters.length && typical !== null) {
    eta = 0;
    for (const h of snap.holders) eta = Math.max(eta, typical - (now - h.grantedAt));
    eta = Math.max(0, eta);
  }
  return {
    key: snap.key,
    name: lock?.name ?? snap.key,
    scope: lock?.scope ?? 'local',
    mode: snap.mode,
    capacity: snap.capacity,
    holders: snap.holders.map((h) => ({
      ...holderInfo(h.meta),
      mode: h.mode,
      slot_index: h.slotIndex ?? null,
      nested: h.nested,
      elapsed_ms: now - h.grantedAt,
      fencing_token: h.fencingToken,
    })),
    waiters: snap.waiters.map((w) => ({
      ...holderInfo(w.meta),
      position: w.position,
      mode: w.mode,
      wants: w.meta.locks.map((l) => l.name),
      waiting_ms: now - w.since,
      blocked_by: core.table.blockersOf(w.requestId).map((b) => b.requestId),
    })),
    estimated_wait_ms: eta,
  };
}

export function buildStatus(core: DaemonCore, root: string | null): StatusSnapshot {
  const now = Date.now();
  let locks = core.table.snapshot().map((s) => lockStatus(core, s, now));
  if (root) locks = locks.filter((l) => l.key.startsWith(root.endsWith('/') ? root : root + '/') || l.scope !== 'local');
  return {
    daemon: { version: core.info().version, pid: process.pid, uptime_ms: now - core.startedAt, mode: core.mode, socket: core.socketPath, state_dir: core.stateDir },
    locks,
    runs: [...core.runs.values()].map((j) => ({
      run_id: j.runId,
      pid: j.pid,
      holder: j.req.holder,
      user: j.req.user,
      command_line: j.owner.commandLine ?? j.req.argv.join(' '),
      state: j.state === 'queued' || j.state === 'starting' ? 'queued' : j.state === 'running' ? 'running' : 'stopping',
      since_utc: new Date(j.startedAt ?? j.queuedAt).toISOString(),
      locks: j.locks.map((l) => l.name),
      detach: j.detached,
    })),
    holds: core.holds.list().map((h) => ({
      hold_id: h.id,
      holder: h.owner.holder,
      user: h.owner.user,
      locks: h.locks.map((l) => l.name),
      since_utc: new Date(h.owner.since).toISOString(),
      ttl_ms: h.ttlMs,
      expires_utc: h.expiresAt ? new Date(h.expiresAt).toISOString() : null,
    })),
  };
}

export function buildInspect(core: DaemonCore, conn: Connection, ref: LockRef): void {
  const lock = resolveLock(ref, { globalDir: core.globalDir, callerUid: core.uidOf(conn) });
  const snap = core.table.snapshotKey(lock.key);
  conn.end({ type: 'inspect', key: lock.key, lock: snap ? lockStatus(core, snap, Date.now()) : null });
}
