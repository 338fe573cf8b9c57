/**
 * A run for a run page: whether the daemon has it live and where its log is (`watch_run`, client/watch-run.ts),
 * and the tail of its log for the first paint. Following the log as it grows is runs/log-tail.ts.
 */
import { open, type FileHandle } from 'node:fs/promises';
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
