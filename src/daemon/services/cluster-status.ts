/**
 * Adds the cluster's view to a `lockd status` snapshot: every cluster lock's holders and waiters on every host, and
 * this daemon's lease. Bounded: a slow or unreachable etcd yields the local snapshot plus the error, never a hang.
 * Loads no etcd code itself (it talks to the ClusterService the daemon was given).
 */
import type { StatusSnapshot } from '../../protocol/messages.js';
import type { ClusterService } from '../locks/cluster-port.js';

export async function addClusterStatus(snapshot: StatusSnapshot, cluster: ClusterService, root: string | null, timeoutMs = 3000): Promise<StatusSnapshot> {
  const info = cluster.info();
  let timer: NodeJS.Timeout | null = null;
  try {
    const locks = await Promise.race([
      cluster.statusLocks(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`etcd did not answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    // --root narrows local locks only; cluster locks are never under a build root, so they always show.
    void root;
    return { ...snapshot, locks: [...snapshot.locks, ...locks], cluster: info };
  } catch (e) {
    return { ...snapshot, cluster: { ...info, healthy: false, last_error: (e as Error).message } };
  } finally {
    if (timer) clearTimeout(timer);
  }
}
