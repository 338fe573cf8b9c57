/** The daemon's side of the cluster watchdog (see watchdog-main.ts): start it, keep it told, stop it cleanly. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../daemon/server/logger.js';

export class Watchdog {
  private proc: ChildProcess | null = null;
  private readonly protectedRuns = new Set<string>();

  constructor(private readonly log: Logger) {}

  start(graceMs: number): void {
    const script = fileURLToPath(new URL('./watchdog-main.js', import.meta.url));
    try {
      const proc = spawn(process.execPath, [script], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
      proc.on('error', (e) => this.log.error('cluster watchdog failed', { error: e.message }));
      proc.on('exit', (code, signal) => {
        if (this.proc === proc) {
          this.proc = null;
          this.log.warn('cluster watchdog exited', { code, signal });
        }
      });
      proc.stdin!.on('error', () => undefined);
      proc.unref();
      (proc.stdin as unknown as { unref?: () => void }).unref?.();
      this.proc = proc;
      this.send(`grace ${graceMs}`);
    } catch (e) {
      this.log.error('cannot start the cluster watchdog; jobs of a daemon that dies keep running until killed', { error: (e as Error).message });
    }
  }

  private send(line: string): void {
    const stdin = this.proc?.stdin;
    if (stdin && !stdin.destroyed) stdin.write(`${line}\n`);
  }

  deadline(epochMs: number): void {
    this.send(`deadline ${Math.floor(epochMs)}`);
  }

  protect(runId: string, pgid: number): void {
    this.protectedRuns.add(runId);
    this.send(`add ${runId} ${pgid}`);
  }

  unprotect(runId: string): void {
    if (!this.protectedRuns.delete(runId)) return;
    this.send(`del ${runId}`);
  }

  get pid(): number | null {
    return this.proc?.pid ?? null;
  }

  stop(): void {
    this.send('exit');
    this.proc?.stdin?.end();
    this.proc = null;
  }
}
