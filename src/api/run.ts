/**
 * One run over the socket, as the Node API's `run()`/`runRaw()` and the `lockd run` command both use it: send the
 * request, stream the child's output into writables with backpressure, forward stdin and signals, report the
 * daemon's progress as events, and settle with the run's outcome. Node built-ins only: `lockd run` bundles this.
 */
import { EventEmitter } from 'node:events';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { connectDaemon, type ConnectOptions, type DaemonConnection } from '../client/connection.js';
import { FrameKind } from '../protocol/framing.js';
import type { DaemonMessage, ForwardSignal, RunOutcome, RunRequest } from '../protocol/messages.js';
import { LockdError } from '../util/errors.js';
import { fdPassApi, socketFd } from '../util/fdpass.js';
import { RUN_TEXT, fill } from '../client/run-text.js';

/** Where a run's streams go, and how a lost daemon is handled (runRaw's second argument). */
export interface RunIo {
  /** Write the child's stdout here (e.g. process.stdout) instead of into handle.stdout, which then stays empty. */
  stdout?: Writable;
  /** Same for stderr. */
  stderr?: Writable;
  /** With `interactive`: the child's stdin comes from here instead of handle.stdin. */
  stdin?: Readable;
  /**
   * Bytes that may queue in stdout/stderr before the daemon's stream is paused. 0 (the default) pauses as soon as
   * write() says so; the CLI allows 1 MiB, because pausing on every 16 KiB turns streaming into a ping-pong between
   * child, daemon and client. Memory stays bounded by this plus one socket read.
   */
  backlogBytes?: number;
  /**
   * The daemon went away while the run was only queued (nothing was started, nothing ran): send the request once
   * more, to its successor (auto-started when allowed). Default true; the handle emits 'retry' when it happens.
   */
  retryIfLostWhileQueued?: boolean;
  /**
   * The caller's own descriptors (`lockd run` gives 1 and 2, and 0 with -i): offered to the daemon, which then has
   * the job's output relayed to them in the kernel, and gives the job the stdin descriptor itself (docs/protocol.md,
   * "Descriptor passing"). Where that cannot be (no addon, not Unix, LOCKD_STDIO=framed, --detach, --log-max-bytes,
   * an older daemon) the framed stream goes to `stdout`/`stderr`/`stdin` as without it; those are only read then,
   * so they may be getters that create the stream on first use. With `interactive`, `stdin` must be given too.
   */
  fds?: { stdout: number; stderr: number; stdin?: number };
}

export type RunMessage<T extends DaemonMessage['type']> = Extract<DaemonMessage, { type: T }>;

export interface RunHandle extends EventEmitter {
  /** The child's stdout and stderr, byte for byte. Read them (or `.resume()`), or the child is slowed by backpressure. */
  stdout: Readable;
  stderr: Readable;
  /** With `interactive: true` (and no RunIo.stdin): the child's stdin. */
  stdin: Writable | null;
  /** lockd's exit code for the attempt (the child's code, 75 when not obtained, 124 on timeout…). */
  exitCode: Promise<number>;
  /**
   * The final record (result.json content and paths). Rejects with a LockdError: the daemon's own error codes
   * (`usage`, `invalid_run_id`, …), `daemon_lost` (the job had started; its result will be at details.resultPath)
   * or `daemon_lost_queued` (lost twice before anything ran), or a connect error (`daemon_not_running`, …).
   */
  outcome: Promise<RunOutcome>;
  /** Forward a signal to the job's process group (SIGKILL kills the whole tree). Queued until connected. */
  signal(sig: ForwardSignal): void;
  /** The caller's terminal was resized: passed on when the job writes into a pty (started with `tty`), else ignored. */
  resize(cols: number, rows: number): void;
  /** hello_ok's `features` of the daemon serving the run, once connected (empty before, or from an older daemon). */
  daemonFeatures: readonly string[];
  // Events: 'queued' (RunMessage<'queued'>), 'waiting', 'progress' (with req.progress_ms), 'started', 'detached',
  // 'not_obtained', 'finished'
  // (RunMessage<'finished'>, before outcome settles) and 'retry' (the daemon was lost while queued; sending again).
}

const DETACHED_OUTCOME = (m: RunMessage<'detached'>): RunOutcome => ({
  run_id: m.run_id,
  exit_code: 0,
  status: 'detached',
  reason: 'detached',
  message: null,
  result_path: m.result_path,
  manifest_path: m.manifest_path,
  result: {},
});

export function startRun(connectOptions: ConnectOptions, req: RunRequest, io: RunIo = {}): RunHandle {
  const handle = new EventEmitter() as RunHandle;
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  // `in`, not a read: the CLI's sinks are getters that create process.stdout & co. only if the framed path needs them.
  const hasOut = 'stdout' in io && io.stdout !== undefined;
  const hasErr = 'stderr' in io && io.stderr !== undefined;
  const hasIn = 'stdin' in io && io.stdin !== undefined;
  const ownStdin = req.interactive && !hasIn ? new PassThrough() : null;
  handle.stdout = stdout;
  handle.stderr = stderr;
  handle.stdin = ownStdin;
  handle.daemonFeatures = [];
  const outSink = (): Writable => (hasOut ? io.stdout! : stdout);
  const errSink = (): Writable => (hasErr ? io.stderr! : stderr);
  const inSource = (): Readable | null => (hasIn ? io.stdin! : ownStdin);
  const backlog = io.backlogBytes ?? 0;
  const retry = io.retryIfLostWhileQueued ?? true;
  // With caller-supplied sinks our own streams carry nothing: end them so readers of them do not hang.
  if (hasOut) stdout.end();
  if (hasErr) stderr.end();
  // Descriptor passing (docs/protocol.md): offered when the caller gave descriptors and this host can pass them.
  const fds = io.fds && (!req.interactive || io.fds.stdin !== undefined) ? io.fds : null;
  if (fds) req = { ...req, stdio: process.env.LOCKD_STDIO === 'framed' || !fdPassApi() ? 'framed' : 'fds' };

  let conn: DaemonConnection | null = null;
  const pendingSignals: ForwardSignal[] = [];
  // While the daemon has not answered a descriptor offer, nothing may follow the request on the socket.
  let ready = false;
  handle.signal = (sig) => {
    if (conn && ready) conn.send({ type: 'signal', signal: sig });
    else pendingSignals.push(sig);
  };
  // Set once the daemon said the job has a pty: only then is a resize understood (older daemons would refuse it).
  let ttyJob = false;
  // A resize before `started` (the job may already be running: `launching` comes first) is kept, and passed on
  // once `started` says the job has a pty, so a window resized during the start-up is not lost.
  let pendingSize: { cols: number; rows: number } | null = null;
  let startedSeen = false;
  handle.resize = (cols, rows) => {
    if (cols <= 0 || rows <= 0) return;
    if (conn && ready && ttyJob) conn.send({ type: 'resize', cols, rows });
    else if (!startedSeen) pendingSize = { cols, rows };
  };
  const endStreams = () => {
    if (!hasOut) stdout.end();
    if (!hasErr) stderr.end();
  };

  handle.outcome = new Promise<RunOutcome>((resolve, reject) => {
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      endStreams();
      fn();
    };

    const attempt = (n: number) => {
      let started = false;
      let resultPath: string | null = null;
      let stopStdin: (() => void) | null = null;
      ready = false;
      connectDaemon(connectOptions, { type: 'run', req })
        .then((c) => {
          conn = c;
          handle.daemonFeatures = c.info.features ?? [];
          // The stream is settled: signals and stdin frames may go (stdin only when it was not passed).
          const stdioSettled = (passed: boolean) => {
            if (ready) return;
            ready = true;
            for (const sig of pendingSignals.splice(0)) c.send({ type: 'signal', signal: sig });
            const source = passed ? null : inSource();
            if (source) stopStdin = forwardStdin(source, c);
          };
          if (req.stdio !== 'fds') stdioSettled(false);
          // Data handler first: frames that arrived with hello_ok are replayed, in order, once onMessage is set.
          let paused = false;
          c.onData = (kind, data) => {
            const out = kind === FrameKind.Stdout ? outSink() : errSink();
            const ok = out.write(data);
            if (!paused && !ok && out.writableLength > backlog) {
              paused = true;
              c.socket.pause();
              out.once('drain', () => {
                paused = false;
                c.socket.resume();
              });
            }
          };
          c.onMessage = (m) => {
            if (m.type === 'stdio') {
              if (m.mode === 'fds' && fds) {
                sendDescriptors(c, [fds.stdout, fds.stderr, ...(req.interactive && fds.stdin !== undefined ? [fds.stdin] : [])]).then(
                  () => stdioSettled(true),
                  (e: unknown) => {
                    // The daemon waits for them in vain and gives up; this run cannot go on.
                    stdioSettled(false);
                    c.socket.destroy(e as Error);
                  },
                );
              } else stdioSettled(false);
              return;
            }
            // A daemon that predates descriptor passing never answers the offer: its first reply means framed.
            stdioSettled(false);
            switch (m.type) {
              case 'queued':
                resultPath = m.result_path;
                handle.emit('queued', m);
                return;
              case 'waiting':
                handle.emit('waiting', m);
                return;
              case 'progress':
                handle.emit('progress', m);
                return;
              case 'launching':
                started = true;
                resultPath = m.result_path;
                return;
              case 'started':
                started = true;
                startedSeen = true;
                ttyJob = m.tty === true;
                if (ttyJob && pendingSize && ready) c.send({ type: 'resize', ...pendingSize });
                pendingSize = null;
                resultPath = m.result_path;
                handle.emit('started', m);
                return;
              case 'detached':
                started = true;
                handle.emit('detached', m);
                settle(() => resolve(DETACHED_OUTCOME(m)));
                c.socket.destroy();
                return;
              case 'not_obtained':
                handle.emit('not_obtained', m);
                return;
              case 'finished':
                handle.emit('finished', m);
                settle(() => resolve(m.outcome));
                stopStdin?.();
                // Nothing follows 'finished': do not keep the process alive waiting for the daemon's FIN.
                c.socket.destroy();
                return;
              case 'error':
                settle(() => reject(new LockdError(m.code, m.message)));
                stopStdin?.();
                c.socket.destroy();
                return;
              default:
                return;
            }
          };
          c.onClose = () => {
            stopStdin?.();
            if (settled) return;
            conn = null;
            if (!started && !req.detach && retry && n === 1) {
              handle.emit('retry');
              attempt(2);
              return;
            }
            settle(() =>
              reject(
                new LockdError(started ? 'daemon_lost' : 'daemon_lost_queued', fill(RUN_TEXT.lost, { path: resultPath ?? '(unknown)' }), {
                  started,
                  resultPath,
                }),
              ),
            );
          };
        })
        .catch((e: unknown) => settle(() => reject(e)));
    };
    attempt(1);
  });
  handle.exitCode = handle.outcome.then((o) => o.exit_code);
  // Callers awaiting only one of the two promises must not see an unhandled rejection on the other.
  handle.outcome.catch(() => undefined);
  handle.exitCode.catch(() => undefined);
  return handle;
}

/**
 * Pass the caller's descriptors: one sendmsg, right after the daemon's `stdio {mode: 'fds'}`, carrying them on a single
 * 0 byte. Everything written before has reached the daemon (it answered the request), so libuv's queue is empty and
 * this message cannot overtake a frame.
 */
async function sendDescriptors(c: DaemonConnection, list: number[]): Promise<void> {
  const api = fdPassApi();
  const fd = socketFd(c.socket);
  if (!api || fd === null) throw new LockdError('fd_pass_failed', 'cannot pass descriptors on this connection');
  for (let i = 0; i < 1000; i++) {
    if (api.sendFds(fd, list, Buffer.from([0])) !== null) return;
    await new Promise<void>((r) => setImmediate(r));
  }
  throw new LockdError('fd_pass_failed', 'the daemon socket stayed full while passing descriptors');
}

/** Forward a readable into the connection's stdin frames with backpressure; returns a function that stops it. */
function forwardStdin(source: Readable, c: DaemonConnection): () => void {
  const onData = (d: Buffer) => {
    if (!c.sendStdin(d)) {
      source.pause();
      c.socket.once('drain', () => source.resume());
    }
  };
  const onEnd = () => c.send({ type: 'stdin_end' });
  source.on('data', onData);
  source.on('end', onEnd);
  return () => {
    source.removeListener('data', onData);
    source.removeListener('end', onEnd);
  };
}
