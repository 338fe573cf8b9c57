/**
 * `lockd service print|install|uninstall`: service-manager files for this machine (systemd units on Linux,
 * launchd property lists on macOS) that run this very lockd installation. It never runs systemctl or
 * launchctl itself; it writes the files and says which commands come next, so nothing changes behind the
 * user's back and the same output works over ssh, in Ansible, or in a package's post-install script.
 */
import { COMMON_OPTIONS, parse } from '../args.js';
import { EXIT } from '../exit-codes.js';
import { LockdError } from '../../util/errors.js';
import type { ServiceManager, ServiceScope } from '../../service/render.js';
import type { ServicePlan } from '../../service/plan.js';

export const SERVICE_SUBCOMMANDS = ['print', 'install', 'uninstall'] as const;
export const SERVICE_MANAGERS: readonly ServiceManager[] = ['systemd', 'launchd'];

export const SERVICE_OPTIONS = {
  ...COMMON_OPTIONS,
  user: { type: 'boolean' },
  system: { type: 'boolean' },
  'dry-run': { type: 'boolean', short: 'n' },
  manager: { type: 'string' },
} as const;

export const SERVICE_HELP = `Usage: lockd service print [FILE] [--user|--system] [--manager systemd|launchd]
       lockd service install [--user|--system] [--dry-run]
       lockd service uninstall [--user|--system] [--dry-run]

Service files that run this lockd (${'`'}node${'`'} and bin/lockd.js by absolute path) under the machine's service
manager: systemd socket + service units on Linux, a launchd property list on macOS, a Task Scheduler
logon task on Windows (registered with schtasks /Create /XML; per user only).
  print        show the files and where they would go (FILE: print only that one, as is)
  install      write them, then print the commands that enable and start the daemon
  uninstall    remove them (and systemd's enable links), then print the commands that stop it
  --user       your own daemon: ~/.config/systemd/user (XDG_CONFIG_HOME), ~/Library/LaunchAgents
  --system     the host's daemon (root): /etc/systemd/system, /Library/LaunchDaemons
               default: --system when run as root, else --user
  -n, --dry-run  show the files, paths and next commands; write nothing
  --manager M  systemd or launchd (default: this platform's)

Examples:
  lockd service install --user && systemctl --user daemon-reload && systemctl --user enable --now lockd.socket
  sudo lockd service install --system --dry-run
  lockd service print --system lockd.service
See docs/service.md.
`;

type Sub = (typeof SERVICE_SUBCOMMANDS)[number];

function scopeOf(values: { user?: boolean | undefined; system?: boolean | undefined }): ServiceScope | undefined {
  if (values.user && values.system) throw new LockdError('usage', 'choose one of --user and --system');
  return values.user ? 'user' : values.system ? 'system' : undefined;
}

function managerOf(v: string | undefined): ServiceManager | undefined {
  if (v === undefined) return undefined;
  if (!(SERVICE_MANAGERS as readonly string[]).includes(v)) throw new LockdError('usage', `--manager must be systemd or launchd, not ${JSON.stringify(v)}`);
  return v as ServiceManager;
}

function describe(plan: ServicePlan): string {
  const what = plan.manager === 'systemd' ? `systemd ${plan.scope} units` : plan.scope === 'user' ? 'launchd agent' : 'launchd daemon';
  return `${what} running ${plan.render.nodePath} ${plan.render.scriptPath}`;
}

function showFiles(plan: ServicePlan): string {
  return plan.files.map((f) => `# ==> ${f.path} <==\n${f.content.endsWith('\n') ? f.content : `${f.content}\n`}`).join('\n');
}

function commands(title: string, lines: string[]): string {
  return `${title}\n${lines.map((l) => `  ${l}`).join('\n')}\n`;
}

export async function serviceCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, SERVICE_OPTIONS, true);
  const [sub, ...rest] = positionals;
  if (sub === undefined || !(SERVICE_SUBCOMMANDS as readonly string[]).includes(sub)) {
    throw new LockdError('usage', `lockd service needs one of ${SERVICE_SUBCOMMANDS.join(', ')}${sub === undefined ? '' : `, not ${JSON.stringify(sub)}`}; see lockd service --help`);
  }
  const which = sub as Sub;
  if (rest.length > (which === 'print' ? 1 : 0)) throw new LockdError('usage', `unexpected argument ${JSON.stringify(rest[rest.length - 1])}`);
  if (process.platform === 'win32') {
    // Windows: a Task Scheduler logon task instead of unit files (service-windows.ts).
    const { windowsServiceCommand } = await import('./service-windows.js');
    return windowsServiceCommand(which, { dryRun: values['dry-run'] ?? false, system: values.system ?? false });
  }
  const { planService } = await import('../../service/plan.js');
  const scope = scopeOf(values);
  const manager = managerOf(values.manager);
  const plan = planService({ ...(scope ? { scope } : {}), ...(manager ? { manager } : {}) });
  const out = (s: string) => process.stdout.write(s);

  if (which === 'print') {
    const only = rest[0];
    if (only !== undefined) {
      const f = plan.files.find((x) => x.name === only);
      if (!f) throw new LockdError('usage', `no file ${JSON.stringify(only)} for ${plan.manager} --${plan.scope}; the files are ${plan.files.map((x) => x.name).join(', ')}`);
      out(f.content);
      return EXIT.OK;
    }
    out(`# ${describe(plan)}\n\n${showFiles(plan)}`);
    return EXIT.OK;
  }

  const dry = values['dry-run'] ?? false;
  if (which === 'install') {
    if (dry) {
      out(`Dry run: would write ${plan.files.length} file(s) to ${plan.dir} (${describe(plan)}); nothing is written.\n\n${showFiles(plan)}\n`);
      out(commands('Then you would run:', plan.afterInstall));
      return EXIT.OK;
    }
    const { installServiceFiles } = await import('../../service/install.js');
    const done = await installServiceFiles(plan);
    out(`Installed the ${describe(plan)}:\n${done.map((d) => `  ${d.action.padEnd(9)} ${d.path}`).join('\n')}\n`);
    out(commands('Next:', plan.afterInstall));
    return EXIT.OK;
  }

  if (dry) {
    out(`Dry run: would remove from ${plan.dir} (nothing is removed):\n${[...plan.files.map((f) => f.path), ...plan.enableLinks].map((p) => `  ${p}`).join('\n')}\n`);
    out(commands('Then you would run:', plan.afterUninstall));
    return EXIT.OK;
  }
  const { uninstallServiceFiles } = await import('../../service/install.js');
  const done = uninstallServiceFiles(plan);
  out(
    `Uninstalled the ${describe(plan)}:\n${done.map((d) => `  ${d.action === 'kept_not_ours' ? 'kept     ' : d.action.padEnd(9)} ${d.path}${d.action === 'kept_not_ours' ? '   (not written by lockd service install; remove it yourself)' : ''}`).join('\n')}\n`,
  );
  out(commands('Next:', plan.afterUninstall));
  // 1, like a partial failure: the user has a file left to deal with.
  return done.some((d) => d.action === 'kept_not_ours') ? 1 : EXIT.OK;
}
