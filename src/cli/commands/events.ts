/** `lockd events`: the daemon's live stream of lock, run and hold transitions, until interrupted. */
import { COMMON_OPTIONS, parse } from '../args.js';
import { connectOptions } from '../common.js';
import { connectDaemon } from '../../client/connection.js';
import { isLockdError } from '../../util/errors.js';
import { EXIT } from '../exit-codes.js';
import { renderEvent } from '../render/events.js';
import { styleFor } from '../render/style.js';

const OPTIONS = { ...COMMON_OPTIONS, json: { type: 'boolean' }, quiet: { type: 'boolean', short: 'q' } } as const;

export const EVENTS_HELP = `Usage: lockd events [--json] [-q]

Follow what the daemon does, as it happens, until Ctrl+C: queued, granted, started, released, exited,
cancelled, not_obtained, killed, hold_acquired, hold_released, hold_expired. Each event names the run or
hold id and the lock files, plus details (exit code, reason, who…). Never starts a daemon.
  --json     one JSON object per line: {"seq", "time_utc", "type", "id", "locks", "detail"?}
  -q         no "listening" note on stderr

Exit status: 0 on Ctrl+C, 125 when no daemon runs or it goes away.

Example:
  lockd events --json | jq -c 'select(.type == "hold_expired")'
`;

export async function eventsCommand(args: string[]): Promise<number> {
  const { values } = parse(args, OPTIONS);
  const opts = { ...connectOptions(values), autostart: false };
  let conn;
  try {
    conn = await connectDaemon(opts, { type: 'events' });
  } catch (e) {
    if (isLockdError(e, 'daemon_not_running')) {
      process.stderr.write('lockd: no lockd daemon is running; no events to follow\n');
      return EXIT.LOCKD_FAILED;
    }
    throw e;
  }
  const style = styleFor(process.stdout);
  const c = conn;
  return await new Promise<number>((resolve) => {
    let done = false;
    const finish = (code: number) => {
      if (done) return;
      done = true;
      process.removeListener('SIGINT', stop);
      process.removeListener('SIGTERM', stop);
      c.close();
      resolve(code);
    };
    const stop = () => finish(EXIT.OK);
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    // A reader that goes away (`lockd events | head`) ends the stream quietly.
    process.stdout.on('error', () => finish(EXIT.OK));
    c.onMessage = (m) => {
      if (m.type === 'ok') {
        if (!values.quiet) process.stderr.write(`lockd: listening for events from lockd ${c.info.version} (pid ${c.info.pid}); Ctrl+C to stop\n`);
      } else if (m.type === 'event') {
        process.stdout.write(values.json ? JSON.stringify(m.event) + '\n' : renderEvent(m.event, style));
      } else if (m.type === 'error') {
        process.stderr.write(`lockd: ${m.message}\n`);
        finish(EXIT.LOCKD_FAILED);
      }
    };
    c.onClose = () => {
      if (done) return;
      process.stderr.write('lockd: the lockd daemon closed the event stream\n');
      finish(EXIT.LOCKD_FAILED);
    };
  });
}
