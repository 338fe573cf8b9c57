/**
 * Which lock backend a daemon uses, and why: local lock files, or an etcd cluster for --global locks when `cluster`
 * is set (flag, LOCKD_CLUSTER, a lockd.json). One place for `lockd daemon` (which reports it to clients) and
 * `lockd doctor` (which says it even with no daemon running: what one started now would use). Loads no etcd client.
 */
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { parseClusterConfig, type ClusterConfig } from '../cluster/config.js';
import type { LockBackendInfo } from '../protocol/messages.js';
import { Settings, type Source } from './settings.js';

export interface LockBackend {
  /** The cluster to open, or null: every lock stays on this host. */
  cluster: ClusterConfig | null;
  info: LockBackendInfo;
}

/** Where the `cluster` setting came from, in the words a user would look for. */
function clusterSource(source: Source, settings: Settings, stateDir: string): string {
  switch (source) {
    case 'flag':
      return '--cluster';
    case 'env':
      return 'LOCKD_CLUSTER';
    case 'config:build-root':
      return `"cluster" in ${join(resolve(settings.value('build_root')!), 'lockd.json')}`;
    case 'config:state-dir':
      return `"cluster" in ${join(stateDir, 'lockd.json')}`;
    default:
      return 'the default';
  }
}

/**
 * --cluster and its companions, each resolved like every other setting (flag > LOCKD_CLUSTER_* > build-root
 * lockd.json > state-dir lockd.json > default; what `lockd config` shows), and what they make of the lock backend.
 * A malformed setting throws `usage`.
 */
export function lockBackendOf(values: Record<string, string | boolean | undefined>, stateDir: string, env: NodeJS.ProcessEnv = process.env): LockBackend {
  const flag = (name: string): string | undefined => (typeof values[name] === 'string' ? (values[name] as string) : undefined);
  const settings = new Settings(
    {
      socket: flag('socket'),
      state_dir: stateDir, // the daemon's own (the system one with --system): its lockd.json
      cluster: flag('cluster'),
      cluster_prefix: flag('cluster-prefix'),
      cluster_ttl: flag('cluster-ttl'),
      cluster_ca: flag('cluster-ca'),
      cluster_cert: flag('cluster-cert'),
      cluster_key: flag('cluster-key'),
      cluster_user: flag('cluster-user'),
      cluster_password: flag('cluster-password'),
      cluster_host: flag('cluster-host'),
      on_lock_lost: flag('on-lock-lost'),
    },
    env,
  );
  const cluster = parseClusterConfig({
    cluster: settings.explicit('cluster'),
    prefix: settings.explicit('cluster_prefix'),
    ttl: settings.explicit('cluster_ttl'),
    ca: settings.explicit('cluster_ca'),
    cert: settings.explicit('cluster_cert'),
    key: settings.explicit('cluster_key'),
    user: settings.explicit('cluster_user'),
    password: settings.explicit('cluster_password'),
    onLockLost: settings.explicit('on_lock_lost'),
    hostName: settings.value('cluster_host') ?? hostname(),
  });
  if (cluster === null) {
    return { cluster, info: { kind: 'local', reason: 'no cluster is configured (--cluster, LOCKD_CLUSTER and "cluster" in lockd.json are unset)' } };
  }
  const reason = `cluster set by ${clusterSource(settings.get('cluster').source, settings, stateDir)}`;
  return { cluster, info: { kind: 'cluster', endpoints: cluster.endpoints, prefix: cluster.prefix, tls: cluster.tls, reason } };
}

/** For people: what the backend is, as the object of "uses" (the reason is said separately). */
export function describeLockBackend(info: LockBackendInfo): string {
  if (info.kind === 'local') return 'lock files on this host for every lock';
  const prefix = info.prefix === undefined ? '' : info.prefix === '' ? ', keys at the top of the keyspace' : `, prefix ${info.prefix}`;
  return `the etcd cluster at ${(info.endpoints ?? []).join(', ')} (${info.tls ? 'TLS' : 'no TLS'}${prefix}) for --global locks, and lock files on this host for build-root and --host-only locks`;
}
