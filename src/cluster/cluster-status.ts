/**
 * `lockd status` for cluster locks: read every queue under the prefix from etcd and show, for each lock, who holds
 * it and who waits, on every host, from the small JSON value each lockd key carries. Holders and waiters are told
 * apart by the same FIFO rules every host applies (queue-rules.ts).
 */
import type { Etcd3 } from 'etcd3';
import type { HolderInfo, LockMode, LockStatus } from '../protocol/messages.js';
import { classifyQueue, type QueueEntry } from './queue-rules.js';
import { clusterLockKey, contendersPrefix, decodeValue, prefixRangeEnd, type ClusterKeyValue } from '../daemon/locks/cluster-keys.js';

export interface ClusterEntry extends QueueEntry {
  name: string;
  value: ClusterKeyValue | null;
  lease: string;
}

/** Key → entry, or null for keys that are not contenders (slot keys, other data under the prefix). */
export function entryOf(prefix: string, key: string, createRevision: number, value: Buffer, lease: string): ClusterEntry | null {
  const head = prefix === '' ? '' : `${prefix}/`;
  if (!key.startsWith(head)) return null;
  const rest = key.slice(head.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return null;
  const name = rest.slice(0, slash);
  if (name.startsWith('.')) return null; // .slots and other bookkeeping
  const v = decodeValue(value);
  return { key, name, createRevision, mode: v?.mode ?? 'exclusive', slots: v?.mode === 'slots' ? (v.slots ?? 1) : null, value: v, lease };
}

export function holderInfoOf(e: ClusterEntry): HolderInfo & { host: string | null } {
  const v = e.value;
  if (!v) {
    // Someone else's key (etcdctl lock, another tool using etcd's mutex recipe).
    return {
      kind: 'hold',
      id: e.key,
      pid: null,
      holder: `etcd key ${e.key} (lease ${BigInt(e.lease || '0').toString(16)})`,
      user: '',
      uid: null,
      command_line: null,
      since_utc: '',
      cwd: null,
      host: null,
    };
  }
  return {
    kind: v.kind,
    id: v.run,
    pid: v.pid ?? null,
    holder: v.holder,
    user: v.user,
    uid: null,
    command_line: v.command_line ?? null,
    since_utc: v.granted ?? v.since,
    cwd: null,
    host: v.host,
  };
}

function ms(iso: string | undefined, now: number): number {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isFinite(t) ? Math.max(0, now - t) : 0;
}

/** One lock's status from its queue sorted by create revision. */
export function lockStatusOf(prefix: string, name: string, sorted: ClusterEntry[], now = Date.now()): LockStatus {
  const { holders, waiters } = classifyQueue(sorted);
  const anyExclusive = holders.some((h) => h.mode === 'exclusive');
  const mode: LockMode | null = holders.length === 0 ? null : anyExclusive ? 'exclusive' : holders[0]!.mode;
  const slots = sorted.find((e) => e.mode === 'slots')?.slots ?? null;
  return {
    key: clusterLockKey(prefix, name),
    name,
    scope: 'cluster',
    mode,
    capacity: slots,
    holders: holders.map((h) => ({
      ...holderInfoOf(h),
      mode: h.mode,
      slot_index: null,
      nested: false,
      elapsed_ms: ms(h.value?.granted ?? h.value?.since, now),
      fencing_token: h.createRevision,
    })),
    waiters: waiters.map((w, i) => ({
      ...holderInfoOf(w),
      position: i + 1,
      mode: w.mode,
      wants: [name],
      waiting_ms: ms(w.value?.since, now),
      blocked_by: sorted.filter((e) => e.createRevision < w.createRevision).map((e) => e.value?.run ?? e.key),
      estimated_wait_ms: null,
    })),
    estimated_wait_ms: null,
  };
}

/** Every cluster lock with a holder or waiter under the prefix (or, with an empty prefix, under the given names). */
export async function readClusterStatus(client: Etcd3, prefix: string, names: string[]): Promise<LockStatus[]> {
  const ranges: Array<{ key: Buffer; range_end: Buffer }> = [];
  if (prefix !== '') {
    const p = `${prefix}/`;
    ranges.push({ key: Buffer.from(p), range_end: prefixRangeEnd(p) });
  } else {
    // No prefix: the whole keyspace may be anything; only the locks this daemon knows are read.
    for (const n of names) {
      const p = contendersPrefix('', n);
      ranges.push({ key: Buffer.from(p), range_end: prefixRangeEnd(p) });
    }
  }
  if (ranges.length === 0) return [];
  const res = await client.kv.txn({
    success: ranges.map((r) => ({ request_range: { ...r, sort_target: 'Create', sort_order: 'Ascend' } })),
  });
  const byName = new Map<string, ClusterEntry[]>();
  for (const op of res.responses) {
    for (const kv of op.response_range.kvs) {
      const e = entryOf(prefix, kv.key.toString('utf8'), Number(kv.create_revision), kv.value, kv.lease);
      if (!e) continue;
      let list = byName.get(e.name);
      if (!list) byName.set(e.name, (list = []));
      list.push(e);
    }
  }
  const now = Date.now();
  return [...byName.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, list]) =>
      lockStatusOf(
        prefix,
        name,
        list.sort((a, b) => a.createRevision - b.createRevision),
        now,
      ),
    );
}
