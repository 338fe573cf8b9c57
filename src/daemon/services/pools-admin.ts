/**
 * The `pool` request (`lockd pool list|show|add|remove|disable|enable`): everyone may read the pools; in system mode
 * only admins (root or the admin group) change them, because a pool member is a shared device and disabling one
 * stops everybody's jobs on it. Changes go through PoolConfig, which saves them (pools-overlay.ts) before they are
 * in force, so a daemon restarted right after an answer still has them.
 */
import type { Connection } from '../server/connection.js';
import type { DaemonMessage, MetricsSnapshot, PoolAdminRequest, PoolInfo, PoolMemberInfo } from '../../protocol/messages.js';
import type { LockTable } from '../locks/lock-table.js';
import { holderInfo, type Owner } from '../locks/owner.js';
import type { SystemMode } from './system-mode.js';
import type { PoolConfig } from './pools.js';
import { unknownPool } from './pools-overlay.js';
import { LockdError } from '../../util/errors.js';
import type { ClusterService } from '../locks/cluster-port.js';

export interface PoolAdminContext {
  readonly pools: PoolConfig;
  readonly table: LockTable<Owner>;
  readonly system: SystemMode | null;
  /** The cluster backend (--cluster), which owns the shared definitions of pools with `"scope": "cluster"`. */
  readonly cluster?: Pick<ClusterService, 'editPool' | 'clusterMembers'> | null;
}

/** Answer a `pool` request; a change of a cluster pool goes to etcd (every host sees it), so this may wait on it. */
export async function answerPoolRequest(ctx: PoolAdminContext, conn: Connection, req: PoolAdminRequest): Promise<void> {
  ctx.pools.refresh();
  if (req.action !== 'list' && req.action !== 'show' && req.pool !== null && ctx.pools.isClusterPool(req.pool)) {
    if (ctx.system && !ctx.system.isAdmin(conn)) {
      throw new LockdError('not_authorized', `only root or an admin of the system lockd daemon can ${req.action} pools; everyone may read them (lockd pool list)`);
    }
    if (!ctx.cluster) throw notInCluster(req.pool);
    await ctx.cluster.editPool(req.action, req.pool, req.member, req.properties, req.reason);
    const who = req.member === null ? `pool ${req.pool}` : `${req.pool}/${req.member}`;
    const pools = poolInfos(ctx).filter((p) => p.name === req.pool);
    await withClusterHolders(ctx, pools);
    conn.end({ type: 'pools', pools, note: `${who} ${pastTense(req.action)} on every host of the cluster` });
    return;
  }
  const reply = handlePoolRequest(ctx, conn, req);
  await withClusterHolders(ctx, reply.pools);
  conn.end(reply);
}

/** Cluster pools: their holders are in etcd, on any host; read them (bounded) into the members' state. */
async function withClusterHolders(ctx: PoolAdminContext, pools: PoolInfo[]): Promise<void> {
  if (!ctx.cluster || !pools.some((p) => ctx.pools.isClusterPool(p.name))) return;
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<null>((r) => (timer = setTimeout(() => r(null), CLUSTER_READ_MS)));
  const members = await Promise.race([ctx.cluster.clusterMembers().catch(() => null), bound]);
  clearTimeout(timer);
  for (const s of members ?? []) {
    const info = pools.find((p) => p.name === s.pool)?.members.find((m) => m.name === s.member);
    const h = s.holders[0];
    if (!info || !h) continue;
    info.holder = {
      kind: h.kind,
      id: h.id,
      pid: h.pid,
      holder: h.holder,
      user: h.user,
      uid: h.uid,
      command_line: h.command_line,
      since_utc: h.since_utc,
      cwd: h.cwd,
      host: h.host ?? null,
      request_id: h.id,
    };
    if (info.state === 'free') info.state = 'held';
  }
}

/** How long `lockd pool list|show` waits for etcd before showing a cluster pool without its holders. */
const CLUSTER_READ_MS = 3000;

function notInCluster(pool: string): LockdError {
  return new LockdError(
    'usage',
    `pool ${pool} is shared by the cluster ("scope": "cluster" in lockd.json), but this daemon runs without --cluster: start it with --cluster etcd://HOST:PORT (docs/cluster.md)`,
  );
}

export function handlePoolRequest(ctx: PoolAdminContext, conn: Connection, req: PoolAdminRequest): Extract<DaemonMessage, { type: 'pools' }> {
  ctx.pools.refresh();
  if (req.action === 'list') return { type: 'pools', pools: poolInfos(ctx), note: null };
  if (req.pool === null) throw new LockdError('usage', `lockd pool ${req.action} needs NAME or NAME/MEMBER`);
  if (req.action === 'show') {
    const one = poolInfos(ctx).filter((p) => p.name === req.pool);
    if (one.length === 0) throw unknownPool(req.pool, ctx.pools.effective());
    if (req.member !== null) {
      one[0]!.members = one[0]!.members.filter((m) => m.name === req.member);
      if (one[0]!.members.length === 0) {
        throw new LockdError('unknown_member', `pool ${req.pool} has no member ${req.member} (members: ${Object.keys(ctx.pools.effective()[req.pool]?.members ?? {}).join(', ') || 'none'})`);
      }
    }
    return { type: 'pools', pools: one, note: null };
  }
  if (ctx.system && !ctx.system.isAdmin(conn)) {
    throw new LockdError('not_authorized', `only root or an admin of the system lockd daemon can ${req.action} pools; everyone may read them (lockd pool list)`);
  }
  const who = req.member === null ? `pool ${req.pool}` : `${req.pool}/${req.member}`;
  ctx.pools.edit(req.action, req.pool, req.member, req.properties, req.reason);
  const held = req.member !== null && (req.action === 'remove' || req.action === 'disable') && isHeld(ctx, req.pool, req.member);
  const note = held ? `${who} ${req.action === 'remove' ? 'removed' : 'disabled'}; its holder keeps it until it is released` : `${who} ${pastTense(req.action)}`;
  const shown = poolInfos(ctx).filter((p) => p.name === req.pool);
  return { type: 'pools', pools: shown, note };
}

/**
 * System mode: a user may ask for a priority up to lockd.json's `max_user_priority` (default 0, so only admins put
 * a request ahead of others unless the file allows it); admins any. Lower priorities are always allowed. Per user a
 * daemon serves one user, who may order their own queue as they like.
 */
export function checkPriority(ctx: PoolAdminContext, conn: Connection, priority: number | undefined): void {
  if (!ctx.system || priority === undefined || priority <= ctx.pools.maxUserPriority) return;
  if (ctx.system.isAdmin(conn)) return;
  throw new LockdError('not_authorized', `--priority ${priority} is above max_user_priority ${ctx.pools.maxUserPriority} (${ctx.pools.path}); only root or an admin may ask for more`);
}

/**
 * A pool request naming a pool that is not in force while lockd.json could not be read: say why in the one line,
 * instead of "unknown pool" alone (the usual cause is a typo in the file, not in the command).
 */
export function checkPoolsKnown(ctx: PoolAdminContext, refs: ReadonlyArray<{ pool: string }> | undefined): void {
  const shared = ctx.cluster ? undefined : refs?.find((r) => ctx.pools.isClusterPool(r.pool));
  if (shared) throw notInCluster(shared.pool);
  const error = ctx.pools.lastError;
  if (!refs?.length || error === null) return;
  const missing = refs.find((r) => !(r.pool in ctx.pools.effective()));
  if (missing) throw new LockdError('unknown_pool', `unknown pool ${missing.pool}: lockd.json's pools are not in force (${error})`);
}

function pastTense(a: 'add' | 'remove' | 'disable' | 'enable'): string {
  return a === 'add' ? 'added' : a === 'remove' ? 'removed' : `${a}d`;
}

function isHeld(ctx: PoolAdminContext, pool: string, member: string): boolean {
  for (const s of ctx.table.snapshot()) {
    const m = ctx.table.memberOf(s.key);
    if (m && m.pool === pool && m.member === member && s.holders.length > 0) return true;
  }
  return false;
}

/**
 * Members per pool and state, for /metrics (`lockd_pool_members`). A cluster pool's members held on other hosts
 * are read from etcd (bounded, as for lockd pool list), so every host reports the cluster-wide counts.
 */
export async function poolMemberCounts(ctx: PoolAdminContext): Promise<NonNullable<MetricsSnapshot['pools']>> {
  const infos = poolInfos(ctx);
  await withClusterHolders(ctx, infos);
  return infos.map((p) => {
    const members = { free: 0, held: 0, disabled: 0, removed: 0 };
    for (const m of p.members) members[m.state]++;
    return { pool: p.name, members };
  });
}

/** Every pool in force with each member's state; members removed while held are listed until released. */
export function poolInfos(ctx: PoolAdminContext): PoolInfo[] {
  const effective = ctx.pools.effective();
  const byPool = new Map<string, Map<string, PoolMemberInfo>>();
  for (const [name, p] of Object.entries(effective)) {
    const members = new Map<string, PoolMemberInfo>();
    for (const [member, properties] of Object.entries(p.members)) {
      const disabled = member in p.disabled;
      members.set(member, { name: member, properties: { ...properties }, state: disabled ? 'disabled' : 'free', disabled_reason: disabled ? p.disabled[member]! : null, holder: null, waiters: 0 });
    }
    byPool.set(name, members);
  }
  for (const s of ctx.table.snapshot()) {
    const at = ctx.table.memberOf(s.key);
    if (!at) continue;
    let members = byPool.get(at.pool);
    let info = members?.get(at.member);
    if (!info) {
      if (s.holders.length === 0) continue;
      if (!members) byPool.set(at.pool, (members = new Map()));
      info = { name: at.member, properties: {}, state: 'removed', disabled_reason: null, holder: null, waiters: 0 };
      members.set(at.member, info);
    }
    const h = s.holders[0];
    if (h) {
      info.holder = { ...holderInfo(h.meta), request_id: h.requestId };
      if (info.state === 'free') info.state = 'held';
    }
    info.waiters = s.waiters.length;
  }
  return [...byPool.entries()].map(([name, members]) => ({
    name,
    members: [...members.values()],
    config_error: ctx.pools.lastError,
    ...(ctx.pools.isClusterPool(name) ? { scope: 'cluster' as const } : {}),
  }));
}
