/**
 * A run's log, followed for a run page: `watch_run` asks the daemon whether the run is live and where its log
 * is, and tells us when it ended (after the log is closed, so the last read gets the last bytes); fs.watch on the
 * log's directory says when it grew. Reads are bounded chunks, so a huge log never sits in memory.
 */
import { watch, type FSWatcher } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { ConnectOptions } from '../client/connection.js';
import { watchRun as watchRunOf, type RunWatch } from '../client/watch-run.js';

/**
 * The daemon's answer about a run for a run page, or null when no daemon answers or it refuses (the page then
 * shows the records as they are). A run that is not live needs no open connection.
 */
export async function watchRun(connect: ConnectOptions, runId: string): Promise<RunWatch | null> {
  const w = await watchRunOf(connect, runId).catch(() => null);
  if (w && !w.live) w.close();
  return w;
}

const CHUNK_BYTES = 64 * 1024;

/** Reads a growing file from an offset, one pass at a time; overlapping pumps coalesce into one more pass. */
export class LogTail {
  private fh: FileHandle | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private watcher: FSWatcher | null = null;

  constructor(
    readonly path: string,
    public offset: number,
    private readonly onData: (chunk: Buffer) => void,
  ) {}

  /** Pump whenever the log's directory changes (the log may not exist yet while the run is queued). */
  follow(): void {
    try {
      this.watcher = watch(dirname(this.path), () => void this.pump());
      this.watcher.on('error', () => undefined);
    } catch {
      this.watcher = null;
    }
  }

  pump(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.readNew();
      } while (this.again);
    })()
      .catch(() => undefined)
      .finally(() => {
        this.running = null;
      });
    return this.running;
  }

  private async readNew(): Promise<void> {
    if (!this.fh) {
      try {
        this.fh = await open(this.path, 'r');
      } catch {
        return;
      }
    }
    const { size } = await this.fh.stat();
    if (size < this.offset) this.offset = size;
    for (;;) {
      const buf = Buffer.allocUnsafe(CHUNK_BYTES);
      const { bytesRead } = await this.fh.read(buf, 0, CHUNK_BYTES, this.offset);
      if (bytesRead === 0) return;
      this.offset += bytesRead;
      this.onData(buf.subarray(0, bytesRead));
    }
  }

  async close(): Promise<void> {
    this.watcher?.close();
    await this.fh?.close().catch(() => undefined);
    this.fh = null;
  }
}

/** The tail of a log for the first paint: at most `max` bytes, starting at a line break when cut. */
export async function readLogTail(path: string, max: number): Promise<{ text: string; offset: number; truncated: boolean } | null> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch {
    return null;
  }
  try {
    const { size } = await fh.stat();
    const start = Math.max(0, size - max);
    const buf = Buffer.alloc(size - start);
    const { bytesRead } = await fh.read(buf, 0, buf.length, start);
    let text = buf.subarray(0, bytesRead).toString('utf8');
    if (start > 0) text = text.slice(text.indexOf('\n') + 1);
    return { text, offset: start + bytesRead, truncated: start > 0 };
  } finally {
    await fh.close();
  }
}
