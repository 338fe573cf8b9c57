import test from 'ava';
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isUsableDirectory, openLockFile, parseMeta, prepareLockFile, readMeta, removeMeta, writeMeta, type LockMeta } from '../src/daemon/records/lock-files.js';

const MY_UID = process.getuid!();
const IS_ROOT = MY_UID === 0;
/** Some other unprivileged uid: as root we can give files to it; otherwise files stay ours. */
const OTHER_UID = 65534;

const dirs: string[] = [];
test.after.always(async () => {
  await Promise.all(dirs.map((d) => fsp.rm(d, { recursive: true, force: true })));
});

async function tempRoot(): Promise<string> {
  // realpath: macOS's tmpdir is behind the /var -> private/var symlink.
  const dir = await fsp.realpath(await fsp.mkdtemp(join(tmpdir(), 'lockd-lockfiles-')));
  dirs.push(dir);
  return dir;
}

/**
 * A uid that owns `paths` and is not root, so a symlink among them is judged by the "requesting uid owns link
 * and target" rule rather than the "root planted it" one. As root: chown to OTHER_UID; otherwise: our own uid.
 */
async function ownAsUnprivileged(...paths: string[]): Promise<number> {
  if (!IS_ROOT) return MY_UID;
  for (const p of paths) await fsp.lchown(p, OTHER_UID, OTHER_UID);
  return OTHER_UID;
}

/** A symlink owned by neither root nor the uid that will request the lock; returns that requesting uid. */
async function foreignSymlink(target: string, link: string): Promise<number> {
  await fsp.symlink(target, link);
  if (IS_ROOT) {
    await fsp.lchown(link, OTHER_UID, OTHER_UID);
    return OTHER_UID - 1;
  }
  return MY_UID + 1;
}

function sampleMeta(overrides: Partial<LockMeta> = {}): LockMeta {
  return {
    pid: 1234,
    pid_start_time: '987654',
    start_utc: '2025-01-02T03:04:05.000Z',
    start_epoch: 1735787045,
    cwd: '/work/kernel',
    cmd: "./scripts/run-qemu-test.sh 'smoke test'",
    run_id: '250102-0304-7f3a',
    holder: 'ci:github:acme/kernel#1-1/test@r:1234',
    lockd_pid: 99,
    ...overrides,
  };
}

test('prepareLockFile creates the .locks directory and an empty regular lock file, and is idempotent', async (t) => {
  const root = await tempRoot();
  const lock = join(root, 'build', 'riscv64', '.locks', 'qemu.lock');
  await prepareLockFile(lock, { uid: MY_UID });
  const st = await fsp.lstat(lock);
  t.true(st.isFile());
  t.is(st.size, 0);
  await prepareLockFile(lock, { uid: MY_UID });
  t.deepEqual((await fsp.readdir(join(root, 'build', 'riscv64', '.locks'))).sort(), ['.gitignore', 'qemu.lock']);
});

test('prepareLockFile gives created directories and files to the requesting uid (root daemon) or leaves them ours', async (t) => {
  const root = await tempRoot();
  const expected = IS_ROOT ? OTHER_UID : MY_UID;
  const lock = join(root, 'b', '.locks', 'x.lock');
  await prepareLockFile(lock, { uid: expected });
  t.is((await fsp.stat(join(root, 'b'))).uid, expected);
  t.is((await fsp.stat(join(root, 'b', '.locks'))).uid, expected);
  t.is((await fsp.stat(lock)).uid, expected);
});

test('writeMeta writes the meta JSON next to the lock; readMeta reads it back; removeMeta keeps the .lock', async (t) => {
  const root = await tempRoot();
  const lock = join(root, '.locks', 'global-deps-fetch.lock');
  await prepareLockFile(lock, { uid: MY_UID });
  const meta = sampleMeta({ mode: 'ex' });
  await writeMeta(lock, meta);

  const onDisk = JSON.parse(await fsp.readFile(`${lock}.meta`, 'utf8')) as Record<string, unknown>;
  t.deepEqual(onDisk, { ...meta });
  for (const key of ['pid', 'start_utc', 'start_epoch', 'cwd', 'cmd', 'run_id', 'holder', 'lockd_pid', 'pid_start_time']) {
    t.true(key in onDisk, key);
  }
  t.deepEqual(await readMeta(lock), meta);
  // The atomic write leaves no temp file behind.
  t.deepEqual((await fsp.readdir(join(root, '.locks'))).sort(), ['.gitignore', 'global-deps-fetch.lock', 'global-deps-fetch.lock.meta']);

  await writeMeta(lock, sampleMeta({ run_id: undefined, hold_id: 'h-1', pid: 77 }));
  t.is((await readMeta(lock))?.hold_id, 'h-1');

  await removeMeta(lock);
  t.is(await readMeta(lock), null);
  t.deepEqual((await fsp.readdir(join(root, '.locks'))).sort(), ['.gitignore', 'global-deps-fetch.lock']);
  await t.notThrowsAsync(removeMeta(lock));
});

test('readMeta: legacy key=value metas and JSON without a start time are read; garbage is bad_meta', async (t) => {
  const root = await tempRoot();
  const lock = join(root, 'q.lock');
  await fsp.writeFile(`${lock}.meta`, 'pid=4321\nstart_utc=2024-05-01T00:00:00Z\nstart_epoch=1714521600\ncwd=/src\ncmd=make run\n');
  t.deepEqual(await readMeta(lock), { pid: 4321, start_utc: '2024-05-01T00:00:00Z', start_epoch: 1714521600, cwd: '/src', cmd: 'make run' });

  await fsp.writeFile(`${lock}.meta`, JSON.stringify({ pid: 5, cmd: 'x', pid_start_time: 123 }));
  t.deepEqual(await readMeta(lock), { pid: 5, cmd: 'x', pid_start_time: '123' });

  for (const garbage of ['', 'not a meta', '{"pid": -1}', '[1,2]', '{"pid": "12x"}']) {
    await fsp.writeFile(`${lock}.meta`, garbage);
    const err = await t.throwsAsync(readMeta(lock));
    t.is((err as { code?: string }).code, 'bad_meta', garbage);
  }
  t.is(parseMeta('pid=0'), null);
});

test('a .locks directory that is a symlink owned by another user is refused and nothing is written through it', async (t) => {
  const root = await tempRoot();
  const victim = join(root, 'victim');
  await fsp.mkdir(victim);
  await fsp.mkdir(join(root, 'build', 'riscv64'), { recursive: true });
  const uid = await foreignSymlink(victim, join(root, 'build', 'riscv64', '.locks'));
  const err = await t.throwsAsync(prepareLockFile(join(root, 'build', 'riscv64', '.locks', 'qemu.lock'), { uid }));
  t.is((err as { code?: string }).code, 'unsafe_lock_path');
  t.deepEqual(await fsp.readdir(victim), []);
});

test('an arch directory that is a foreign symlink is refused too (any component of the lock path)', async (t) => {
  const root = await tempRoot();
  const elsewhere = join(root, 'elsewhere');
  await fsp.mkdir(elsewhere);
  await fsp.mkdir(join(root, 'build'));
  const uid = await foreignSymlink(elsewhere, join(root, 'build', 'riscv64'));
  const err = await t.throwsAsync(prepareLockFile(join(root, 'build', 'riscv64', '.locks', 'qemu.lock'), { uid }));
  t.is((err as { code?: string }).code, 'unsafe_lock_path');
  t.deepEqual(await fsp.readdir(elsewhere), []);
});

test('a symlinked .locks owned by the requesting uid, pointing to its own directory, is followed', async (t) => {
  const root = await tempRoot();
  const real = join(root, 'real-locks');
  await fsp.mkdir(real);
  await fsp.mkdir(join(root, 'build'));
  await fsp.symlink(real, join(root, 'build', '.locks'));
  const uid = await ownAsUnprivileged(real, join(root, 'build', '.locks'));
  await prepareLockFile(join(root, 'build', '.locks', 'x.lock'), { uid });
  t.deepEqual(await fsp.readdir(real), ['x.lock']);
  t.true(await isUsableDirectory(join(root, 'build', '.locks'), uid));
});

test('a symlink owned by the requesting uid but pointing at a directory of someone else (root) is refused', async (t) => {
  const root = await tempRoot();
  await fsp.mkdir(join(root, 'build'));
  const link = join(root, 'build', '.locks');
  await fsp.symlink('/', link);
  const uid = await ownAsUnprivileged(link);
  const name = `lockd-test-${process.pid}.lock`;
  const err = await t.throwsAsync(prepareLockFile(join(link, name), { uid }));
  t.is((err as { code?: string }).code, 'unsafe_lock_path');
  t.regex((err as Error).message, /directory owned by uid 0/);
  await t.throwsAsync(fsp.lstat(join('/', name)), { code: 'ENOENT' });
});

test('a planted lock-file symlink (x.lock -> a victim file) is refused, never written through', async (t) => {
  const root = await tempRoot();
  const victim = join(root, 'passwd');
  await fsp.writeFile(victim, 'root:x:0:0\n');
  await fsp.mkdir(join(root, '.locks'));
  const lock = join(root, '.locks', 'x.lock');
  await fsp.symlink(victim, lock);
  const err = await t.throwsAsync(prepareLockFile(lock, { uid: MY_UID }));
  t.is((err as { code?: string }).code, 'unsafe_lock_path');
  const err2 = await t.throwsAsync(openLockFile(lock));
  t.is((err2 as { code?: string }).code, 'unsafe_lock_path');
  t.is(await fsp.readFile(victim, 'utf8'), 'root:x:0:0\n');
});

test('a planted .meta symlink is replaced by writeMeta, not written through, and not read through', async (t) => {
  const root = await tempRoot();
  const victim = join(root, 'victim.txt');
  await fsp.writeFile(victim, 'precious\n');
  const lock = join(root, 'x.lock');
  await fsp.symlink(victim, `${lock}.meta`);
  const err = await t.throwsAsync(readMeta(lock));
  t.is((err as { code?: string }).code, 'bad_meta');
  await writeMeta(lock, sampleMeta());
  t.is(await fsp.readFile(victim, 'utf8'), 'precious\n');
  t.false((await fsp.lstat(`${lock}.meta`)).isSymbolicLink());
  t.is((await readMeta(lock))?.pid, 1234);
});

test('a FIFO under the lock file name is refused without hanging', async (t) => {
  const root = await tempRoot();
  const lock = join(root, 'x.lock');
  execFileSync('mkfifo', [lock]);
  const err = await t.throwsAsync(prepareLockFile(lock, { uid: MY_UID }));
  t.is((err as { code?: string }).code, 'unsafe_lock_path');
});

test('a path component that is a regular file is refused', async (t) => {
  const root = await tempRoot();
  await fsp.writeFile(join(root, 'build'), '');
  const err = await t.throwsAsync(prepareLockFile(join(root, 'build', '.locks', 'x.lock'), { uid: MY_UID }));
  t.is((err as { code?: string }).code, 'unsafe_lock_path');
});
