/** `lockd shutdown [--force]`: stop the daemon; refuses while jobs run unless --force (which kills them cleanly). */
import { COMMON_OPTIONS, parse } from '../args.js';
import { connectOptions } from '../common.js';
import { request } from '../../client/connection.js';
import { createConnection } from 'node:net';

export const SHUTDOWN_HELP = `Usage: lockd shutdown [--force]

Stop the daemon. While runs are in progress it refuses, unless --force: then every job's
process tree is stopped and its result.json written before the daemon exits.
`;

export async function shutdownCommand(args: string[]): Promise<number> {
  const { values } = parse(args, { ...COMMON_OPTIONS, force: { type: 'boolean' } });
  const opts = { ...connectOptions(values), autostart: false };
  const reply = await request(opts, { type: 'shutdown', force: values.force ?? false }, ['ok']);
  if (reply.note) process.stderr.write(`lockd: ${reply.note}\n`);
  // Return once the daemon is really gone, so `lockd shutdown && lockd daemon` never races.
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const alive = await new Promise<boolean>((r) => {
      const s = createConnection(opts.socketPath);
      s.once('connect', () => {
        s.destroy();
        r(true);
      });
      s.once('error', () => r(false));
    });
    if (!alive) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  process.stderr.write('lockd: daemon stopped\n');
  return 0;
}
