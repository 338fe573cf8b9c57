/**
 * The etcd key layout of cluster pools (lockd.json `"scope": "cluster"`), and the JSON values of its keys. Pure.
 *
 *   <prefix>/.pools/<pool>/def                           the pool's shared definition (members, properties, disabled)
 *   <prefix>/.pools/<pool>/seq                           put with every new queue entry: a grant compares its mod
 *                                                        revision, so it is never decided on a queue missing a newcomer
 *   <prefix>/.pools/<pool>/q/<lease-hex>/<request-id>    one per waiting request, with the daemon's lease
 *   <prefix>/.pools/<pool>/m/<member>                    a member's holder, created if absent with the holder's lease;
 *                                                        its create revision is the holder's fencing token
 *
 * `etcdctl get --prefix <prefix>/.pools/<pool>/m/` lists who holds which member.
 */
import { CLUSTER_KEY_SCHEME } from '../daemon/locks/cluster-keys.js';
import type { KeyOwnerValue } from '../daemon/locks/cluster-keys.js';

function base(prefix: string): string {
  return prefix === '' ? '.pools/' : `${prefix}/.pools/`;
}

export function poolPrefix(prefix: string, pool: string): string {
  return `${base(prefix)}${pool}/`;
}

export function poolDefKey(prefix: string, pool: string): string {
  return `${poolPrefix(prefix, pool)}def`;
}

export function poolSeqKey(prefix: string, pool: string): string {
  return `${poolPrefix(prefix, pool)}seq`;
}

export function poolQueuePrefix(prefix: string, pool: string): string {
  return `${poolPrefix(prefix, pool)}q/`;
}

export function poolQueueKey(prefix: string, pool: string, leaseHex: string, requestId: string): string {
  return `${poolQueuePrefix(prefix, pool)}${leaseHex}/${requestId}`;
}

export function memberPrefix(prefix: string, pool: string): string {
  return `${poolPrefix(prefix, pool)}m/`;
}

export function memberKey(prefix: string, pool: string, member: string): string {
  return `${memberPrefix(prefix, pool)}${member}`;
}

/** The lock-table style key of a cluster pool member (`etcd:<prefix>/.pools/<pool>/m/<member>`), as grants name it. */
export function memberClaimKey(prefix: string, pool: string, member: string): string {
  return `${CLUSTER_KEY_SCHEME}${memberKey(prefix, pool, member)}`;
}

/** The shared definition of a pool, as lockd.json and `lockd pool` know it. */
export interface SharedPoolDef {
  lockd: 1;
  members: Record<string, Record<string, string>>;
  /** member → why it is disabled ('' when no reason was given). */
  disabled: Record<string, string>;
}

/** A waiting request's queue entry (what other hosts decide on, and what `etcdctl get` shows). */
export interface PoolQueueValue extends KeyOwnerValue {
  pool: string;
  count: number;
  where: Record<string, string>;
  member: string | null;
  priority: number;
  /** --supersede KEY, with the name of the uid the daemon verified for the run (cluster-supersede.ts). */
  supersede?: string;
  supersede_user?: string;
  cancel_running?: boolean;
}

/** A member's holder. */
export interface MemberValue extends KeyOwnerValue {
  pool: string;
  member: string;
  /** The queue key the grant was made for (gone once granted). */
  request: string;
  granted: string;
  supersede?: string;
  supersede_user?: string;
}

export function encodeJson(v: unknown): Buffer {
  return Buffer.from(JSON.stringify(v));
}

function parse(buf: Buffer | undefined | null): Record<string, unknown> | null {
  if (!buf || buf.length === 0 || buf[0] !== 0x7b) return null;
  try {
    const v = JSON.parse(buf.toString('utf8')) as Record<string, unknown>;
    return v && v['lockd'] === 1 ? v : null;
  } catch {
    return null;
  }
}

const isStrings = (o: unknown): o is Record<string, string> => typeof o === 'object' && o !== null && !Array.isArray(o) && Object.values(o).every((x) => typeof x === 'string');

export function decodeDef(buf: Buffer | undefined | null): SharedPoolDef | null {
  const v = parse(buf);
  if (!v || typeof v['members'] !== 'object' || v['members'] === null || !isStrings(v['disabled'] ?? {})) return null;
  const members = v['members'] as Record<string, unknown>;
  if (!Object.values(members).every(isStrings)) return null;
  return { lockd: 1, members: members as Record<string, Record<string, string>>, disabled: (v['disabled'] ?? {}) as Record<string, string> };
}

export function decodeQueueValue(buf: Buffer | undefined | null): PoolQueueValue | null {
  const v = parse(buf);
  if (!v || typeof v['run'] !== 'string' || typeof v['count'] !== 'number' || !isStrings(v['where'] ?? {})) return null;
  return {
    ...(v as unknown as PoolQueueValue),
    where: (v['where'] ?? {}) as Record<string, string>,
    member: typeof v['member'] === 'string' ? v['member'] : null,
    priority: Number(v['priority'] ?? 0) || 0,
  };
}

export function decodeMemberValue(buf: Buffer | undefined | null): MemberValue | null {
  const v = parse(buf);
  return v && typeof v['run'] === 'string' ? (v as unknown as MemberValue) : null;
}
