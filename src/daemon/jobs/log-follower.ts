/**
 * Reads a run's log as the relay (output-relay.ts) writes it and feeds the verdict scanner, so markers are found
 * across chunk boundaries (the scanner is streaming) and the scan is nearly done when the job ends. It reads the
 * file, not the caller's stream: the bytes to the caller never pass through JavaScript. Polls only while caught up.
 */
import { open, type FileHandle } from 'node:fs/promises';
import type { LogScanner } from '../../runs/log-scanner.js';

const CHUNK = 1024 * 1024;
const IDLE_MS = 25;

export class LogFollower {
  private stopRequested = false;
  private wake: (() => void) | null = null;
  readonly done: Promise<void>;

  constructor(
    private readonly file: string,
    private readonly scanner: LogScanner,
    private readonly onError: (e: Error) => void,
  ) {
    this.done = this.loop();
  }

  /** The writer is done: read to the end of the file, then stop. */
  finish(): Promise<void> {
    this.stopRequested = true;
    this.wake?.();
    return this.done;
  }

  private async loop(): Promise<void> {
    let fh: FileHandle | null = null;
    try {
      fh = await open(this.file, 'r');
      const buf = Buffer.allocUnsafe(CHUNK);
      let pos = 0;
      for (;;) {
        const stopping = this.stopRequested;
        const { bytesRead } = await fh.read(buf, 0, CHUNK, pos);
        if (bytesRead > 0) {
          pos += bytesRead;
          // The scanner keeps at most a partial line, so the buffer can be reused (it copies what it keeps).
          this.scanner.push(buf.subarray(0, bytesRead));
          continue;
        }
        if (stopping) return;
        // finish() came while that read was in flight: read once more (to the end), do not sleep.
        if (this.stopRequested) continue;
        await new Promise<void>((r) => {
          const t = setTimeout(r, IDLE_MS);
          this.wake = () => {
            clearTimeout(t);
            r();
          };
        });
        this.wake = null;
      }
    } catch (e) {
      this.onError(e as Error);
    } finally {
      await fh?.close().catch(() => undefined);
    }
  }
}
