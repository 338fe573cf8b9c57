/**
 * The typed Node API: `import { connect } from 'lockd'`. The CLI is a thin layer over the same calls, so the two
 * report the same errors with the same codes. Each call opens its own connection to the daemon (the protocol is one
 * request per connection), so a client object is cheap and safe to share.
 */
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { connectDaemon, request, requestJsonField, type ConnectOptions } from '../client/connection.js';
import { lookOnly } from '../client/connect-options.js';
import { currentUser, holderString, defaultWaitSeconds } from '../client/holder.js';
import type {
  PoolAdminRequest,
  PoolInfo,
  AcquireRequest,
  ClientMessage,
  DaemonInfo,
  ForwardSignal,
  GrantInfo,
  HolderInfo,
  LockRef,
  LockdEvent,
  LockStatus,
  MetricsSnapshot,
  RunOutcome,
  RunRequest,
  StatusSnapshot,
} from '../protocol/messages.js';
import { LockdError } from '../util/errors.js';
import { resolveSocket, resolveStateDir } from '../util/paths.js';
import { EventStream } from './events.js';
import { startRun, type RunHandle, type RunIo, type RunMessage } from './run.js';

export { LockdError };
export { EventStream };
export type { MetricsSnapshot };
export type { LockRef, StatusSnapshot, LockStatus, LockdEvent, RunOutcome, GrantInfo, HolderInfo, DaemonInfo, ForwardSignal, RunHandle, RunIo, RunMessage, RunRequest, AcquireRequest };

export interface ClientOptions {
  /** Socket path; default as the CLI resolves it (LOCKD_SOCKET, per-user socket, system socket). */
  socket?: string;
  /** State dir for an auto-started daemon. */
  stateDir?: string;
  /** Start a daemon when none answers (default true unless LOCKD_NO_AUTOSTART=1). */
  autostart?: boolean;
}

/** A lock named the way the CLI names it. */
export type LockSpec =
  | string // local lock NAME[:shared|:slots=N] in `root`
  | { name: string; global?: boolean; mode?: 'exclusive' | 'shared' | 'slots'; slots?: number; root?: string; arch?: string; globalDir?: string };

export interface LockOptions {
  /** Build root for local locks (default process.cwd()). */
  root?: string;
  arch?: string;
  /** Seconds; 0 fails at once, Infinity/null waits forever. Default: 0 on a developer machine, 1800 in CI. */
  wait?: number | null;
  holder?: string;
}

export interface RunOptions extends LockOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeout?: number;
  killAfter?: number;
  /** Forward data written to handle.stdin. */
  interactive?: boolean;
  detach?: boolean;
  runId?: string;
  runsRoot?: string;
  log?: string;
  logMaxBytes?: number;
  keep?: number;
  conflictExitCode?: number;
  requireStructured?: boolean;
  requireMarker?: string[];
  requireAll?: string[];
  forbidMarker?: string[];
  expectTimeout?: boolean;
  /** Run under this explicit hold of yours (default: LOCKD_HOLD_ID in `env`); see `lockd run --hold`. */
  hold?: string;
}

/** The wire form of a release (lockd release sends it from its flags). */
export type ReleaseRequest = Omit<Extract<ClientMessage, { type: 'release' }>, 'type'>;

export interface Hold {
  holdId: string;
  locks: GrantInfo[];
  queueWaitMs: number;
  holder: string;
  ttlMs: number | null;
}

const NAME_SPEC = /^([^:]+)(?::(shared|exclusive|slots=(\d+)))?$/;

export function toLockRef(spec: LockSpec, opts: LockOptions): LockRef {
  if (typeof spec === 'string') {
    const m = NAME_SPEC.exec(spec);
    if (!m) throw new LockdError('usage', `invalid lock ${JSON.stringify(spec)}: use NAME, NAME:shared or NAME:slots=N`);
    const mode = m[3] ? 'slots' : m[2] === 'shared' ? 'shared' : 'exclusive';
    return { name: m[1]!, scope: 'local', mode, ...(m[3] ? { slots: Number(m[3]) } : {}), root: resolve(opts.root ?? process.cwd()), ...(opts.arch ? { arch: opts.arch } : {}) };
  }
  const mode = spec.mode ?? (spec.slots ? 'slots' : 'exclusive');
  if (spec.global) return { name: spec.name, scope: 'global', mode, ...(spec.slots ? { slots: spec.slots } : {}), ...(spec.globalDir ? { global_dir: resolve(spec.globalDir) } : {}) };
  const arch = spec.arch ?? opts.arch;
  return { name: spec.name, scope: 'local', mode, ...(spec.slots ? { slots: spec.slots } : {}), root: resolve(spec.root ?? opts.root ?? process.cwd()), ...(arch ? { arch } : {}) };
}

function waitMs(wait: number | null | undefined, env: NodeJS.ProcessEnv): number | null {
  const w = wait === undefined ? defaultWaitSeconds(env) : wait;
  return w === null || w === Infinity ? null : Math.round(w * 1000);
}

export class LockdClient {
  readonly connectOptions: ConnectOptions;

  constructor(opts: ClientOptions = {}) {
    const env = process.env;
    this.connectOptions = {
      socketPath: resolveSocket(opts.socket).path,
      stateDir: resolveStateDir(opts.stateDir),
      autostart: opts.autostart ?? !(env.LOCKD_NO_AUTOSTART === '1' || env.LOCKD_NO_AUTOSTART === 'true'),
      ...(opts.autostart === false ? { autostartOffReason: 'auto-start is off: connect({ autostart: false })' } : {}),
    };
  }

  /** A client on already-resolved connect options (the CLI resolves them from flags, env and config files). */
  static fromConnectOptions(connectOptions: ConnectOptions): LockdClient {
    const c = Object.create(LockdClient.prototype) as { connectOptions: ConnectOptions };
    c.connectOptions = connectOptions;
    return c as LockdClient;
  }

  private holder(h: string | undefined): string {
    return h ?? process.env.LOCKD_HOLDER ?? holderString(process.env, process.pid, hostname(), currentUser(process.env));
  }

  /** The daemon's identity and uptime; never auto-starts one (rejects with daemon_not_running). */
  async ping(): Promise<DaemonInfo> {
    const { type: _t, ...info } = await request(lookOnly(this.connectOptions), { type: 'ping' }, ['pong']);
    return info;
  }

  async status(root: string | null = null): Promise<StatusSnapshot> {
    return (await request(this.connectOptions, { type: 'status', root }, ['status'])).snapshot;
  }

  /**
   * The same snapshot as UTF-8 JSON bytes, passed on as the daemon wrote them (`lockd status --json`): with 10,000
   * waiters it is megabytes, and parsing it only to serialize it again was most of the command's time.
   */
  async statusJson(root: string | null = null): Promise<Buffer> {
    return await requestJsonField(this.connectOptions, { type: 'status', root }, 'status', 'snapshot');
  }

  /**
   * The daemon's metrics: per-lock wait, hold and handoff histograms, holders and queue depth now, runs per verdict,
   * the daemon process. Render with renderPrometheus (src/metrics/prometheus.ts). `holders: true` also names who
   * holds each lock. Never auto-starts a daemon (rejects with daemon_not_running); a daemon from before the request
   * existed rejects with daemon_too_old.
   */
  async metrics(opts: { holders?: boolean } = {}): Promise<MetricsSnapshot> {
    try {
      return (await request(lookOnly(this.connectOptions), { type: 'metrics', holders: opts.holders ?? false }, ['metrics'])).snapshot;
    } catch (e) {
      // Requests are additive within protocol 1: an older daemon knows the protocol but not this message.
      if (e instanceof LockdError && e.code === 'bad_request' && e.message.includes('unknown message type')) {
        throw new LockdError('daemon_too_old', 'the running lockd daemon does not serve metrics (it predates them); restart it with this version of lockd');
      }
      throw e;
    }
  }

  /**
   * Read (list, show) or change (add, remove, disable, enable) the daemon's pools; the reply lists the pool(s)
   * concerned. A daemon without pools rejects with daemon_too_old (checked from hello_ok's features).
   */
  async pool(req: PoolAdminRequest): Promise<{ pools: PoolInfo[]; note: string | null }> {
    const r = await request(this.connectOptions, { type: 'pool', req }, ['pools']);
    return { pools: r.pools, note: r.note };
  }

  /**
   * Is this one lock held, and by whom (`lock` is null when nobody holds or waits for it)? `key` is the lock's
   * identity (its canonical lock-file path, or its cluster key).
   */
  async inspect(lock: LockSpec | LockRef, opts: LockOptions = {}): Promise<{ lock: LockStatus | null; key: string }> {
    const ref = typeof lock === 'object' && 'scope' in lock ? lock : toLockRef(lock, opts);
    const r = await request(this.connectOptions, { type: 'inspect', lock: ref }, ['inspect']);
    return { lock: r.lock, key: r.key };
  }

  /** Take locks without a child (a reservation); resolves once held, rejects with code lock_busy / lock_wait_timeout (exitCode 75). */
  async acquire(locks: LockSpec[], opts: LockOptions & { ttl?: number | null } = {}): Promise<Hold> {
    const env = process.env;
    const m = await this.acquireRaw({
      locks: locks.map((l) => toLockRef(l, opts)),
      cwd: process.cwd(),
      wait_ms: waitMs(opts.wait, env),
      ttl_ms: opts.ttl === undefined || opts.ttl === null ? null : Math.round(opts.ttl * 1000),
      conflict_exit_code: 75,
      holder: this.holder(opts.holder),
      user: currentUser(env),
      client_pid: process.pid,
      parent_run_id: env.LOCKD_RUN_ID ?? null,
    });
    return { holdId: m.hold_id, locks: m.locks, queueWaitMs: m.queue_wait_ms, holder: m.holder, ttlMs: m.ttl_ms };
  }

  /**
   * acquire() on a fully built wire request (what `lockd acquire` sends); `onQueued` hears when it has to wait.
   * Resolves with the daemon's reply; not obtained rejects with a LockdError whose details carry exitCode and blockers.
   */
  async acquireRaw(req: AcquireRequest, hooks: { onQueued?: (m: RunMessage<'queued'>) => void; onProgress?: (m: RunMessage<'progress'>) => void } = {}): Promise<RunMessage<'acquired'>> {
    const conn = await connectDaemon(this.connectOptions, { type: 'acquire', req });
    return await new Promise<RunMessage<'acquired'>>((res, rej) => {
      let settled = false;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        conn.close();
        fn();
      };
      conn.onMessage = (m) => {
        if (m.type === 'queued') hooks.onQueued?.(m);
        else if (m.type === 'progress') hooks.onProgress?.(m);
        else if (m.type === 'acquired') settle(() => res(m));
        else if (m.type === 'not_obtained') settle(() => rej(new LockdError(m.code, m.message, { exitCode: m.exit_code, blockers: m.blockers })));
        else if (m.type === 'error') settle(() => rej(new LockdError(m.code, m.message)));
      };
      conn.onClose = () => settle(() => rej(new LockdError('daemon_lost', 'the lockd daemon closed the connection before the locks were held')));
    });
  }

  /** Renew a hold's TTL; rejects with no_such_hold / not_owner. Resolves with the daemon's note, if any. */
  async heartbeat(holdId: string, holder?: string): Promise<{ note: string | null }> {
    const r = await request(this.connectOptions, { type: 'heartbeat', hold_id: holdId, holder: this.holder(holder) }, ['ok']);
    return { note: r.note };
  }

  /** Release a hold by id (or every hold of yours covering these locks). Not yours: a no-op with a note, unless force. */
  async release(target: string | LockSpec[], opts: LockOptions & { force?: boolean } = {}): Promise<{ released: boolean; note: string | null; holdIds: string[] }> {
    const r = await this.releaseRaw({
      hold_id: typeof target === 'string' ? target : null,
      locks: typeof target === 'string' ? [] : target.map((l) => toLockRef(l, opts)),
      cwd: process.cwd(),
      holder: this.holder(opts.holder),
      force: opts.force ?? false,
    });
    return { released: r.released, note: r.note, holdIds: r.hold_ids };
  }

  /** release() on a fully built wire request (what `lockd release` sends); resolves with the daemon's reply. */
  async releaseRaw(req: ReleaseRequest): Promise<RunMessage<'released'>> {
    return await request(this.connectOptions, { type: 'release', ...req }, ['released']);
  }

  /**
   * A live stream of lock and run events: `for await (const e of client.events())`. `ready` resolves once the daemon
   * has registered the subscription, so events caused after it are never missed. Breaking out of the loop closes it.
   */
  events(): EventStream {
    return new EventStream(this.connectOptions);
  }

  /** Stop a run's whole process tree; resolves when it is gone and recorded (with the daemon's note). Never auto-starts. */
  async kill(runId: string, opts: { signal?: string; force?: boolean } = {}): Promise<{ note: string | null }> {
    const r = await request(lookOnly(this.connectOptions), { type: 'kill', run_id: runId, signal: opts.signal ?? 'SIGTERM', force: opts.force ?? false }, ['ok']);
    return { note: r.note };
  }

  /** Build the wire request for a run (the CLI builds it from flags and settings instead). */
  runRequest(argv: string[], locks: LockSpec[], opts: RunOptions = {}): RunRequest {
    const env = opts.env ?? process.env;
    const holdId = opts.hold ?? (env.LOCKD_HOLD_ID || null);
    return {
      ...(holdId ? { hold_id: holdId } : {}),
      argv,
      cwd: resolve(opts.cwd ?? process.cwd()),
      env: Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => typeof e[1] === 'string')),
      locks: locks.map((l) => toLockRef(l, opts)),
      wait_ms: waitMs(opts.wait, env),
      timeout_ms: opts.timeout ? Math.max(1, Math.round(opts.timeout * 1000)) : null,
      kill_after_ms: Math.round((opts.killAfter ?? 5) * 1000),
      interactive: opts.interactive ?? false,
      detach: opts.detach ?? false,
      run_id: opts.runId ?? null,
      runs_root: opts.runsRoot ? resolve(opts.runsRoot) : opts.root ? resolve(opts.root, 'runs') : null,
      build_root: opts.root ? resolve(opts.root) : null,
      arch: opts.arch ?? null,
      log_path: opts.log ? resolve(opts.log) : null,
      log_max_bytes: opts.logMaxBytes ?? null,
      verdict: {
        require_structured: opts.requireStructured ?? false,
        require_marker: opts.requireMarker ?? [],
        require_all: opts.requireAll ?? [],
        forbid_marker: opts.forbidMarker ?? [],
        expect_timeout: opts.expectTimeout ?? false,
      },
      keep: opts.keep ?? null,
      conflict_exit_code: opts.conflictExitCode ?? 75,
      holder: this.holder(opts.holder),
      user: currentUser(env),
      client_pid: process.pid,
      parent_run_id: env.LOCKD_RUN_ID ?? null,
    };
  }

  /** Run a command under locks; see RunHandle. */
  run(argv: string[], locks: LockSpec[] = [], opts: RunOptions = {}): RunHandle {
    return this.runRaw(this.runRequest(argv, locks, opts));
  }

  /**
   * Run a fully built wire request (what `lockd run` sends, from its flags and settings); `io` can send the child's
   * output straight to other writables (the CLI passes process.stdout/stderr) and controls the retry on daemon loss.
   */
  runRaw(req: RunRequest, io: RunIo = {}): RunHandle {
    return startRun(this.connectOptions, req, io);
  }
}

/** Connect to (or, by default, auto-start) the lockd daemon. */
export async function connect(opts: ClientOptions = {}): Promise<LockdClient> {
  return new LockdClient(opts);
}
