/**
 * A growing log read from an offset, in bounded chunks (memory stays flat whatever the log's size), one pass at a
 * time: a pump asked for while one runs makes exactly one more pass. `follow()` pumps whenever the log's directory
 * changes (the log may not exist yet while the run is queued). Shared by `lockd logs -f` and `lockd web`'s run pages.
 */
import { watch, type FSWatcher } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

const CHUNK_BYTES = 64 * 1024;

export class LogTail {
  private fh: FileHandle | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private watcher: FSWatcher | null = null;
  /** The first read error other than "not there yet"; pumping stops at it. */
  error: Error | null = null;

  constructor(
    readonly path: string,
    public offset: number,
    /** Each chunk in order; a returned promise (a writable's drain) is awaited before the next read. */
    private readonly onData: (chunk: Buffer) => void | Promise<void>,
  ) {}

  /** Whether the log exists (was opened by a pump). */
  get opened(): boolean {
    return this.fh !== null;
  }

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
      .catch((e: Error) => {
        this.error ??= e;
      })
      .finally(() => {
        this.running = null;
      });
    return this.running;
  }

  private async readNew(): Promise<void> {
    if (!this.fh) {
      try {
        this.fh = await open(this.path, 'r');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return; // not started yet
        throw e;
      }
    }
    const { size } = await this.fh.stat();
    // A capped log is cut back to its head once output passes the cap (the tail comes back at the end).
    if (size < this.offset) this.offset = size;
    for (;;) {
      const buf = Buffer.allocUnsafe(CHUNK_BYTES);
      const { bytesRead } = await this.fh.read(buf, 0, CHUNK_BYTES, this.offset);
      if (bytesRead === 0) return;
      this.offset += bytesRead;
      await this.onData(buf.subarray(0, bytesRead));
    }
  }

  async close(): Promise<void> {
    this.watcher?.close();
    this.watcher = null;
    await this.fh?.close().catch(() => undefined);
    this.fh = null;
  }
}
