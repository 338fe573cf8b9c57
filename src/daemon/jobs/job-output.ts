/**
 * Where one run's output goes, and the verdict scan of it: output.log written by the daemon (framed runs), by the
 * job itself (a --detach run writes straight into its file, so it can outlive this daemon without SIGPIPE), or by
 * the addon's relay threads (the caller passed its descriptors: output-relay.ts, the scan follows the log copy).
 * run-job.ts asks it for the launch's stdio, hands it the launched child, and waits for it to settle before judging
 * the run. It owns every descriptor of the run's output until it hands one on, and closes what is left.
 */
import { closeSync, createReadStream, openSync } from 'node:fs';
import { open as openFile, type FileHandle } from 'node:fs/promises';
import { RunLogWriter } from '../../runs/log-writer.js';
import { LogScanner, type ScanResult } from '../../runs/log-scanner.js';
import type { CompiledVerdictOptions } from '../../runs/verdict-options.js';
import { isatty } from 'node:tty';
import { ptyApi, relayApi } from '../../util/fdpass.js';
import { loadNative } from '../../util/peercred.js';
import type { LaunchedJob, LaunchSpec } from './launcher.js';
import type { NativeLauncherApi } from './launcher-native.js';
import { LogFollower } from './log-follower.js';
import { closePassed, OutputRelay, type PassedStdio } from './output-relay.js';

/** What the output needs of the daemon's log. */
export interface OutputLog {
  warn(message: string, fields: Record<string, unknown>): void;
}

/** How the job's descriptors are set up for its launch (the launch spec's stdin and output). */
export type LaunchStdio = Pick<LaunchSpec, 'stdin' | 'output'>;

export class JobOutput {
  /** The verdict scanner; built when the run is queued, off the path between one job's exit and the next exec. */
  readonly scanner: LogScanner;
  private log: RunLogWriter | null = null;
  private directLog: FileHandle | null = null;
  /** A --detach run (without --log-max-bytes) writes straight into its log file; scanned after the exit. */
  private logDirect = false;
  /** The log's descriptor for the relay, between open() and the relay taking it. */
  private relayLogFd: number | null = null;
  private relay: OutputRelay | null = null;
  private follower: LogFollower | null = null;
  private relayPipes: { stdout: [number, number]; stderr: [number, number] } | null = null;
  /** The caller is on a terminal: the job writes into a pty (master, slave) whose master is pumped into stdout's pipe. */
  private pty: [number, number, number] | null = null;
  /** A descriptor of the pty's master for resizing, kept until the run settles. */
  private ptyControl: number | null = null;
  /** Whether the job's output went through a pty; set at launch. */
  terminal = false;
  /** The first write failure of the log; the run is judged log_write_failed. */
  error: string | null = null;
  /** Shutdown: the relay must not wait for a slow caller. */
  private abandoned = false;

  constructor(
    private readonly runId: string,
    verdict: CompiledVerdictOptions,
    /** The caller's descriptors until they are handed to the job and the relay (closed by dispose() if never). */
    private passed: PassedStdio | null,
    private readonly daemonLog: OutputLog,
    /** Called once, with the first write failure: the record cannot be trusted any more, so the run stops. */
    private readonly onFailure: (message: string) => void,
  ) {
    this.scanner = new LogScanner(verdict);
  }

  /** The framed path's writer (job-io.ts copies the job's pipes into it); null once it failed or when not used. */
  get writer(): RunLogWriter | null {
    return this.error ? null : this.log;
  }

  /** Whether a log file was opened (a run that never started has none). */
  get opened(): boolean {
    return this.log !== null || this.logDirect || this.relay !== null || this.relayLogFd !== null;
  }

  /** The relay streams output (no pipes to the daemon): the client gets no data frames. */
  get relayed(): boolean {
    return this.relay !== null;
  }

  /** Record a write failure (the first one counts) and tell the run. */
  fail(e: Error): void {
    if (this.error) return;
    this.error = e.message;
    this.onFailure(e.message);
  }

  /** Opens output.log at `path` for the way this run's output travels; throws when it cannot be created. */
  async open(path: string, opts: { detached: boolean; maxBytes: number | null }): Promise<void> {
    if (this.passed) {
      // The relay threads write the log at explicit offsets (native/relay.c); no writer in JavaScript.
      this.relayLogFd = openSync(path, 'w', 0o644);
    } else if (opts.detached && !opts.maxBytes) {
      this.directLog = await openFile(path, 'w', 0o644);
      this.logDirect = true;
    } else {
      // Opened synchronously: through the thread pool this open queued behind the records of the run that just
      // ended (manifest, .meta, result.json), right between one job's exit and the next one's spawn.
      this.log = RunLogWriter.openSync(path, opts.maxBytes ? { maxBytes: opts.maxBytes } : {});
      this.log.on('error', (e: Error) => this.fail(e));
    }
  }

  /** The launch's stdin and output; `interactive` = the framed path pipes the client's stdin (-i). */
  launchStdio(interactive: boolean): LaunchStdio {
    if (this.passed) {
      const api = loadNative() as unknown as NativeLauncherApi;
      this.relayPipes = { stdout: api.pipe(), stderr: api.pipe() };
      const out = this.ttyFor(this.passed.stdout);
      // A terminal caller: the job sees a terminal, as under flock(1); stderr too when it is a terminal as well.
      const stdout = out ?? this.relayPipes.stdout[1];
      const stderr = out !== null && isatty(this.passed.stderr) ? out : this.relayPipes.stderr[1];
      return { stdin: this.passed.stdin ?? 'ignore', output: { stdout, stderr } };
    }
    return { stdin: interactive ? 'pipe' : 'ignore', output: this.directLog ? this.directLog.fd : 'pipe' };
  }

  /** The pty's slave for a caller's descriptor that is a terminal, or null (not one, no addon support, no ptys left). */
  private ttyFor(fd: number): number | null {
    const api = ptyApi();
    if (api === null || !isatty(fd) || process.env.LOCKD_PTY === 'off') return null;
    try {
      this.pty = api.ptyOpen(fd);
      return this.pty[1];
    } catch (e) {
      this.daemonLog.warn('no pty for a terminal caller; the job writes into a pipe', { run_id: this.runId, error: (e as Error).message });
      return null;
    }
  }

  /**
   * After the launch (`child` null when it failed): the child has its own copies of the descriptors now, so ours
   * close; a passed run's relay takes the pipes, the caller's descriptors and the log. Returns when the job's
   * output is done, for the framed path given the child's own streams.
   */
  launched(child: LaunchedJob | null, logPath: string): Promise<unknown> {
    void this.directLog?.close().catch(() => undefined);
    this.directLog = null;
    const pipes = this.relayPipes;
    const passed = this.passed;
    this.relayPipes = null;
    const pty = this.pty;
    this.pty = null;
    if (pty) closeQuietly(pty[1]);
    if (pty && child) this.ptyControl = pty[2];
    else if (pty) closeQuietly(pty[2]);
    if (pipes && passed) {
      // With a pty the pump owns stdout's write end (and the master) from here on; without a child nothing pumps.
      if (pty && child) {
        this.terminal = true;
        ptyApi()!.ptyPump(pty[0], pipes.stdout[1]);
      } else {
        if (pty) closeQuietly(pty[0]);
        closeQuietly(pipes.stdout[1]);
      }
      closeQuietly(pipes.stderr[1]);
      if (passed.stdin !== null) closeQuietly(passed.stdin);
      passed.stdin = null;
      if (!child) {
        closeQuietly(pipes.stdout[0]);
        closeQuietly(pipes.stderr[0]);
      } else {
        const logFd = this.relayLogFd!;
        this.relayLogFd = null;
        this.passed = null;
        // Owns the pipes, the caller's descriptors and the log fd from here on, also if it throws.
        try {
          this.relay = new OutputRelay(relayApi()!, logFd, { stdout: pipes.stdout[0], stderr: pipes.stderr[0] }, passed);
        } catch (e) {
          // The job's pipes are closed: it ends on EPIPE; the run is recorded as a log failure.
          this.fail(e as Error);
        }
      }
    }
    if (!child) return Promise.resolve();
    if (this.relay) {
      this.follower = new LogFollower(logPath, this.scanner, (e) => this.fail(e));
      return this.relay.done;
    }
    return Promise.all([streamDone(child.stdout), streamDone(child.stderr)]);
  }

  /** The caller's terminal was resized: so is the job's pty (the kernel sends the job SIGWINCH). */
  resize(cols: number, rows: number): void {
    if (this.ptyControl === null) return;
    try {
      ptyApi()?.ptyResize(this.ptyControl, cols, rows);
    } catch {
      // the pty is gone with the job: nothing to resize
    }
  }

  /** The daemon is shutting down: no waiting for a slow caller (the rest goes to the log only). */
  abandon(childExited: boolean): void {
    this.abandoned = true;
    if (childExited) this.relay?.cancel();
  }

  /**
   * After the job is gone, when its output did not end by itself. Relay: bytes still waiting in its pipes are the
   * caller's (a slow reader, a pager) and are delivered while the locks are held, as flock(1) holds them while its
   * child blocks writing to a slow reader; a pipe that stays empty without reaching EOF is held by a process that
   * escaped the tree, and after 2 s the relay gives up on it. Framed: up to 2 s more, then the pipes are left.
   */
  async drainAfterExit(outputDone: Promise<unknown>, clientAttached: () => boolean): Promise<void> {
    const relay = this.relay;
    if (!relay) {
      await Promise.race([outputDone, delay(2000)]);
      return;
    }
    let idle = 0;
    while (!relay.ended) {
      const done = await Promise.race([relay.done.then(() => true), delay(500).then(() => false)]);
      if (done) break;
      idle = relay.pending() > 0 && clientAttached() && !this.abandoned ? 0 : idle + 1;
      if (idle >= 4) relay.cancel();
    }
    await relay.done;
  }

  /** Closes the log of a run that will not start (cancelled while starting, a start failure). */
  async closeUnstarted(): Promise<void> {
    if (this.log) await this.log.close().catch(() => undefined);
    if (this.directLog) await this.directLog.close().catch(() => undefined);
    this.directLog = null;
  }

  /** Once the job is gone: the log closed, every byte scanned; the scan's result for the verdict. */
  async settle(logPath: string): Promise<ScanResult> {
    if (this.ptyControl !== null) closeQuietly(this.ptyControl);
    this.ptyControl = null;
    if (this.log) {
      try {
        await this.log.close();
      } catch (e) {
        this.fail(e as Error);
      }
    }
    if (this.logDirect) {
      // A direct-to-file log is scanned once the child is gone (markers, TEST_RESULT_JSON, TEST_SUMMARY).
      try {
        for await (const chunk of createReadStream(logPath)) this.scanner.push(chunk as Buffer);
      } catch (e) {
        this.daemonLog.warn('cannot read back the log of a detached run', { run_id: this.runId, error: (e as Error).message });
      }
    }
    if (this.relay) {
      const { streams, logError } = await this.relay.done;
      if (logError) this.fail(new Error(logError));
      for (const s of streams) if (s.error) this.daemonLog.warn('output relay stream failed', { run_id: this.runId, error: s.error });
      await this.follower?.finish();
    }
    return this.scanner.end();
  }

  /** The run is over: descriptors nothing else will close (a run that never started: busy, cancelled, spawn failed). */
  dispose(): void {
    if (this.ptyControl !== null) closeQuietly(this.ptyControl);
    this.ptyControl = null;
    if (this.passed) closePassed(this.passed);
    this.passed = null;
    if (this.relayLogFd !== null) closeQuietly(this.relayLogFd);
    this.relayLogFd = null;
  }
}

export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

function streamDone(s: NodeJS.ReadableStream | null | undefined): Promise<void> {
  if (!s) return Promise.resolve();
  return new Promise((resolve) => {
    s.once('close', () => resolve());
    s.once('end', () => resolve());
    s.once('error', () => resolve());
  });
}
