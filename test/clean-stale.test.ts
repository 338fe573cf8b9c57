import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanStale, type CleanStaleOptions } from '../src/daemon/services/clean-stale.js';
import { prepareLockFile, writeMeta, type LockMeta } from '../src/daemon/records/lock-files.js';
import { processStartTime } from '../src/util/proc.js';
import { outsideHolder, within } from './flock-helpers.js';

const MY_UID = process.getuid!();

const dirs: string[] = [];
test.after.always(async () => {
  await Promise.all(dirs.map((d) => fsp.rm(d, { recursive: true, force: true })));
});

interface Layout {
  root: string;
  build: string;
  globalDir: string;
  /** <build>/riscv64/.locks/qemu.lock */
  qemu: string;
}

async function layout(): Promise<Layout> {
  const root = await fsp.realpath(await fsp.mkdtemp(join(tmpdir(), 'lockd-clean-')));
  dirs.push(root);
  const build = join(root, 'build');
  const globalDir = join(root, 'global');
  const qemu = join(build, 'riscv64', '.locks', 'qemu.lock');
  await prepareLockFile(qemu, { uid: MY_UID });
  await fsp.mkdir(globalDir);
  return { root, build, globalDir, qemu };
}

/** A live child to own locks; killed by pid when the test ends. */
async function liveChild(t: { teardown(fn: () => void | Promise<void>): void }): Promise<{ pid: number; startTime: string }> {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await within(new Promise<void>((resolve, reject) => child.once('spawn', resolve).once('error', reject)), 20_000, 'sleep to start');
  t.teardown(async () => {
    child.kill('SIGKILL');
    await within(exited, 20_000, 'sleep to exit');
  });
  const startTime = await processStartTime(child.pid!);
  if (startTime === null) throw new Error('no start time for a live child');
  return { pid: child.pid!, startTime };
}

/** The pid and start time of a process that has exited and been reaped. */
async function deadProcess(): Promise<{ pid: number; startTime: string }> {
  const child: ChildProcess = spawn('sleep', ['60'], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await within(new Promise<void>((resolve, reject) => child.once('spawn', resolve).once('error', reject)), 20_000, 'sleep to start');
  const startTime = await processStartTime(child.pid!);
  child.kill('SIGKILL');
  await within(exited, 20_000, 'sleep to exit');
  return { pid: child.pid!, startTime: startTime! };
}

function meta(pid: number, startTime: string | null, extra: Partial<LockMeta> = {}): LockMeta {
  return {
    pid,
    pid_start_time: startTime,
    start_utc: new Date().toISOString(),
    start_epoch: Math.floor(Date.now() / 1000),
    cwd: '/work',
    cmd: 'make run',
    run_id: 'r-1',
    holder: 'alice',
    lockd_pid: process.pid,
    ...extra,
  };
}

function options(l: Layout, extra: Partial<CleanStaleOptions> = {}): CleanStaleOptions {
  return { roots: [l.build], globalDir: l.globalDir, isHeldByDaemon: () => false, ...extra };
}

async function exists(path: string): Promise<boolean> {
  return fsp.lstat(path).then(
    () => true,
    () => false,
  );
}

test('a recycled pid (live pid, different start time) is stale: its meta goes, its lock file stays', async (t) => {
  const l = await layout();
  const child = await liveChild(t);
  await writeMeta(l.qemu, meta(child.pid, `${child.startTime}-not-this-one`));
  const result = await cleanStale(options(l));
  t.deepEqual(result.removed, [{ path: `${l.qemu}.meta`, lockPath: l.qemu, pid: child.pid, reason: 'pid_reused', holder: 'alice', lockFileRemoved: false }]);
  t.deepEqual(result.kept, []);
  t.false(await exists(`${l.qemu}.meta`));
  t.true(await exists(l.qemu));
});

test('a live owner (same pid and start time) is kept', async (t) => {
  const l = await layout();
  const child = await liveChild(t);
  await writeMeta(l.qemu, meta(child.pid, child.startTime));
  const result = await cleanStale(options(l));
  t.deepEqual(result.removed, []);
  t.deepEqual(result.kept, [{ path: `${l.qemu}.meta`, lockPath: l.qemu, pid: child.pid, reason: 'owner_alive', holder: 'alice' }]);
  t.true(await exists(`${l.qemu}.meta`));
});

test('a dead owner is removed; removeLockFiles also removes its free lock file', async (t) => {
  const l = await layout();
  const dead = await deadProcess();
  await writeMeta(l.qemu, meta(dead.pid, dead.startTime));
  const result = await cleanStale(options(l, { removeLockFiles: true }));
  t.is(result.removed.length, 1);
  t.like(result.removed[0], { reason: 'owner_dead', pid: dead.pid, lockFileRemoved: true });
  t.false(await exists(`${l.qemu}.meta`));
  t.false(await exists(l.qemu));
});

test('a lock the daemon holds is never touched, even with a dead owner in its meta', async (t) => {
  const l = await layout();
  const dead = await deadProcess();
  await writeMeta(l.qemu, meta(dead.pid, dead.startTime));
  const result = await cleanStale(options(l, { isHeldByDaemon: (p) => p === l.qemu, removeLockFiles: true }));
  t.deepEqual(result.removed, []);
  t.like(result.kept[0], { reason: 'held_by_daemon', lockPath: l.qemu });
  t.true(await exists(`${l.qemu}.meta`));
  t.true(await exists(l.qemu));
});

test('a lock someone holds a flock on is kept; once they let go the stale meta is removed', async (t) => {
  const l = await layout();
  const dead = await deadProcess();
  await writeMeta(l.qemu, meta(dead.pid, dead.startTime));
  const outside = await outsideHolder(l.qemu);
  try {
    const busy = await cleanStale(options(l));
    t.deepEqual(busy.removed, []);
    t.like(busy.kept[0], { reason: 'flock_held', pid: dead.pid });
    t.true(await exists(`${l.qemu}.meta`));
  } finally {
    await outside.stop();
  }
  const free = await cleanStale(options(l));
  t.like(free.removed[0], { reason: 'owner_dead' });
  t.false(await exists(`${l.qemu}.meta`));
});

test('dry run reports what would go and removes nothing', async (t) => {
  const l = await layout();
  const dead = await deadProcess();
  await writeMeta(l.qemu, meta(dead.pid, dead.startTime));
  const result = await cleanStale(options(l, { dryRun: true, removeLockFiles: true }));
  t.like(result.removed[0], { reason: 'owner_dead', lockFileRemoved: false });
  t.true(await exists(`${l.qemu}.meta`));
  t.true(await exists(l.qemu));
});

test('scans <root>/.locks, <root>/*/.locks and the global dir; idle lock files are left alone and not reported', async (t) => {
  const l = await layout();
  const dead = await deadProcess();
  const rootLock = join(l.build, '.locks', 'global-deps-fetch.lock');
  const armLock = join(l.build, 'aarch64', '.locks', 'image.lock');
  const globalLock = join(l.globalDir, 'global-net.lock');
  const idle = join(l.build, 'aarch64', '.locks', 'test.lock');
  for (const lock of [rootLock, armLock, globalLock, idle]) await prepareLockFile(lock, { uid: MY_UID });
  for (const lock of [rootLock, armLock, globalLock, l.qemu]) await writeMeta(lock, meta(dead.pid, dead.startTime));
  const result = await cleanStale(options(l));
  t.deepEqual(result.removed.map((r) => r.lockPath).sort(), [rootLock, armLock, globalLock, l.qemu].sort());
  t.deepEqual(result.kept, []);
  t.true(await exists(idle));
  t.deepEqual((await fsp.readdir(join(l.build, 'aarch64', '.locks'))).filter((f) => f !== '.gitignore').sort(), ['image.lock', 'test.lock']);
});

test('legacy metas without a start time: a dead pid is removed, a live pid is kept', async (t) => {
  const l = await layout();
  const dead = await deadProcess();
  const child = await liveChild(t);
  const other = join(l.build, 'riscv64', '.locks', 'image.lock');
  await prepareLockFile(other, { uid: MY_UID });
  await fsp.writeFile(`${l.qemu}.meta`, `pid=${dead.pid}\nstart_utc=2024-01-01T00:00:00Z\nstart_epoch=1704067200\ncwd=/src\ncmd=make run\n`);
  await fsp.writeFile(`${other}.meta`, `pid=${child.pid}\nstart_utc=2024-01-01T00:00:00Z\ncmd=make image\n`);
  const result = await cleanStale(options(l));
  t.deepEqual(
    result.removed.map((r) => [r.lockPath, r.reason]),
    [[l.qemu, 'owner_dead']],
  );
  t.deepEqual(
    result.kept.map((r) => [r.lockPath, r.reason]),
    [[other, 'owner_alive']],
  );
});

test('an unreadable meta is removed only when a flock proves nobody holds the lock', async (t) => {
  const l = await layout();
  await fsp.writeFile(`${l.qemu}.meta`, 'pid=');
  const noProbe = await cleanStale(options(l, { flockBackend: 'none' }));
  t.like(noProbe.kept[0], { reason: 'unreadable_meta', pid: null });
  t.true(await exists(`${l.qemu}.meta`));

  const outside = await outsideHolder(l.qemu);
  try {
    const busy = await cleanStale(options(l));
    t.like(busy.kept[0], { reason: 'flock_held' });
  } finally {
    await outside.stop();
  }
  const probed = await cleanStale(options(l));
  t.like(probed.removed[0], { reason: 'unreadable_meta', pid: null });
  t.false(await exists(`${l.qemu}.meta`));
});

test('with the perl probe too: a flock held outside keeps the meta', async (t) => {
  const l = await layout();
  const dead = await deadProcess();
  await writeMeta(l.qemu, meta(dead.pid, dead.startTime));
  const outside = await outsideHolder(l.qemu);
  try {
    const result = await cleanStale(options(l, { flockBackend: 'perl' }));
    t.like(result.kept[0], { reason: 'flock_held' });
  } finally {
    await outside.stop();
  }
  t.like((await cleanStale(options(l, { flockBackend: 'perl' }))).removed[0], { reason: 'owner_dead' });
});

test('a stale meta whose lock file is gone is judged by its pid alone', async (t) => {
  const l = await layout();
  const dead = await deadProcess();
  await writeMeta(l.qemu, meta(dead.pid, dead.startTime));
  await fsp.unlink(l.qemu);
  const result = await cleanStale(options(l));
  t.like(result.removed[0], { reason: 'owner_dead', lockFileRemoved: false });
  t.false(await exists(`${l.qemu}.meta`));
});

test('a .locks symlink owned by someone else is skipped, not followed', async (t) => {
  const l = await layout();
  const dead = await deadProcess();
  const elsewhere = join(l.root, 'elsewhere');
  await fsp.mkdir(elsewhere);
  await fsp.writeFile(join(elsewhere, 'x.lock.meta'), JSON.stringify(meta(dead.pid, dead.startTime)));
  await fsp.mkdir(join(l.build, 'mips'));
  const link = join(l.build, 'mips', '.locks');
  await fsp.symlink(elsewhere, link);
  // The requesting uid is neither root nor the link's owner.
  let uid = MY_UID + 1;
  if (MY_UID === 0) {
    await fsp.lchown(link, 65534, 65534);
    uid = 65533;
  }
  const result = await cleanStale(options(l, { uid }));
  t.deepEqual(
    result.skipped.map((s) => s.path),
    [link],
  );
  t.true(await exists(join(elsewhere, 'x.lock.meta')));
});
