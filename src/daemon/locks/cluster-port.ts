/**
 * What the daemon sees of the cluster module: an interface the daemon owns and src/cluster/ implements. The
 * daemon's files import this, never the implementation (the dependency points from cluster/ to daemon/), so a
 * daemon without a cluster never loads etcd3.
 */
import type { ClusterStatusInfo, HolderInfo, LockStatus } from '../../protocol/messages.js';
import type { Grant, LockRequest, LockTable } from './lock-table.js';
import type { Logger } from '../server/logger.js';
import type { Owner } from './owner.js';
import type { ResolvedLock } from '../records/lock-resolve.js';

/** What a run does when its cluster lock is lost while it runs. */
export type OnLockLost = 'stop' | 'warn';

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

/** A pool's members (with properties) and its disabled members (with reasons), as lockd.json and etcd hold it. */
export interface PoolMembersDef {
  members: Record<string, Record<string, string>>;
  disabled: Record<string, string>;
}

/** What the cluster backend sees of the daemon's pools (services/pools.ts, PoolConfig, is it). */
export interface ClusterPoolHost {
  /** Pools with `"scope": "cluster"`, as this host defines them (lockd.json and its edits): seeds of the shared definitions. */
  clusterPools(): Record<string, PoolMembersDef>;
  /** The shared definition of a cluster pool, read from etcd, is in force on this host from now on. */
  setShared(pool: string, def: PoolMembersDef): void;
}

/** What the cluster backend needs of the daemon (DaemonCore is one): the local table, the runs, the holds, the pools. */
export interface ClusterHost {
  readonly table: LockTable<Owner>;
  readonly runs: ReadonlyMap<string, ClusterRun>;
  readonly holds: { onClusterLockLost(id: string, message: string): void };
  readonly pools: ClusterPoolHost;
}

/** What `--supersede` needs of a run, on one host (services/supersede.ts) and across hosts (cluster pools). */
export interface SupersedeTarget {
  /** The run's key, its verified uid, its state and age. */
  readonly runId: string;
  readonly uid: number | null;
  readonly state: string;
  readonly queuedAt: number;
  readonly req: { supersede?: string; cancel_running?: boolean };
  supersededBy: string | null;
  cancelQueued(reason: 'superseded', message: string): Promise<void>;
}

/** What the cluster backend sees of a run. */
export interface ClusterRun extends SupersedeTarget {
  readonly parent: string | null;
  readonly watchers: Set<() => void>;
  onClusterLockLost(message: string, graceMs: number): void;
  stop(reason: 'shutdown' | 'supersede', by: string): Promise<void>;
}

/** Opens the backend for a daemon (the CLI closes over the configuration and loads src/cluster/ lazily). */
export type ClusterFactory = (host: ClusterHost, log: Logger) => Promise<ClusterService>;

export interface ClusterService {
  readonly prefix: string;
  readonly onLockLost: OnLockLost;
  /** SIGTERM → SIGKILL grace for jobs stopped because their lease runs out. */
  readonly lockLostGraceMs: number;
  /** Does this request name any cluster lock, or any pool with `"scope": "cluster"`? */
  handles(locks: ResolvedLock[], pools?: ReadonlyArray<{ pool: string }>): boolean;
  /** `lockd pool add|remove|disable|enable` on a cluster pool: changes the shared definition in etcd. */
  editPool(action: 'add' | 'remove' | 'disable' | 'enable', pool: string, member: string | null, properties: Record<string, string>, reason: string | null): Promise<void>;
  /** Every member of the cluster pools, with its holder on whichever host (`lockd pool list|show`). */
  clusterMembers(): Promise<LockStatus[]>;
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
