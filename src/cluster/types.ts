/**
 * What the daemon sees of the cluster module. Type-only for the daemon's files: they import this, never the
 * implementation, so a daemon without a cluster never loads etcd3.
 */
import type { ClusterStatusInfo, HolderInfo, LockStatus } from '../protocol/messages.js';
import type { Grant, LockRequest } from '../daemon/locks/lock-table.js';
import type { Owner } from '../daemon/locks/owner.js';
import type { ResolvedLock } from '../daemon/records/lock-resolve.js';
import type { OnLockLost } from './config.js';

export type ClusterNotObtained = 'lock_busy' | 'lock_wait_timeout' | 'deadlock' | 'cluster_unavailable' | 'usage';

export interface ClusterCallbacks {
  /** First time the request has to wait (position is 1-based, over its longest queue; 0 when etcd is unreachable). */
  onQueued(position: number, blockers: HolderInfo[]): void;
  /** Later changes of position while waiting. */
  onWaiting(position: number, blockers: HolderInfo[]): void;
  /** Every lock, cluster and local, is held: claims in the order of the request's locks. */
  onGranted(grant: Grant<Owner>): void;
  onNotObtained(reason: ClusterNotObtained, message: string, blockers: HolderInfo[]): void;
}

export interface ClusterEnqueue {
  /** The whole request (every claim, local and cluster); meta is the run or hold. */
  request: LockRequest<Owner>;
  locks: ResolvedLock[];
  /** null waits forever; also bounds how long an unreachable etcd is retried. */
  waitMs: number | null;
  /** --wait 0: never queue. */
  tryOnly: boolean;
  callbacks: ClusterCallbacks;
}

/** What status shows of the cluster connection: the protocol's type, one definition for both sides. */
export type ClusterInfo = ClusterStatusInfo;

export interface ClusterService {
  readonly prefix: string;
  readonly onLockLost: OnLockLost;
  /** SIGTERM → SIGKILL grace for jobs stopped because their lease runs out. */
  readonly lockLostGraceMs: number;
  /** Does this request name any cluster lock? */
  handles(locks: ResolvedLock[]): boolean;
  enqueue(req: ClusterEnqueue): void;
  /** The request's locks are given back (held or still queued). Also re-checks requests waiting for local locks. */
  release(id: string): void;
  /** A queued request is withdrawn (a held one is left alone, like LockTable.cancel). */
  cancel(id: string): void;
  /** Local locks changed hands: requests waiting for them try again. */
  localChanged(): void;
  blockersOf(id: string): HolderInfo[];
  /** A run's child started: record its pid in the keys, and let the watchdog kill its group if the daemon dies. */
  protect(runId: string, pid: number, stopOnLoss: boolean): void;
  statusLocks(): Promise<LockStatus[]>;
  inspect(key: string): Promise<LockStatus | null>;
  info(): ClusterInfo;
  /** Stop runs that hold cluster locks (they cannot outlive the lease), revoke the lease, close the client. */
  shutdown(): Promise<void>;
}
