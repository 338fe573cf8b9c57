/** Test helpers shared by the flock-holder and clean-stale tests: bounded waits and flock(1) as an outside user. */
import { execFile, spawn } from 'node:child_process';

export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Exit code of `flock -n [-s] <file> true`: 0 when flock(1) got the lock, 1 when it was busy. */
export function flockNonBlocking(file: string, shared = false): Promise<number> {
  return within(
    new Promise((resolve) => {
      execFile('flock', ['-n', ...(shared ? ['-s'] : []), file, 'true'], (err) => {
        resolve(err ? Number((err as { code?: unknown }).code) : 0);
      });
    }),
    20_000,
    'flock -n',
  );
}

/**
 * `flock <file> sleep 60` as an outside holder, resolved once flock(1) holds the lock. -o: the sleep does not
 * inherit the lock, so the lock is gone exactly when flock(1) itself has exited. It runs in its own process
 * group, so stop() kills flock(1) and the sleep by that group's id and waits for flock(1) to exit.
 */
export async function outsideHolder(file: string, shared = false): Promise<{ pid: number; stop: () => Promise<void> }> {
  const child = spawn('flock', ['-o', ...(shared ? ['-s'] : []), file, 'sh', '-c', 'echo locked; exec sleep 60'], {
    detached: true,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
    await within(exited, 20_000, 'flock(1) to exit');
  };
  try {
    await within(
      new Promise<void>((resolve, reject) => {
        child.once('error', reject);
        child.stdout!.on('data', (chunk: Buffer) => {
          if (chunk.toString().includes('locked')) resolve();
        });
      }),
      20_000,
      'flock(1) to take the lock',
    );
  } catch (err) {
    if (child.pid !== undefined) await stop();
    throw err;
  }
  return { pid: child.pid!, stop };
}
