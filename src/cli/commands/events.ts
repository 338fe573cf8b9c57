/** `lockd events`: the daemon's live stream of lock, run and hold transitions, until interrupted. */
import { COMMON_OPTIONS, parse } from '../args.js';
import { apiClient } from '../common.js';
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
  const stream = apiClient(values, undefined, { autostart: false }).events();
  try {
    await stream.ready;
  } catch (e) {
    if (isLockdError(e, 'daemon_not_running')) {
      process.stderr.write('lockd: no lockd daemon is running; no events to follow\n');
      return EXIT.LOCKD_FAILED;
    }
    throw e;
  }
  if (!values.quiet) process.stderr.write(`lockd: listening for events from lockd ${stream.info!.version} (pid ${stream.info!.pid}); Ctrl+C to stop\n`);
  const style = styleFor(process.stdout);
  let stopped = false;
  const stop = () => {
    stopped = true;
    stream.close();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  // A reader that goes away (`lockd events | head`) ends the stream quietly.
  process.stdout.on('error', stop);
  try {
    for await (const event of stream) process.stdout.write(values.json ? `${JSON.stringify(event)}\n` : renderEvent(event, style));
  } catch (e) {
    if (stopped) return EXIT.OK;
    if (isLockdError(e, 'daemon_lost')) {
      process.stderr.write('lockd: the lockd daemon closed the event stream\n');
      return EXIT.LOCKD_FAILED;
    }
    throw e;
  } finally {
    process.removeListener('SIGINT', stop);
    process.removeListener('SIGTERM', stop);
  }
  return EXIT.OK;
}
