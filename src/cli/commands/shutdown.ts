/** `lockd shutdown [--force]`: stop the daemon; refuses while jobs run unless --force (which kills them cleanly). */
import { COMMON_OPTIONS, parse } from '../args.js';
import { connectOptions } from '../common.js';
import { connectDaemon } from '../../client/connection.js';
import { lookOnly } from '../../client/connect-options.js';
import { LockdError } from '../../util/errors.js';

export const SHUTDOWN_HELP = `Usage: lockd shutdown [--force]

Stop the daemon. While runs are in progress it refuses (exit 75, naming the runs in the way; wait for them
with lockd wait RUN...), unless --force: then every job's process tree is stopped and its result.json
written before the daemon exits.
Under systemd socket activation prefer 'systemctl stop lockd.service lockd.socket'.

Examples:
  lockd shutdown || lockd shutdown --force
  lockd shutdown --force
`;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function shutdownCommand(args: string[]): Promise<number> {
  const { values } = parse(args, { ...COMMON_OPTIONS, force: { type: 'boolean' } });
  const opts = lookOnly(connectOptions(values));
  const conn = await connectDaemon(opts, { type: 'shutdown', force: values.force ?? false });
  const pid = conn.info.pid;
  const note = await new Promise<string | null>((resolve, reject) => {
    conn.onMessage = (m) => {
      if (m.type === 'ok') resolve(m.note);
      else if (m.type === 'error') reject(new LockdError(m.code, m.message));
    };
    conn.onClose = () => reject(new LockdError('daemon_lost', 'the daemon closed the connection before answering'));
  });
  if (note) process.stderr.write(`lockd: ${note}\n`);
  // Return once that daemon process is really gone (not merely its socket: a socket-activated one stays listening),
  // so `lockd shutdown && lockd daemon` never races. Polling is bounded and only happens here.
  const deadline = Date.now() + 60_000;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  if (alive(pid)) throw new LockdError('shutdown_timeout', `the daemon (pid ${pid}) is still running after 60 s`);
  process.stderr.write('lockd: daemon stopped\n');
  return 0;
}
