/**
 * Writes a child's combined output (stdout and stderr, in arrival order) to
 * the run's log file, optionally capped at `maxBytes` keeping head and tail.
 * One concern (the log file and its cap), just over 400 lines.
 *
 * Capping: the first maxBytes/2 bytes (the head) stay at the start of the
 * file. Output goes straight to the file until it would exceed maxBytes, so
 * logs under the cap are written live and complete. From the first byte past
 * the cap, the bytes after the head are moved into a ring *file* of maxBytes/2
 * (memory stays bounded however much is elided) and the main file is cut back
 * to the head; on close() we append `\n[lockd: N bytes elided]\n` and the ring
 * in order.
 *
 * Writes are queued and flushed by one loop, so they land in call order; all
 * chunks queued while a write is in flight go out as one gathered write
 * (writev, no copying). No fsync: a
 * log is not worth a disk flush per chunk on the output path.
 *
 * Failures (ENOSPC, EROFS, EIO, the run directory deleted under us) never
 * throw from write() and never crash the daemon: the first one is kept,
 * `failure` resolves with it, an `error` event is emitted if anyone listens,
 * later output is discarded, and close() rejects with it, so the daemon can
 * end the run with reason `log_write_failed`.
 */
import { EventEmitter } from 'node:events';
import { close as closeFd, fstat, ftruncate, openSync, read as readFd, write as writeFd, writev as writevFd } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import path from 'node:path';
import { LockdError } from '../util/errors.js';

export interface RunLogWriterOptions {
  /** Cap on the log size (plus the one elision line); unlimited when absent. */
  maxBytes?: number;
  /** write() returns false once this many bytes are queued (default 1 MiB); 'drain' follows. */
  highWaterMark?: number;
  /** File mode for the new log (default 0o644, minus umask). */
  mode?: number;
}

export interface RunLogStats {
  /** Bytes of output received. */
  receivedBytes: number;
  /** Bytes of output left out of the file (0 when under the cap). */
  elidedBytes: number;
  /** Final size of the file, elision line included. */
  fileBytes: number;
}

const DEFAULT_HIGH_WATER_MARK = 1024 * 1024;
/** Largest single gathered write; bigger queues are written in several batches. */
const MAX_BATCH_BYTES = 4 * 1024 * 1024;
/** Stay under IOV_MAX (1024 on Linux and macOS). */
const MAX_BATCH_CHUNKS = 1024;
/** Buffer size for file-to-file copies (ring moves), keeping memory bounded. */
const COPY_BYTES = 1024 * 1024;

export function elisionLine(elidedBytes: number): string {
  return `\n[lockd: ${elidedBytes} bytes elided]\n`;
}

/** What the writer does with a file: a FileHandle provides it, and so does FdFile around a synchronously opened fd. */
interface LogFile {
  write(buf: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesWritten: number }>;
  writev(bufs: Buffer[], position: number): Promise<{ bytesWritten: number }>;
  read(buf: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  stat(): Promise<{ nlink: number }>;
  truncate(len: number): Promise<void>;
  close(): Promise<void>;
}

/** A LogFile over a plain fd (the asynchronous calls go through the thread pool, like a FileHandle's). */
class FdFile implements LogFile {
  constructor(private readonly fd: number) {}

  write(buf: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesWritten: number }> {
    return new Promise((resolve, reject) => writeFd(this.fd, buf, offset, length, position, (err, bytesWritten) => (err ? reject(err) : resolve({ bytesWritten }))));
  }

  writev(bufs: Buffer[], position: number): Promise<{ bytesWritten: number }> {
    return new Promise((resolve, reject) => writevFd(this.fd, bufs, position, (err, bytesWritten) => (err ? reject(err) : resolve({ bytesWritten }))));
  }

  read(buf: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
    return new Promise((resolve, reject) => readFd(this.fd, buf, offset, length, position, (err, bytesRead) => (err ? reject(err) : resolve({ bytesRead }))));
  }

  stat(): Promise<{ nlink: number }> {
    return new Promise((resolve, reject) => fstat(this.fd, (err, st) => (err ? reject(err) : resolve(st))));
  }

  truncate(len: number): Promise<void> {
    return new Promise((resolve, reject) => ftruncate(this.fd, len, (err) => (err ? reject(err) : resolve())));
  }

  close(): Promise<void> {
    return new Promise((resolve, reject) => closeFd(this.fd, (err) => (err ? reject(err) : resolve())));
  }
}

async function writeFully(fh: LogFile, buf: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    if (bytesWritten <= 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
    done += bytesWritten;
  }
}

function totalLength(bufs: readonly Buffer[]): number {
  let n = 0;
  for (const b of bufs) n += b.length;
  return n;
}

/** The bytes [start, end) of the concatenation of `bufs`, as views (no copying). */
function sliceBuffers(bufs: readonly Buffer[], start: number, end: number): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (const b of bufs) {
    const from = Math.max(start, at);
    const to = Math.min(end, at + b.length);
    if (from < to) out.push(from === at && to === at + b.length ? b : b.subarray(from - at, to - at));
    at += b.length;
    if (at >= end) break;
  }
  return out;
}

/** Gathered write of `bufs` at `position` (one syscall for a whole batch, no concatenation). */
async function writevFully(fh: LogFile, bufs: readonly Buffer[], position: number): Promise<void> {
  const total = totalLength(bufs);
  let done = 0;
  let rest: readonly Buffer[] = bufs;
  while (done < total) {
    const { bytesWritten } = await fh.writev(rest as Buffer[], position + done);
    if (bytesWritten <= 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
    done += bytesWritten;
    if (done < total) rest = sliceBuffers(bufs, done, total);
  }
}

/** Copy `length` bytes from `src` at `srcPos` to `dst` at `dstPos` through a bounded buffer. */
async function copyRange(src: LogFile, srcPos: number, dst: LogFile, dstPos: number, length: number): Promise<void> {
  const buf = Buffer.allocUnsafe(Math.min(COPY_BYTES, Math.max(1, length)));
  let done = 0;
  while (done < length) {
    const want = Math.min(buf.length, length - done);
    const { bytesRead } = await src.read(buf, 0, want, srcPos + done);
    if (bytesRead <= 0) throw Object.assign(new Error('log file shrank while being copied'), { code: 'EIO' });
    await writeFully(dst, buf.subarray(0, bytesRead), dstPos + done);
    done += bytesRead;
  }
}

export class RunLogWriter extends EventEmitter {
  /** Resolves with the first write failure; never rejects (so nothing is ever an unhandled rejection). */
  readonly failure: Promise<LockdError>;
  private resolveFailure!: (err: LockdError) => void;
  private error: LockdError | null = null;

  private readonly headCap: number;
  private readonly tailCap: number;
  private readonly highWaterMark: number;

  private queue: Buffer[] = [];
  private queuedBytes = 0;
  private flushing: Promise<void> | null = null;
  private needDrain = false;
  private closing: Promise<RunLogStats> | null = null;

  private receivedBytes = 0;
  /** Bytes currently in the main file. */
  private mainPos = 0;
  private ring: LogFile | null = null;
  /** Bytes that went through the tail ring, i.e. everything after the head once capping began. */
  private ringBytes = 0;

  private constructor(
    readonly path: string,
    private readonly fh: LogFile,
    private readonly maxBytes: number | undefined,
    options: RunLogWriterOptions,
  ) {
    super();
    this.failure = new Promise((resolve) => (this.resolveFailure = resolve));
    this.headCap = maxBytes === undefined ? Infinity : Math.floor(maxBytes / 2);
    this.tailCap = maxBytes === undefined ? Infinity : maxBytes - this.headCap;
    this.highWaterMark = options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
  }

  /** Create (or truncate) the log file. Rejects with `log_write_failed` when it cannot be opened. */
  static async open(file: string, options: RunLogWriterOptions = {}): Promise<RunLogWriter> {
    RunLogWriter.checkOptions(options);
    let fh: LogFile;
    try {
      // w+: the head/tail move reads back from the file.
      fh = await open(file, 'w+', options.mode ?? 0o644);
    } catch (err) {
      throw RunLogWriter.wrap(file, err);
    }
    return new RunLogWriter(file, fh, options.maxBytes, options);
  }

  /**
   * `open`, with the open(2) itself done synchronously: one syscall on the caller's thread instead of a round trip
   * through libuv's thread pool, where it queues behind whatever file work is in flight. The daemon opens a run's
   * log between a grant and the spawn, on the handoff path. Throws `log_write_failed` when it cannot be opened.
   */
  static openSync(file: string, options: RunLogWriterOptions = {}): RunLogWriter {
    RunLogWriter.checkOptions(options);
    let fd: number;
    try {
      fd = openSync(file, 'w+', options.mode ?? 0o644);
    } catch (err) {
      throw RunLogWriter.wrap(file, err);
    }
    return new RunLogWriter(file, new FdFile(fd), options.maxBytes, options);
  }

  private static checkOptions({ maxBytes }: RunLogWriterOptions): void {
    if (maxBytes !== undefined && !(Number.isSafeInteger(maxBytes) && maxBytes >= 0)) {
      throw new LockdError('usage', `log size cap must be a non-negative integer, got ${String(maxBytes)}`, { maxBytes });
    }
  }

  private static wrap(file: string, err: unknown): LockdError {
    if (err instanceof LockdError) return err;
    const e = err as NodeJS.ErrnoException;
    return new LockdError('log_write_failed', `cannot write log ${file}: ${e?.message ?? String(err)}`, {
      path: file,
      errno: e?.code ?? null,
    });
  }

  /** The first failure, if any. */
  get failed(): LockdError | null {
    return this.error;
  }

  /**
   * Queue a chunk. Returns false when the caller should pause its source until
   * 'drain' (bounded memory when the disk is slower than the child). After a
   * failure or close(), chunks are discarded and true is returned so sources never stall.
   * The buffer is written as is later on: do not modify it after the call
   * (stream 'data' chunks are never reused, so piping child output is fine).
   */
  write(chunk: Buffer | string): boolean {
    // Late output after close() (a stream's last 'data' racing the exit) or
    // after a failure is dropped rather than thrown, so it can never crash the daemon.
    if (this.closing || this.error) return true;
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    if (buf.length === 0) return this.queuedBytes < this.highWaterMark;
    this.queue.push(buf);
    this.queuedBytes += buf.length;
    this.receivedBytes += buf.length;
    if (!this.flushing) this.flushing = this.flushLoop();
    if (this.queuedBytes >= this.highWaterMark) {
      this.needDrain = true;
      return false;
    }
    return true;
  }

  /**
   * Flush, put the tail in place, close. Resolves with sizes; rejects with the
   * `log_write_failed` error if any write failed (or fails now). Idempotent.
   */
  close(): Promise<RunLogStats> {
    this.closing ??= this.finish();
    return this.closing;
  }

  private async finish(): Promise<RunLogStats> {
    while (this.flushing) await this.flushing;
    let elidedBytes = 0;
    try {
      if (!this.error && this.ring) {
        elidedBytes = this.ringBytes - this.tailCap;
        const line = Buffer.from(elisionLine(elidedBytes), 'utf8');
        await writeFully(this.fh, line, this.mainPos);
        this.mainPos += line.length;
        // The ring's oldest byte is where the next write would have gone.
        const start = this.tailCap === 0 ? 0 : this.ringBytes % this.tailCap;
        await copyRange(this.ring, start, this.fh, this.mainPos, this.tailCap - start);
        this.mainPos += this.tailCap - start;
        await copyRange(this.ring, 0, this.fh, this.mainPos, start);
        this.mainPos += start;
      }
      if (!this.error) {
        // Writes into a file whose directory was removed succeed silently on
        // POSIX; the output is lost all the same, so report it.
        const { nlink } = await this.fh.stat();
        if (nlink === 0) this.fail(Object.assign(new Error('log file was deleted while being written'), { code: 'ENOENT' }));
      }
    } catch (err) {
      this.fail(err);
    }
    await this.releaseRing();
    try {
      await this.fh.close();
    } catch (err) {
      this.fail(err);
    }
    if (this.error) throw this.error;
    return { receivedBytes: this.receivedBytes, elidedBytes, fileBytes: this.mainPos };
  }

  private fail(err: unknown): void {
    if (this.error) return;
    this.error = RunLogWriter.wrap(this.path, err);
    this.queue = [];
    this.queuedBytes = 0;
    this.resolveFailure(this.error);
    // An 'error' event without listeners would throw and take the daemon down.
    if (this.listenerCount('error') > 0) this.emit('error', this.error);
    if (this.needDrain) {
      this.needDrain = false;
      this.emit('drain');
    }
  }

  /** Up to MAX_BATCH_BYTES / MAX_BATCH_CHUNKS of the queue, oldest first (at least one chunk). */
  private takeBatch(): Buffer[] {
    let count = 0;
    let size = 0;
    while (count < this.queue.length && count < MAX_BATCH_CHUNKS && (count === 0 || size + this.queue[count]!.length <= MAX_BATCH_BYTES)) {
      size += this.queue[count]!.length;
      count++;
    }
    this.queuedBytes -= size;
    return this.queue.splice(0, count);
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.queue.length > 0 && !this.error) {
        const batch = this.takeBatch();
        if (this.ring) await this.toRing(batch);
        else await this.toMain(batch);
        if (this.needDrain && this.queuedBytes < this.highWaterMark) {
          this.needDrain = false;
          this.emit('drain');
        }
      }
    } catch (err) {
      this.fail(err);
    } finally {
      // Cleared synchronously with the loop's last check, so a write() that
      // arrives afterwards always starts a new loop.
      this.flushing = null;
    }
  }

  private async toMain(batch: Buffer[]): Promise<void> {
    const size = totalLength(batch);
    const room = this.maxBytes === undefined ? Infinity : this.maxBytes - this.mainPos;
    if (size <= room) {
      await writevFully(this.fh, batch, this.mainPos);
      this.mainPos += size;
      return;
    }
    // The cap is crossed: fill the file to exactly maxBytes, move everything
    // after the head into the ring, then continue in ring mode.
    await writevFully(this.fh, sliceBuffers(batch, 0, room), this.mainPos);
    this.mainPos += room;
    await this.startRing();
    await this.toRing(sliceBuffers(batch, room, size));
  }

  private async startRing(): Promise<void> {
    const ringPath = this.ringPath();
    this.ring = await open(ringPath, 'w+', 0o600);
    // The ring holds data we must read back; nobody else needs its name.
    await unlink(ringPath);
    await copyRange(this.fh, this.headCap, this.ring, 0, this.tailCap);
    await this.fh.truncate(this.headCap);
    this.mainPos = this.headCap;
    this.ringBytes = this.tailCap;
  }

  private ringPath(): string {
    return path.join(path.dirname(this.path), `.${path.basename(this.path)}.tail-${process.pid}`);
  }

  private async toRing(batch: Buffer[]): Promise<void> {
    const cap = this.tailCap;
    let size = totalLength(batch);
    if (cap === 0) {
      this.ringBytes += size;
      return;
    }
    // Only the last `cap` bytes of a batch can survive.
    if (size > cap) {
      this.ringBytes += size - cap;
      batch = sliceBuffers(batch, size - cap, size);
      size = cap;
    }
    const pos = this.ringBytes % cap;
    const first = Math.min(size, cap - pos);
    await writevFully(this.ring!, first === size ? batch : sliceBuffers(batch, 0, first), pos);
    if (first < size) await writevFully(this.ring!, sliceBuffers(batch, first, size), 0);
    this.ringBytes += size;
  }

  private async releaseRing(): Promise<void> {
    const ring = this.ring;
    this.ring = null;
    if (ring) await ring.close().catch(() => undefined);
  }
}
