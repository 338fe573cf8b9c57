/** What most commands share: where the daemon is, how to reach it, how to report a failure in one line. */
import { resolveSocket, resolveStateDir } from '../util/paths.js';
import type { ConnectOptions } from '../client/connection.js';
import { lookOnly } from '../client/connect-options.js';
import { LockdClient } from '../api/client.js';
import { Settings } from './settings.js';
import { isLockdError } from '../util/errors.js';
import { exitCodeFor, EXIT } from './exit-codes.js';

export function connectOptions(values: { socket?: string | undefined; 'state-dir'?: string | undefined }, settings?: Settings): ConnectOptions {
  const s = settings ?? new Settings({ socket: values.socket, state_dir: values['state-dir'] });
  const socket = resolveSocket(s.value('socket') ?? undefined);
  const stateDir = resolveStateDir(s.value('state_dir') ?? undefined);
  const noAuto = s.get('no_autostart');
  const off = noAuto.value === '1' || noAuto.value === 'true' || noAuto.value === 'yes';
  if (!off) return { socketPath: socket.path, stateDir, autostart: true };
  // The message names what really turned it off: the variable, or a lockd.json key.
  const where = noAuto.source === 'env' ? 'LOCKD_NO_AUTOSTART is set' : noAuto.source.startsWith('config:') ? `no_autostart is set in the ${noAuto.source.slice(7)} lockd.json` : 'no_autostart is set';
  return { socketPath: socket.path, stateDir, autostart: false, autostartOffReason: `auto-start is off: ${where}` };
}

/**
 * The Node API client the commands are built on, on the socket and state dir the flags, env and config files
 * resolve to. `autostart: false` for commands that only look (status, ping, kill): they never start a daemon.
 */
export function apiClient(values: { socket?: string | undefined; 'state-dir'?: string | undefined }, settings?: Settings, opts: { autostart?: boolean } = {}): LockdClient {
  const c = connectOptions(values, settings);
  return LockdClient.fromConnectOptions(opts.autostart === false ? lookOnly(c) : c);
}

/** Print an error as one line and return the exit code for it. */
export function reportError(e: unknown): number {
  if (isLockdError(e)) {
    process.stderr.write(`lockd: ${e.message}\n`);
    return exitCodeFor(e.code);
  }
  process.stderr.write(`lockd: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
  return EXIT.LOCKD_FAILED;
}
