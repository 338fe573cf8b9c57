/**
 * Cluster pools: the members of a pool with `"scope": "cluster"` (a board shared by several hosts) are granted by
 * etcd, to one job at a time across every host, with the rule of the local table (pool-rules.ts). Keys: pool-keys.ts.
 * One concern (the pool phase of a cluster grant, its watch and its transactions), over 400 lines because the
 * decide/grant/wait steps and their lease and stale-round paths only make sense read together.
 *
 * A request's pool phase comes after its plain cluster locks are ready (cluster-locks.ts) and before its local locks:
 *
 *   1. one transaction puts a queue entry per pool (`q/<lease>/<id>`, the daemon's lease), puts each pool's `seq`,
 *      and reads each pool's keys (definition, queue, holders);
 *   2. the request decides on that snapshot which members it may take (pool-rules.ts); if it may, a grant
 *      transaction creates each member's `m/<member>` key (with the lease), deletes its queue entries, and succeeds
 *      only if no member key exists, no entry was queued since the snapshot (`seq` unchanged) and the definition did
 *      not change: so no member is ever held twice, and no decision is made on a queue that misses an earlier waiter;
 *   3. otherwise it waits: one watch per pool (all events) makes every local waiter of the pool decide again.
 *
 * Fencing token: the grant transaction's revision, the create revision of every member key it made. A member key
 * carries the lease, so a daemon that dies or loses its lease loses its members (after its jobs are killed: the
 * lease loss and watchdog rules of cluster locks apply, see cluster-locks.ts).
 *
 * Deadlock freedom: a request queues here only once its cluster locks are ready, and waits only for entries ahead of
 * it (higher priority, or the same priority and older) and for holders, who hold everything they need.
 */
import type { Etcd3 } from 'etcd3';
import type { ClusterHost, PoolMembersDef } from '../daemon/locks/cluster-port.js';
import type { Logger } from '../daemon/server/logger.js';
import type { GrantedClaim, PoolClaim } from '../daemon/locks/lock-table.js';
import type { Owner } from '../daemon/locks/owner.js';
import type { HolderInfo, LockStatus } from '../protocol/messages.js';
import { prefixRangeEnd } from '../daemon/locks/cluster-keys.js';
import type { KeyOwnerValue } from '../daemon/locks/cluster-keys.js';
import { LockdError } from '../util/errors.js';
import { errorText } from './etcd-client.js';
import { userNameOf } from '../daemon/services/user-name.js';
import { supersedeFromCluster } from './cluster-supersede.js';
import { NameWatches } from './name-watch.js';
import type { Lease, LeaseSession } from './session.js';
import { ahead, candidatesOf, choose, positionOf, type PoolWaiter } from './pool-rules.js';
import {
  decodeDef,
  decodeMemberValue,
  decodeQueueValue,
  encodeJson,
  memberClaimKey,
  memberKey,
  poolDefKey,
  poolPrefix,
  poolQueueKey,
  poolQueuePrefix,
  poolSeqKey,
  type MemberValue,
  type PoolQueueValue,
  type SharedPoolDef,
} from './pool-keys.js';

export interface PoolAsk {
  id: string;
  meta: Owner;
  /** The request's claims on cluster pools (its local pools go to the local table). */
  claims: PoolClaim[];
  priority: number;
  tryOnly: boolean;
  /** --supersede KEY and --cancel-running, for the other hosts (cluster-supersede.ts). */
  supersede?: { key: string; cancelRunning: boolean };
}

export interface PoolCallbacks {
  granted(claims: GrantedClaim[]): void;
  waiting(position: number, blockers: HolderInfo[]): void;
  busy(message: string, blockers: HolderInfo[]): void;
  rejected(message: string): void;
  unavailable(message: string): void;
}

/** One pool's keys at one revision. */
interface Snapshot {
  def: SharedPoolDef | null;
  defMod: number;
  seqMod: number;
  waiters: Array<PoolWaiter & { value: PoolQueueValue }>;
  holders: Map<string, { value: MemberValue | null; createRevision: number }>;
}

interface Wait {
  ask: PoolAsk;
  lease: Lease;
  cb: PoolCallbacks;
  /** pool → our queue key (null once granted or gone). */
  queueKeys: Map<string, string>;
  revision: number;
  state: 'entering' | 'waiting' | 'granted' | 'gone';
  deciding: boolean;
  again: boolean;
  reported: number;
  /** Member keys we created (with the lease). */
  memberKeys: string[];
  granted: GrantedClaim[];
  resync: NodeJS.Timeout | null;
}

export class ClusterPools {
  private readonly waits = new Map<string, Wait>();
  private readonly watches: NameWatches;
  /** pool → unsubscribe of its watch (open while the daemon has an interest in the pool). */
  private readonly views = new Map<string, () => void>();
  /** Shared definitions as last seen, by pool. */
  private readonly defs = new Map<string, SharedPoolDef>();

  constructor(
    private readonly client: Etcd3,
    private readonly session: LeaseSession,
    private readonly prefix: string,
    private readonly hostName: string,
    private readonly host: ClusterHost,
    private readonly log: Logger,
  ) {
    this.watches = new NameWatches(client, log, true);
  }

  isClusterPool(pool: string): boolean {
    return pool in this.host.pools.clusterPools();
  }

  /** Open the views of every cluster pool this host defines (shared definitions in force here from the start). */
  start(): void {
    for (const pool of Object.keys(this.host.pools.clusterPools())) void this.view(pool).catch(() => undefined);
  }

  /** Seed the shared definition if absent, read it, and keep watching the pool. */
  private async view(pool: string): Promise<void> {
    if (!this.views.has(pool)) {
      this.views.set(pool, () => undefined);
      const res = await this.client.kv
        .txn({ success: [{ request_range: { key: Buffer.from(poolPrefix(this.prefix, pool)), range_end: prefixRangeEnd(poolPrefix(this.prefix, pool)), count_only: true } }] })
        .catch((e: unknown) => {
          this.views.delete(pool);
          throw e;
        });
      const rev = Number(res.header.revision);
      const unsubscribe = this.watches.subscribe(poolPrefix(this.prefix, pool), rev + 1, {
        onDelete: (key) => this.changed(pool, key, null),
        onPut: (key, value) => this.changed(pool, key, value),
        onResync: () => {
          // Events may have been missed (a reconnect): the definition is read again too, not only the queue.
          void this.readDef(pool);
          this.changed(pool, null, null);
        },
      });
      this.views.set(pool, unsubscribe);
    }
    if (this.defs.has(pool)) return;
    const seed = this.host.pools.clusterPools()[pool];
    const key = Buffer.from(poolDefKey(this.prefix, pool));
    const res = await this.client.kv.txn({
      compare: [{ key, target: 'Create', result: 'Equal', create_revision: 0 }],
      success: seed ? [{ request_put: { key, value: encodeJson({ lockd: 1, members: seed.members, disabled: seed.disabled } satisfies SharedPoolDef) } }] : [],
      failure: [{ request_range: { key } }],
    });
    if (res.succeeded && seed) this.installDef(pool, { lockd: 1, members: seed.members, disabled: seed.disabled });
    else {
      const def = decodeDef(res.responses[0]?.response_range.kvs[0]?.value);
      if (def) this.installDef(pool, def);
    }
  }

  private async readDef(pool: string): Promise<void> {
    try {
      const got = await this.client.kv.range({ key: Buffer.from(poolDefKey(this.prefix, pool)) });
      const def = decodeDef(got.kvs[0]?.value);
      if (def) this.installDef(pool, def);
    } catch (e) {
      this.log.warn('cannot read a cluster pool definition; the last one read stays in force', { pool, error: errorText(e) });
    }
  }

  private installDef(pool: string, def: SharedPoolDef): void {
    const before = this.defs.get(pool);
    this.defs.set(pool, def);
    if (before && JSON.stringify(before) === JSON.stringify(def)) return;
    this.host.pools.setShared(pool, { members: def.members, disabled: def.disabled });
  }

  /** Something changed under a pool: the definition is taken over; its local waiters decide again. */
  private changed(pool: string, key: string | null, value: Buffer | null): void {
    if (key === poolDefKey(this.prefix, pool) && value) {
      const def = decodeDef(value);
      if (def) this.installDef(pool, def);
    }
    if (key?.startsWith(poolQueuePrefix(this.prefix, pool)) && value) {
      const v = decodeQueueValue(value);
      // A newer --supersede request queued on another host: end this host's older runs of that key and user.
      if (v?.supersede !== undefined && v.host !== this.hostName) {
        const ended = supersedeFromCluster(this.host.runs.values(), v);
        if (ended.length > 0) this.log.info('runs superseded by a run on another host', { by: v.run, host: v.host, key: v.supersede, ended });
      }
    }
    for (const w of this.waits.values()) if (w.state === 'waiting' && w.queueKeys.has(pool)) this.decideSoon(w);
  }

  // ---- a request's pool phase ---------------------------------------------------------------------------

  enter(ask: PoolAsk, lease: Lease, cb: PoolCallbacks): void {
    this.leave(ask.id);
    const w: Wait = { ask, lease, cb, queueKeys: new Map(), revision: 0, state: 'entering', deciding: false, again: false, reported: 0, memberKeys: [], granted: [], resync: null };
    this.waits.set(ask.id, w);
    void this.queue(w);
  }

  private async queue(w: Wait): Promise<void> {
    const pools = w.ask.claims.map((c) => c.pool);
    try {
      for (const p of pools) await this.view(p);
    } catch (e) {
      if (w.state !== 'gone') this.fail(w, () => w.cb.unavailable(errorText(e)));
      return;
    }
    if (w.state === 'gone') return;
    // Validated against the shared definitions now in force here (unknown member, COUNT too large, bad --where).
    const rejection = this.host.table.checkPools({ id: w.ask.id, claims: [], pools: w.ask.claims, meta: w.ask.meta });
    if (rejection) {
      this.fail(w, () => w.cb.rejected(rejection.message));
      return;
    }
    for (const c of w.ask.claims) w.queueKeys.set(c.pool, poolQueueKey(this.prefix, c.pool, w.lease.hex, w.ask.id));
    const written = [...w.queueKeys.values()];
    let res;
    try {
      res = await this.client.kv.txn({
        success: [
          ...w.ask.claims.flatMap((c) => [
            { request_put: { key: Buffer.from(w.queueKeys.get(c.pool)!), value: encodeJson(this.queueValue(w, c)), lease: w.lease.id } },
            { request_put: { key: Buffer.from(poolSeqKey(this.prefix, c.pool)), value: Buffer.from(w.ask.id) } },
          ]),
          ...pools.map((p) => this.rangeOp(p)),
        ],
      });
    } catch (e) {
      this.session.noteError(w.lease, e);
      if ((w.state as Wait['state']) !== 'gone') this.fail(w, () => w.cb.unavailable(errorText(e)));
      return;
    }
    if ((w.state as Wait['state']) === 'gone') {
      void this.deleteKeys(w.lease, written);
      return;
    }
    const snaps = pools.map((p, i) => this.snapshotOf(p, res.responses[w.ask.claims.length * 2 + i]!.response_range.kvs));
    w.state = 'waiting';
    void this.decide(w, snaps);
  }

  private rangeOp(pool: string) {
    const p = poolPrefix(this.prefix, pool);
    return { request_range: { key: Buffer.from(p), range_end: prefixRangeEnd(p) } };
  }

  private snapshotOf(pool: string, kvs: Array<{ key: Buffer; value: Buffer; create_revision: string; mod_revision: string }>): Snapshot {
    const head = poolPrefix(this.prefix, pool);
    const snap: Snapshot = { def: null, defMod: 0, seqMod: 0, waiters: [], holders: new Map() };
    for (const kv of kvs) {
      const rest = kv.key.toString('utf8').slice(head.length);
      if (rest === 'def') {
        snap.def = decodeDef(kv.value);
        snap.defMod = Number(kv.mod_revision);
      } else if (rest === 'seq') snap.seqMod = Number(kv.mod_revision);
      else if (rest.startsWith('q/')) {
        const v = decodeQueueValue(kv.value);
        if (v) snap.waiters.push({ key: kv.key.toString('utf8'), createRevision: Number(kv.create_revision), priority: v.priority, count: v.count, where: v.where, member: v.member, value: v });
      } else if (rest.startsWith('m/')) snap.holders.set(rest.slice(2), { value: decodeMemberValue(kv.value), createRevision: Number(kv.create_revision) });
    }
    if (snap.def) this.installDef(pool, snap.def);
    return snap;
  }

  private decideSoon(w: Wait): void {
    if (w.deciding) {
      w.again = true;
      return;
    }
    void this.decide(w, null);
  }

  /** Decide on `snaps` (or a fresh read), grant if the rule allows, else wait; again while events came meanwhile. */
  private async decide(w: Wait, snaps: Snapshot[] | null): Promise<void> {
    if (w.deciding) {
      w.again = true;
      return;
    }
    w.deciding = true;
    try {
      for (let rounds = 0; w.state === 'waiting' && rounds < 100; rounds++) {
        w.again = false;
        const current = snaps ?? (await this.read(w));
        snaps = null;
        if (!current || w.state !== 'waiting') return;
        const outcome = await this.tryGrant(w, current);
        if (outcome === 'granted' || outcome === 'gone') return;
        if (outcome === 'wait' && !w.again) {
          this.waitOn(w, current);
          return;
        }
      }
      // Outraced a hundred times in a row (a very busy pool): the next event or the resync decides again.
      if (w.state === 'waiting') this.armResync(w);
    } catch (e) {
      this.session.noteError(w.lease, e);
      if (w.state !== 'waiting') return;
      if (w.ask.tryOnly) this.fail(w, () => w.cb.unavailable(errorText(e)));
      else this.armResync(w); // a watch event or the resync will decide again
    } finally {
      w.deciding = false;
    }
  }

  private async read(w: Wait): Promise<Snapshot[] | null> {
    const pools = w.ask.claims.map((c) => c.pool);
    const res = await this.client.kv.txn({ success: pools.map((p) => this.rangeOp(p)) });
    const snaps = pools.map((p, i) => this.snapshotOf(p, res.responses[i]!.response_range.kvs));
    return snaps;
  }

  private async tryGrant(w: Wait, snaps: Snapshot[]): Promise<'granted' | 'wait' | 'retry' | 'gone'> {
    const chosen: string[][] = [];
    for (const [i, c] of w.ask.claims.entries()) {
      const s = snaps[i]!;
      const mine = s.waiters.find((x) => x.key === w.queueKeys.get(c.pool));
      if (!mine) {
        // Our entry is gone: the lease expired or someone deleted it. The lease is not to be trusted.
        this.session.markLost(w.lease, `queue entry ${w.queueKeys.get(c.pool)} vanished`);
        return 'gone';
      }
      w.revision = mine.createRevision;
      if (!s.def) return 'wait';
      const members = choose(s.def, s.waiters, new Set(s.holders.keys()), mine);
      if (!members) return 'wait';
      chosen.push(members);
    }
    if (!this.session.usable(w.lease)) {
      this.session.markLost(w.lease, 'the lease is about to run out');
      return 'gone';
    }
    const compare = w.ask.claims.flatMap((c, i) => [
      { key: Buffer.from(poolSeqKey(this.prefix, c.pool)), target: 'Mod' as const, result: 'Equal' as const, mod_revision: snaps[i]!.seqMod },
      { key: Buffer.from(poolDefKey(this.prefix, c.pool)), target: 'Mod' as const, result: 'Equal' as const, mod_revision: snaps[i]!.defMod },
      { key: Buffer.from(w.queueKeys.get(c.pool)!), target: 'Create' as const, result: 'Equal' as const, create_revision: w.revision },
      ...chosen[i]!.map((m) => ({ key: Buffer.from(memberKey(this.prefix, c.pool, m)), target: 'Create' as const, result: 'Equal' as const, create_revision: 0 })),
    ]);
    const now = new Date().toISOString();
    const success = w.ask.claims.flatMap((c, i) => [
      ...chosen[i]!.map((m) => ({ request_put: { key: Buffer.from(memberKey(this.prefix, c.pool, m)), value: encodeJson(this.memberValue(w, c.pool, m, now, process.pid)), lease: w.lease.id } })),
      { request_delete_range: { key: Buffer.from(w.queueKeys.get(c.pool)!) } },
    ]);
    const res = await this.client.kv.txn({ compare, success });
    if (!res.succeeded) return 'retry';
    if ((w.state as Wait['state']) !== 'waiting') {
      void this.deleteKeys(
        w.lease,
        w.ask.claims.flatMap((c, i) => chosen[i]!.map((m) => memberKey(this.prefix, c.pool, m))),
      );
      return 'gone';
    }
    const token = Number(res.header.revision);
    w.state = 'granted';
    this.clearResync(w);
    w.queueKeys.clear();
    w.memberKeys = w.ask.claims.flatMap((c, i) => chosen[i]!.map((m) => memberKey(this.prefix, c.pool, m)));
    w.granted = w.ask.claims.flatMap((c, i) =>
      chosen[i]!.map((m) => ({ key: memberClaimKey(this.prefix, c.pool, m), mode: 'exclusive' as const, fencingToken: token, nested: false, pool: c.pool, member: m })),
    );
    w.cb.granted(w.granted);
    return 'granted';
  }

  private waitOn(w: Wait, snaps: Snapshot[]): void {
    const blockers: HolderInfo[] = [];
    let position = 0;
    for (const [i, c] of w.ask.claims.entries()) {
      const s = snaps[i]!;
      const mine = s.waiters.find((x) => x.key === w.queueKeys.get(c.pool));
      if (!mine || !s.def) continue;
      position = Math.max(position, positionOf(s.def, s.waiters, mine));
      const wanted = new Set(candidatesOf(s.def, mine));
      for (const [member, h] of s.holders) if (h.value && wanted.has(member)) blockers.push(holderOf(h.value));
    }
    if (w.ask.tryOnly) {
      const first = blockers[0];
      this.fail(w, () =>
        w.cb.busy(`pool ${w.ask.claims.map((c) => c.pool).join(', ')} has no free member for this request in the cluster${first ? `: ${first.id} on ${first.host} holds one` : ''}`, blockers),
      );
      return;
    }
    this.armResync(w);
    if (position !== w.reported) {
      w.reported = position;
      w.cb.waiting(position, blockers);
    }
  }

  /** A slow re-read while waiting: insurance against a watch event lost on a reconnect. */
  private armResync(w: Wait): void {
    if (w.resync) return;
    w.resync = setInterval(() => this.decideSoon(w), Math.max(1000, this.session.timing.ttlMs));
    w.resync.unref();
  }

  private clearResync(w: Wait): void {
    if (w.resync) clearInterval(w.resync);
    w.resync = null;
  }

  private fail(w: Wait, say: () => void): void {
    this.leave(w.ask.id);
    say();
  }

  /** The request is over or starts again: its queue entries and members go (they go with the lease anyway). */
  leave(id: string): void {
    const w = this.waits.get(id);
    if (!w) return;
    this.waits.delete(id);
    w.state = 'gone';
    this.clearResync(w);
    const keys = [...w.queueKeys.values(), ...w.memberKeys];
    w.queueKeys.clear();
    w.memberKeys = [];
    if (keys.length) void this.deleteKeys(w.lease, keys);
  }

  /** Does this request hold cluster pool members (under which lease)? */
  holding(id: string): Lease | null {
    const w = this.waits.get(id);
    return w?.state === 'granted' ? w.lease : null;
  }

  /** Record the child's pid in the member keys (other hosts' status and etcdctl show who holds the board). */
  annotate(id: string, pid: number): void {
    const w = this.waits.get(id);
    if (w?.state !== 'granted' || w.lease.lost) return;
    const now = new Date().toISOString();
    for (const c of w.granted) {
      const key = memberKey(this.prefix, c.pool!, c.member!);
      void this.client.kv
        .txn({
          compare: [{ key: Buffer.from(key), target: 'Create', result: 'Equal', create_revision: c.fencingToken }],
          success: [{ request_put: { key: Buffer.from(key), value: encodeJson(this.memberValue(w, c.pool!, c.member!, now, pid)), lease: w.lease.id } }],
        })
        .catch((e: unknown) => this.log.debug?.('could not annotate a member key', { error: errorText(e) }));
    }
  }

  private deleteKeys(lease: Lease, keys: string[]): Promise<void> {
    if (lease.lost) return Promise.resolve();
    return this.client.kv.txn({ success: keys.map((k) => ({ request_delete_range: { key: Buffer.from(k) } })) }).then(
      () => undefined,
      (e: unknown) => {
        this.log.warn('could not delete cluster pool keys; they expire with the lease', { keys, error: errorText(e) });
      },
    );
  }

  /** Who the request is, as both its queue entry and its member keys say it (KeyOwnerValue). */
  private ownerValue(w: Wait, pid: number): KeyOwnerValue {
    const o = w.ask.meta;
    return {
      lockd: 1,
      host: this.hostName,
      kind: o.kind,
      run: w.ask.id,
      holder: o.holder,
      user: o.user,
      since: new Date(o.since).toISOString(),
      pid,
      daemon_pid: process.pid,
      command_line: o.commandLine,
    };
  }

  private queueValue(w: Wait, c: PoolClaim): PoolQueueValue {
    const s = w.ask.supersede;
    return {
      ...this.ownerValue(w, process.pid),
      pool: c.pool,
      count: c.count,
      where: c.where ?? {},
      member: c.member ?? null,
      priority: w.ask.priority,
      ...(s ? { supersede: s.key, supersede_user: userNameOf(w.ask.meta.uid), cancel_running: s.cancelRunning } : {}),
    };
  }

  private memberValue(w: Wait, pool: string, member: string, granted: string, pid: number): MemberValue {
    const s = w.ask.supersede;
    return {
      ...this.ownerValue(w, pid),
      pool,
      member,
      request: poolQueueKey(this.prefix, pool, w.lease.hex, w.ask.id),
      granted,
      ...(s ? { supersede: s.key, supersede_user: userNameOf(w.ask.meta.uid) } : {}),
    };
  }

  // ---- the shared definition ----------------------------------------------------------------------------

  /** `lockd pool add|remove|disable|enable` on a cluster pool: a compare-on-mod-revision edit of its `def` key. */
  async editPool(action: 'add' | 'remove' | 'disable' | 'enable', pool: string, member: string | null, properties: Record<string, string>, reason: string | null): Promise<void> {
    await this.view(pool);
    const key = Buffer.from(poolDefKey(this.prefix, pool));
    for (let tries = 0; tries < 20; tries++) {
      const got = await this.client.kv.range({ key });
      const kv = got.kvs[0];
      const def = decodeDef(kv?.value);
      if (!def) throw new LockdError('unknown_pool', `cluster pool ${pool} has no shared definition under ${poolDefKey(this.prefix, pool)}`);
      const next = editDef(def, action, pool, member, properties, reason, poolPrefix(this.prefix, pool));
      const res = await this.client.kv.txn({
        compare: [{ key, target: 'Mod', result: 'Equal', mod_revision: Number(kv!.mod_revision) }],
        success: [{ request_put: { key, value: encodeJson(next) } }],
      });
      if (res.succeeded) {
        this.installDef(pool, next);
        return;
      }
    }
    throw new LockdError('cluster_unavailable', `cluster pool ${pool}: the shared definition kept changing; try again`);
  }

  // ---- status -------------------------------------------------------------------------------------------

  /**
   * The members of the cluster pools this host knows, with their holder and waiters on whichever host: all of them
   * (`lockd pool list|show`), or only those held or waited for (`lockd status`, like the host's own members).
   */
  async statusLocks(all = false): Promise<LockStatus[]> {
    const pools = [...new Set([...Object.keys(this.host.pools.clusterPools()), ...this.views.keys()])];
    if (pools.length === 0) return [];
    const res = await this.client.kv.txn({ success: pools.map((p) => this.rangeOp(p)) });
    const out: LockStatus[] = [];
    const now = Date.now();
    pools.forEach((pool, i) => {
      const s = this.snapshotOf(pool, res.responses[i]!.response_range.kvs);
      const def = s.def;
      const order = [...s.waiters].sort((x, y) => (ahead(x, y) ? -1 : 1));
      const names = new Set([...Object.keys(def?.members ?? {}), ...s.holders.keys()]);
      for (const member of names) {
        const h = s.holders.get(member);
        const waiting = def ? order.filter((w) => candidatesOf(def, w).includes(member)) : [];
        if (!all && !h && waiting.length === 0) continue;
        out.push({
          key: memberClaimKey(this.prefix, pool, member),
          name: `${pool}/${member}`,
          scope: 'cluster',
          mode: h ? 'exclusive' : null,
          capacity: null,
          holders: h?.value
            ? [{ ...holderOf(h.value), mode: 'exclusive', slot_index: null, nested: false, elapsed_ms: Math.max(0, now - Date.parse(h.value.granted)), fencing_token: h.createRevision }]
            : [],
          waiters: waiting.map((w, n) => ({
            ...queuedOf(w.value),
            position: n + 1,
            mode: 'exclusive' as const,
            wants: [`${pool}:${w.count}`],
            waiting_ms: Math.max(0, now - Date.parse(w.value.since)),
            blocked_by: [...(h?.value ? [h.value.run] : []), ...waiting.slice(0, n).map((x) => x.value.run)],
            estimated_wait_ms: null,
            ...(w.priority !== 0 ? { priority: w.priority } : {}),
          })),
          estimated_wait_ms: null,
          pool,
          member,
          properties: def?.members[member] ?? null,
          disabled: def ? member in def.disabled : false,
        });
      }
    });
    return out;
  }

  close(): void {
    for (const w of this.waits.values()) this.clearResync(w);
    this.watches.closeAll();
  }
}

function queuedOf(v: PoolQueueValue): HolderInfo {
  return { kind: v.kind, id: v.run, pid: v.pid ?? null, holder: v.holder, user: v.user, uid: null, command_line: v.command_line ?? null, since_utc: v.since, cwd: null, host: v.host };
}

function holderOf(v: MemberValue): HolderInfo {
  return { kind: v.kind, id: v.run, pid: v.pid ?? null, holder: v.holder, user: v.user, uid: null, command_line: v.command_line ?? null, since_utc: v.granted ?? v.since, cwd: null, host: v.host };
}

/** One `lockd pool` edit of a shared definition; throws one clear line when it does not apply. */
export function editDef(
  def: SharedPoolDef,
  action: 'add' | 'remove' | 'disable' | 'enable',
  pool: string,
  member: string | null,
  properties: Record<string, string>,
  reason: string | null,
  keys = `.pools/${pool}/`,
): SharedPoolDef {
  const next: SharedPoolDef = { lockd: 1, members: { ...def.members }, disabled: { ...def.disabled } };
  const names = Object.keys(def.members);
  if (member === null) {
    if (action === 'add') throw new LockdError('pool_exists', `pool ${pool} already exists (members: ${names.join(', ') || 'none'})`);
    if (action === 'remove')
      throw new LockdError('usage', `cluster pool ${pool} cannot be removed with lockd pool; remove it from every host's lockd.json and delete its keys (etcdctl del --prefix ${keys})`);
    for (const m of names) {
      if (action === 'disable') next.disabled[m] = reason ?? '';
      else delete next.disabled[m];
    }
    return next;
  }
  const exists = member in def.members;
  if (action === 'add') {
    if (exists) throw new LockdError('pool_exists', `pool ${pool} already has a member ${member}`);
    next.members[member] = { ...properties };
    return next;
  }
  if (!exists) throw new LockdError('unknown_member', `pool ${pool} has no member ${member} (members: ${names.join(', ') || 'none'})`);
  if (action === 'remove') {
    delete next.members[member];
    delete next.disabled[member];
  } else if (action === 'disable') next.disabled[member] = reason ?? '';
  else delete next.disabled[member];
  return next;
}

export type { PoolMembersDef };
