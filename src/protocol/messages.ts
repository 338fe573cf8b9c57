/**
 * Every message of the lockd wire protocol, as one discriminated union per direction. Client and daemon
 * both import this file, so a field renamed here breaks the build on both sides, never at run time.
 * Field names are snake_case because they are also the names in `--json` output and the docs.
 */

export type LockScope = 'local' | 'global';
export type LockMode = 'exclusive' | 'shared' | 'slots';

/** A lock as the caller names it; the daemon resolves it to the canonical path of its lock file. */
export interface LockRef {
  name: string;
  scope: LockScope;
  mode: LockMode;
  /** Capacity for mode 'slots'. */
  slots?: number;
  /** Absolute build root (local locks). The client resolves relative paths against its cwd. */
  root?: string;
  arch?: string;
  /** Absolute directory for global lock files (from --global-dir / LOCKD_GLOBAL_DIR); else the daemon's default. */
  global_dir?: string;
  /** With a cluster configured: keep this global lock per host instead of cluster-wide. */
  host_only?: boolean;
}

/** COUNT members of a pool (lockd.json "pools"), each matching every `where` KEY=VALUE, or the one `member` named. */
export interface PoolRef {
  pool: string;
  count: number;
  where: Record<string, string>;
  member: string | null;
}

export interface VerdictSpec {
  require_structured: boolean;
  require_marker: string[];
  require_all: string[];
  forbid_marker: string[];
  expect_timeout: boolean;
}

/** Who is asking. In system mode the daemon overrides uid/gid with kernel-verified values. */
export interface CallerInfo {
  holder: string;
  user: string;
  client_pid: number;
  /** LOCKD_RUN_ID of the run the caller executes under, if any (nesting; verified by process ancestry). */
  parent_run_id: string | null;
}

export interface RunRequest extends CallerInfo {
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  locks: LockRef[];
  /** null waits forever; 0 fails at once when any lock is busy. */
  wait_ms: number | null;
  timeout_ms: number | null;
  kill_after_ms: number;
  interactive: boolean;
  detach: boolean;
  run_id: string | null;
  /** Resolved by the client (--runs-root, LOCKD_RUNS_ROOT, <root>/runs); null means <state-dir>/runs. */
  runs_root: string | null;
  build_root: string | null;
  arch: string | null;
  log_path: string | null;
  log_max_bytes: number | null;
  verdict: VerdictSpec;
  /** Runs to keep in this runs root after the run (auto-GC); 0 disables, null = daemon default. */
  keep: number | null;
  conflict_exit_code: number;
  /** Cluster locks: what to do when the lock is lost while running (stop the job, or only warn); null = daemon default. */
  on_lock_lost?: 'stop' | 'warn' | null;
  /**
   * Run under this explicit hold (--hold / LOCKD_HOLD_ID): its locks are the hold's, taken one run at a time by the
   * lock's own mode. Only the hold's holder may name it. Absent or null: an ordinary run, which waits for a hold.
   */
  hold_id?: string | null;
  /** Pool members to take with the locks, all or nothing (additive within protocol 1; absent = none). */
  pools?: PoolRef[];
  /** Queue priority: higher first, FIFO within one priority (additive within protocol 1; absent = 0). */
  priority?: number;
  /**
   * End the same user's older runs with this key that are still queued (and, with cancel_running, running) when
   * this one arrives (additive within protocol 1; needs hello_ok feature 'supersede').
   */
  supersede?: string;
  cancel_running?: boolean;
  /**
   * While queued, send a `progress` message this often (ms): a caller without a terminal prints each as a "still
   * waiting" line (additive within protocol 1; hello_ok feature 'progress'; an older daemon ignores it).
   */
  progress_ms?: number;
  /**
   * How the job's output reaches the caller (docs/protocol.md, "Descriptor passing"). 'fds': the client will pass
   * its stdout and stderr (and stdin with `interactive`) over the socket when the daemon answers `stdio {mode:
   * 'fds'}`; absent or 'framed': data frames. Optional, so older daemons (which ignore it) stay framed.
   */
  stdio?: 'fds' | 'framed';
}

export interface AcquireRequest extends CallerInfo {
  locks: LockRef[];
  cwd: string;
  wait_ms: number | null;
  /** null = hold until released. */
  ttl_ms: number | null;
  conflict_exit_code: number;
  /** Pool members to hold with the locks (additive within protocol 1, needs hello_ok feature 'pools'). */
  pools?: PoolRef[];
  priority?: number;
  /** While queued, a `progress` message this often (ms), as for run (additive; hello_ok feature 'progress'). */
  progress_ms?: number;
}

/** Who holds or waits, as status and error lines show it. */
export interface HolderInfo {
  kind: 'run' | 'hold';
  id: string;
  pid: number | null;
  holder: string;
  user: string;
  uid: number | null;
  command_line: string | null;
  since_utc: string;
  cwd: string | null;
  /** Cluster locks: the host whose daemon holds or waits (absent for local ones). */
  host?: string | null;
}

export interface GrantInfo {
  name: string;
  scope: LockScope | 'cluster';
  mode: LockMode;
  path: string;
  slot_index: number | null;
  fencing_token: number;
  wait_ms: number;
  /** For a pool member (name is POOL/MEMBER): the pool, the member and its properties. */
  pool?: string;
  member?: string;
  properties?: Record<string, string>;
}

export interface LockStatus {
  key: string;
  name: string;
  scope: LockScope | 'cluster';
  mode: LockMode | null;
  capacity: number | null;
  holders: Array<HolderInfo & { mode: LockMode; slot_index: number | null; nested: boolean; elapsed_ms: number; fencing_token: number }>;
  waiters: Array<HolderInfo & { position: number; mode: LockMode; wants: string[]; waiting_ms: number; blocked_by: string[]; estimated_wait_ms: number | null; priority?: number }>;
  /** Estimated ms until the head waiter is granted, from recorded durations of past runs; null when unknown. */
  estimated_wait_ms: number | null;
  /** For a pool member (name POOL/MEMBER): its pool, name, properties (null once removed from lockd.json) and state. */
  pool?: string;
  member?: string;
  properties?: Record<string, string> | null;
  disabled?: boolean;
}

export interface StatusSnapshot {
  daemon: { version: string; pid: number; uptime_ms: number; mode: 'user' | 'system'; socket: string; state_dir: string; launcher?: LauncherInfo };
  locks: LockStatus[];
  runs: Array<{
    run_id: string;
    pid: number | null;
    holder: string;
    user: string;
    command_line: string;
    state: 'queued' | 'running' | 'stopping';
    since_utc: string;
    locks: string[];
    detach: boolean;
  }>;
  holds: Array<{ hold_id: string; holder: string; user: string; locks: string[]; since_utc: string; ttl_ms: number | null; expires_utc: string | null }>;
  /** Present when the daemon has a cluster configured. */
  cluster?: ClusterStatusInfo;
}

export interface ClusterStatusInfo {
  endpoints: string[];
  prefix: string;
  host: string;
  /** The daemon's lease id (hex, as etcdctl prints it), null while it has none. */
  lease: string | null;
  lease_ttl_ms: number | null;
  lease_left_ms: number | null;
  healthy: boolean;
  last_error: string | null;
}

export type EventType = 'queued' | 'granted' | 'released' | 'started' | 'exited' | 'cancelled' | 'hold_acquired' | 'hold_released' | 'hold_expired' | 'killed' | 'not_obtained';

export interface LockdEvent {
  seq: number;
  time_utc: string;
  type: EventType;
  id: string;
  locks: string[];
  detail?: Record<string, unknown>;
}

// ---- client → daemon -------------------------------------------------------------------------------

export type ClientMessage =
  | { type: 'hello'; protocol: number; client_version: string; pid: number }
  | { type: 'ping' }
  | { type: 'run'; req: RunRequest }
  | { type: 'signal'; signal: ForwardSignal }
  | { type: 'stdin_end' }
  /** The caller's terminal was resized: passed on to the job's pty. Sent only after a `started` with `tty: true`. */
  | { type: 'resize'; cols: number; rows: number }
  | { type: 'acquire'; req: AcquireRequest }
  | { type: 'heartbeat'; hold_id: string; holder: string }
  | { type: 'release'; hold_id: string | null; locks: LockRef[]; cwd: string; holder: string; force: boolean }
  | { type: 'status'; root: string | null }
  | { type: 'inspect'; lock: LockRef }
  | { type: 'events' }
  | { type: 'kill'; run_id: string; signal: string; force: boolean }
  | { type: 'watch_run'; run_id: string }
  // all: the caller said --all; without it (absent = false) a GC that would remove every finished run is refused.
  | { type: 'gc'; runs_root: string | null; keep: number; older_than_ms: number | null; max_bytes: number | null; dry_run: boolean; all?: boolean }
  | { type: 'shutdown'; force: boolean }
  // holders: also list who holds each lock (off by default: scrapers see counts, not names; see MetricsSnapshot).
  | { type: 'metrics'; holders: boolean }
  // lockd pool …: read or change the pools (added within protocol 1; an older daemon answers bad_request).
  | { type: 'pool'; req: PoolAdminRequest };

export type PoolAdminAction = 'list' | 'show' | 'add' | 'remove' | 'disable' | 'enable';

/** `lockd pool ACTION [NAME[/MEMBER]]`; properties only with add, reason only with disable (and remove). */
export interface PoolAdminRequest {
  action: PoolAdminAction;
  pool: string | null;
  member: string | null;
  properties: Record<string, string>;
  reason: string | null;
}

export type ForwardSignal = 'SIGINT' | 'SIGTERM' | 'SIGHUP' | 'SIGQUIT' | 'SIGKILL';
export const FORWARD_SIGNALS: readonly ForwardSignal[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGKILL'];

// ---- daemon → client -------------------------------------------------------------------------------

export interface DaemonInfo {
  protocol: number;
  version: string;
  pid: number;
  uptime_ms: number;
  mode: 'user' | 'system';
  socket: string;
  state_dir: string;
  /** How this daemon starts jobs (added in 0.2; absent from older daemons). */
  launcher?: LauncherInfo;
  /** Where this daemon keeps its locks, and why (added in 0.2; absent from older daemons). */
  lock_backend?: LockBackendInfo;
  /**
   * What this daemon understands beyond protocol 1 as first shipped ('pools': run/acquire `pools`, `priority`, the
   * `pool` request). A client that needs one checks it before sending its request; absent from older daemons.
   */
  features?: string[];
}

/**
 * The daemon's lock backend: `local` (every lock is a lock file on this host) or `cluster` (--global locks live in
 * etcd; build-root and --host-only locks stay lock files on this host).
 */
export interface LockBackendInfo {
  kind: 'local' | 'cluster';
  /** The etcd endpoints (host:port), cluster only. */
  endpoints?: string[];
  /** The etcd key prefix, cluster only. */
  prefix?: string;
  /** TLS to etcd, cluster only. */
  tls?: boolean;
  /** What chose it: the setting and where its value came from (`--cluster`, `LOCKD_CLUSTER`, a lockd.json), or that nothing set one. */
  reason: string;
}

/** The daemon's job launcher: `native` (the addon: no fork, born in its cgroup, pidfd) or `portable` (execa). */
export interface LauncherInfo {
  name: 'native' | 'portable';
  detail: string;
  /** Why this one (forced by LOCKD_LAUNCHER, or what the host offered). */
  reason: string;
}

/** The final word on a run attempt: lockd's exit code and where the record is. */
export interface RunOutcome {
  run_id: string;
  exit_code: number;
  status: string;
  reason: string;
  message: string | null;
  result_path: string;
  manifest_path: string;
  /** The full result.json content. */
  result: Record<string, unknown>;
}

export type DaemonMessage =
  | ({ type: 'hello_ok' } & DaemonInfo)
  | { type: 'error'; code: string; message: string; details?: Record<string, unknown> }
  | ({ type: 'pong' } & DaemonInfo)
  | { type: 'queued'; run_id: string; position: number; blockers: HolderInfo[]; manifest_path: string; result_path: string }
  | { type: 'waiting'; position: number; blockers: HolderInfo[] }
  /** Every `progress_ms` while queued: where the run stands and the estimated wait (null: unknown). */
  | { type: 'progress'; position: number; blockers: HolderInfo[]; eta_ms: number | null }
  /**
   * Sent just before the job is launched, so a client that loses the daemon after this never retries the run (its
   * command may be running or have run). Clients that predate it ignore it.
   */
  | { type: 'launching'; run_id: string; result_path: string }
  | {
      type: 'started';
      run_id: string;
      pid: number;
      manifest_path: string;
      result_path: string;
      log_path: string | null;
      locks: GrantInfo[];
      /** The job writes into a pty relayed to the caller's terminal (absent: it does not, or an older daemon). */
      tty?: boolean;
    }
  | { type: 'finished'; outcome: RunOutcome }
  | { type: 'detached'; run_id: string; pid: number; manifest_path: string; result_path: string; log_path: string | null }
  /**
   * The answer to a run with `stdio: 'fds'`, before anything else about the run: 'fds' = send the descriptors now
   * (one sendmsg, payload one 0 byte, nothing else in between); 'framed' = the daemon will not take them (reason).
   */
  | { type: 'stdio'; mode: 'fds' | 'framed'; reason: string | null }
  | { type: 'acquired'; hold_id: string; locks: GrantInfo[]; queue_wait_ms: number; holder: string; ttl_ms: number | null }
  | { type: 'not_obtained'; code: string; message: string; blockers: HolderInfo[]; exit_code: number }
  | { type: 'released'; released: boolean; note: string | null; hold_ids: string[] }
  | { type: 'ok'; note: string | null }
  // Written exactly as {"type":"status","snapshot":{…}} with nothing after the snapshot: `lockd status --json` passes the
  // snapshot's bytes through unparsed (docs/protocol.md). New fields go inside the snapshot.
  | { type: 'status'; snapshot: StatusSnapshot }
  | { type: 'inspect'; lock: LockStatus | null; key: string }
  | { type: 'event'; event: LockdEvent }
  | { type: 'run_state'; run_id: string; live: boolean; result_path: string | null; log_path: string | null }
  | { type: 'run_ended'; run_id: string }
  | { type: 'gc_done'; report: Record<string, unknown> }
  | { type: 'metrics'; snapshot: MetricsSnapshot }
  | { type: 'pools'; pools: PoolInfo[]; note: string | null };

/** One pool as `lockd pool list|show` shows it. */
export interface PoolInfo {
  name: string;
  members: PoolMemberInfo[];
  /** Why lockd.json was not used (the last good pools stay in force), or null. */
  config_error: string | null;
  /** `"scope": "cluster"`: shared by the hosts of the etcd cluster (docs/cluster.md); absent for a host's own pool. */
  scope?: 'cluster';
}

export interface PoolMemberInfo {
  name: string;
  properties: Record<string, string>;
  /** free, held, disabled (never granted; a holder keeps it until release), removed (held; goes at release). */
  state: 'free' | 'held' | 'disabled' | 'removed';
  disabled_reason: string | null;
  holder: (HolderInfo & { request_id: string }) | null;
  waiters: number;
}

// ---- metrics (the `metrics` request; src/metrics/prometheus.ts renders it) ---------------------------

/**
 * A histogram as the daemon counts it: `counts[i]` observations fell at or below `buckets[i]` and above the bound
 * before it (per bucket, not cumulative); the last entry of `counts` (one more than `buckets`) is what fell above the
 * largest bound (+Inf). `sum` is in the same unit as the bounds (seconds).
 */
export interface HistogramSnapshot {
  buckets: number[];
  counts: number[];
  sum: number;
  count: number;
}

/** One lock's series: counted since the daemon started (or since it last saw the lock, see docs/operations.md). */
export interface LockMetrics {
  /** The lock's identity: its lock file's canonical path, or its cluster key. */
  key: string;
  name: string;
  scope: LockScope | 'cluster';
  /** Top-level holders now (a family's nested re-entries count once); slots in use for a slots lock. */
  holders: number;
  /** Requests waiting now. */
  queue_depth: number;
  /** Slot count of a slots lock; null for exclusive and shared ones (and while nobody uses the lock). */
  capacity: number | null;
  /** Seconds from queued to granted, per grant (0 for a grant without waiting). */
  wait_seconds: HistogramSnapshot;
  /** Seconds from granted to released, per holder. */
  hold_seconds: HistogramSnapshot;
  /** Seconds from a holder's release to the start of the waiting request it let in (its child spawned, its hold taken). */
  handoff_seconds: HistogramSnapshot;
  /** Who holds it now; only when the request asked for holders. */
  holder_names?: Array<{ kind: 'run' | 'hold'; id: string; holder: string; user: string }>;
}

export interface MetricsSnapshot {
  daemon: { version: string; mode: 'user' | 'system'; launcher: string | null; pid: number; start_time_seconds: number };
  /** The daemon process itself (Prometheus' standard process_* series); null where the platform does not say. */
  process: {
    cpu_user_seconds: number;
    cpu_system_seconds: number;
    resident_memory_bytes: number;
    virtual_memory_bytes: number | null;
    heap_used_bytes: number;
    heap_total_bytes: number;
    open_fds: number | null;
    max_fds: number | null;
  };
  /** Every lock seen since start (bounded, least recently used forgotten first), sorted by key. */
  locks: LockMetrics[];
  /** Finished runs per verdict (result.json `status`), every status present. */
  runs_total: Record<string, number>;
  /** Live runs by state now (re-adopted --detach runs count as running). */
  runs: { queued: number; running: number; stopping: number };
  /** Explicit holds now: taken, and still waiting. */
  holds: { held: number; waiting: number };
  /** True when holder_names were asked for (and filled). */
  holder_names: boolean;
  /** Pool members now, per pool and state (free, held, disabled, removed); absent from daemons before pools. */
  pools?: Array<{ pool: string; members: Record<PoolMemberInfo['state'], number> }>;
}
