/**
 * One daemon per state dir on Windows. On Linux and macOS the daemon flocks <state-dir>/daemon.lock before it reads
 * the journal, so a second daemon (another socket, same state dir) fails before it could reconcile, and kill, the
 * first one's live jobs. Windows has no flock for lockd (no addon, no perl helper, and Node opens every file
 * shareable), so the claim is a named pipe named after the state dir: libuv creates a pipe server's first instance
 * exclusively (FILE_FLAG_FIRST_PIPE_INSTANCE), the name is free again the moment the holder exits, however it exits.
 * Wine does not enforce that flag (a second server on a name listens too), so a connect probe comes first: a name
 * that answers is taken. Under Wine two daemons starting in the same instant can still both pass; on Windows the
 * flag decides.
 */
import { createHash } from 'node:crypto';
import { connect, createServer, type Server } from 'node:net';
import { resolve } from 'node:path';
import { LockdError } from '../../util/errors.js';

/** The claim pipe's name: a hash of the state dir's absolute path, case-folded as Windows paths are. */
export function stateClaimPipe(stateDir: string): string {
  return `\\\\.\\pipe\\lockd-state-${createHash('sha256').update(resolve(stateDir).toLowerCase()).digest('hex').slice(0, 32)}`;
}

/** Does a server answer on this pipe (bounded)? */
export function pipeAnswers(name: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((done) => {
    const c = connect(name);
    const timer = setTimeout(() => finish(false), timeoutMs);
    const finish = (v: boolean) => {
      clearTimeout(timer);
      c.destroy();
      done(v);
    };
    c.once('connect', () => finish(true));
    c.once('error', () => finish(false));
  });
}

function listenOnce(name: string): Promise<Server | NodeJS.ErrnoException> {
  return new Promise((done) => {
    const s = createServer((c) => c.destroy());
    s.once('error', (e: NodeJS.ErrnoException) => done(e));
    s.listen(name, () => {
      s.unref();
      done(s);
    });
  });
}

/** Claim the state dir for this process; `daemon_running` when another daemon has it. */
export async function claimStateDirWindows(stateDir: string): Promise<Server> {
  const name = stateClaimPipe(stateDir);
  // A daemon that is just exiting may still hold the name: look again briefly, as the flock claim does.
  for (let delay = 10; ; delay *= 2) {
    const r = (await pipeAnswers(name)) ? Object.assign(new Error('answers'), { code: 'EADDRINUSE' }) : await listenOnce(name);
    if (!(r instanceof Error)) return r;
    if (r.code !== 'EADDRINUSE' && r.code !== 'EACCES') throw new LockdError('daemon_start_failed', `cannot claim the state directory ${stateDir} (pipe ${name}): ${r.message}`);
    if (delay > 1000) break;
    await new Promise((res) => setTimeout(res, delay));
  }
  throw new LockdError('daemon_running', `another lockd daemon is using the state directory ${stateDir}`);
}
