/**
 * Explicit holds: reservations without a child (several CI steps, a debugging session on a shared board).
 * A hold keeps its locks until released, or until its TTL passes without a heartbeat (the TTL bounds how long
 * a crashed CI runner can block others; it is not a cap on the hold's length). One timer per hold with a TTL,
 * none otherwise: an idle daemon with `--ttl none` holds does no work at all. One concern (holds: acquire, heartbeat,
 * expiry, release, restore), over 400 lines for the acquire paths' refusals and the journal of each change.
 */
import { randomBytes } from 'node:crypto';
import type { Connection } from '../server/connection.js';
import type { Callers, JournalSink, LockParts } from '../ports.js';
import type { AcquireRequest, LockRef, HolderInfo } from '../../protocol/messages.js';
import { resolveLocks, type ResolvedLock } from '../records/lock-resolve.js';
import { LockdError } from '../../util/errors.js';
import type { Grant, LockRequest } from '../locks/lock-table.js';
import { isClusterKey } from '../locks/cluster-keys.js';
import { grantAgain } from '../locks/grant-again.js';
import { journalLock, type JournalLock } from '../records/journal.js';
import { describeBlocker, holderInfo, type Owner } from '../locks/owner.js';
import { sameOwner } from './holder-base.js';
import { claimedHolder } from './identity.js';
import { memberInfo, memberLocksOf, poolClaimsOf } from './pools-holds.js';
import { WaitProgress } from './wait-progress.js';

export interface Hold {
  id: string;
  owner: Owner;
  locks: ResolvedLock[];
  ttlMs: number | null;
  expiresAt: number | null;
  timer: NodeJS.Timeout | null;
  grant: Grant<Owner> | null;
  queuedAt: number;
  /** The acquiring client, while it waits. */
  conn: Connection | null;
  waitTimer: NodeJS.Timeout | null;
  /** progress_ms: `progress` messages to the waiting client (jobs/wait-progress.ts). */
  progress?: WaitProgress | null;
  /** Epoch ms after which a hold still not acquired gives up (from --wait); null = wait forever. */
  deadline: number | null;
  /** What was asked, for the not-obtained reply. */
  req: AcquireRequest | null;
}

export function newHoldId(): string {
  return `hold-${randomBytes(6).toString('hex')}`;
}

/** What holds need: the lock table and its files, events, log and cluster; the journal; who is asking. */
export interface HoldContext extends LockParts {
  readonly journal: JournalSink;
  readonly callers: Callers;
  readonly mode: 'user' | 'system';
  readonly globalDir: string;
  /** System mode: holder strings are annotated with the verified caller; null per user. */
  readonly system: { describeCaller(conn: Connection): string } | null;
  /** A queued request's estimated wait, for progress messages (services/wait-etas.ts). */
  waitEta(requestId: string): number | null;
}

export class HoldManager {
  readonly holds = new Map<string, Hold>();

  constructor(private readonly ctx: HoldContext) {}

  async acquire(conn: Connection, req: AcquireRequest): Promise<void> {
    const uid = this.ctx.callers.uidOf(conn);
    const locks = resolveLocks(req.locks, { globalDir: this.ctx.globalDir, callerUid: uid, clusterPrefix: this.ctx.cluster?.prefix ?? null });
    if (locks.length === 0 && !req.pools?.length) throw new LockdError('usage', 'acquire needs at least one lock or pool');
    // The holder asking again for what it holds (or already queues for) would wait behind itself for good.
    const mine = this.ownHoldOn(
      req.holder,
      uid,
      locks.map((l) => l.key),
    );
    if (mine) {
      const names = mine.locks
        .filter((l) => locks.some((x) => x.key === l.key))
        .map((l) => l.name)
        .join(', ');
      throw new LockdError(
        'already_held',
        `you already ${mine.grant ? 'hold' : 'wait for'} ${names} as ${mine.id} (since ${new Date(mine.queuedAt).toISOString()}); run under it with LOCKD_HOLD_ID=${mine.id}, or lockd release ${mine.id} first`,
      );
    }
    const id = newHoldId();
    const now = Date.now();
    const owner: Owner = { kind: 'hold', id, holder: req.holder, user: req.user, uid, pid: this.ctx.callers.pidOf(conn, req.client_pid), commandLine: null, cwd: req.cwd, since: now, locks };
    const hold: Hold = {
      id,
      owner,
      locks,
      ttlMs: req.ttl_ms,
      expiresAt: null,
      timer: null,
      grant: null,
      queuedAt: now,
      conn,
      waitTimer: null,
      deadline: req.wait_ms === null ? null : now + req.wait_ms,
      req,
    };
    this.holds.set(id, hold);
    // Until it is acquired a hold lives only as long as its client: one that gives up (Ctrl+C, lost) leaves the
    // queue. Once acquired, the hold outlives the client — that is what it is for.
    conn.attachment.onClose = () => this.abandon(hold);
    const request = {
      id,
      claims: locks.map((l) => ({ key: l.key, mode: l.mode, ...(l.slots ? { slots: l.slots } : {}) })),
      meta: owner,
      ...poolClaimsOf(req),
    };
    if (this.ctx.cluster?.handles(locks, req.pools)) {
      this.acquireCluster(hold, request);
      return;
    }
    const res = req.wait_ms === 0 ? this.ctx.gate.table.tryOnly(request) : this.ctx.gate.table.submit(request);
    if (res.kind === 'granted') {
      this.ctx.events.emit(
        'granted',
        id,
        locks.map((l) => l.key),
      );
      await this.onGranted(res.grant);
      return;
    }
    if (res.kind === 'rejected') {
      this.holds.delete(id);
      throw new LockdError(res.code === 'deadlock' ? 'deadlock' : 'usage', res.message);
    }
    if (res.kind === 'busy') {
      this.holds.delete(id);
      this.notObtained(hold, res.blockers, 'lock_busy');
      return;
    }
    this.ctx.events.emit(
      'queued',
      id,
      locks.map((l) => l.key),
      { position: this.ctx.gate.table.queuePosition(id) },
    );
    const blockers = res.blockers.map((b) => holderInfo(b.meta));
    conn.send({ type: 'queued', run_id: id, position: this.ctx.gate.table.queuePosition(id), blockers, manifest_path: '', result_path: '' });
    // Local holds get no `waiting` updates: each progress message reads the queue afresh.
    this.startProgress(hold, 0, blockers, true);
    if (req.wait_ms !== null) {
      hold.waitTimer = setTimeout(() => {
        hold.waitTimer = null;
        if (hold.grant || this.holds.get(id) !== hold || this.ctx.gate.table.isHolding(id)) return;
        const blockers = this.ctx.gate.table.blockersOf(id);
        this.holds.delete(id);
        this.ctx.gate.cancel(id);
        this.notObtained(hold, blockers, 'lock_wait_timeout');
      }, req.wait_ms);
    }
  }

  /** Cluster locks (docs/cluster.md): queued across hosts by the cluster module, which owns the --wait deadline. */
  private acquireCluster(hold: Hold, request: LockRequest<Owner>): void {
    const waitMs = hold.req?.wait_ms ?? null;
    const keys = hold.locks.map((l) => l.key);
    this.ctx.cluster!.enqueue({
      request,
      locks: hold.locks,
      waitMs,
      tryOnly: waitMs === 0,
      callbacks: {
        onQueued: (position, blockers) => {
          this.ctx.events.emit('queued', hold.id, keys, { position });
          hold.conn?.send({ type: 'queued', run_id: hold.id, position, blockers, manifest_path: '', result_path: '' });
          this.startProgress(hold, position, blockers, false);
        },
        onWaiting: (position, blockers) => {
          hold.conn?.send({ type: 'waiting', position, blockers });
          hold.progress?.saw(position, blockers);
        },
        onGranted: (grant) => {
          this.ctx.events.emit('granted', hold.id, keys);
          void this.onGranted(grant);
        },
        onNotObtained: (reason, message, blockers) => {
          if (this.holds.get(hold.id) !== hold) return;
          this.holds.delete(hold.id);
          const conn = hold.conn;
          hold.conn = null;
          if (reason === 'deadlock' || reason === 'usage') {
            conn?.fail(reason, message);
            return;
          }
          this.ctx.events.emit('not_obtained', hold.id, keys, { reason });
          // cluster_unavailable keeps its own exit code (69, EX_UNAVAILABLE); the others are "not obtained".
          conn?.end({ type: 'not_obtained', code: reason, message, blockers, exit_code: reason === 'cluster_unavailable' ? 69 : (hold.req?.conflict_exit_code ?? 75) });
        },
      },
    });
  }

  /** The cluster lease behind this hold's cluster locks is running out or gone: the hold ends now. */
  onClusterLockLost(id: string, message: string): void {
    const hold = this.holds.get(id);
    if (!hold) return;
    this.ctx.log.error('hold lost its cluster lock; released', { hold_id: id, holder: hold.owner.holder, message });
    void this.drop(hold, 'hold_released', `lockd (${message})`);
  }

  /** The client of a hold not yet acquired went away: leave the queue (or give back a grant not yet taken up). */
  private abandon(hold: Hold): void {
    if (hold.grant || this.holds.get(hold.id) !== hold) return;
    this.holds.delete(hold.id);
    if (hold.waitTimer) clearTimeout(hold.waitTimer);
    hold.waitTimer = null;
    stopProgress(hold);
    hold.conn = null;
    // release() withdraws a waiter and drops a table grant alike.
    this.ctx.gate.release(hold.id);
    this.ctx.events.emit(
      'cancelled',
      hold.id,
      hold.locks.map((l) => l.key),
      { reason: 'client_lost' },
    );
  }

  private notObtained(hold: Hold, blockers: Array<{ key: string; meta: Owner; kind: string }>, code: string, message?: string): void {
    const first = blockers.find((b) => b.kind === 'holder') ?? blockers[0];
    const name = first ? (hold.locks.find((l) => l.key === first.key)?.name ?? first.key) : '';
    const text = message ?? (first ? describeBlocker(name, first.meta) : 'lock is busy');
    this.ctx.events.emit(
      'not_obtained',
      hold.id,
      hold.locks.map((l) => l.key),
      { reason: code },
    );
    stopProgress(hold);
    const conn = hold.conn;
    hold.conn = null;
    conn?.end({ type: 'not_obtained', code, message: text, blockers: blockers.map((b) => holderInfo(b.meta)) as HolderInfo[], exit_code: hold.req?.conflict_exit_code ?? 75 });
  }

  async onGranted(grant: Grant<Owner>): Promise<void> {
    const hold = this.holds.get(grant.request.id);
    if (!hold) {
      this.ctx.gate.release(grant.request.id);
      return;
    }
    if (hold.waitTimer) clearTimeout(hold.waitTimer);
    hold.waitTimer = null;
    stopProgress(hold);
    const keys = grant.claims.map((c) => c.key);
    let ok: boolean;
    try {
      ok = await this.ctx.guard.take(grant.claims, hold.owner.uid);
    } catch (e) {
      // The lock file cannot be used (unsafe path, permissions): this hold can never be taken up.
      if (this.holds.get(hold.id) === hold) this.holds.delete(hold.id);
      this.ctx.gate.release(hold.id);
      const conn = hold.conn;
      hold.conn = null;
      const err = e as Error & { code?: string };
      conn?.fail(typeof err.code === 'string' && err.code === 'unsafe_lock_path' ? err.code : 'lock_file_error', `cannot prepare lock files: ${err.message}`);
      return;
    }
    if (this.holds.get(hold.id) !== hold) {
      // Abandoned while the files were being taken.
      if (ok) await this.ctx.guard.give(keys);
      return;
    }
    if (!ok) {
      // An outside flock user holds a file: stay first in line and look again shortly, within the --wait bound.
      if (hold.deadline !== null && Date.now() >= hold.deadline) {
        this.holds.delete(hold.id);
        this.ctx.gate.release(hold.id);
        this.notObtained(hold, [], hold.req?.wait_ms === 0 ? 'lock_busy' : 'lock_wait_timeout', `a lock file is flock'ed by a process outside lockd: ${keys.join(', ')}`);
        return;
      }
      setTimeout(() => {
        if (this.holds.get(hold.id) === hold && !hold.grant) void this.onGranted(grant);
      }, 100);
      return;
    }
    hold.grant = grant;
    // Its members are locks of the hold from now on: journaled, described, released and restored with the others.
    hold.locks.push(...memberLocksOf(grant));
    const now = Date.now();
    this.arm(hold, now);
    this.ctx.journal.append({
      t: 'hold',
      hold_id: hold.id,
      locks: this.journalLocks(hold, grant),
      holder: hold.owner.holder,
      user: hold.owner.user,
      uid: hold.owner.uid,
      since: now,
      ttl_ms: hold.ttlMs,
      expires_at: hold.expiresAt,
    });
    // Written before the client hears "acquired": whoever looks at the lock file after `lockd acquire` sees the hold.
    await this.ctx.guard.describe(
      grant.claims.filter((c) => !c.nested).map((c) => c.key),
      {
        pid: hold.owner.pid,
        pid_start_time: null,
        start_utc: new Date(now).toISOString(),
        start_epoch: Math.floor(now / 1000),
        cwd: hold.owner.cwd,
        cmd: `lockd acquire ${hold.locks.map((l) => l.name).join(' ')}`,
        hold_id: hold.id,
        holder: hold.owner.holder,
        lockd_pid: process.pid,
      },
    );
    this.ctx.events.emit(
      'hold_acquired',
      hold.id,
      hold.locks.map((l) => l.key),
      { holder: hold.owner.holder, ttl_ms: hold.ttlMs },
    );
    const conn = hold.conn;
    hold.conn = null;
    hold.req = null;
    conn?.end({
      type: 'acquired',
      hold_id: hold.id,
      locks: grant.claims.map((c) => {
        const l = hold.locks.find((x) => x.key === c.key)!;
        const member = c.member !== undefined ? memberInfo(this.ctx.gate.table, c) : {};
        return { name: l.name, scope: l.scope, mode: c.mode, path: c.key, slot_index: c.slotIndex ?? null, fencing_token: c.fencingToken, wait_ms: now - hold.queuedAt, ...member };
      }),
      queue_wait_ms: now - hold.queuedAt,
      holder: hold.owner.holder,
      ttl_ms: hold.ttlMs,
    });
  }

  private journalLocks(hold: Hold, grant: Grant<Owner>) {
    return hold.locks.map((l) => {
      const c = grant.claims.find((x) => x.key === l.key);
      return journalLock(l, c?.fencingToken ?? 0, c?.slotIndex);
    });
  }

  /** (Re)start the TTL clock. */
  private arm(hold: Hold, now: number): void {
    if (hold.timer) clearTimeout(hold.timer);
    hold.timer = null;
    if (hold.ttlMs === null) {
      hold.expiresAt = null;
      return;
    }
    hold.expiresAt = now + hold.ttlMs;
    hold.timer = setTimeout(() => void this.expire(hold), hold.ttlMs);
  }

  private async expire(hold: Hold): Promise<void> {
    if (this.holds.get(hold.id) !== hold) return;
    this.ctx.log.warn('hold expired without heartbeat; its locks are released', { hold_id: hold.id, holder: hold.owner.holder, ttl_ms: hold.ttlMs, locks: hold.locks.map((l) => l.key) });
    await this.drop(hold, 'hold_expired', null);
  }

  private async drop(hold: Hold, event: 'hold_released' | 'hold_expired', by: string | null): Promise<void> {
    this.holds.delete(hold.id);
    if (hold.timer) clearTimeout(hold.timer);
    const grant = hold.grant;
    // Announced before the table hands the locks on, so `lockd events` shows this release before the next grant.
    this.ctx.events.emit(
      event,
      hold.id,
      hold.locks.map((l) => l.key),
      { holder: hold.owner.holder, ...(event === 'hold_expired' ? { ttl_ms: hold.ttlMs } : {}), ...(by ? { by } : {}) },
    );
    this.ctx.gate.release(hold.id);
    if (grant) await this.ctx.guard.give(grant.claims.map((c) => c.key));
    this.ctx.journal.append({ t: 'hold_end', hold_id: hold.id });
  }

  private owns(hold: Hold, holder: string, uid: number | null): boolean {
    if (this.ctx.mode === 'system' && uid !== hold.owner.uid) return false;
    // The verified uid decides first; the holder strings (annotated in system mode) are compared without the annotation.
    if (this.ctx.system) return sameOwner(claimedHolder(hold.owner.holder), claimedHolder(holder));
    return sameOwner(hold.owner.holder, holder);
  }

  async heartbeat(conn: Connection, holdId: string, holder: string): Promise<void> {
    const hold = this.holds.get(holdId);
    if (!hold?.grant) throw new LockdError('no_such_hold', `no active hold ${holdId} (it may have expired or been released)`);
    if (!this.owns(hold, holder, this.ctx.callers.uidOf(conn))) throw new LockdError('not_owner', `hold ${holdId} belongs to ${hold.owner.holder}`);
    const now = Date.now();
    this.arm(hold, now);
    this.ctx.journal.append({ t: 'hold_hb', hold_id: hold.id, expires_at: hold.expiresAt });
    conn.end({ type: 'ok', note: hold.expiresAt ? `expires ${new Date(hold.expiresAt).toISOString()}` : 'no ttl' });
  }

  async release(conn: Connection, msg: { hold_id: string | null; locks: LockRef[]; holder: string; force: boolean }): Promise<void> {
    const uid = this.ctx.callers.uidOf(conn);
    let targets: Hold[] = [];
    if (msg.hold_id) {
      const h = this.holds.get(msg.hold_id);
      // A hold still waiting is its acquiring client's to cancel (Ctrl+C), not release's.
      if (h?.grant) targets = [h];
    } else {
      const keys = new Set(resolveLocks(msg.locks, { globalDir: this.ctx.globalDir, callerUid: uid, clusterPrefix: this.ctx.cluster?.prefix ?? null }).map((l) => l.key));
      targets = [...this.holds.values()].filter((h) => h.grant && h.locks.some((l) => keys.has(l.key)));
    }
    if (targets.length === 0) {
      conn.end({ type: 'released', released: false, note: msg.hold_id ? `no active hold ${msg.hold_id}; nothing to release` : 'no hold covers those locks; nothing to release', hold_ids: [] });
      return;
    }
    const mine = targets.filter((h) => this.owns(h, msg.holder, uid));
    const others = targets.filter((h) => !mine.includes(h));
    let forced: Hold[] = [];
    if (msg.force && others.length) {
      if (this.ctx.mode === 'system' && uid !== 0 && !this.ctx.callers.isAdmin(conn)) {
        throw new LockdError('not_authorized', `only the owner or a member of the lockd admin group can break ${others.map((h) => h.id).join(', ')}`);
      }
      forced = others;
    }
    const by = this.ctx.system ? this.ctx.system.describeCaller(conn) : `${msg.holder}${uid !== null ? ` (uid ${uid})` : ''}`;
    for (const h of mine) await this.drop(h, 'hold_released', null);
    for (const h of forced) {
      this.ctx.log.warn('hold broken with --force', { hold_id: h.id, owner: h.owner.holder, by });
      await this.drop(h, 'hold_released', by);
    }
    const released = [...mine, ...forced];
    const note =
      others.length && !msg.force
        ? `${others.map((h) => `${h.id} is held by ${h.owner.holder}`).join('; ')}: not yours, left in place (use --force to break it)`
        : forced.length
          ? `broke ${forced.map((h) => h.id).join(', ')} held by ${forced.map((h) => h.owner.holder).join(', ')} (by ${by})`
          : null;
    conn.end({ type: 'released', released: released.length > 0, note, hold_ids: released.map((h) => h.id) });
  }

  /**
   * The hold a run names (--hold / LOCKD_HOLD_ID), if it is active and the caller's own; else a clear error. A run
   * that names a hold it cannot join fails instead of running without it: it would only wait behind that hold.
   */
  joinable(holdId: string, holder: string, uid: number | null): string {
    const h = this.holds.get(holdId);
    if (!h?.grant) {
      throw new LockdError('no_such_hold', `hold ${holdId} (from --hold or LOCKD_HOLD_ID) is not active: released, expired or never taken; unset LOCKD_HOLD_ID or take a new hold`);
    }
    if (!this.owns(h, holder, uid)) throw new LockdError('not_owner', `hold ${holdId} belongs to ${h.owner.holder}; only its holder may run under it`);
    return h.id;
  }

  /** An active or waiting hold of this holder that names one of these keys: a second acquire would wait behind it. */
  private ownHoldOn(holder: string, uid: number | null, keys: string[]): Hold | null {
    for (const h of this.holds.values()) {
      if (this.owns(h, holder, uid) && h.locks.some((l) => keys.includes(l.key))) return h;
    }
    return null;
  }

  /** Restore a hold from the journal after a restart (its locks are re-granted before new work is accepted). */
  restore(
    rec: { hold_id: string; holder: string; user: string; uid: number | null; since: number; ttl_ms: number | null; expires_at: number | null; locks: JournalLock[] },
    locks: ResolvedLock[],
  ): boolean {
    // A cluster lock died with the previous daemon's lease: such a hold cannot be restored.
    if (locks.some((l) => isClusterKey(l.key))) return false;
    const owner: Owner = { kind: 'hold', id: rec.hold_id, holder: rec.holder, user: rec.user, uid: rec.uid, pid: null, commandLine: null, cwd: null, since: rec.since, locks };
    const hold: Hold = {
      id: rec.hold_id,
      owner,
      locks,
      ttlMs: rec.ttl_ms,
      expiresAt: rec.expires_at,
      timer: null,
      grant: null,
      queuedAt: rec.since,
      conn: null,
      waitTimer: null,
      deadline: null,
      req: null,
    };
    // On the slots it had: its owner was told LOCKD_SLOT_<name> and may be using that board now.
    const res = grantAgain(this.ctx.gate.table, { id: hold.id, claims: rec.locks, meta: owner });
    if (res.kind !== 'granted') return false;
    hold.grant = res.grant;
    this.holds.set(hold.id, hold);
    void this.ctx.guard.take(res.grant.claims, owner.uid);
    if (hold.expiresAt !== null) {
      const left = Math.max(0, hold.expiresAt - Date.now());
      hold.timer = setTimeout(() => void this.expire(hold), left);
    }
    return true;
  }

  list(): Hold[] {
    return [...this.holds.values()].filter((h) => h.grant);
  }

  async shutdown(): Promise<void> {
    // Holds survive a graceful restart: their journal records stay, timers stop with the process.
    for (const h of this.holds.values()) {
      if (h.timer) clearTimeout(h.timer);
      if (h.waitTimer) clearTimeout(h.waitTimer);
      stopProgress(h);
    }
  }

  /** `lockd acquire` without a terminal asked for progress lines while it waits (progress_ms). */
  private startProgress(hold: Hold, position: number, blockers: HolderInfo[], fresh: boolean): void {
    const every = hold.req?.progress_ms;
    if (!every || hold.progress || !hold.conn) return;
    hold.progress = new WaitProgress(every, position, blockers, {
      send: (pos, bl) => {
        if (hold.grant || this.holds.get(hold.id) !== hold || !hold.conn) return;
        const table = this.ctx.gate.table;
        const now = fresh ? { position: table.queuePosition(hold.id), blockers: table.blockersOf(hold.id).map((b) => holderInfo(b.meta)) } : { position: pos, blockers: bl };
        hold.conn.send({ type: 'progress', ...now, eta_ms: this.ctx.waitEta(hold.id) });
      },
    });
  }
}

function stopProgress(hold: Hold): void {
  hold.progress?.stop();
  hold.progress = null;
}
