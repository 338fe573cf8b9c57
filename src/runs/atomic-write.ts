/**
 * Atomic file replacement: write a temp file in the same directory, fsync it,
 * then rename it over the target. rename(2) within one filesystem is atomic,
 * so a reader (a test farm polling result.json, `lockd list`) sees either the
 * old file, no file, or the complete new file, never a half-written one.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import path from 'node:path';

export interface AtomicWriteOptions {
  /** File mode for a newly created file (default 0o644 minus umask). */
  mode?: number;
  /**
   * When the fsyncs happen. 'before-rename' (default): data, then directory, flushed before the call returns, so after
   * a power cut the target holds the old or the new content. 'after-rename': the file is renamed into place and the
   * call returns at once; the same fsyncs follow in the background (batched, within about 10 s) and `onDurable` hears
   * how they went. Readers still never see a partial file (rename is atomic either way); only a power cut before the
   * batch can leave the new file empty or missing. For records whose content the caller also hands over directly
   * (lockd's result.json goes to the client in the 'finished' reply), so a disk flush is not on the path of every
   * run (docs/performance.md).
   */
  sync?: 'before-rename' | 'after-rename';
  /** With sync 'after-rename': called once the background fsyncs finished (null) or failed. */
  onDurable?: (err: Error | null) => void;
  /**
   * With sync 'after-rename': write and rename with synchronous calls. For small files on the daemon's own state
   * dir only (a run's records on the default runs root), where the journal is written synchronously too: four
   * thread-pool round trips in series were most of a record's cost on the run's path (0.5-1 ms on a loaded 2-CPU
   * machine), the synchronous calls take tens of µs. Never for a directory a caller chose (`--runs-root`), which may
   * be on a slow or network file system.
   */
  blocking?: boolean;
}

function tempPathFor(target: string): string {
  // Hidden, unique per process and call, in the same directory as the target
  // (so the rename never crosses a filesystem boundary).
  const base = path.basename(target);
  return path.join(path.dirname(target), `.${base}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** fsync the directory so the rename itself survives a power cut. Best effort: not every platform allows it. */
async function syncDirectory(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // EISDIR/EPERM/EINVAL on some platforms and filesystems: the data file was
    // already fsynced, which is what readers care about.
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/**
 * Write `data` to a temp file beside `target` and rename it into place; `syncFirst` flushes the temp file before
 * the rename. The temp file never outlives a failure.
 */
async function writeAndRename(target: string, data: string | Uint8Array, mode: number, syncFirst: boolean): Promise<void> {
  const temp = tempPathFor(target);
  const handle = await open(temp, 'wx', mode);
  let renamed = false;
  try {
    try {
      await handle.writeFile(data);
      if (syncFirst) await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, target);
    renamed = true;
  } finally {
    if (!renamed) await unlink(temp).catch(() => undefined);
  }
}

/**
 * Deferred fsyncs. An fsync on ext4 forces a journal commit, and while it runs other metadata operations on the
 * filesystem (create, rename, unlink: the next run's records and lock files) stall behind it, wherever they are
 * issued from — on a busy disk for tens or hundreds of ms. So the queue waits for a quiet moment (SYNC_QUIET_MS
 * without a new deferred write, at most SYNC_MAX_DELAY_MS after the oldest), then syncs one file at a time (libuv's
 * thread pool is small), each batch's directories once. By then the kernel's own periodic commit (5 s on ext4) has
 * usually written the data already, and the fsync is cheap. Files are reopened by name (fsync flushes the file,
 * whichever descriptor asks); one that is gone by then needs nothing more from this write.
 * The timer never keeps a process alive on its own; a process that ends normally flushes the queue first (beforeExit).
 * No timer is left once the queue is empty.
 */
const SYNC_QUIET_MS = 2000;
const SYNC_OPEN_FLAGS = process.platform === 'win32' ? 'r+' : 'r';
const SYNC_MAX_DELAY_MS = 10_000;
const syncQueue: Array<{ file: string; done: ((err: Error | null) => void) | null; at: number }> = [];
let syncing = false;
let syncTimer: NodeJS.Timeout | null = null;
let flushOnExit = false;

function syncInBackground(file: string, done: ((err: Error | null) => void) | null): void {
  syncQueue.push({ file, done, at: Date.now() });
  if (!flushOnExit) {
    flushOnExit = true;
    process.on('beforeExit', () => {
      if (syncing || syncQueue.length === 0) return;
      if (syncTimer) clearTimeout(syncTimer);
      syncTimer = null;
      void drainSyncQueue();
    });
  }
  if (!syncing) scheduleDrain();
}

function scheduleDrain(): void {
  if (syncTimer) clearTimeout(syncTimer);
  const oldest = syncQueue[0]?.at ?? Date.now();
  const wait = Math.max(0, Math.min(SYNC_QUIET_MS, oldest + SYNC_MAX_DELAY_MS - Date.now()));
  syncTimer = setTimeout(() => {
    syncTimer = null;
    void drainSyncQueue();
  }, wait);
  syncTimer.unref();
}

async function drainSyncQueue(): Promise<void> {
  syncing = true;
  {
    const batch = syncQueue.splice(0);
    const failures = new Map<string, Error>();
    for (const { file } of batch) {
      let handle;
      try {
        // Windows flushes (FlushFileBuffers) only through a handle opened for writing: 'r' gives EPERM there.
        handle = await open(file, SYNC_OPEN_FLAGS);
        await handle.sync();
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') failures.set(file, err as Error);
      } finally {
        await handle?.close().catch(() => undefined);
      }
    }
    for (const dir of new Set(batch.map((b) => path.dirname(b.file)))) await syncDirectory(dir);
    for (const { file, done } of batch) {
      try {
        done?.(failures.get(file) ?? null);
      } catch {
        // A listener's own failure must not stop the queue.
      }
    }
  }
  syncing = false;
  // Writes that came in meanwhile wait for their own quiet moment.
  if (syncQueue.length > 0) scheduleDrain();
}

/** writeAndRename without fsync, with synchronous calls (see AtomicWriteOptions.blocking). */
function writeAndRenameSync(target: string, data: string | Uint8Array, mode: number): void {
  const temp = tempPathFor(target);
  const fd = openSync(temp, 'wx', mode);
  let renamed = false;
  try {
    try {
      const buf = typeof data === 'string' ? Buffer.from(data) : data;
      for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off, buf.length - off);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, target);
    renamed = true;
  } finally {
    if (!renamed) {
      try {
        unlinkSync(temp);
      } catch {
        // gone already
      }
    }
  }
}

/** Atomically replace `target` with `data`. Leaves no temp file behind on failure. */
export async function writeFileAtomic(target: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): Promise<void> {
  const mode = options.mode ?? 0o644;
  if (options.sync === 'after-rename') {
    // Write, rename, return; file and directory are fsynced afterwards (see syncInBackground).
    if (options.blocking) writeAndRenameSync(target, data, mode);
    else await writeAndRename(target, data, mode, false);
    syncInBackground(target, options.onDurable ?? null);
    return;
  }
  await writeAndRename(target, data, mode, true);
  await syncDirectory(path.dirname(target));
}

/** Atomically write `value` as pretty JSON with a trailing newline. */
export async function writeJsonAtomic(target: string, value: unknown, options: AtomicWriteOptions = {}): Promise<void> {
  await writeFileAtomic(target, `${JSON.stringify(value, null, 2)}\n`, options);
}
