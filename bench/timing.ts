/** Wall-clock timing of whole commands, as a shell user would feel them: from spawn to the exit of the process. */
import { spawn } from 'node:child_process';

export interface TimedRun {
  ms: number;
  code: number | null;
  stderr: string;
}

/** Run a command to completion (stdout discarded, stderr kept for diagnostics) and time it. */
export function timeCommand(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<TimedRun> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    // The pipe may close before or after 'exit'; remember it either way.
    const stderrClosed = new Promise<void>((r) => child.stderr!.once('close', () => r()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    // 'exit', not 'close': the process is gone; its stderr pipe is drained separately.
    child.once('exit', (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      clearTimeout(timer);
      void stderrClosed.then(() => resolve({ ms, code, stderr }));
    });
  });
}

/** Now, in ms, on the clock the bench uses for intervals inside one process. */
export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Resolve after ms (bench pacing only; never used to wait for an event). */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
