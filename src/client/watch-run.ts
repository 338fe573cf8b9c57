/**
 * Follow a run's end through the daemon (`watch_run`): whether it is live, where its log and result are, and a
 * promise that settles when the daemon says it ended (after the log is closed, so a last read gets the last bytes).
 * Never starts a daemon. Shared by `lockd logs -f`, `lockd wait` and `lockd web`'s run pages.
 */
import { connectDaemon, type ConnectOptions } from './connection.js';
import { lookOnly } from './connect-options.js';
import { LockdError } from '../util/errors.js';

export interface RunWatch {
  live: boolean;
  logPath: string | null;
  resultPath: string | null;
  /** Resolves when the daemon says the run ended, or with 'lost' when the connection closes first. */
  ended: Promise<'ended' | 'lost'>;
  close(): void;
}

/** Ask the daemon (never starting one) about the run and keep listening for its end; null when no daemon answers. */
export async function watchRun(connect: ConnectOptions, runId: string): Promise<RunWatch | null> {
  let conn;
  try {
    conn = await connectDaemon(lookOnly(connect), { type: 'watch_run', run_id: runId });
  } catch {
    return null;
  }
  const c = conn;
  let endedResolve!: (how: 'ended' | 'lost') => void;
  const ended = new Promise<'ended' | 'lost'>((r) => (endedResolve = r));
  return await new Promise<RunWatch | null>((resolve, reject) => {
    let answered = false;
    c.onMessage = (m) => {
      if (m.type === 'run_state' && !answered) {
        answered = true;
        resolve({ live: m.live, logPath: m.log_path, resultPath: m.result_path, ended, close: () => c.close() });
      } else if (m.type === 'run_ended') {
        endedResolve('ended');
      } else if (m.type === 'error') {
        answered = true;
        reject(new LockdError(m.code, m.message));
        c.close();
      }
    };
    c.onClose = () => {
      endedResolve('lost');
      if (!answered) resolve(null);
    };
  });
}
