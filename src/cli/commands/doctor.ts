/**
 * `lockd doctor`: look for what makes lockd misbehave on this machine and say how to fix it — unsafe socket or
 * state directories, a daemon older or newer than this client, user services that stop at logout, stale lock
 * metadata, a full disk under the runs root. Read-only: it changes nothing.
 */
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { COMMON_OPTIONS, parse } from '../args.js';
import { connectOptions } from '../common.js';
import { Settings } from '../settings.js';
import { request } from '../../client/connection.js';
import { lookOnly } from '../../client/connect-options.js';
import { currentUser } from '../../client/holder.js';
import { errnoCode, isLockdError } from '../../util/errors.js';
import { SYSTEM_SOCKET } from '../../util/paths.js';
import { LOCKD_VERSION, PROTOCOL_VERSION } from '../../protocol/version.js';
import type { DaemonInfo } from '../../protocol/messages.js';
import { CLUSTER_CLIENT_MISSING, requireEtcd3 } from '../../cluster/etcd-module.js';
import { describeLockBackend, lockBackendOf } from '../lock-backend.js';
import { EXIT } from '../exit-codes.js';
import { styleFor } from '../render/style.js';
import { runCleanStale } from './clean-stale.js';

const OPTIONS = { ...COMMON_OPTIONS, root: { type: 'string' }, json: { type: 'boolean' } } as const;

export const DOCTOR_HELP = `Usage: lockd doctor [--root DIR] [--json]

Check this machine's lockd setup and print what to fix:
  - the socket directory and the state directory: yours, not writable by others
  - the daemon (if one runs): same version and protocol as this client, and its job launcher
  - the lock backend (lock files on this host, or an etcd cluster for --global locks) and what chose
    it; with a cluster configured and no daemon running, that its client (etcd3) is installed
  - user services: lingering enabled (loginctl), so the daemon survives logout
  - stale lock metadata (a clean-stale dry run over the global locks and the build root, default .)
  - free disk space in the runs root
Read-only. Exit status: 0 when nothing needs fixing (warnings allowed), 1 otherwise.

Example:
  lockd doctor --root build
`;

export type CheckLevel = 'ok' | 'warn' | 'fail' | 'skip';
export interface Check {
  name: string;
  level: CheckLevel;
  message: string;
  fix?: string;
}

const GiB = 1024 ** 3;

function myUid(): number | null {
  return typeof process.getuid === 'function' ? process.getuid() : null;
}

async function statOrNull(p: string) {
  try {
    return await fsp.stat(p);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') return null;
    throw e;
  }
}

/** A private directory: ours, and nobody else may write into it (the daemon refuses to start otherwise). */
async function checkPrivateDir(name: string, dir: string, what: string): Promise<Check> {
  const st = await statOrNull(dir);
  if (!st) return { name, level: 'ok', message: `${what} ${dir} does not exist yet (created with mode 700 on first use)` };
  if (!st.isDirectory()) return { name, level: 'fail', message: `${what} ${dir} is not a directory`, fix: `remove it, or point lockd elsewhere` };
  const uid = myUid();
  const mode = (st.mode & 0o777).toString(8);
  if (uid !== null && st.uid !== uid)
    return { name, level: 'fail', message: `${what} ${dir} belongs to uid ${st.uid}, not to you (uid ${uid})`, fix: `chown ${uid} ${dir}, or use a directory of your own` };
  if ((st.mode & 0o022) !== 0) return { name, level: 'fail', message: `${what} ${dir} is writable by others (mode ${mode})`, fix: `chmod 700 ${dir}` };
  return { name, level: 'ok', message: `${what} ${dir} (mode ${mode}, yours)` };
}

async function checkSocketDir(socketPath: string): Promise<Check> {
  // A named pipe lives in no directory (stat of \\.\pipe fails): what guards it is said in docs/windows.md.
  if (process.platform === 'win32') return { name: 'socket', level: 'skip', message: `named pipe ${socketPath}: no socket directory on Windows` };
  if (socketPath === SYSTEM_SOCKET) {
    // The system daemon's socket is group-shared on purpose; what matters is that we may use it.
    try {
      await fsp.access(socketPath, 6 /* R_OK | W_OK */);
      return { name: 'socket', level: 'ok', message: `system socket ${socketPath} is usable` };
    } catch (e) {
      return {
        name: 'socket',
        level: 'fail',
        message: `system socket ${socketPath}: ${(e as Error).message}`,
        fix: `add yourself to the lockd group: sudo usermod -aG lockd ${currentUser()} (then log in again)`,
      };
    }
  }
  return checkPrivateDir('socket', dirname(socketPath), 'socket directory');
}

async function checkDaemon(opts: ReturnType<typeof connectOptions>, noAutostart: boolean): Promise<{ check: Check; running: boolean; info?: DaemonInfo }> {
  try {
    const pong = await request(lookOnly(opts), { type: 'ping' }, ['pong']);
    if (pong.protocol !== PROTOCOL_VERSION) {
      return {
        running: true,
        check: {
          name: 'daemon',
          level: 'fail',
          message: `the daemon (lockd ${pong.version}, pid ${pong.pid}) speaks protocol ${pong.protocol}, this client ${PROTOCOL_VERSION}`,
          fix: 'restart it: lockd shutdown (a new one starts on first use)',
        },
      };
    }
    if (pong.version !== LOCKD_VERSION) {
      return {
        running: true,
        check: {
          name: 'daemon',
          level: 'fail',
          message: `the daemon is lockd ${pong.version} (pid ${pong.pid}), this client is ${LOCKD_VERSION}`,
          fix: 'restart it when idle: lockd shutdown (a new one starts on first use)',
        },
      };
    }
    const launcher = pong.launcher ? `; jobs start with the ${pong.launcher.name} launcher (${pong.launcher.detail}; ${pong.launcher.reason})` : '';
    return {
      running: true,
      info: pong,
      check: { name: 'daemon', level: 'ok', message: `daemon lockd ${pong.version} (protocol ${pong.protocol}), pid ${pong.pid}, ${pong.mode} mode, same as this client${launcher}` },
    };
  } catch (e) {
    if (isLockdError(e, 'daemon_not_running')) {
      return noAutostart
        ? {
            running: false,
            check: {
              name: 'daemon',
              level: 'warn',
              message: `no daemon answers on ${opts.socketPath} and ${opts.autostartOffReason ?? 'auto-start is off'}`,
              fix: 'start one: lockd daemon (or install the service)',
            },
          }
        : { running: false, check: { name: 'daemon', level: 'ok', message: `no daemon running on ${opts.socketPath}; one starts on first use` } };
    }
    if (isLockdError(e)) return { running: false, check: { name: 'daemon', level: 'fail', message: e.message, fix: 'check the socket path and permissions (lockd config)' } };
    throw e;
  }
}

/**
 * Which lock backend is in use, and why: the running daemon's own answer; with none running, what a daemon started
 * now (same environment and lockd.json files) would use, and whether it could load its cluster client (etcd3).
 */
async function checkLockBackend(daemon: { running: boolean; info?: DaemonInfo }, stateDir: string): Promise<Check> {
  const name = 'locks';
  if (daemon.running) {
    const lb = daemon.info?.lock_backend;
    if (!lb) return { name, level: 'skip', message: 'the daemon does not say which lock backend it uses (an older lockd)' };
    return { name, level: 'ok', message: `the running daemon (pid ${daemon.info!.pid}) uses ${describeLockBackend(lb)}; why: ${lb.reason}` };
  }
  let backend;
  try {
    backend = lockBackendOf({}, stateDir);
  } catch (e) {
    return { name, level: 'fail', message: `the cluster settings are wrong: ${(e as Error).message}`, fix: 'lockd config shows each setting and where it comes from' };
  }
  const lb = backend.info;
  if (lb.kind === 'cluster') {
    try {
      await requireEtcd3();
    } catch (e) {
      if (!isLockdError(e, CLUSTER_CLIENT_MISSING)) throw e;
      return { name, level: 'fail', message: `${e.message} (${lb.reason}: a daemon would not start)`, fix: 'npm install etcd3 (next to lockd), or unset the cluster setting' };
    }
  }
  return { name, level: 'ok', message: `a daemon started now would use ${describeLockBackend(lb)}; why: ${lb.reason}` };
}

function run(cmd: string, args: string[]): Promise<{ ok: boolean; stdout: string }> {
  return new Promise((r) => {
    execFile(cmd, args, { timeout: 10_000, encoding: 'utf8' }, (err, stdout) => r({ ok: !err, stdout: stdout ?? '' }));
  });
}

async function checkLinger(): Promise<Check> {
  const name = 'linger';
  if (process.platform !== 'linux') return { name, level: 'skip', message: 'lingering is a systemd matter; not on this platform' };
  const unitDir = join(process.env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'systemd', 'user');
  const installed = (await statOrNull(join(unitDir, 'lockd.service'))) !== null || (await statOrNull(join(unitDir, 'lockd.socket'))) !== null;
  const user = currentUser();
  const r = await run('loginctl', ['show-user', user, '-p', 'Linger']);
  const m = /^Linger=(yes|no)$/m.exec(r.stdout);
  if (!r.ok || !m)
    return { name, level: 'skip', message: installed ? `cannot ask loginctl whether ${user} lingers (no systemd login manager?)` : 'no lockd user service installed; lingering does not matter' };
  if (m[1] === 'yes') return { name, level: 'ok', message: `lingering is enabled for ${user}: user services survive logout` };
  if (!installed) return { name, level: 'ok', message: `lingering is off for ${user}, but no lockd user service is installed (auto-started daemons are not affected)` };
  return { name, level: 'fail', message: `lingering is off for ${user}: the lockd user service stops at logout, killing the runs it supervises`, fix: `loginctl enable-linger ${user}` };
}

async function checkStale(values: { socket?: string | undefined; 'state-dir'?: string | undefined }, root: string): Promise<Check> {
  const name = 'stale-locks';
  try {
    const { result, globalDir } = await runCleanStale({ socket: values.socket, 'state-dir': values['state-dir'], root: [root] }, true);
    const where = `${root} and ${globalDir}`;
    if (result.removed.length) {
      return {
        name,
        level: 'fail',
        message: `${result.removed.length} stale lock meta file(s) under ${where}: ${result.removed
          .slice(0, 3)
          .map((r) => r.path)
          .join(', ')}${result.removed.length > 3 ? ', …' : ''}`,
        fix: `lockd clean-stale --root ${root}`,
      };
    }
    const unreadable = result.kept.filter((k) => k.reason === 'unreadable_meta');
    if (unreadable.length)
      return {
        name,
        level: 'warn',
        message: `unreadable lock meta file(s) whose lock someone may hold: ${unreadable.map((k) => k.path).join(', ')}`,
        fix: 'look at them; lockd clean-stale removes them once nobody holds the lock',
      };
    return { name, level: 'ok', message: `no stale lock metadata under ${where}` };
  } catch (e) {
    return { name, level: 'fail', message: `cannot check for stale locks: ${(e as Error).message}` };
  }
}

async function checkDisk(runsRoot: string): Promise<Check> {
  const name = 'disk';
  let dir = resolve(runsRoot);
  // The runs root may not exist yet: measure the filesystem it will be created on.
  while (!(await statOrNull(dir)) && dirname(dir) !== dir) dir = dirname(dir);
  let st;
  try {
    st = await fsp.statfs(dir);
  } catch (e) {
    return { name, level: 'skip', message: `cannot measure free space at ${dir}: ${(e as Error).message}` };
  }
  const free = st.bavail * st.bsize;
  const total = st.blocks * st.bsize;
  const text = `${(free / GiB).toFixed(1)} GiB free of ${(total / GiB).toFixed(1)} GiB for the runs root ${runsRoot}`;
  if (free < GiB) return { name, level: 'fail', message: text, fix: `free space, or prune old runs: lockd gc (runs root ${runsRoot})` };
  if (total > 0 && free / total < 0.05) return { name, level: 'warn', message: `${text} (under 5%)`, fix: 'consider pruning old runs: lockd gc' };
  return { name, level: 'ok', message: text };
}

export async function doctorCommand(args: string[]): Promise<number> {
  const { values } = parse(args, OPTIONS);
  const settings = new Settings({ socket: values.socket, state_dir: values['state-dir'], build_root: values.root });
  const opts = connectOptions(values, settings);
  const noAuto = !opts.autostart;
  const root = resolve(settings.value('build_root')!);
  const runsSetting = settings.value('runs_root');
  const runsRoot = runsSetting ? resolve(runsSetting) : settings.get('build_root').source !== 'default' ? join(root, 'runs') : join(opts.stateDir, 'runs');

  const checks: Check[] = [];
  checks.push(await checkSocketDir(opts.socketPath));
  checks.push(await checkPrivateDir('state-dir', opts.stateDir, 'state directory'));
  const daemon = await checkDaemon(opts, noAuto);
  checks.push(daemon.check);
  checks.push(await checkLockBackend(daemon, opts.stateDir));
  checks.push(await checkLinger());
  checks.push(await checkStale(values, root));
  checks.push(await checkDisk(runsRoot));

  const failed = checks.some((c) => c.level === 'fail');
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ ok: !failed, checks })}\n`);
  } else {
    const style = styleFor(process.stdout);
    const tag: Record<CheckLevel, string> = { ok: style.green('ok  '), warn: style.yellow('warn'), fail: style.red('FAIL'), skip: style.dim('skip') };
    for (const c of checks) {
      process.stdout.write(`${tag[c.level]}  ${c.name.padEnd(11)} ${c.message}\n`);
      if (c.fix && c.level !== 'ok') process.stdout.write(`      ${' '.repeat(11)} fix: ${c.fix}\n`);
    }
    process.stdout.write(failed ? '\nsome checks failed; see the fixes above\n' : '\nall good\n');
  }
  return failed ? 1 : EXIT.OK;
}
