/**
 * The etcd key layout of cluster locks, and the small JSON value each key carries. Pure: no etcd client here, so
 * the daemon's local paths (lock resolution, run-job, holds) can recognise cluster locks without loading etcd3.
 *
 *   <prefix>/<name>/<lease-hex>/<request-id>   one key per waiting or holding request, created with the daemon's
 *                                              lease; its create revision is its place in the FIFO and its fencing token
 *   <prefix>/.slots/<name>/<index>             slot index taken by a slots holder (same lease; outside the contenders'
 *                                              prefix so that `etcdctl lock` never counts it)
 *
 * `etcdctl lock <prefix>/<name>` creates `<prefix>/<name>/<its-lease-hex>` with an empty value: lockd counts such a
 * key as an exclusive contender, and etcdctl counts lockd's keys as contenders too (its recipe only looks at the
 * create revisions under `<prefix>/<name>/`), so the two contend correctly.
 */
import type { LockMode } from '../../protocol/messages.js';

/** Lock-table style key of a cluster lock (never a file path: those are absolute). */
export const CLUSTER_KEY_SCHEME = 'etcd:';

export function isClusterKey(key: string): boolean {
  return key.startsWith(CLUSTER_KEY_SCHEME);
}

function base(prefix: string): string {
  return prefix === '' ? '' : `${prefix}/`;
}

/** `etcd:<prefix>/<name>`: the key lockd uses for this lock in grants, manifests and status. */
export function clusterLockKey(prefix: string, name: string): string {
  return `${CLUSTER_KEY_SCHEME}${base(prefix)}${name}`;
}

/** The lock's name back from its cluster lock key (null when the key is not under this prefix). */
export function nameOfClusterKey(prefix: string, key: string): string | null {
  const head = `${CLUSTER_KEY_SCHEME}${base(prefix)}`;
  if (!key.startsWith(head)) return null;
  const name = key.slice(head.length);
  return name && !name.includes('/') ? name : null;
}

/** `<prefix>/<name>/`: every contender's key starts with this (what `etcdctl lock <prefix>/<name>` uses). */
export function contendersPrefix(prefix: string, name: string): string {
  return `${base(prefix)}${name}/`;
}

export function requestKey(prefix: string, name: string, leaseHex: string, requestId: string): string {
  return `${contendersPrefix(prefix, name)}${leaseHex}/${requestId}`;
}

export function slotsPrefix(prefix: string, name: string): string {
  return `${base(prefix)}.slots/${name}/`;
}

export function slotKey(prefix: string, name: string, index: number): string {
  return `${slotsPrefix(prefix, name)}${index}`;
}

/** The end of a prefix range: the prefix with its last byte incremented (etcd's range_end convention). */
export function prefixRangeEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i]! < 0xff) {
      const out = Buffer.from(b.subarray(0, i + 1));
      out[i] = b[i]! + 1;
      return out;
    }
  }
  return Buffer.from([0]); // all of the keyspace
}

/** The lease id as etcd prints it (`etcdctl lease list`), from etcd3's decimal string. */
export function leaseHex(leaseId: string): string {
  return BigInt(leaseId).toString(16);
}

/** Who owns a lockd key (a lock's queue key, a pool's queue entry or member key): what `lockd status` shows. */
export interface KeyOwnerValue {
  lockd: 1;
  host: string;
  kind: 'run' | 'hold';
  /** Run id or hold id. */
  run: string;
  holder: string;
  user: string;
  /** When the request was queued (ISO). */
  since: string;
  /** The daemon's pid until the child starts; the child's pid once running. */
  pid: number;
  daemon_pid: number;
  command_line?: string | null;
}

/** What each lockd key of a cluster lock says about its owner and its claim. */
export interface ClusterKeyValue extends KeyOwnerValue {
  mode: LockMode;
  slots?: number;
  /** Set once granted (ISO). */
  granted?: string;
}

export function encodeValue(v: ClusterKeyValue): Buffer {
  return Buffer.from(JSON.stringify(v));
}

/** A lockd value, or null for a key someone else wrote (etcdctl lock writes an empty value). */
export function decodeValue(buf: Buffer | undefined | null): ClusterKeyValue | null {
  if (!buf || buf.length === 0 || buf[0] !== 0x7b /* { */) return null;
  try {
    const v = JSON.parse(buf.toString('utf8')) as Partial<ClusterKeyValue>;
    if (v.lockd !== 1 || typeof v.mode !== 'string' || typeof v.run !== 'string') return null;
    if (v.mode !== 'exclusive' && v.mode !== 'shared' && v.mode !== 'slots') return null;
    return v as ClusterKeyValue;
  } catch {
    return null;
  }
}
