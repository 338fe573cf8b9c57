/** `lockd ping`: is a daemon answering? Never auto-starts one. */
import { COMMON_OPTIONS, parse } from '../args.js';
import { apiClient } from '../common.js';

export const PING_HELP = `Usage: lockd ping [--json]

Exit 0 and print the daemon's version, pid and uptime when one answers; exit 125 when none does.
`;

export async function pingCommand(args: string[]): Promise<number> {
  const { values } = parse(args, { ...COMMON_OPTIONS, json: { type: 'boolean' } });
  const pong = await apiClient(values, undefined, { autostart: false }).ping();
  if (values.json) process.stdout.write(`${JSON.stringify(pong)}\n`);
  else process.stdout.write(`lockd ${pong.version} (protocol ${pong.protocol}) pid ${pong.pid} up ${(pong.uptime_ms / 1000).toFixed(1)} s, ${pong.mode} mode, socket ${pong.socket}\n`);
  return 0;
}
