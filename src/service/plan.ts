/**
 * What `lockd service install|uninstall|print` does on this machine: which manager and scope, where the files
 * go, and which commands the user runs next. Pure (no writes), so print, --dry-run and install share it.
 */
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { LockdError } from '../util/errors.js';
import { defaultUserSocket, resolveStateDir } from '../util/paths.js';
import { lockdScriptPath, packageRoot } from './package-files.js';
import { renderServiceFiles, type RenderContext, type ServiceManager, type ServiceScope } from './render.js';

export interface PlannedFile {
  name: string;
  template: string;
  /** Absolute destination. */
  path: string;
  content: string;
}

export interface ServicePlan {
  manager: ServiceManager;
  scope: ServiceScope;
  /** The directory the files go to. */
  dir: string;
  files: PlannedFile[];
  /** Links `systemctl enable` creates for these units; uninstall removes them (that is what disabling is). */
  enableLinks: string[];
  /** Commands to run after install, and after uninstall (comments after `#`). */
  afterInstall: string[];
  afterUninstall: string[];
  render: RenderContext;
}

export interface PlanOptions {
  manager?: ServiceManager;
  scope?: ServiceScope;
  env?: NodeJS.ProcessEnv;
  platform?: NodeJS.Platform;
  uid?: number;
  nodePath?: string;
  packageRoot?: string;
}

/** systemd on Linux, launchd on macOS; nothing else has a service manager lockd knows. */
export function defaultManager(platform: NodeJS.Platform = process.platform): ServiceManager {
  if (platform === 'linux') return 'systemd';
  if (platform === 'darwin') return 'launchd';
  throw new LockdError('unsupported_platform', `lockd service supports systemd (Linux) and launchd (macOS), not ${platform}; run 'lockd daemon' under your service manager instead`);
}

/** root manages the host's daemon; everyone else their own. */
export function defaultScope(uid: number = typeof process.getuid === 'function' ? process.getuid() : 0): ServiceScope {
  return uid === 0 ? 'system' : 'user';
}

function homeOf(env: NodeJS.ProcessEnv): string {
  return env.HOME && isAbsolute(env.HOME) ? env.HOME : homedir();
}

/** Where the files go. systemd --user reads $XDG_CONFIG_HOME/systemd/user (default ~/.config/systemd/user). */
export function serviceDir(manager: ServiceManager, scope: ServiceScope, env: NodeJS.ProcessEnv = process.env): string {
  const home = homeOf(env);
  if (manager === 'systemd') {
    if (scope === 'system') return '/etc/systemd/system';
    const config = env.XDG_CONFIG_HOME && isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : join(home, '.config');
    return join(config, 'systemd', 'user');
  }
  return scope === 'system' ? '/Library/LaunchDaemons' : join(home, 'Library', 'LaunchAgents');
}

function nextSteps(manager: ServiceManager, scope: ServiceScope, files: PlannedFile[], uid: number): { afterInstall: string[]; afterUninstall: string[] } {
  if (manager === 'systemd') {
    const sc = scope === 'user' ? 'systemctl --user' : 'systemctl';
    const afterInstall =
      scope === 'user'
        ? [
            'lockd shutdown   # only if a daemon was auto-started on the same socket before; the socket unit takes over its path',
            `${sc} daemon-reload && ${sc} enable --now lockd.socket`,
            'loginctl enable-linger $USER   # keep the daemon and its jobs running after you log out, and start it at boot',
            'lockd ping   # starts the daemon through the socket and shows it answering',
          ]
        : [
            'getent group lockd || groupadd --system lockd   # who may use the daemon: root and members of lockd',
            "getent group lockd-admin || groupadd --system lockd-admin   # who may kill or release other users' runs and holds",
            'usermod -aG lockd USERNAME   # for each user of the daemon (effective at their next login)',
            `${sc} daemon-reload && ${sc} enable --now lockd.socket`,
            'lockd ping   # as a member of lockd: answers in system mode',
          ];
    const afterUninstall = [`${sc} stop lockd.socket lockd.service && ${sc} daemon-reload`];
    return { afterInstall, afterUninstall };
  }
  const plist = files[0]!.path;
  if (scope === 'user') {
    return {
      afterInstall: [`launchctl bootout gui/${uid}/com.lockd.agent 2>/dev/null   # only when upgrading an agent that is already loaded`, `launchctl bootstrap gui/${uid} ${plist}`, 'lockd ping'],
      afterUninstall: [`launchctl bootout gui/${uid}/com.lockd.agent`],
    };
  }
  return {
    afterInstall: ['sudo launchctl bootout system/com.lockd.daemon 2>/dev/null   # only when upgrading a daemon that is already loaded', `sudo launchctl bootstrap system ${plist}`, 'lockd ping'],
    afterUninstall: ['sudo launchctl bootout system/com.lockd.daemon'],
  };
}

/** Everything `lockd service` needs to know, resolved for this machine and user. */
export function planService(opts: PlanOptions = {}): ServicePlan {
  const env = opts.env ?? process.env;
  const uid = opts.uid ?? (typeof process.getuid === 'function' ? process.getuid() : 0);
  const manager = opts.manager ?? defaultManager(opts.platform);
  const scope = opts.scope ?? defaultScope(uid);
  const root = opts.packageRoot ?? packageRoot();
  const home = homeOf(env);
  const render: RenderContext = {
    manager,
    scope,
    nodePath: opts.nodePath ?? process.execPath,
    scriptPath: lockdScriptPath(root),
    home,
    // The agent must listen where this user's clients look: LOCKD_SOCKET if they set it, else the default.
    userSocket: env.LOCKD_SOCKET && isAbsolute(env.LOCKD_SOCKET) ? env.LOCKD_SOCKET : defaultUserSocket(env),
    userStateDir: resolveStateDir(undefined, env),
    packageRoot: root,
  };
  const dir = serviceDir(manager, scope, env);
  const files = renderServiceFiles(render).map((f) => ({ ...f, path: join(dir, f.name) }));
  const enableLinks = manager === 'systemd' ? [join(dir, 'sockets.target.wants', 'lockd.socket')] : [];
  return { manager, scope, dir, files, enableLinks, ...nextSteps(manager, scope, files, uid), render };
}
