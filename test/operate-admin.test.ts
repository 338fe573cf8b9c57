/** `lockd config`, `lockd clean-stale`, `lockd doctor`, and every command's --help. */
import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, lockd, baseEnv, tempDir } from './helpers/lockd.js';
import { holdIdOf } from './helpers/operate.js';
import { prepareLockFile, writeMeta, type LockMeta } from '../src/daemon/records/lock-files.js';
import { processStartTime } from '../src/util/proc.js';
import { COMMANDS } from '../src/cli/registry.js';

type Config = { settings: Record<string, { value: string | null; source: string; env: string; flag: string | null }>; files: Record<string, { path: string; exists: boolean }> };

/** A state dir and a build root, no daemon: what `lockd config` reads. */
function configFixture(t: ExecutionContext): { d: { env: NodeJS.ProcessEnv }; root: string } {
  const dir = tempDir();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const d = { env: baseEnv(dir) };
  const root = join(dir, 'build');
  mkdirSync(root);
  mkdirSync(d.env.LOCKD_STATE_DIR!, { recursive: true, mode: 0o700 });
  return { d, root };
}

test('config: flag > env > build-root lockd.json > state-dir lockd.json > default, for every setting shown', async (t) => {
  const { d, root } = configFixture(t);
  const cfg = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
    const r = await lockd(d, ['config', '--json', '--root', root, ...args], { env });
    t.is(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Config;
  };
  const wait = async (args: string[] = [], env: NodeJS.ProcessEnv = {}) => (await cfg(args, env)).settings.wait!;

  t.like(await wait(), { value: '0', source: 'default', env: 'LOCKD_WAIT', flag: '--wait' });
  writeFileSync(join(d.env.LOCKD_STATE_DIR!, 'lockd.json'), JSON.stringify({ wait: 5, ttl: 'none', keep: 3 }));
  t.like(await wait(), { value: '5', source: 'config:state-dir' });
  writeFileSync(join(root, 'lockd.json'), JSON.stringify({ wait: 7 }));
  t.like(await wait(), { value: '7', source: 'config:build-root' });
  t.like(await wait([], { LOCKD_WAIT: '9' }), { value: '9', source: 'env' });
  t.like(await wait(['--wait', '11'], { LOCKD_WAIT: '9' }), { value: '11', source: 'flag' });

  const all = await cfg([]);
  t.like(all.settings.keep, { value: '3', source: 'config:state-dir' });
  t.like(all.settings.build_root, { value: root, source: 'flag' });
  t.like(all.settings.state_dir, { value: d.env.LOCKD_STATE_DIR, source: 'env' });
  t.like(all.settings.socket, { value: d.env.LOCKD_SOCKET, source: 'env' });
  t.like(all.settings.ttl, { value: 'none', source: 'config:state-dir' });
  t.like(all.settings.holder, { source: 'default' });
  t.like(all.files.build_root, { path: join(root, 'lockd.json'), exists: true });
  t.like(all.files.state_dir, { path: join(d.env.LOCKD_STATE_DIR!, 'lockd.json'), exists: true });
  const { SETTINGS } = await import('../src/cli/settings.js');
  t.deepEqual(Object.keys(all.settings).sort(), Object.keys(SETTINGS).sort(), 'every setting is shown');

  const human = await lockd(d, ['config', '--root', root]);
  t.is(human.code, 0);
  t.regex(human.stdout, /^wait +7 +config:build-root +--wait \/ LOCKD_WAIT$/m);
  t.regex(human.stdout, /^keep +3 +config:state-dir/m);
});

test('config: the cluster settings follow the same precedence, and a password is never printed', async (t) => {
  const { d, root } = configFixture(t);
  const secret = 'pw-Zq8-never-shown';
  const run = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
    const r = await lockd(d, ['config', '--root', root, ...args], { env });
    t.is(r.code, 0, r.stderr);
    t.false(r.stdout.includes(secret), `the password leaked into: lockd config ${args.join(' ')}`);
    t.false(r.stderr.includes(secret));
    return r.stdout;
  };
  const cfg = async (args: string[], env: NodeJS.ProcessEnv = {}) => (JSON.parse(await run(['--json', ...args], env)) as Config).settings;

  // Defaults: no cluster; the TTL, prefix and on-lock-lost defaults of lockd daemon.
  let s = await cfg([]);
  t.like(s.cluster, { value: null, source: 'default', env: 'LOCKD_CLUSTER', flag: '--cluster' });
  t.like(s.cluster_ttl, { value: '10', source: 'default', env: 'LOCKD_CLUSTER_TTL', flag: '--cluster-ttl' });
  t.like(s.cluster_prefix, { value: 'lockd', source: 'default' });
  t.like(s.on_lock_lost, { value: 'stop', source: 'default', env: 'LOCKD_ON_LOCK_LOST', flag: '--on-lock-lost' });
  t.like(s.cluster_password, { value: null, source: 'default', env: 'LOCKD_CLUSTER_PASSWORD' });
  t.truthy(s.cluster_host!.value);
  for (const name of ['cluster', 'cluster_prefix', 'cluster_ttl', 'cluster_ca', 'cluster_cert', 'cluster_key', 'cluster_user', 'cluster_password', 'cluster_host', 'on_lock_lost']) {
    t.truthy(s[name], `${name} is shown`);
  }

  // state-dir lockd.json < build-root lockd.json < env < flag, as for every other setting.
  writeFileSync(
    join(d.env.LOCKD_STATE_DIR!, 'lockd.json'),
    JSON.stringify({ cluster: 'etcd://10.0.0.1:2379/team', cluster_ttl: 6, cluster_user: 'ci', cluster_password: secret, on_lock_lost: 'warn' }),
  );
  s = await cfg([]);
  t.like(s.cluster, { value: 'etcd://10.0.0.1:2379/team', source: 'config:state-dir' });
  t.like(s.cluster_prefix, { value: 'team', source: 'default' }, 'the prefix comes from the URL when not set');
  t.like(s.cluster_ttl, { value: '6', source: 'config:state-dir' });
  t.like(s.cluster_user, { value: 'ci', source: 'config:state-dir' });
  t.like(s.cluster_password, { value: '********', source: 'config:state-dir', secret: true });
  t.like(s.on_lock_lost, { value: 'warn', source: 'config:state-dir' });
  writeFileSync(join(root, 'lockd.json'), JSON.stringify({ cluster_ttl: 7 }));
  t.like((await cfg([])).cluster_ttl, { value: '7', source: 'config:build-root' });
  s = await cfg([], { LOCKD_CLUSTER_TTL: '8', LOCKD_CLUSTER_PASSWORD: secret, LOCKD_CLUSTER_PREFIX: 'other' });
  t.like(s.cluster_ttl, { value: '8', source: 'env' });
  t.like(s.cluster_password, { value: '********', source: 'env' });
  t.like(s.cluster_prefix, { value: 'other', source: 'env' });
  s = await cfg(['--cluster-ttl', '9', '--cluster-password', secret, '--cluster', 'etcds://a.example:2379,b.example:2379'], { LOCKD_CLUSTER_TTL: '8' });
  t.like(s.cluster_ttl, { value: '9', source: 'flag' });
  t.like(s.cluster_password, { value: '********', source: 'flag' });
  t.like(s.cluster, { value: 'etcds://a.example:2379,b.example:2379', source: 'flag' });
  t.like(s.cluster_prefix, { value: 'lockd', source: 'default' });

  // The table too: masked, with its source.
  const human = await run([], { LOCKD_CLUSTER_PASSWORD: secret });
  t.regex(human, /^cluster_password +\*{8} +env +--cluster-password \/ LOCKD_CLUSTER_PASSWORD$/m);
  t.regex(human, /^cluster +etcd:\/\/10\.0\.0\.1:2379\/team +config:state-dir/m);
});

/** A process that lives for the test, killed by pid in teardown. */
async function liveProcess(t: { teardown(fn: () => void): void }): Promise<{ pid: number; startTime: string }> {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  await new Promise<void>((resolve, reject) => child.once('spawn', resolve).once('error', reject));
  t.teardown(() => child.kill('SIGKILL'));
  return { pid: child.pid!, startTime: (await processStartTime(child.pid!))! };
}

function meta(pid: number, startTime: string | null, extra: Partial<LockMeta> = {}): LockMeta {
  return { pid, pid_start_time: startTime, start_utc: new Date().toISOString(), start_epoch: Math.floor(Date.now() / 1000), cwd: '/', cmd: 'make', holder: 'alice', lockd_pid: 1, ...extra };
}

type CleanJson = { dry_run: boolean; daemon: boolean; removed: Array<{ path: string; reason: string; pid: number | null }>; kept: Array<{ path: string; reason: string }> };

test('clean-stale: a recycled pid (same number, other start time) is stale; a live owner and a lock the daemon holds are kept', async (t) => {
  const d = await startDaemon(t);
  const root = join(d.dir, 'build');
  const live = await liveProcess(t);
  const recycled = join(root, 'riscv64', '.locks', 'qemu.lock');
  const alive = join(root, '.locks', 'busy.lock');
  for (const p of [recycled, alive]) await prepareLockFile(p, { uid: process.getuid!() });
  // Same pid as a live process, but a start time that process never had: a pid recycled since the meta was written.
  await writeMeta(recycled, meta(live.pid, String(Number(live.startTime) + 12345)));
  await writeMeta(alive, meta(live.pid, live.startTime));
  // A hold's meta names its acquiring client, long gone; only the daemon knows it is still held.
  const a = await lockd(d, ['acquire', '--root', root, 'held', '--holder', 'h']);
  t.is(a.code, 0);
  const held = join(root, '.locks', 'held.lock');
  t.true(existsSync(`${held}.meta`));

  const dry = await lockd(d, ['clean-stale', '--root', root, '--dry-run', '--json']);
  t.is(dry.code, 0, dry.stderr);
  const dj = JSON.parse(dry.stdout) as CleanJson;
  t.true(dj.dry_run);
  t.true(dj.daemon);
  t.deepEqual(
    dj.removed.map((r) => [r.path, r.reason, r.pid]),
    [[`${recycled}.meta`, 'pid_reused', live.pid]],
  );
  t.true(existsSync(`${recycled}.meta`), 'dry run removes nothing');

  const real = await lockd(d, ['clean-stale', '--root', root, '--json']);
  const rj = JSON.parse(real.stdout) as CleanJson;
  t.deepEqual(
    rj.removed.map((r) => r.path),
    [`${recycled}.meta`],
  );
  t.deepEqual(
    rj.kept.map((k) => [k.path, k.reason]).sort(),
    [
      [`${alive}.meta`, 'owner_alive'],
      [`${held}.meta`, 'held_by_daemon'],
    ].sort(),
  );
  t.false(existsSync(`${recycled}.meta`));
  t.true(existsSync(recycled), 'lock files stay');
  t.true(existsSync(`${alive}.meta`));
  t.true(existsSync(`${held}.meta`));
  t.is((await lockd(d, ['inspect', '--root', root, 'held'])).code, 0, 'the hold is untouched');

  const human = await lockd(d, ['clean-stale', '--root', root]);
  t.regex(human.stdout, /kept .*busy\.lock\.meta \(owner is alive/);
  t.regex(human.stdout, /kept .*held\.lock\.meta \(held by the lockd daemon/);
  t.regex(human.stdout, /nothing stale/);
  t.is((await lockd(d, ['release', holdIdOf(a.stdout), '--holder', 'h'])).code, 0);
});

test('clean-stale without a daemon: dead owners go, from build roots and the global lock directory', async (t) => {
  const dir = tempDir();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const d = { env: baseEnv(dir) };
  const root = join(dir, 'b');
  const globalDir = join(dir, 'state', 'locks');
  const dead = spawn('true');
  await new Promise((r) => dead.once('exit', r));
  const local = join(root, '.locks', 'x.lock');
  const global = join(globalDir, 'global-deps.lock');
  for (const p of [local, global]) {
    await prepareLockFile(p, { uid: process.getuid!() });
    await writeMeta(p, meta(dead.pid!, '1'));
  }
  const r = await lockd(d, ['clean-stale', '--root', root, '--json']);
  t.is(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as CleanJson;
  t.false(j.daemon);
  t.deepEqual(j.removed.map((x) => x.path).sort(), [`${global}.meta`, `${local}.meta`].sort());
  t.false(existsSync(`${local}.meta`));
  t.false(existsSync(`${global}.meta`));
});

test('doctor: all good exits 0; a stale meta in the build root or an unsafe state dir exits 1 with the fix', async (t) => {
  const d = await startDaemon(t);
  const root = join(d.dir, 'clean-root');
  mkdirSync(root);
  const good = await lockd(d, ['doctor', '--root', root]);
  t.is(good.code, 0, good.stdout);
  t.regex(good.stdout, /^ok +socket /m);
  t.regex(good.stdout, /^ok +state-dir /m);
  t.regex(good.stdout, /^ok +daemon +daemon lockd \S+ \(protocol \d+\), pid \d+/m);
  t.regex(good.stdout, /^(ok|skip) +linger /m);
  t.regex(good.stdout, /^ok +stale-locks /m);
  t.regex(good.stdout, /^ok +disk .*GiB free/m);
  t.regex(good.stdout, /all good/);

  const dead = spawn('true');
  await new Promise((r) => dead.once('exit', r));
  const lock = join(root, '.locks', 'x.lock');
  await prepareLockFile(lock, { uid: process.getuid!() });
  await writeMeta(lock, meta(dead.pid!, '1'));
  const stale = await lockd(d, ['doctor', '--root', root, '--json']);
  t.is(stale.code, 1);
  const sj = JSON.parse(stale.stdout) as { ok: boolean; checks: Array<{ name: string; level: string; fix?: string }> };
  t.false(sj.ok);
  t.like(
    sj.checks.find((c) => c.name === 'stale-locks'),
    { level: 'fail', fix: `lockd clean-stale --root ${root}` },
  );
  t.true(existsSync(`${lock}.meta`), 'doctor changes nothing');

  t.is((await lockd(d, ['clean-stale', '--root', root])).code, 0);
  chmodSync(d.stateDir, 0o777);
  t.teardown(() => chmodSync(d.stateDir, 0o700));
  const unsafe = await lockd(d, ['doctor', '--root', root]);
  t.is(unsafe.code, 1);
  t.regex(unsafe.stdout, new RegExp(`^FAIL +state-dir +state directory ${d.stateDir} is writable by others \\(mode 777\\)`, 'm'));
  t.regex(unsafe.stdout, new RegExp(`fix: chmod 700 ${d.stateDir}`));
});

test('every new command has --help with a usage line and an example', async (t) => {
  const dir = tempDir();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const env = { env: baseEnv(dir) };
  for (const name of ['status', 'inspect', 'events', 'acquire', 'heartbeat', 'release', 'kill', 'config', 'doctor', 'clean-stale']) {
    t.truthy(COMMANDS[name], name);
    const r = await lockd(env, [name, '--help']);
    t.is(r.code, 0, name);
    t.regex(r.stdout, new RegExp(`^Usage: lockd ${name}`), name);
    t.regex(r.stdout, /\nExamples?:\n {2}\S/, name);
  }
  const usage = await lockd(env, ['--help']);
  for (const name of ['status', 'acquire', 'clean-stale', 'doctor']) t.regex(usage.stdout, new RegExp(`^ {2}${name} `, 'm'));
});
