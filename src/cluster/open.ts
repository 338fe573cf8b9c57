/**
 * The daemon's one entry into the cluster module, imported lazily (`await import(...)`) and only when a cluster
 * is configured: this is where etcd3 and @grpc/grpc-js get loaded.
 */
import type { ClusterHost } from '../daemon/locks/cluster-port.js';
import type { Logger } from '../daemon/server/logger.js';
import { clusterTiming, type ClusterConfig } from './config.js';
import { createEtcdClient } from './etcd-client.js';
import { LeaseSession } from './session.js';
import { Watchdog } from './watchdog.js';
import { ClusterLocks } from './cluster-locks.js';
import { ClusterPools } from './cluster-pools.js';
import type { ClusterService } from '../daemon/locks/cluster-port.js';

/**
 * Connect to the cluster. Never fails because etcd is down: the daemon serves local locks regardless, and cluster
 * requests fail (or wait, per --wait) with `cluster_unavailable` until etcd answers. The lease is granted in the
 * background, bounded by the RPC timeout, so the first cluster run usually finds it ready.
 */
export function openCluster(cfg: ClusterConfig, core: ClusterHost, log: Logger): ClusterService {
  const timing = clusterTiming(cfg.ttlSeconds);
  const client = createEtcdClient(cfg, timing.rpcTimeoutMs);
  const session = new LeaseSession(client, cfg.ttlSeconds, timing, log);
  const watchdog = new Watchdog(log);
  watchdog.start(timing.killGraceMs);
  const pools = new ClusterPools(client, session, cfg.prefix, cfg.hostName, core, log);
  const locks = new ClusterLocks(client, session, watchdog, core, cfg, log, pools);
  log.info('cluster configured', { endpoints: cfg.endpoints, prefix: cfg.prefix, ttl_s: cfg.ttlSeconds, host: cfg.hostName, on_lock_lost: cfg.onLockLost });
  pools.start();
  session.ensure().catch((e: Error) => log.warn('cluster not reachable at start; cluster locks fail with cluster_unavailable until it is', { error: e.message }));
  return locks;
}
