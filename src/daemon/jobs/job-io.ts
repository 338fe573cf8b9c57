/**
 * A running job's bytes: its stdout/stderr go to the run's log, the verdict scanner and the attached client, with
 * backpressure (a slow reader or a slow disk pauses the child's pipes instead of growing the daemon's memory); the
 * client's stdin (-i) goes to the child, and what arrives before the child exists is kept, bounded.
 */
import type { Connection } from '../server/connection.js';
import { FrameKind } from '../../protocol/framing.js';
import type { RunLogWriter } from '../../runs/log-writer.js';
import type { LogScanner } from '../../runs/log-scanner.js';
import type { LaunchedJob } from './launcher.js';

/** Output queued on a client's socket before the child's pipes are paused (bounds daemon memory per run). */
const CLIENT_BACKLOG_BYTES = 1024 * 1024;
/** Early stdin kept before the client's socket is paused. */
const EARLY_STDIN_BYTES = 1024 * 1024;

export interface JobIoSinks {
  scanner(): LogScanner | null;
  /** The log writer, or null when there is none or it failed. */
  log(): RunLogWriter | null;
  /** The attached client, or null (detached, gone). */
  client(): Connection | null;
}

export class JobIo {
  private child: LaunchedJob | null = null;
  private waitingForClient = false;
  private pauses = 0;
  private pendingStdin: Buffer[] = [];
  private pendingStdinBytes = 0;
  private stdinEnded = false;

  constructor(private readonly sinks: JobIoSinks) {}

  attach(child: LaunchedJob): void {
    this.child = child;
    child.stdout?.on('data', (d: Buffer) => this.onOutput(FrameKind.Stdout, d));
    child.stderr?.on('data', (d: Buffer) => this.onOutput(FrameKind.Stderr, d));
    child.stdin?.on('error', () => undefined);
    this.flushStdin();
  }

  private onOutput(kind: typeof FrameKind.Stdout | typeof FrameKind.Stderr, data: Buffer): void {
    this.sinks.scanner()?.push(data);
    const log = this.sinks.log();
    // Backpressure: a slow reader (or a slow disk) slows the child's pipe instead of growing our memory.
    if (log && !log.write(data)) {
      this.pauseOutput();
      log.once('drain', () => this.resumeOutput());
    }
    const conn = this.sinks.client();
    if (conn && !conn.closed) {
      // One writev for the frame header and the bytes, not two writes.
      conn.socket.cork();
      conn.sendData(kind, data);
      conn.socket.uncork();
      // Pause for the client only on a real backlog: sendData is false past the socket's 16 KiB high-water mark,
      // and pausing the child on every such chunk made streaming a ping-pong (about 10x slower than cat).
      if (!this.waitingForClient && conn.socket.writableLength > CLIENT_BACKLOG_BYTES) {
        this.waitingForClient = true;
        this.pauseOutput();
        conn.onDrain(() => {
          this.waitingForClient = false;
          this.resumeOutput();
        });
      }
    }
  }

  private pauseOutput(): void {
    if (this.pauses++ === 0) {
      this.child?.stdout?.pause();
      this.child?.stderr?.pause();
    }
  }
  private resumeOutput(): void {
    if (--this.pauses === 0) {
      this.child?.stdout?.resume();
      this.child?.stderr?.resume();
    }
  }

  writeStdin(data: Buffer, conn: Connection): void {
    const stdin = this.child?.stdin;
    if (!stdin) {
      this.pendingStdin.push(data);
      this.pendingStdinBytes += data.length;
      if (this.pendingStdinBytes > EARLY_STDIN_BYTES) conn.socket.pause();
      return;
    }
    if (stdin.destroyed) return;
    if (!stdin.write(data)) {
      conn.socket.pause();
      stdin.once('drain', () => conn.socket.resume());
    }
  }

  endStdin(): void {
    this.stdinEnded = true;
    this.child?.stdin?.end();
  }

  private flushStdin(): void {
    const stdin = this.child?.stdin;
    if (!stdin) return;
    for (const b of this.pendingStdin) stdin.write(b);
    this.pendingStdin = [];
    this.pendingStdinBytes = 0;
    const conn = this.sinks.client();
    if (conn && !conn.closed) conn.socket.resume();
    if (this.stdinEnded) stdin.end();
  }
}
