/** `lockd daemon [--system]`: run the daemon in the foreground (what systemd/launchd and auto-start call). */
import { LockdError } from '../../util/errors.js';
import { COMMON_OPTIONS, parse, parseIntOption } from '../args.js';
import { Settings } from '../settings.js';
import { resolveSocket, resolveStateDir, SYSTEM_SOCKET, SYSTEM_STATE_DIR } from '../../util/paths.js';
import { resolve } from 'node:path';
import type { ClusterConfig } from '../../cluster/config.js';
import { loadClusterBackend } from '../../cluster/etcd-module.js';
import type { ClusterFactory } from '../../daemon/locks/cluster-port.js';
import { lockBackendOf } from '../lock-backend.js';

const OPTIONS = {
  ...COMMON_OPTIONS,
  system: { type: 'boolean' },
  'ready-fd': { type: 'string' },
  'global-dir': { type: 'string' },
  keep: { type: 'string' },
  'admin-group': { type: 'string' },
  'socket-group': { type: 'string' },
  cluster: { type: 'string' },
  'cluster-prefix': { type: 'string' },
  'cluster-ttl': { type: 'string' },
  'cluster-ca': { type: 'string' },
  'cluster-cert': { type: 'string' },
  'cluster-key': { type: 'string' },
  'cluster-user': { type: 'string' },
  'cluster-password': { type: 'string' },
  'on-lock-lost': { type: 'string' },
  'cluster-host': { type: 'string' },
} as const;

export const DAEMON_HELP = `Usage: lockd daemon [--system] [--socket PATH] [--state-dir DIR] [--global-dir DIR] [--admin-group G] [--socket-group G]

Run the lockd daemon in the foreground. Clients start one automatically when none answers;
service managers run this command (see lockd service print).
  --system        the per-host system daemon: socket ${SYSTEM_SOCKET} (group lockd, 0660), state ${SYSTEM_STATE_DIR}
  --admin-group G members may kill/release/--force others' runs and holds (system mode; default lockd-admin)
  --socket-group G  group that may connect to the system socket (root:G 0660; default lockd)
Cluster locks (docs/cluster.md): --global locks shared by every host of an etcd cluster
  --cluster etcd://HOST:PORT[,HOST:PORT...][/PREFIX]   (etcds:// for TLS; env LOCKD_CLUSTER)
  --cluster-prefix P      etcd key prefix (default lockd; keys P/NAME/...; env LOCKD_CLUSTER_PREFIX)
  --cluster-ttl S         lease TTL in seconds (default 10; env LOCKD_CLUSTER_TTL)
  --cluster-ca F  --cluster-cert F  --cluster-key F        TLS (env LOCKD_CLUSTER_CA/_CERT/_KEY)
  --cluster-user U  --cluster-password P                   etcd auth (env LOCKD_CLUSTER_USER/_PASSWORD)
  --on-lock-lost stop|warn  default for runs whose cluster lock is lost (default stop; env LOCKD_ON_LOCK_LOST)
  --cluster-host NAME     this host's name in other hosts' status (default the hostname; env LOCKD_CLUSTER_HOST)
`;

export async function daemonCommand(args: string[]): Promise<number> {
  const { values } = parse(args, OPTIONS);
  const system = values.system ?? false;
  // System mode is uids, groups, a root-owned Unix socket and setpriv: none of it exists on Windows.
  if (system && process.platform === 'win32') throw new LockdError('unsupported_platform', 'lockd daemon --system is not on Windows: run the per-user daemon (auto-started, or lockd service install)');
  const settings = new Settings({ socket: values.socket, state_dir: values['state-dir'], global_dir: values['global-dir'], keep: values.keep });
  const socketPath = system && !values.socket ? SYSTEM_SOCKET : resolveSocket(settings.value('socket') ?? undefined).path;
  const stateDir = system && !values['state-dir'] ? SYSTEM_STATE_DIR : resolveStateDir(settings.value('state_dir') ?? undefined);
  // A configured cluster whose client (the optional package etcd3) cannot load fails here, before anything is claimed.
  const backend = lockBackendOf(values, stateDir);
  const openCluster = await clusterFactory(backend.cluster);
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
    socketGroup: values['socket-group'] ?? (system ? 'lockd' : null),
    openCluster,
    lockBackend: backend.info,
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

/**
 * The daemon's cluster backend: etcd3 is loaded only here, and only with a cluster configured; a missing etcd3 is
 * `cluster_client_missing` (src/cluster/etcd-module.ts).
 */
async function clusterFactory(cfg: ClusterConfig | null): Promise<ClusterFactory | null> {
  if (!cfg) return null;
  const backend = await loadClusterBackend();
  return async (host, log) => backend.openCluster(cfg, host, log);
}
