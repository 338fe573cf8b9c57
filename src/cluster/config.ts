/**
 * Cluster configuration: `--cluster etcd://host:port[,host:port...][/prefix]` (or `etcds://` for TLS) and its
 * companions, parsed into one plain, JSON-safe object the CLI hands to the daemon. Pure: importing this file does
 * not load the etcd client.
 */
import { LockdError } from '../util/errors.js';

import type { OnLockLost } from '../daemon/locks/cluster-port.js';

export type { OnLockLost } from '../daemon/locks/cluster-port.js';

export interface ClusterConfig {
  /** host:port of each etcd endpoint. */
  endpoints: string[];
  tls: boolean;
  /** Key prefix without a trailing slash; '' puts lock names at the top of the keyspace. */
  prefix: string;
  /** Requested lease TTL (etcd may round it up to its minimum). */
  ttlSeconds: number;
  onLockLost: OnLockLost;
  caFile: string | null;
  certFile: string | null;
  keyFile: string | null;
  user: string | null;
  password: string | null;
  /** This host's name as other hosts see it in status. */
  hostName: string;
}

export interface ClusterOptionsInput {
  cluster: string | null | undefined;
  prefix?: string | null | undefined;
  ttl?: string | null | undefined;
  onLockLost?: string | null | undefined;
  ca?: string | null | undefined;
  cert?: string | null | undefined;
  key?: string | null | undefined;
  user?: string | null | undefined;
  password?: string | null | undefined;
  hostName: string;
}

export const DEFAULT_CLUSTER_PREFIX = 'lockd';
export const DEFAULT_CLUSTER_TTL_S = 10;

const ENDPOINT_RE = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;
const PREFIX_RE = /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/;

function usage(msg: string): never {
  throw new LockdError('usage', msg);
}

export function parseOnLockLost(v: string | null | undefined, what = '--on-lock-lost'): OnLockLost | null {
  if (v === null || v === undefined || v === '') return null;
  if (v === 'stop' || v === 'warn') return v;
  usage(`${what} must be stop or warn, not ${JSON.stringify(v)}`);
}

/** null when no cluster is configured. */
export function parseClusterConfig(o: ClusterOptionsInput): ClusterConfig | null {
  const url = o.cluster?.trim();
  if (!url) return null;
  const m = /^(etcds?):\/\/([^/]+)(\/.*)?$/.exec(url);
  if (!m) usage(`--cluster must look like etcd://host:port[,host:port...][/prefix], not ${JSON.stringify(url)}`);
  const endpoints = m[2]!.split(',').map((e) => e.trim());
  for (const e of endpoints) {
    const em = ENDPOINT_RE.exec(e);
    if (!em || Number(em[2]) < 1 || Number(em[2]) > 65535) usage(`--cluster: bad endpoint ${JSON.stringify(e)} (want host:port)`);
  }
  let prefix = DEFAULT_CLUSTER_PREFIX;
  if (m[3] !== undefined) prefix = m[3].replace(/^\/+|\/+$/g, '');
  if (o.prefix !== undefined && o.prefix !== null) prefix = o.prefix.replace(/^\/+|\/+$/g, '');
  if (prefix !== '' && !PREFIX_RE.test(prefix)) usage(`cluster key prefix ${JSON.stringify(prefix)}: use letters, digits, '.', '_', '-' and '/'`);
  let ttlSeconds = DEFAULT_CLUSTER_TTL_S;
  if (o.ttl !== undefined && o.ttl !== null && o.ttl !== '') {
    const n = Number(o.ttl);
    if (!Number.isInteger(n) || n < 1 || n > 3600) usage(`--cluster-ttl must be a whole number of seconds in [1, 3600], not ${JSON.stringify(o.ttl)}`);
    ttlSeconds = n;
  }
  const tls = m[1] === 'etcds' || !!o.ca || !!o.cert;
  if ((o.cert && !o.key) || (o.key && !o.cert)) usage('--cluster-cert and --cluster-key go together');
  if ((o.user && !o.password) || (o.password && !o.user)) usage('--cluster-user and --cluster-password go together');
  return {
    endpoints,
    tls,
    prefix,
    ttlSeconds,
    onLockLost: parseOnLockLost(o.onLockLost) ?? 'stop',
    caFile: o.ca || null,
    certFile: o.cert || null,
    keyFile: o.key || null,
    user: o.user || null,
    password: o.password || null,
    hostName: o.hostName,
  };
}

/**
 * Timing derived from the lease TTL. The lease is renewed every quarter TTL; a daemon that has had no renewal
 * acknowledged for TTL − margin stops the affected jobs (SIGTERM, then SIGKILL after a third of the margin) so they are
 * gone before the server can expire the lease, whose expiry is counted from a renewal the server received no
 * earlier than we sent it.
 */
export interface ClusterTiming {
  ttlMs: number;
  keepaliveIntervalMs: number;
  /** Stop affected jobs when less than this is left of the lease as we can prove it. */
  safetyMarginMs: number;
  /** SIGTERM → SIGKILL grace for jobs stopped because their lease is running out. */
  killGraceMs: number;
  /** Bound on one unary etcd call. */
  rpcTimeoutMs: number;
}

export function clusterTiming(ttlSeconds: number): ClusterTiming {
  const ttlMs = ttlSeconds * 1000;
  const safetyMarginMs = Math.max(300, Math.round(ttlMs * 0.3));
  return {
    ttlMs,
    keepaliveIntervalMs: Math.max(100, Math.round(ttlMs / 4)),
    safetyMarginMs,
    killGraceMs: Math.max(100, Math.round(safetyMarginMs / 3)),
    rpcTimeoutMs: Math.min(5000, Math.max(500, Math.round(ttlMs / 2))),
  };
}
