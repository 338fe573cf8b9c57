/**
 * Service files: the shipped templates, `lockd service print|install|uninstall` (the real CLI), systemd's own
 * verifier on the rendered units, socket activation for real, and the launchd property lists.
 */
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, REPO, baseEnv, lockd, readJson, stopProcess, tempDir, waitForFile } from './helpers/lockd.js';
import { planService, serviceDir } from '../src/service/plan.js';
import { GENERATED_MARK, renderSystemdUnit, type RenderContext } from '../src/service/render.js';
import { systemdExecWord } from '../src/service/quoting.js';

const SCRIPT = realpathSync(CLI);

function has(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0;
}

/** A scratch dir removed after the test; HOME/XDG dirs for the CLI point into it. */
function scratch(t: { teardown(fn: () => void): void }): string {
  const dir = tempDir('svc');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function cliEnv(dir: string, extra: NodeJS.ProcessEnv = {}): { env: NodeJS.ProcessEnv } {
  const env = baseEnv(dir);
  delete env.XDG_CONFIG_HOME;
  return { env: { ...env, HOME: join(dir, 'home'), ...extra } };
}

/** systemd-analyze verify on the given unit files; returns its exit code and output. */
function verify(files: string[], opts: { user?: boolean; runtimeDir?: string } = {}): { status: number | null; output: string } {
  const env = { ...process.env, SYSTEMD_LOG_COLOR: '0', ...(opts.runtimeDir ? { XDG_RUNTIME_DIR: opts.runtimeDir } : {}) };
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', ...(opts.user ? ['--user'] : []), ...files], { env, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** Lines of systemd-analyze's output that are about our units (it may also grumble about the host's). */
function aboutOurUnits(output: string): string[] {
  return output.split('\n').filter((l) => /lockd\.(socket|service)|test\.service/.test(l));
}

const HAS_ANALYZE = has('systemd-analyze');
const HAS_SOCKET_ACTIVATE = has('systemd-socket-activate');
const INSTALL_HINT = "apt-get install -y systemd (Debian's systemd package ships systemd-analyze and systemd-socket-activate)";

// ------------------------------------------------------------------------------------------------ templates

test('shipped systemd templates: socket activation on /run/lockd/lockd.sock, root:lockd 0660, and the documented service settings', (t) => {
  const socket = readFileSync(join(REPO, 'systemd/lockd.socket'), 'utf8');
  t.regex(socket, /^ListenStream=\/run\/lockd\/lockd\.sock$/m);
  t.regex(socket, /^SocketMode=0660$/m);
  t.regex(socket, /^SocketGroup=lockd$/m);
  t.regex(socket, /^WantedBy=sockets\.target$/m);
  const service = readFileSync(join(REPO, 'systemd/lockd.service'), 'utf8');
  t.regex(service, /^ExecStart=\/usr\/local\/bin\/lockd daemon --system$/m);
  for (const line of ['KillMode=process', 'Restart=on-failure', 'StateDirectory=lockd', 'RuntimeDirectory=lockd', 'RuntimeDirectoryPreserve=yes', 'OOMPolicy=continue', 'Requires=lockd.socket']) {
    t.regex(service, new RegExp(`^${line.replace(/\./g, '\\.')}$`, 'm'), line);
  }
  // Hardening that would break jobs stays off (it is only discussed in comments).
  for (const key of ['ProtectSystem', 'ProtectHome', 'PrivateTmp', 'NoNewPrivileges', 'PrivateDevices']) t.notRegex(service, new RegExp(`^${key}=`, 'm'), key);
  const userSocket = readFileSync(join(REPO, 'systemd/user/lockd.socket'), 'utf8');
  t.regex(userSocket, /^ListenStream=%t\/lockd\/lockd\.sock$/m);
  t.regex(userSocket, /^SocketMode=0600$/m);
  const userService = readFileSync(join(REPO, 'systemd/user/lockd.service'), 'utf8');
  t.regex(userService, /^ExecStart=\/usr\/local\/bin\/lockd daemon --socket %t\/lockd\/lockd\.sock --state-dir %S\/lockd$/m);
  t.regex(userService, /^KillMode=process$/m);
});

test('launchd templates are valid property lists with ProgramArguments, KeepAlive, RunAtLoad and log paths', (t) => {
  for (const [file, args] of [
    ['launchd/com.lockd.agent.plist', ['/usr/local/bin/lockd', 'daemon', '--socket', '@USER_SOCKET@', '--state-dir', '@USER_STATE_DIR@']],
    ['launchd/com.lockd.daemon.plist', ['/usr/local/bin/lockd', 'daemon', '--system']],
  ] as const) {
    const p = parsePlist(join(REPO, file));
    t.deepEqual(p.ProgramArguments, [...args], file);
    t.is(p.RunAtLoad, true, file);
    t.deepEqual(p.KeepAlive, { SuccessfulExit: false }, file);
    t.is(typeof p.StandardOutPath, 'string', file);
    t.is(typeof p.StandardErrorPath, 'string', file);
    t.is(p.Label, file.includes('agent') ? 'com.lockd.agent' : 'com.lockd.daemon');
  }
});

/** Parse a plist with python3's plistlib (python3 is on every machine of this project's kind). */
function parsePlist(path: string): Record<string, unknown> {
  const r = spawnSync('python3', ['-c', 'import json,plistlib,sys; print(json.dumps(plistlib.load(open(sys.argv[1],"rb"))))', path], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`plistlib could not parse ${path}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

// ------------------------------------------------------------------------------------------------ print

test('service print shows every unit with its destination and the resolved node and lockd paths', async (t) => {
  const dir = scratch(t);
  const r = await lockd(cliEnv(dir, { XDG_CONFIG_HOME: join(dir, 'cfg') }), ['service', 'print', '--user', '--manager', 'systemd']);
  t.is(r.code, 0, r.stderr);
  t.true(r.stdout.includes(`# ==> ${join(dir, 'cfg', 'systemd', 'user', 'lockd.socket')} <==`));
  t.true(r.stdout.includes(`# ==> ${join(dir, 'cfg', 'systemd', 'user', 'lockd.service')} <==`));
  t.true(r.stdout.includes(`ExecStart=${process.execPath} ${SCRIPT} daemon --socket %t/lockd/lockd.sock --state-dir %S/lockd`));
  t.false(r.stdout.includes('ExecStart=/usr/local/bin/lockd'));
});

test('service print FILE prints that file alone; an unknown FILE is a usage error naming the files', async (t) => {
  const dir = scratch(t);
  const r = await lockd(cliEnv(dir), ['service', 'print', '--system', '--manager', 'systemd', 'lockd.service']);
  t.is(r.code, 0, r.stderr);
  t.true(r.stdout.startsWith(`# ${GENERATED_MARK}`));
  t.regex(r.stdout, new RegExp(`^ExecStart=${escapeRe(process.execPath)} ${escapeRe(SCRIPT)} daemon --system$`, 'm'));
  t.false(r.stdout.includes('# ==>'));
  const bad = await lockd(cliEnv(dir), ['service', 'print', '--system', '--manager', 'systemd', 'nope.service']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /lockd\.socket, lockd\.service/);
});

test('service usage errors: no subcommand, --user with --system, an unknown manager', async (t) => {
  const dir = scratch(t);
  for (const args of [['service'], ['service', 'frobnicate'], ['service', 'print', '--user', '--system'], ['service', 'print', '--manager', 'upstart']]) {
    const r = await lockd(cliEnv(dir), args);
    t.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
  }
});

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

// ------------------------------------------------------------------------------------------------ systemd-analyze

async function printUnits(dir: string, scope: 'user' | 'system', outDir: string): Promise<string[]> {
  mkdirSync(outDir, { recursive: true });
  const files: string[] = [];
  for (const name of ['lockd.socket', 'lockd.service']) {
    const r = await lockd(cliEnv(dir), ['service', 'print', `--${scope}`, '--manager', 'systemd', name]);
    if (r.code !== 0) throw new Error(`service print ${name}: ${r.stderr}`);
    const path = join(outDir, name);
    writeFileSync(path, r.stdout);
    files.push(path);
  }
  return files;
}

if (HAS_ANALYZE) {
  test('the rendered system units pass systemd-analyze verify', async (t) => {
    const dir = scratch(t);
    const files = await printUnits(dir, 'system', join(dir, 'system'));
    const v = verify(files);
    t.is(v.status, 0, v.output);
    t.deepEqual(aboutOurUnits(v.output), [], v.output);
  });

  test('the rendered user units pass systemd-analyze verify --user', async (t) => {
    const dir = scratch(t);
    const files = await printUnits(dir, 'user', join(dir, 'user'));
    const runtime = join(dir, 'runtime');
    mkdirSync(runtime, { mode: 0o700 });
    const v = verify(files, { user: true, runtimeDir: runtime });
    t.is(v.status, 0, v.output);
    t.deepEqual(aboutOurUnits(v.output), [], v.output);
  });

  test('install paths with spaces, % and $ survive systemd quoting (verify finds the binary)', (t) => {
    const dir = scratch(t);
    const odd = join(dir, 'node dir 50% $HOME');
    mkdirSync(odd);
    const node = join(odd, 'node');
    symlinkSync(process.execPath, node);
    const ctx: RenderContext = { manager: 'systemd', scope: 'system', nodePath: node, scriptPath: SCRIPT, home: dir, userSocket: '', userStateDir: '', packageRoot: REPO };
    const unit = renderSystemdUnit('test.service', '[Service]\nExecStart=/usr/local/bin/lockd daemon --system\n', ctx);
    t.true(unit.includes(`ExecStart="${odd.replace('%', '%%')}/node" ${SCRIPT} daemon --system`));
    const path = join(dir, 'test.service');
    writeFileSync(path, unit);
    const v = verify([path]);
    t.is(v.status, 0, v.output);
    // The verifier really checks ExecStart: a path that does not exist fails it.
    writeFileSync(path, renderSystemdUnit('test.service', '[Service]\nExecStart=/usr/local/bin/lockd daemon\n', { ...ctx, nodePath: join(odd, 'missing') }));
    t.not(verify([path]).status, 0);
  });
} else {
  test(`systemd-analyze is not installed, so the units are not verified (install: ${INSTALL_HINT})`, (t) => {
    t.false(HAS_ANALYZE);
    t.log(`SKIPPED systemd-analyze verify: the tool is absent. ${INSTALL_HINT}`);
  });
}

test('systemd quoting: arguments double % and $, executables refuse what systemd refuses', (t) => {
  t.is(systemdExecWord('/opt/lockd/bin/lockd.js'), '/opt/lockd/bin/lockd.js');
  t.is(systemdExecWord('/opt/a b/lockd.js'), '"/opt/a b/lockd.js"');
  t.is(systemdExecWord('/opt/50%/x$y.js'), '/opt/50%%/x$$y.js');
  t.is(systemdExecWord('/opt/say "hi"/x'), '"/opt/say \\"hi\\"/x"');
  t.is(systemdExecWord('/opt/x$y/node', 'executable'), '/opt/x$y/node');
  const err = t.throws(() => systemdExecWord("/opt/it's/node", 'executable'));
  t.regex(err!.message, /does not accept quotes/);
});

// ------------------------------------------------------------------------------------------------ socket activation

if (HAS_SOCKET_ACTIVATE) {
  test('socket activation: the daemon serves the socket systemd-socket-activate hands it as fd 3', async (t) => {
    const dir = scratch(t);
    const env = baseEnv(dir);
    const socket = env.LOCKD_SOCKET!;
    const proc = spawn('systemd-socket-activate', ['-l', socket, process.execPath, CLI, 'daemon', '--socket', socket, '--state-dir', env.LOCKD_STATE_DIR!], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    proc.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    t.teardown(() => stopProcess(proc));
    await waitForFile(socket);
    // The first connection makes systemd-socket-activate exec the daemon in its own process.
    const ping = await lockd({ env }, ['ping', '--json']);
    t.is(ping.code, 0, `${ping.stderr} ${stderr}`);
    t.is((JSON.parse(ping.stdout) as { pid: number }).pid, proc.pid!);
    const run = await lockd({ env }, ['run', '--root', dir, '--lock', 'activated', '--', 'sh', '-c', 'echo served-by-activated-daemon']);
    t.is(run.code, 0, run.stderr);
    t.true(run.stdout.includes('served-by-activated-daemon'));
    const log = readFileSync(join(env.LOCKD_STATE_DIR!, 'daemon.log'), 'utf8');
    t.regex(log, /"inherited_socket":true/);
    await stopProcess(proc);
    t.true(proc.exitCode !== null || proc.signalCode !== null, 'the daemon exited on SIGTERM');
  });
} else {
  test(`systemd-socket-activate is not installed, so socket activation is not exercised (install: ${INSTALL_HINT})`, (t) => {
    t.false(HAS_SOCKET_ACTIVATE);
    t.log(`SKIPPED socket activation: the tool is absent. ${INSTALL_HINT}`);
  });
}

// ------------------------------------------------------------------------------------------------ install / uninstall

test('install --user writes to $XDG_CONFIG_HOME/systemd/user, tells the next commands, and is idempotent', async (t) => {
  const dir = scratch(t);
  const e = cliEnv(dir, { XDG_CONFIG_HOME: join(dir, 'cfg') });
  const unitDir = join(dir, 'cfg', 'systemd', 'user');
  const r = await lockd(e, ['service', 'install', '--user', '--manager', 'systemd']);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(readdirSync(unitDir).sort(), ['lockd.service', 'lockd.socket']);
  t.true(readFileSync(join(unitDir, 'lockd.service'), 'utf8').includes(`ExecStart=${process.execPath} ${SCRIPT} daemon`));
  t.regex(r.stdout, /created\s+\S+lockd\.socket/);
  t.true(r.stdout.includes('systemctl --user daemon-reload && systemctl --user enable --now lockd.socket'));
  t.true(r.stdout.includes('loginctl enable-linger $USER'));
  const again = await lockd(e, ['service', 'install', '--user', '--manager', 'systemd']);
  t.is(again.code, 0, again.stderr);
  t.regex(again.stdout, /unchanged\s+\S+lockd\.socket/);
  t.regex(again.stdout, /unchanged\s+\S+lockd\.service/);
});

test('install --user without XDG_CONFIG_HOME uses ~/.config/systemd/user; uninstall removes the units and the enable link', async (t) => {
  const dir = scratch(t);
  const e = cliEnv(dir);
  const unitDir = join(dir, 'home', '.config', 'systemd', 'user');
  t.is(serviceDir('systemd', 'user', e.env), unitDir);
  const r = await lockd(e, ['service', 'install', '--user', '--manager', 'systemd']);
  t.is(r.code, 0, r.stderr);
  t.true(existsSync(join(unitDir, 'lockd.socket')));
  // What `systemctl --user enable lockd.socket` would have made.
  mkdirSync(join(unitDir, 'sockets.target.wants'));
  symlinkSync(join(unitDir, 'lockd.socket'), join(unitDir, 'sockets.target.wants', 'lockd.socket'));
  const u = await lockd(e, ['service', 'uninstall', '--user', '--manager', 'systemd']);
  t.is(u.code, 0, u.stderr);
  t.deepEqual(readdirSync(unitDir), ['sockets.target.wants']);
  t.deepEqual(readdirSync(join(unitDir, 'sockets.target.wants')), []);
  t.true(u.stdout.includes('systemctl --user stop lockd.socket lockd.service && systemctl --user daemon-reload'));
  // Nothing left: a second uninstall reports the files absent and succeeds.
  const u2 = await lockd(e, ['service', 'uninstall', '--user', '--manager', 'systemd']);
  t.is(u2.code, 0, u2.stderr);
  t.regex(u2.stdout, /absent\s+\S+lockd\.service/);
});

test('uninstall keeps a unit it did not write (and its enable link) and exits 1', async (t) => {
  const dir = scratch(t);
  const e = cliEnv(dir, { XDG_CONFIG_HOME: join(dir, 'cfg') });
  const unitDir = join(dir, 'cfg', 'systemd', 'user');
  mkdirSync(join(unitDir, 'sockets.target.wants'), { recursive: true });
  writeFileSync(join(unitDir, 'lockd.socket'), '[Socket]\nListenStream=/tmp/hand-written.sock\n');
  symlinkSync(join(unitDir, 'lockd.socket'), join(unitDir, 'sockets.target.wants', 'lockd.socket'));
  const u = await lockd(e, ['service', 'uninstall', '--user', '--manager', 'systemd']);
  t.is(u.code, 1, u.stderr);
  t.regex(u.stdout, /kept\s+\S+lockd\.socket\s+\(not written by lockd service install/);
  t.true(existsSync(join(unitDir, 'lockd.socket')));
  t.true(existsSync(join(unitDir, 'sockets.target.wants', 'lockd.socket')));
});

test('install --dry-run shows the paths, the files and the next commands, and writes nothing', async (t) => {
  const dir = scratch(t);
  const e = cliEnv(dir, { XDG_CONFIG_HOME: join(dir, 'cfg') });
  const r = await lockd(e, ['service', 'install', '--user', '--manager', 'systemd', '--dry-run']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^Dry run: would write 2 file\(s\) to /);
  t.true(r.stdout.includes(`# ==> ${join(dir, 'cfg', 'systemd', 'user', 'lockd.service')} <==`));
  t.true(r.stdout.includes('ListenStream=%t/lockd/lockd.sock'));
  t.true(r.stdout.includes('systemctl --user enable --now lockd.socket'));
  t.false(existsSync(join(dir, 'cfg')));
  const u = await lockd(e, ['service', 'uninstall', '--user', '--manager', 'systemd', '--dry-run']);
  t.is(u.code, 0, u.stderr);
  t.true(u.stdout.includes(join(dir, 'cfg', 'systemd', 'user', 'sockets.target.wants', 'lockd.socket')));
});

test('system scope goes to /etc/systemd/system and asks for the lockd group (plan only: nothing is written)', (t) => {
  const plan = planService({ manager: 'systemd', scope: 'system', uid: 0, env: { HOME: '/root' } });
  t.is(plan.dir, '/etc/systemd/system');
  t.deepEqual(
    plan.files.map((f) => f.path),
    ['/etc/systemd/system/lockd.socket', '/etc/systemd/system/lockd.service'],
  );
  t.true(plan.afterInstall.some((l) => l.includes('groupadd --system lockd')));
  t.true(plan.afterInstall.some((l) => l.startsWith('systemctl daemon-reload && systemctl enable --now lockd.socket')));
  // Scope defaults: root gets the system daemon, anyone else their own.
  t.is(planService({ manager: 'systemd', uid: 0, env: { HOME: '/root' } }).scope, 'system');
  t.is(planService({ manager: 'systemd', uid: 1000, env: { HOME: '/home/u' } }).scope, 'user');
});

// ------------------------------------------------------------------------------------------------ launchd

test('launchd agent: rendered plist runs node + bin/lockd.js on the client default socket, installs to ~/Library/LaunchAgents', async (t) => {
  const dir = scratch(t);
  const home = join(dir, 'home');
  const socket = join(dir, 'agent.sock');
  const e = cliEnv(dir, { LOCKD_SOCKET: socket, XDG_STATE_HOME: join(dir, 'xstate') });
  delete e.env.LOCKD_STATE_DIR;
  const r = await lockd(e, ['service', 'install', '--user', '--manager', 'launchd']);
  t.is(r.code, 0, r.stderr);
  const path = join(home, 'Library', 'LaunchAgents', 'com.lockd.agent.plist');
  const p = parsePlist(path);
  t.deepEqual(p.ProgramArguments, [process.execPath, SCRIPT, 'daemon', '--socket', socket, '--state-dir', join(dir, 'xstate', 'lockd')]);
  t.is(p.StandardOutPath, join(home, 'Library', 'Logs', 'lockd-agent.log'));
  t.is(p.RunAtLoad, true);
  t.false(readFileSync(path, 'utf8').includes('@'), 'no placeholder left');
  const uid = process.getuid!();
  t.true(r.stdout.includes(`launchctl bootstrap gui/${uid} ${path}`));
  const u = await lockd(e, ['service', 'uninstall', '--user', '--manager', 'launchd']);
  t.is(u.code, 0, u.stderr);
  t.false(existsSync(path));
  t.true(u.stdout.includes(`launchctl bootout gui/${uid}/com.lockd.agent`));
});

test('launchd daemon: rendered plist is valid and runs `daemon --system` from /Library/LaunchDaemons', async (t) => {
  const dir = scratch(t);
  const r = await lockd(cliEnv(dir), ['service', 'print', '--system', '--manager', 'launchd', 'com.lockd.daemon.plist']);
  t.is(r.code, 0, r.stderr);
  const file = join(dir, 'daemon.plist');
  writeFileSync(file, r.stdout);
  const p = parsePlist(file);
  t.deepEqual(p.ProgramArguments, [process.execPath, SCRIPT, 'daemon', '--system']);
  t.is(p.UserName, 'root');
  t.deepEqual(p.KeepAlive, { SuccessfulExit: false });
  const plan = planService({ manager: 'launchd', scope: 'system', uid: 0, env: { HOME: '/var/root' } });
  t.deepEqual(
    plan.files.map((f) => f.path),
    ['/Library/LaunchDaemons/com.lockd.daemon.plist'],
  );
  t.true(plan.afterInstall.some((l) => l.includes('launchctl bootstrap system /Library/LaunchDaemons/com.lockd.daemon.plist')));
});

test('paths are escaped for XML in the rendered plist', (t) => {
  const plan = planService({ manager: 'launchd', scope: 'user', uid: 501, env: { HOME: '/Users/a&b', LOCKD_SOCKET: '/tmp/<s>.sock' } });
  const text = plan.files[0]!.content;
  t.true(text.includes('<string>/tmp/&lt;s&gt;.sock</string>'));
  t.true(text.includes('/Users/a&amp;b/Library/Logs/lockd-agent.log'));
  const dir = scratch(t);
  const file = join(dir, 'agent.plist');
  writeFileSync(file, text);
  t.is(parsePlist(file).StandardErrorPath, '/Users/a&b/Library/Logs/lockd-agent.log');
});

test('the generated mark and the resolved paths appear in every rendered file', (t) => {
  for (const manager of ['systemd', 'launchd'] as const) {
    for (const scope of ['user', 'system'] as const) {
      const plan = planService({ manager, scope, uid: 1000, env: { HOME: '/home/u' } });
      for (const f of plan.files) {
        t.true(f.content.includes(GENERATED_MARK), `${manager} ${scope} ${f.name}`);
        t.true(f.content.includes(SCRIPT), `${manager} ${scope} ${f.name}`);
        t.false(/^ExecStart=\/usr\/local\/bin\/lockd/m.test(f.content));
        t.false(f.content.includes('<string>/usr/local/bin/lockd</string>'));
      }
    }
  }
  t.is(readJson<{ name: string }>(join(REPO, 'package.json')).name, 'lockd');
});
