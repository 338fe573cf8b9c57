/**
 * Auto-start: spawn `lockd daemon` detached, its output appended to <state-dir>/daemon.log, and wait (on an
 * event, not a sleep) until it says "ready" on an inherited pipe, or exits. Ten clients doing this at once end
 * with one daemon: the daemons race for the socket under a startup mutex and the losers exit at once.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import type { ConnectOptions } from './connect-options.js';
import { LockdError } from '../util/errors.js';

/**
 * bin/lockd.js, found by walking up from this file's directory (src/client under tsx, dist/src/client compiled).
 * Built with node:path from fileURLToPath only: on Windows the path is `C:\…\dist\src\client`, and any '/'
 * arithmetic on it yields a path that does not exist.
 */
function cliEntry(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const entry = join(dir, 'bin', 'lockd.js');
    if (existsSync(entry)) return entry;
    if (dirname(dir) === dir) throw new LockdError('daemon_start_failed', `cannot find lockd's bin/lockd.js above ${fileURLToPath(import.meta.url)}`);
  }
}

export async function startDaemonProcess(opts: ConnectOptions): Promise<void> {
  mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
  const logFd = openSync(join(opts.stateDir, 'daemon.log'), 'a', 0o600);
  const args = [cliEntry(), 'daemon', '--socket', opts.socketPath, '--state-dir', opts.stateDir, '--ready-fd', '3'];
  const child = spawn(process.execPath, args, {
    detached: true,
    stdio: ['ignore', logFd, logFd, 'pipe'],
    env: { ...process.env, LOCKD_AUTOSTARTED: '1' },
  });
  closeSync(logFd);
  const ready = child.stdio[3] as NodeJS.ReadableStream;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new LockdError('daemon_start_timeout', `the lockd daemon did not start within 20 s; see ${join(opts.stateDir, 'daemon.log')}`)), 20_000);
    let text = '';
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    ready.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.includes('ready')) done();
    });
    // EOF without "ready": it exited, most often because another daemon won the socket. The caller reconnects.
    ready.on('end', done);
    ready.on('error', done);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new LockdError('daemon_start_failed', `cannot start the lockd daemon: ${e.message}`));
    });
  });
  (ready as unknown as { destroy(): void }).destroy();
  child.unref();
}
