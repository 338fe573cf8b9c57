/**
 * Cluster locks: `--global NAME` shared by every host of an etcd cluster, with the local LockTable still the only
 * authority for local locks. One concern (the two-phase cluster grant and its lease), over 400 lines because the
 * phases, the lease watchdog and their failure paths only make sense read together.
 *
 * A request that names cluster locks goes through two phases, and never holds one kind of lock while waiting for
 * the other:
 *
 *   1. cluster: one transaction creates a key per cluster lock, all with the daemon's lease, and reads each queue.
 *      The request waits (holding no local lock) until, on every lock, the keys created before its own allow it
 *      (queue-rules.ts). Waiting is by deletion events of a shared per-name watch.
 *   2. local: the local locks are tried at once (LockTable.tryOnly). Granted: the run starts. Busy: the cluster
 *      keys are deleted (so no other host waits on a request that cannot run) and the request waits, holding
 *      nothing, until a local lock changes hands; then phase 1 again.
 *
 * Fencing: the create revision of the request's key, which only grows for successive holders of a lock.
 * Liveness: see session.ts (the lease) and watchdog-main.ts (jobs of a dead daemon).
 */
import type { Etcd3 } from 'etcd3';
import type { ClusterHost } from '../daemon/locks/cluster-port.js';
import type { Logger } from '../daemon/server/logger.js';
import type { ResolvedLock } from '../daemon/records/lock-resolve.js';
import type { Grant, GrantedClaim, LockClaim, LockRequest, PoolClaim } from '../daemon/locks/lock-table.js';
import type { Owner } from '../daemon/locks/owner.js';
import type { HolderInfo, LockStatus } from '../protocol/messages.js';
import type { ClusterConfig } from './config.js';
import { errorText } from './etcd-client.js';
import { contendersPrefix, decodeValue, encodeValue, isClusterKey, nameOfClusterKey, prefixRangeEnd, requestKey, slotKey, slotsPrefix, type ClusterKeyValue } from '../daemon/locks/cluster-keys.js';
import { NameWatches } from './name-watch.js';
import { blockingEntries, classifyQueue, grantable, type Claim } from './queue-rules.js';
import { entryOf, holderInfoOf, lockStatusOf, readClusterStatus, type ClusterEntry } from './cluster-status.js';
import type { Lease, LeaseSession } from './session.js';
import type { ClusterCallbacks, ClusterEnqueue, ClusterInfo, ClusterService } from '../daemon/locks/cluster-port.js';
import type { Watchdog } from './watchdog.js';
import type { ClusterPools } from './cluster-pools.js';

interface Part {
  lock: ResolvedLock;
  name: string;
  contenders: string;
  claim: Claim;
  /** Our etcd key (null for a nested claim, which rides on its family's key). */
  key: string | null;
  /** Create revision of our key: place in the FIFO and fencing token. */
  revision: number;
  /** Keys created before ours that are still there. */
  earlier: Map<string, ClusterEntry>;
  ready: boolean;
  slotIndex: number | null;
  slotKey: string | null;
  /** A nested request reusing what its family holds. */
  nestedOf: { attempt: Attempt; part: Part } | null;
  unsubscribe: (() => void) | null;
}

type AttemptState = 'acquiring' | 'waiting' | 'ready' | 'pool_wait' | 'local_wait' | 'held' | 'done';

interface Attempt {
  id: string;
  request: LockRequest<Owner>;
  locks: ResolvedLock[];
  localClaims: LockClaim[];
  /** Claims on pools with `"scope": "cluster"` (granted by cluster-pools.ts) and on the host's own pools. */
  clusterPools: PoolClaim[];
  localPools: PoolClaim[];
  /** The cluster pool members granted (their etcd keys exist while the request holds or tries its local locks). */
  poolClaims: GrantedClaim[];
  /** While waiting for cluster pool members: the holders in the way (on any host), for status and timeouts. */
  poolBlockers: HolderInfo[];
  parts: Part[];
  callbacks: ClusterCallbacks;
  tryOnly: boolean;
  deadline: number | null;
  state: AttemptState;
  /** Bumped on every restart: async continuations of an older round see they are stale. */
  round: number;
  lease: Lease | null;
  queuedSent: boolean;
  lastPosition: number;
  unavailable: string | null;
  deadlineTimer: NodeJS.Timeout | null;
  retryTimer: NodeJS.Timeout | null;
  resyncTimer: NodeJS.Timeout | null;
  grant: Grant<Owner> | null;
  /** Deletion of this request's previous keys in flight: a new put of the same key must not race it. */
  deleting: Promise<void> | null;
}

export class ClusterLocks implements ClusterService {
  readonly prefix: string;
  readonly onLockLost: ClusterConfig['onLockLost'];
  readonly lockLostGraceMs: number;
  private readonly attempts = new Map<string, Attempt>();
  private readonly watches: NameWatches;
  private pokeScheduled = false;
  private closing = false;

  constructor(
    private readonly client: Etcd3,
    private readonly session: LeaseSession,
    private readonly watchdog: Watchdog,
    private readonly core: ClusterHost,
    private readonly cfg: ClusterConfig,
    private readonly log: Logger,
    private readonly pools: ClusterPools,
  ) {
    this.prefix = cfg.prefix;
    this.onLockLost = cfg.onLockLost;
    this.lockLostGraceMs = session.timing.killGraceMs;
    this.watches = new NameWatches(client, log);
    session.on('lost', (lease, reason) => this.onLeaseLost(lease, reason));
    session.on('renewed', (lease) => this.watchdog.deadline(lease.validUntil - Math.round(session.timing.safetyMarginMs / 3)));
  }

  handles(locks: ResolvedLock[], pools?: ReadonlyArray<{ pool: string }>): boolean {
    return locks.some((l) => isClusterKey(l.key)) || (pools ?? []).some((p) => this.pools.isClusterPool(p.pool));
  }

  editPool(action: 'add' | 'remove' | 'disable' | 'enable', pool: string, member: string | null, properties: Record<string, string>, reason: string | null): Promise<void> {
    return this.pools.editPool(action, pool, member, properties, reason);
  }

  clusterMembers(): Promise<LockStatus[]> {
    return this.pools.statusLocks(true);
  }

  // ---- entry points -------------------------------------------------------------------------------------

  enqueue(req: ClusterEnqueue): void {
    const { request } = req;
    const a: Attempt = {
      id: request.id,
      request,
      locks: req.locks,
      localClaims: request.claims.filter((c) => !isClusterKey(c.key)),
      clusterPools: (request.pools ?? []).filter((p) => this.pools.isClusterPool(p.pool)),
      localPools: (request.pools ?? []).filter((p) => !this.pools.isClusterPool(p.pool)),
      poolClaims: [],
      poolBlockers: [],
      parts: [],
      callbacks: req.callbacks,
      tryOnly: req.tryOnly,
      deadline: req.waitMs === null ? null : Date.now() + req.waitMs,
      state: 'acquiring',
      round: 0,
      lease: null,
      queuedSent: false,
      lastPosition: 0,
      unavailable: null,
      deadlineTimer: null,
      retryTimer: null,
      resyncTimer: null,
      grant: null,
      deleting: null,
    };
    for (const l of req.locks) {
      if (!isClusterKey(l.key)) continue;
      const name = nameOfClusterKey(this.prefix, l.key) ?? l.name;
      a.parts.push({
        lock: l,
        name,
        contenders: contendersPrefix(this.prefix, name),
        claim: { mode: l.mode, slots: l.mode === 'slots' ? (l.slots ?? 1) : null },
        key: null,
        revision: 0,
        earlier: new Map(),
        ready: false,
        slotIndex: null,
        slotKey: null,
        nestedOf: null,
        unsubscribe: null,
      });
    }
    // Nesting: a run inside a run (or hold) that holds a cluster lock re-enters it instead of queueing behind itself.
    for (const p of a.parts) {
      const fam = this.familyHolding(request.parent ?? null, p.name);
      if (!fam) continue;
      const theirs = fam.part.claim;
      const compatible = theirs.mode === 'exclusive' || (theirs.mode === p.claim.mode && theirs.slots === p.claim.slots);
      if (!compatible) {
        queueMicrotask(() =>
          req.callbacks.onNotObtained('deadlock', `deadlock: cluster lock ${p.name} is held ${theirs.mode} by the enclosing run ${fam.attempt.id}; a nested run cannot take it ${p.claim.mode}`, []),
        );
        return;
      }
      p.nestedOf = fam;
    }
    if (this.closing) {
      queueMicrotask(() => req.callbacks.onNotObtained('cluster_unavailable', 'the lockd daemon is shutting down', []));
      return;
    }
    if (a.clusterPools.length > 0 && request.parent && this.core.runs.has(request.parent)) {
      queueMicrotask(() => req.callbacks.onNotObtained('usage', `request ${a.id}: a nested request cannot claim pool members`, []));
      return;
    }
    this.attempts.set(a.id, a);
    if (a.deadline !== null && !a.tryOnly) {
      a.deadlineTimer = setTimeout(() => this.onDeadline(a), Math.max(0, a.deadline - Date.now()));
    }
    void this.acquireCluster(a);
  }

  release(id: string): void {
    const a = this.attempts.get(id);
    if (a) this.finish(a);
    this.localChanged();
  }

  cancel(id: string): void {
    const a = this.attempts.get(id);
    if (a && a.state !== 'held') this.finish(a);
    this.localChanged();
  }

  localChanged(): void {
    if (this.pokeScheduled) return;
    let any = false;
    for (const a of this.attempts.values()) if (a.state === 'local_wait') any = true;
    if (!any) return;
    this.pokeScheduled = true;
    setImmediate(() => {
      this.pokeScheduled = false;
      for (const a of [...this.attempts.values()]) {
        if (a.state === 'local_wait') void this.acquireCluster(a);
      }
    });
  }

  blockersOf(id: string): HolderInfo[] {
    const a = this.attempts.get(id);
    return a ? this.blockers(a) : [];
  }

  protect(runId: string, pid: number, stopOnLoss: boolean): void {
    const a = this.attempts.get(runId);
    if (a?.state !== 'held') return;
    if (stopOnLoss && (a.parts.some((p) => !p.nestedOf) || a.poolClaims.length > 0)) this.watchdog.protect(runId, pid);
    this.annotate(a, pid);
    this.pools.annotate(runId, pid);
  }

  // ---- phase 1: the cluster queues ----------------------------------------------------------------------

  private stale(a: Attempt, round: number): boolean {
    return a.round !== round || a.state === 'done' || a.state === 'held';
  }

  /** The daemon's lease for this round; null when etcd is unreachable (reported) or the round went stale. */
  private async leaseFor(a: Attempt, round: number): Promise<Lease | null> {
    let lease: Lease;
    try {
      lease = await this.session.ensure();
    } catch (e) {
      if (!this.stale(a, round)) this.unavailable(a, errorText(e));
      return null;
    }
    return this.stale(a, round) ? null : lease;
  }

  private async acquireCluster(a: Attempt): Promise<void> {
    const round = ++a.round;
    a.state = 'acquiring';
    this.clearRetry(a);
    const own = a.parts.filter((p) => !p.nestedOf);
    if (own.length === 0) {
      void this.poolPhase(a);
      return;
    }
    const lease = await this.leaseFor(a, round);
    if (!lease) return;
    if (a.lease && a.lease !== lease) this.dropKeys(a); // keys of an older lease: gone or about to go
    a.lease = lease;
    if (a.deleting) {
      await a.deleting;
      if (this.stale(a, round)) return;
    }
    const value = (p: Part): ClusterKeyValue => this.valueFor(a, p);
    for (const p of own) {
      p.key = requestKey(this.prefix, p.name, lease.hex, a.id);
      p.ready = false;
      p.earlier.clear();
    }
    let res;
    try {
      res = await this.client.kv.txn({
        success: [
          ...own.map((p) => ({ request_put: { key: Buffer.from(p.key!), value: encodeValue(value(p)), lease: lease.id } })),
          ...own.map((p) => ({
            request_range: { key: Buffer.from(p.contenders), range_end: prefixRangeEnd(p.contenders), sort_target: 'Create' as const, sort_order: 'Ascend' as const },
          })),
        ],
      });
    } catch (e) {
      this.session.noteError(lease, e);
      if (this.stale(a, round)) return;
      // The keys may or may not exist now; a retry under the same lease rewrites them and keeps their place.
      this.unavailable(a, errorText(e));
      return;
    }
    if (this.stale(a, round)) {
      // Withdrawn while the put was in flight (its delete may have overtaken it), or queued again under a new
      // lease: these keys are nobody's now. Never touch them when a newer round reuses them (same lease).
      if ((a.state as AttemptState) === 'done' || a.lease !== lease)
        void this.deleteKeys(
          lease,
          own.map((p) => requestKey(this.prefix, p.name, lease.hex, a.id)),
        );
      return;
    }
    a.unavailable = null;
    own.forEach((p, i) => {
      const kvs = res.responses[own.length + i]!.response_range.kvs;
      this.fillQueue(p, kvs);
    });
    if (own.some((p) => p.revision === 0)) {
      // Our own key is not there: the lease died between grant and put. Start over with a new one.
      this.session.markLost(lease, 'a key written with the lease vanished at once');
      return;
    }
    this.evaluate(a);
  }

  /** From a range of one lock's queue: our key's revision and the keys before it. */
  private fillQueue(p: Part, kvs: Array<{ key: Buffer; create_revision: string; value: Buffer; lease: string }>): void {
    p.earlier.clear();
    p.revision = 0;
    const entries: ClusterEntry[] = [];
    for (const kv of kvs) {
      const key = kv.key.toString('utf8');
      if (key === p.key) {
        p.revision = Number(kv.create_revision);
        continue;
      }
      const e = entryOf(this.prefix, key, Number(kv.create_revision), kv.value, kv.lease);
      if (e && e.name === p.name) entries.push(e);
    }
    for (const e of entries) if (e.createRevision < p.revision) p.earlier.set(e.key, e);
  }

  private evaluate(a: Attempt): void {
    if (a.state === 'done' || a.state === 'held') return;
    const own = a.parts.filter((p) => !p.nestedOf);
    for (const p of own) if (!p.ready && grantable(p.claim, p.earlier.values())) p.ready = true;
    if (own.every((p) => p.ready)) {
      if (a.state === 'ready') return;
      a.state = 'ready';
      void this.clusterReady(a);
      return;
    }
    if (a.tryOnly) {
      const blockers = this.blockers(a);
      const first = blockers[0];
      this.finish(a);
      a.callbacks.onNotObtained('lock_busy', `${this.busyName(a)} is busy in the cluster${first ? `: held by ${describe(first)}` : ''}`, blockers);
      return;
    }
    a.state = 'waiting';
    for (const p of own) {
      if (p.ready || p.unsubscribe) continue;
      p.unsubscribe = this.watches.subscribe(p.contenders, p.revision + 1, {
        onDelete: (key) => this.onDelete(a, p, key),
        onResync: () => void this.resync(a),
      });
    }
    // A slow re-read of the queues while waiting: cheap insurance against a watch event lost on a reconnect.
    if (!a.resyncTimer) {
      a.resyncTimer = setInterval(() => void this.resync(a), Math.max(1000, this.session.timing.ttlMs));
      a.resyncTimer.unref();
    }
    this.reportPosition(a);
  }

  private onDelete(a: Attempt, p: Part, key: string): void {
    if (a.state !== 'waiting') return;
    if (key === p.key) {
      // Our place in the queue is gone: the lease expired or someone deleted it. Queue again.
      this.log.warn('cluster queue entry disappeared; queueing again', { id: a.id, key });
      if (a.lease) this.session.markLost(a.lease, `key ${key} was deleted`);
      this.restart(a);
      return;
    }
    if (p.earlier.delete(key)) this.evaluate(a);
  }

  private async resync(a: Attempt): Promise<void> {
    if (a.state !== 'waiting') return;
    const round = a.round;
    const own = a.parts.filter((p) => !p.nestedOf && !p.ready);
    if (own.length === 0) return;
    let res;
    try {
      res = await this.client.kv.txn({
        success: own.map((p) => ({
          request_range: { key: Buffer.from(p.contenders), range_end: prefixRangeEnd(p.contenders), sort_target: 'Create' as const, sort_order: 'Ascend' as const },
        })),
      });
    } catch (e) {
      if (a.lease) this.session.noteError(a.lease, e);
      return; // the next resync or a watch event will do
    }
    if (a.round !== round || a.state !== 'waiting') return;
    let lostKey = false;
    own.forEach((p, i) => {
      const before = p.revision;
      this.fillQueue(p, res.responses[i]!.response_range.kvs);
      if (p.revision === 0 || p.revision !== before) lostKey = true;
    });
    if (lostKey) {
      if (a.lease) this.session.markLost(a.lease, 'our queue entry vanished');
      this.restart(a);
      return;
    }
    this.evaluate(a);
  }

  /** Every cluster lock allows us: take slot indices, then the local locks. */
  private async clusterReady(a: Attempt): Promise<void> {
    const round = a.round;
    this.unsubscribe(a);
    const lease = a.lease!;
    if (!this.session.usable(lease)) {
      this.restart(a);
      return;
    }
    for (const p of a.parts) {
      if (p.nestedOf || p.claim.mode !== 'slots' || p.slotKey) continue;
      try {
        await this.claimSlot(p, lease, a.id);
      } catch (e) {
        this.session.noteError(lease, e);
        if (this.stale(a, round)) return;
        this.unavailable(a, errorText(e));
        return;
      }
      if (this.stale(a, round)) return;
    }
    if (this.stale(a, round)) return;
    void this.poolPhase(a);
  }

  // ---- phase 1b: cluster pools (cluster-pools.ts), once every cluster lock is ready ----------------------

  private async poolPhase(a: Attempt): Promise<void> {
    if (a.clusterPools.length === 0) {
      this.localPhase(a);
      return;
    }
    const round = a.round;
    a.state = 'pool_wait';
    let lease = a.lease;
    if (!lease || !this.session.usable(lease)) {
      if (a.parts.some((p) => !p.nestedOf)) {
        this.restart(a); // our cluster lock keys are under a lease that is running out
        return;
      }
      lease = await this.leaseFor(a, round);
      if (!lease) return;
      a.lease = lease;
    }
    const live = () => a.round === round && a.state === 'pool_wait';
    const key = this.core.runs.get(a.id)?.req.supersede;
    const supersede = key === undefined ? undefined : { key, cancelRunning: this.core.runs.get(a.id)?.req.cancel_running === true };
    const ask = { id: a.id, meta: a.request.meta, claims: a.clusterPools, priority: a.request.priority ?? 0, tryOnly: a.tryOnly, ...(supersede ? { supersede } : {}) };
    this.pools.enter(ask, lease, {
      granted: (claims) => {
        if (!live()) return;
        a.poolClaims = claims;
        this.localPhase(a);
      },
      waiting: (position, blockers) => {
        if (!live()) return;
        a.poolBlockers = blockers;
        this.sayPosition(a, position, blockers);
      },
      busy: (message, blockers) => {
        if (!live()) return;
        this.finish(a);
        a.callbacks.onNotObtained('lock_busy', message, blockers);
      },
      rejected: (message) => {
        if (!live()) return;
        this.finish(a);
        a.callbacks.onNotObtained('usage', message, []);
      },
      unavailable: (message) => {
        if (live()) this.unavailable(a, message);
      },
    });
  }

  /** The lowest free slot index, taken with a create-if-absent transaction (other holders race for it too). */
  private async claimSlot(p: Part, lease: Lease, id: string): Promise<void> {
    const capacity = p.claim.slots ?? 1;
    for (let tries = 0; tries < capacity + 8; tries++) {
      const sp = slotsPrefix(this.prefix, p.name);
      const taken = await this.client.kv.range({ key: Buffer.from(sp), range_end: prefixRangeEnd(sp), keys_only: true });
      const used = new Set(taken.kvs.map((kv) => Number(kv.key.toString('utf8').slice(sp.length))));
      let index = 0;
      while (used.has(index)) index++;
      const key = slotKey(this.prefix, p.name, index);
      const res = await this.client.kv.txn({
        compare: [{ key: Buffer.from(key), target: 'Create', result: 'Equal', create_revision: 0 }],
        success: [{ request_put: { key: Buffer.from(key), value: Buffer.from(id), lease: lease.id } }],
      });
      if (res.succeeded) {
        p.slotIndex = index;
        p.slotKey = key;
        return;
      }
    }
    throw new Error(`could not take a slot of ${p.name}`);
  }

  // ---- phase 2: the local locks -------------------------------------------------------------------------

  private localPhase(a: Attempt): void {
    if (a.state === 'done' || a.state === 'held') return;
    if (a.lease && a.parts.some((p) => !p.nestedOf) && !this.session.usable(a.lease)) {
      this.restart(a);
      return;
    }
    if (a.localClaims.length === 0 && a.localPools.length === 0) {
      this.granted(a, null);
      return;
    }
    const res = this.core.table.tryOnly({
      id: a.id,
      claims: a.localClaims,
      meta: a.request.meta,
      ...(a.request.parent ? { parent: a.request.parent } : {}),
      ...(a.localPools.length ? { pools: a.localPools } : {}),
      ...(a.request.priority ? { priority: a.request.priority } : {}),
    });
    if (res.kind === 'granted') {
      this.granted(a, res.grant);
      return;
    }
    // Never hold the cluster locks while waiting for local ones: give them back first.
    this.dropKeys(a);
    if (res.kind === 'rejected') {
      this.finish(a);
      a.callbacks.onNotObtained(res.code === 'deadlock' ? 'deadlock' : 'usage', res.message, []);
      return;
    }
    const blockers = res.blockers.map((b) => holderInfoFromOwner(b.meta));
    if (a.tryOnly) {
      this.finish(a);
      a.callbacks.onNotObtained('lock_busy', `local lock ${localName(a, res.blockers[0]?.key)} is busy`, blockers);
      return;
    }
    a.state = 'local_wait';
    this.reportPosition(a, blockers);
  }

  private granted(a: Attempt, local: Grant<Owner> | null): void {
    a.state = 'held';
    this.clearTimers(a);
    this.unsubscribe(a);
    const claims: GrantedClaim[] = [];
    for (const c of a.request.claims) {
      if (!isClusterKey(c.key)) {
        const lc = local?.claims.find((x) => x.key === c.key);
        if (lc) claims.push(lc);
        continue;
      }
      const p = a.parts.find((x) => x.lock.key === c.key)!;
      const src = p.nestedOf ? p.nestedOf.part : p;
      const g: GrantedClaim = { key: c.key, mode: c.mode, fencingToken: src.revision, nested: p.nestedOf !== null };
      if (src.slotIndex !== null) g.slotIndex = src.slotIndex;
      claims.push(g);
    }
    // Pool members: the cluster's (etcd keys), then the host's own (lock files of the local table).
    claims.push(...a.poolClaims, ...(local?.claims.filter((c) => c.member !== undefined) ?? []));
    a.grant = { request: a.request, claims, grantedAt: Date.now() };
    if (a.request.meta.kind === 'hold') {
      this.annotate(a, a.request.meta.pid ?? process.pid);
      this.pools.annotate(a.id, a.request.meta.pid ?? process.pid);
    }
    a.callbacks.onGranted(a.grant);
  }

  // ---- waiting, giving up, starting over ----------------------------------------------------------------

  private reportPosition(a: Attempt, localBlockers?: HolderInfo[]): void {
    // 1-based place among the waiters (holders ahead are not counted), on the longest of its queues.
    let position = 0;
    for (const p of a.parts) {
      if (p.nestedOf || p.ready) continue;
      const earlier = [...p.earlier.values()].sort((x, y) => x.createRevision - y.createRevision);
      position = Math.max(position, classifyQueue(earlier).waiters.length + 1);
    }
    this.sayPosition(a, position, localBlockers ?? this.blockers(a));
  }

  private sayPosition(a: Attempt, position: number, blockers: HolderInfo[]): void {
    if (!a.queuedSent) {
      a.queuedSent = true;
      a.lastPosition = position;
      a.callbacks.onQueued(position, blockers);
    } else if (position !== a.lastPosition) {
      a.lastPosition = position;
      a.callbacks.onWaiting(position, blockers);
    }
  }

  private unavailable(a: Attempt, message: string): void {
    a.unavailable = message;
    const expired = a.deadline !== null && Date.now() >= a.deadline;
    if (a.tryOnly || expired) {
      this.finish(a);
      a.callbacks.onNotObtained('cluster_unavailable', `the lock cluster (etcd ${this.cfg.endpoints.join(',')}) is unavailable: ${message}`, []);
      return;
    }
    a.state = 'waiting';
    this.reportPosition(a);
    this.clearRetry(a);
    a.retryTimer = setTimeout(() => {
      a.retryTimer = null;
      if (a.state === 'waiting' || a.state === 'acquiring') void this.acquireCluster(a);
    }, 500);
  }

  private onDeadline(a: Attempt): void {
    a.deadlineTimer = null;
    if (a.state === 'held' || a.state === 'done') return;
    const blockers = this.blockers(a);
    const unavailable = a.unavailable;
    const name = this.busyName(a);
    this.finish(a);
    if (unavailable) {
      a.callbacks.onNotObtained('cluster_unavailable', `the lock cluster (etcd ${this.cfg.endpoints.join(',')}) stayed unavailable: ${unavailable}`, blockers);
    } else {
      const first = blockers[0];
      a.callbacks.onNotObtained('lock_wait_timeout', `locks were not granted in time${first ? `: ${name} is held by ${describe(first)}` : ''}`, blockers);
    }
  }

  /** Queue again from scratch (new lease if needed); keeps the deadline. */
  private restart(a: Attempt): void {
    if (a.state === 'done' || a.state === 'held') return;
    this.unsubscribe(a);
    this.dropKeys(a);
    a.round++;
    void this.acquireCluster(a);
  }

  /** The request is over (granted and released, withdrawn, or given up): stop everything, delete its keys. */
  private finish(a: Attempt): void {
    if (a.state === 'done') return;
    a.state = 'done';
    a.round++;
    this.clearTimers(a);
    this.unsubscribe(a);
    this.watchdog.unprotect(a.id);
    this.dropKeys(a);
    if (this.attempts.get(a.id) === a) this.attempts.delete(a.id);
  }

  private dropKeys(a: Attempt): void {
    const lease = a.lease;
    const keys: string[] = [];
    this.pools.leave(a.id);
    a.poolClaims = [];
    a.poolBlockers = [];
    for (const p of a.parts) {
      if (p.nestedOf) continue;
      if (p.key) keys.push(p.key);
      if (p.slotKey) keys.push(p.slotKey);
      p.key = null;
      p.slotKey = null;
      p.slotIndex = null;
      p.ready = false;
      p.revision = 0;
      p.earlier.clear();
    }
    if (lease && keys.length) {
      const done = this.deleteKeys(lease, keys);
      a.deleting = done;
      void done.then(() => {
        if (a.deleting === done) a.deleting = null;
      });
    }
  }

  private deleteKeys(lease: Lease, keys: string[]): Promise<void> {
    if (lease.lost) return Promise.resolve(); // they go with the lease
    return this.client.kv
      .txn({ success: keys.map((k) => ({ request_delete_range: { key: Buffer.from(k) } })) })
      .then(
        () => undefined,
        (e: unknown) => this.log.warn('could not delete cluster keys; they expire with the lease', { keys, error: errorText(e) }),
      )
      .then(() => undefined);
  }

  private clearRetry(a: Attempt): void {
    if (a.retryTimer) clearTimeout(a.retryTimer);
    a.retryTimer = null;
  }

  private clearTimers(a: Attempt): void {
    this.clearRetry(a);
    if (a.deadlineTimer) clearTimeout(a.deadlineTimer);
    a.deadlineTimer = null;
    if (a.resyncTimer) clearInterval(a.resyncTimer);
    a.resyncTimer = null;
  }

  private unsubscribe(a: Attempt): void {
    for (const p of a.parts) {
      p.unsubscribe?.();
      p.unsubscribe = null;
    }
  }

  // ---- losing the lease ---------------------------------------------------------------------------------

  private onLeaseLost(lease: Lease, reason: string): void {
    for (const a of [...this.attempts.values()]) {
      const depends = a.lease === lease || a.parts.some((p) => p.nestedOf?.attempt.lease === lease);
      if (!depends) continue;
      if (a.state === 'held') this.lockLost(a, reason);
      else if (a.state !== 'done') this.restart(a);
    }
  }

  private lockLost(a: Attempt, reason: string): void {
    const names = [...a.parts.map((p) => p.name), ...a.poolClaims.map((c) => `${c.pool}/${c.member}`)].join(', ');
    const message = `cluster lock ${names} lost: ${reason}`;
    const job = this.core.runs.get(a.id);
    if (job) {
      job.onClusterLockLost(message, this.lockLostGraceMs);
      return;
    }
    this.core.holds.onClusterLockLost(a.id, message);
  }

  // ---- reporting ----------------------------------------------------------------------------------------

  private blockers(a: Attempt): HolderInfo[] {
    const out: HolderInfo[] = [];
    for (const p of a.parts) {
      if (p.nestedOf || p.ready) continue;
      const earlier = [...p.earlier.values()].sort((x, y) => x.createRevision - y.createRevision);
      for (const e of blockingEntries(p.claim, earlier)) out.push(holderInfoOf(e));
    }
    if (a.state === 'pool_wait') out.push(...a.poolBlockers);
    return out;
  }

  private busyName(a: Attempt): string {
    if (a.state === 'pool_wait') return `pool ${a.clusterPools.map((c) => c.pool).join(', ')}`;
    return a.parts.find((p) => !p.nestedOf && !p.ready)?.name ?? a.parts[0]?.name ?? '?';
  }

  private valueFor(a: Attempt, p: Part, extra: Partial<ClusterKeyValue> = {}): ClusterKeyValue {
    const o = a.request.meta;
    return {
      lockd: 1,
      host: this.cfg.hostName,
      kind: o.kind,
      run: a.id,
      holder: o.holder,
      user: o.user,
      since: new Date(o.since).toISOString(),
      pid: process.pid,
      daemon_pid: process.pid,
      mode: p.claim.mode,
      ...(p.claim.mode === 'slots' ? { slots: p.claim.slots ?? 1 } : {}),
      command_line: o.commandLine,
      ...extra,
    };
  }

  /** Record the grant (time, pid) in our keys for other hosts' status; only if the key is still ours. */
  private annotate(a: Attempt, pid: number): void {
    const lease = a.lease;
    if (!lease || lease.lost) return;
    const granted = new Date(a.grant?.grantedAt ?? Date.now()).toISOString();
    const ops = a.parts
      .filter((p) => !p.nestedOf && p.key && p.revision)
      .map((p) => ({
        compare: [{ key: Buffer.from(p.key!), target: 'Create' as const, result: 'Equal' as const, create_revision: p.revision }],
        success: [{ request_put: { key: Buffer.from(p.key!), value: encodeValue(this.valueFor(a, p, { pid, granted })), lease: lease.id } }],
      }));
    for (const op of ops) {
      void this.client.kv.txn(op).catch((e: unknown) => this.log.debug?.('could not annotate a cluster key', { error: errorText(e) }));
    }
  }

  private familyHolding(parent: string | null, name: string): { attempt: Attempt; part: Part } | null {
    const seen = new Set<string>();
    for (let id = parent; id && !seen.has(id); id = this.core.runs.get(id)?.parent ?? null) {
      seen.add(id);
      const a = this.attempts.get(id);
      if (a?.state !== 'held') continue;
      const p = a.parts.find((x) => x.name === name);
      if (p) return p.nestedOf ?? { attempt: a, part: p };
    }
    return null;
  }

  async statusLocks(): Promise<LockStatus[]> {
    const names = new Set<string>();
    for (const a of this.attempts.values()) for (const p of a.parts) names.add(p.name);
    const [locks, members] = await Promise.all([readClusterStatus(this.client, this.prefix, [...names]), this.pools.statusLocks()]);
    return [...locks, ...members];
  }

  async inspect(key: string): Promise<LockStatus | null> {
    const name = nameOfClusterKey(this.prefix, key);
    if (!name) return null;
    const p = contendersPrefix(this.prefix, name);
    const res = await this.client.kv.range({ key: Buffer.from(p), range_end: prefixRangeEnd(p), sort_target: 'Create', sort_order: 'Ascend' });
    const list: ClusterEntry[] = [];
    for (const kv of res.kvs) {
      const e = entryOf(this.prefix, kv.key.toString('utf8'), Number(kv.create_revision), kv.value, kv.lease);
      if (e && e.name === name) list.push(e);
    }
    return list.length ? lockStatusOf(this.prefix, name, list) : null;
  }

  info(): ClusterInfo {
    const lease = this.session.lease;
    const left = this.session.remainingMs();
    return {
      endpoints: this.cfg.endpoints,
      prefix: this.prefix,
      host: this.cfg.hostName,
      lease: lease?.hex ?? null,
      lease_ttl_ms: lease?.grantedTtlMs ?? null,
      lease_left_ms: lease ? Math.max(0, left) : null,
      healthy: lease !== null && this.session.lastError === null,
      last_error: this.session.lastError,
    };
  }

  async shutdown(): Promise<void> {
    this.closing = true;
    // Runs still holding cluster locks (detached ones the daemon would otherwise leave running) cannot outlive
    // the lease: stop them and wait for their records before the lease goes.
    const held = [...this.attempts.values()].filter((a) => a.state === 'held');
    const waits: Array<Promise<void>> = [];
    for (const a of held) {
      const job = this.core.runs.get(a.id);
      if (!job) continue;
      waits.push(new Promise<void>((r) => job.watchers.add(r)));
      void job.stop('shutdown', 'lockd shutdown (cluster locks cannot outlive the daemon)');
    }
    await Promise.race([Promise.all(waits), new Promise((r) => setTimeout(r, 15_000).unref())]);
    for (const a of [...this.attempts.values()]) {
      if (a.state !== 'held' && a.state !== 'done') {
        this.finish(a);
        a.callbacks.onNotObtained('cluster_unavailable', 'the lockd daemon is shutting down', []);
      }
    }
    this.watches.closeAll();
    this.pools.close();
    await this.session.close(true);
    this.watchdog.stop();
    this.client.close();
  }
}

function describe(h: HolderInfo): string {
  const host = (h as HolderInfo & { host?: string | null }).host;
  return `${h.kind} ${h.id}${host ? ` on ${host}` : ''}${h.pid ? ` (pid ${h.pid})` : ''} ${h.holder}`.trim();
}

function holderInfoFromOwner(o: Owner): HolderInfo {
  return { kind: o.kind, id: o.id, pid: o.pid, holder: o.holder, user: o.user, uid: o.uid, command_line: o.commandLine, since_utc: new Date(o.since).toISOString(), cwd: o.cwd };
}

function localName(a: Attempt, key: string | undefined): string {
  return a.locks.find((l) => l.key === key)?.name ?? key ?? '?';
}

export { decodeValue };
