/**
 * The typed Node API: `import { connect } from 'lockd'`. The CLI is a thin layer over the same calls, so the two
 * report the same errors with the same codes. Each call opens its own connection to the daemon (the protocol is one
 * request per connection), so a client object is cheap and safe to share.
 */
import { EventEmitter } from 'node:events';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { connectDaemon, request, type ConnectOptions, type DaemonConnection } from '../client/connection.js';
import { currentUser, holderString, defaultWaitSeconds } from '../client/holder.js';
import { FrameKind } from '../protocol/framing.js';
import type {
  DaemonInfo,
  ForwardSignal,
  GrantInfo,
  HolderInfo,
  LockRef,
  LockdEvent,
  LockStatus,
  RunOutcome,
  RunRequest,
  StatusSnapshot,
} from '../protocol/messages.js';
import { LockdError } from '../util/errors.js';
import { resolveSocket, resolveStateDir } from '../util/paths.js';

export { LockdError };
export type { LockRef, StatusSnapshot, LockStatus, LockdEvent, RunOutcome, GrantInfo, HolderInfo, DaemonInfo };

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
}

export interface RunHandle extends EventEmitter {
  /** The child's stdout and stderr, byte for byte. Read them (or `.resume()`), or the child is slowed by backpressure. */
  stdout: Readable;
  stderr: Readable;
  /** With `interactive: true`: the child's stdin. */
  stdin: Writable | null;
  /** lockd's exit code for the attempt (the child's code, 75 when not obtained, 124 on timeout…). */
  exitCode: Promise<number>;
  /** The final record (result.json content and paths); rejects with a LockdError if the daemon is lost. */
  outcome: Promise<RunOutcome>;
  /** Forward a signal to the job's process group (SIGKILL kills the whole tree). */
  signal(sig: ForwardSignal): void;
  /** Events: 'queued' ({position, blockers}), 'waiting', 'started' ({run_id, pid, locks}), 'not_obtained' ({code, message}). */
}

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
    };
  }

  private holder(h: string | undefined): string {
    return h ?? process.env.LOCKD_HOLDER ?? holderString(process.env, process.pid, hostname(), currentUser(process.env));
  }

  async ping(): Promise<DaemonInfo> {
    const { type: _t, ...info } = await request({ ...this.connectOptions, autostart: false }, { type: 'ping' }, ['pong']);
    return info;
  }

  async status(root: string | null = null): Promise<StatusSnapshot> {
    return (await request(this.connectOptions, { type: 'status', root }, ['status'])).snapshot;
  }

  /** Take locks without a child (a reservation); resolves once held, rejects with code lock_busy / lock_wait_timeout (exitCode 75). */
  async acquire(locks: LockSpec[], opts: LockOptions & { ttl?: number | null } = {}): Promise<Hold> {
    const env = process.env;
    const conn = await connectDaemon(this.connectOptions, {
      type: 'acquire',
      req: {
        locks: locks.map((l) => toLockRef(l, opts)),
        cwd: process.cwd(),
        wait_ms: waitMs(opts.wait, env),
        ttl_ms: opts.ttl === undefined || opts.ttl === null ? null : Math.round(opts.ttl * 1000),
        conflict_exit_code: 75,
        holder: this.holder(opts.holder),
        user: currentUser(env),
        client_pid: process.pid,
        parent_run_id: env.LOCKD_RUN_ID ?? null,
      },
    });
    return await new Promise<Hold>((res, rej) => {
      conn.onMessage = (m) => {
        if (m.type === 'acquired') res({ holdId: m.hold_id, locks: m.locks, queueWaitMs: m.queue_wait_ms, holder: m.holder, ttlMs: m.ttl_ms });
        else if (m.type === 'not_obtained') rej(new LockdError(m.code, m.message, { exitCode: m.exit_code, blockers: m.blockers }));
        else if (m.type === 'error') rej(new LockdError(m.code, m.message));
      };
      conn.onClose = () => rej(new LockdError('daemon_lost', 'the lockd daemon closed the connection before the locks were granted'));
    });
  }

  async heartbeat(holdId: string, holder?: string): Promise<void> {
    await request(this.connectOptions, { type: 'heartbeat', hold_id: holdId, holder: this.holder(holder) }, ['ok']);
  }

  /** Release a hold by id (or every hold of yours covering these locks). Not yours: a no-op with a note, unless force. */
  async release(target: string | LockSpec[], opts: LockOptions & { force?: boolean } = {}): Promise<{ released: boolean; note: string | null; holdIds: string[] }> {
    const r = await request(
      this.connectOptions,
      {
        type: 'release',
        hold_id: typeof target === 'string' ? target : null,
        locks: typeof target === 'string' ? [] : target.map((l) => toLockRef(l, opts)),
        cwd: process.cwd(),
        holder: this.holder(opts.holder),
        force: opts.force ?? false,
      },
      ['released'],
    );
    return { released: r.released, note: r.note, holdIds: r.hold_ids };
  }

  /**
   * A live stream of lock and run events: `for await (const e of client.events())`. `ready` resolves once the daemon
   * has registered the subscription, so events caused after it are never missed. Breaking out of the loop closes it.
   */
  events(): EventStream {
    return new EventStream(this.connectOptions);
  }

  /** Stop a run's whole process tree; resolves when it is gone and recorded. */
  async kill(runId: string, opts: { signal?: string; force?: boolean } = {}): Promise<void> {
    await request({ ...this.connectOptions, autostart: false }, { type: 'kill', run_id: runId, signal: opts.signal ?? 'SIGTERM', force: opts.force ?? false }, ['ok']);
  }

  /** Build the wire request for a run (the CLI builds it from flags and settings instead). */
  runRequest(argv: string[], locks: LockSpec[], opts: RunOptions = {}): RunRequest {
    const env = opts.env ?? process.env;
    return {
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

  /** Run a fully built wire request (what the CLI uses). */
  runRaw(req: RunRequest): RunHandle {
    const handle = new EventEmitter() as RunHandle;
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const stdin = req.interactive ? new PassThrough() : null;
    handle.stdout = stdout;
    handle.stderr = stderr;
    handle.stdin = stdin;
    let conn: DaemonConnection | null = null;
    const pendingSignals: ForwardSignal[] = [];
    handle.signal = (sig) => {
      if (conn) conn.send({ type: 'signal', signal: sig });
      else pendingSignals.push(sig);
    };
    let started = false;
    let resultPath: string | null = null;
    handle.outcome = new Promise<RunOutcome>((res, rej) => {
      connectDaemon(this.connectOptions, { type: 'run', req })
        .then((c) => {
          conn = c;
          for (const s of pendingSignals) c.send({ type: 'signal', signal: s });
          c.onData = (kind, data) => {
            const out = kind === FrameKind.Stdout ? stdout : stderr;
            // Backpressure: a reader that does not keep up pauses the socket, which pauses the child's pipe.
            if (!out.write(data)) {
              c.socket.pause();
              out.once('drain', () => c.socket.resume());
            }
          };
          c.onMessage = (m) => {
            switch (m.type) {
              case 'queued':
                resultPath = m.result_path;
                handle.emit('queued', m);
                return;
              case 'waiting':
                handle.emit('waiting', m);
                return;
              case 'started':
                started = true;
                resultPath = m.result_path;
                handle.emit('started', m);
                return;
              case 'detached':
                started = true;
                handle.emit('detached', m);
                res({ run_id: m.run_id, exit_code: 0, status: 'detached', reason: 'detached', message: null, result_path: m.result_path, manifest_path: m.manifest_path, result: {} });
                return;
              case 'not_obtained':
                handle.emit('not_obtained', m);
                return;
              case 'finished':
                stdout.end();
                stderr.end();
                res(m.outcome);
                return;
              case 'error':
                stdout.end();
                stderr.end();
                rej(new LockdError(m.code, m.message));
                return;
              default:
                return;
            }
          };
          c.onClose = () => {
            stdout.end();
            stderr.end();
            rej(
              new LockdError(started ? 'daemon_lost' : 'daemon_lost_queued', `lost the connection to the lockd daemon; the run's result will be at ${resultPath ?? '(unknown)'}`, {
                started,
                resultPath,
              }),
            );
          };
          if (stdin) {
            stdin.on('data', (d: Buffer) => {
              if (!c.sendStdin(d)) {
                stdin.pause();
                c.socket.once('drain', () => stdin.resume());
              }
            });
            stdin.on('end', () => c.send({ type: 'stdin_end' }));
          }
        })
        .catch(rej);
    });
    handle.exitCode = handle.outcome.then((o) => o.exit_code);
    // Callers awaiting only exitCode must not see an unhandled rejection on the other promise.
    handle.outcome.catch(() => undefined);
    return handle;
  }
}

/** Connect to (or, by default, auto-start) the lockd daemon. */
export async function connect(opts: ClientOptions = {}): Promise<LockdClient> {
  return new LockdClient(opts);
}

/** See LockdClient.events(). */
export class EventStream implements AsyncIterableIterator<LockdEvent> {
  readonly ready: Promise<void>;
  private queue: LockdEvent[] = [];
  private wake: (() => void) | null = null;
  private done = false;
  private failure: LockdError | null = null;
  private conn: DaemonConnection | null = null;

  constructor(opts: ConnectOptions) {
    this.ready = connectDaemon(opts, { type: 'events' }).then(
      (conn) =>
        new Promise<void>((res, rej) => {
          this.conn = conn;
          conn.onMessage = (m) => {
            if (m.type === 'event') this.queue.push(m.event);
            else if (m.type === 'ok') res();
            else if (m.type === 'error') {
              this.failure = new LockdError(m.code, m.message);
              rej(this.failure);
            }
            this.wake?.();
          };
          conn.onClose = () => {
            this.done = true;
            rej(new LockdError('daemon_lost', 'the lockd daemon closed the event stream'));
            this.wake?.();
          };
        }),
    );
    this.ready.catch(() => undefined);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<LockdEvent> {
    return this;
  }

  async next(): Promise<IteratorResult<LockdEvent>> {
    await this.ready.catch((e: unknown) => {
      if (!this.done) throw e;
    });
    for (;;) {
      if (this.queue.length) return { value: this.queue.shift()!, done: false };
      if (this.failure) throw this.failure;
      if (this.done) return { value: undefined, done: true };
      await new Promise<void>((r) => (this.wake = r));
      this.wake = null;
    }
  }

  async return(): Promise<IteratorResult<LockdEvent>> {
    this.done = true;
    this.conn?.socket.destroy();
    return { value: undefined, done: true };
  }
}
