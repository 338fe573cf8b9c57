/** `lockd daemon [--system]`: run the daemon in the foreground (what systemd/launchd and auto-start call). */
import { COMMON_OPTIONS, parse, parseIntOption } from '../args.js';
import { Settings } from '../settings.js';
import { resolveSocket, resolveStateDir, SYSTEM_SOCKET, SYSTEM_STATE_DIR } from '../../util/paths.js';
import { resolve } from 'node:path';

const OPTIONS = {
  ...COMMON_OPTIONS,
  system: { type: 'boolean' },
  'ready-fd': { type: 'string' },
  'global-dir': { type: 'string' },
  keep: { type: 'string' },
  'admin-group': { type: 'string' },
} as const;

export const DAEMON_HELP = `Usage: lockd daemon [--system] [--socket PATH] [--state-dir DIR] [--global-dir DIR] [--admin-group G]

Run the lockd daemon in the foreground. Clients start one automatically when none answers;
service managers run this command (see lockd service print).
  --system        the per-host system daemon: socket ${SYSTEM_SOCKET} (group lockd, 0660), state ${SYSTEM_STATE_DIR}
  --admin-group G members may kill/release/--force others' runs and holds (system mode; default lockd-admin)
`;

export async function daemonCommand(args: string[]): Promise<number> {
  const { values } = parse(args, OPTIONS);
  const system = values.system ?? false;
  const settings = new Settings({ socket: values.socket, state_dir: values['state-dir'], global_dir: values['global-dir'], keep: values.keep });
  const socketPath = system && !values.socket ? SYSTEM_SOCKET : resolveSocket(settings.value('socket') ?? undefined).path;
  const stateDir = system && !values['state-dir'] ? SYSTEM_STATE_DIR : resolveStateDir(settings.value('state_dir') ?? undefined);
  const { startDaemon } = await import('../../daemon/main.js');
  const gd = settings.value('global_dir');
  const d = await startDaemon({
    socketPath,
    stateDir,
    system,
    readyFd: values['ready-fd'] !== undefined ? parseIntOption(values['ready-fd'], '--ready-fd', 0, 65535) : null,
    globalDir: gd ? resolve(gd) : null,
    defaultKeep: parseIntOption(settings.value('keep')!, '--keep'),
    adminGroup: values['admin-group'] ?? (system ? 'lockd-admin' : null),
  });
  await new Promise<void>((done) => {
    const graceful = (sig: string) => {
      d.core.log.info('signal received; stopping', { signal: sig });
      void d.stop(false).then(done);
    };
    process.once('SIGTERM', () => graceful('SIGTERM'));
    process.once('SIGINT', () => graceful('SIGINT'));
    process.on('SIGHUP', () => d.core.log.info('SIGHUP ignored'));
    d.server.on('close', () => undefined);
  });
  return 0;
}
