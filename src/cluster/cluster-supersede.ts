/**
 * `--supersede KEY` across hosts (cluster pools). On one host "the same caller" is the same uid (supersede.ts); a uid
 * means nothing on another host, so across hosts it is the same KEY and the same *user name*: the name of the uid
 * each daemon verified for its run (the socket's peer credentials in system mode, the daemon's own user per user),
 * never the `user` a client claims. Labs whose hosts share their users (LDAP, the one CI runner account) get "a
 * newer push ends the older queued job on whichever host"; two users who happen to pick one KEY do not end each
 * other's jobs.
 *
 * The newer request announces itself by its queue entry's value (`supersede`, `supersede_user`, `cancel_running`,
 * pool-keys.ts); each host, seeing the put in its pool watch, ends its own older runs: queued ones at once
 * (superseded, exit 77), running ones too with --cancel-running. Older means queued before the newer one's `since`
 * (the clocks of the hosts are trusted to within what separates two pushes).
 */
import type { ClusterRun } from '../daemon/locks/cluster-port.js';
import { userNameOf } from '../daemon/services/user-name.js';
import type { PoolQueueValue } from './pool-keys.js';

export function supersedeFromCluster(runs: Iterable<ClusterRun>, newer: PoolQueueValue): string[] {
  const key = newer.supersede;
  const since = Date.parse(newer.since);
  if (key === undefined || newer.supersede_user === undefined || !Number.isFinite(since)) return [];
  const ended: string[] = [];
  for (const old of runs) {
    if (old.runId === newer.run || old.req.supersede !== key || old.supersededBy !== null || old.queuedAt > since) continue;
    if (userNameOf(old.uid) !== newer.supersede_user) continue;
    const by = `run ${newer.run} on ${newer.host}`;
    if (old.state === 'queued') {
      old.supersededBy = newer.run;
      void old.cancelQueued('superseded', `superseded by ${by} (--supersede ${key})`);
      ended.push(old.runId);
    } else if (newer.cancel_running && (old.state === 'starting' || old.state === 'running')) {
      old.supersededBy = newer.run;
      void old.stop('supersede', by);
      ended.push(old.runId);
    }
  }
  return ended;
}
