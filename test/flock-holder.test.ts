import test from 'ava';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlockHolder } from '../src/daemon/records/flock-holder.js';
import { prepareLockFile } from '../src/daemon/records/lock-files.js';
import { loadNative } from '../src/util/peercred.js';
import { flockNonBlocking, outsideHolder, within } from './flock-helpers.js';

const BACKENDS = ['native', 'perl'] as const;

const dirs: string[] = [];
test.after.always(async () => {
  await Promise.all(dirs.map((d) => fsp.rm(d, { recursive: true, force: true })));
});

async function lockFile(): Promise<string> {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'lockd-flock-'));
  dirs.push(dir);
  const file = join(dir, '.locks', 'global-deps-fetch.lock');
  await prepareLockFile(file, { uid: process.getuid!() });
  return file;
}

test('the native addon is built, so the native backend is tested', (t) => {
  t.not(loadNative(), null, 'build it with `node-gyp rebuild` (the install script)');
});

for (const backend of BACKENDS) {
  test(`${backend}: while FlockHolder holds the lock, flock -n fails; after unlock it succeeds`, async (t) => {
    const file = await lockFile();
    const holder = new FlockHolder({ backend });
    try {
      t.true(await holder.tryLock(file, 'ex'));
      t.true(holder.isLocked(file));
      t.is(await flockNonBlocking(file), 1);
      t.is(await flockNonBlocking(file, true), 1);
      await holder.unlock(file);
      t.false(holder.isLocked(file));
      t.is(await flockNonBlocking(file), 0);
    } finally {
      await holder.close();
    }
  });

  test(`${backend}: a shared flock admits flock -s and excludes flock -x`, async (t) => {
    const file = await lockFile();
    const holder = new FlockHolder({ backend });
    try {
      t.true(await holder.tryLock(file, 'sh'));
      t.is(await flockNonBlocking(file, true), 0);
      t.is(await flockNonBlocking(file), 1);
    } finally {
      await holder.close();
    }
  });

  test(`${backend}: tryLock is false while \`flock <file> sleep 60\` holds it, true once that is gone`, async (t) => {
    const file = await lockFile();
    const holder = new FlockHolder({ backend });
    const outside = await outsideHolder(file);
    try {
      t.false(await holder.tryLock(file, 'ex'));
      t.false(await holder.tryLock(file, 'sh'));
      t.false(holder.isLocked(file));
    } finally {
      await outside.stop();
    }
    try {
      t.true(await holder.tryLock(file, 'ex'));
    } finally {
      await holder.close();
    }
  });

  test(`${backend}: shared with an outside shared holder, excluded by it for exclusive`, async (t) => {
    const file = await lockFile();
    const holder = new FlockHolder({ backend });
    const outside = await outsideHolder(file, true);
    try {
      t.false(await holder.tryLock(file, 'ex'));
      t.true(await holder.tryLock(file, 'sh'));
    } finally {
      await outside.stop();
      await holder.close();
    }
  });

  test(`${backend}: same mode again is true, the other mode is flock_mode_conflict`, async (t) => {
    const file = await lockFile();
    const holder = new FlockHolder({ backend });
    try {
      t.true(await holder.tryLock(file, 'ex'));
      t.true(await holder.tryLock(file, 'ex'));
      const err = await t.throwsAsync(holder.tryLock(file, 'sh'));
      t.is((err as { code?: string }).code, 'flock_mode_conflict');
      // Not counted: one unlock releases it.
      await holder.unlock(file);
      t.is(await flockNonBlocking(file), 0);
    } finally {
      await holder.close();
    }
  });

  test(`${backend}: a symlinked lock file is refused, a missing one is ENOENT`, async (t) => {
    const file = await lockFile();
    const link = `${file}.link.lock`;
    await fsp.symlink(file, link);
    const holder = new FlockHolder({ backend });
    try {
      const err = await t.throwsAsync(holder.tryLock(link, 'ex'));
      t.is((err as { code?: string }).code, 'unsafe_lock_path');
      const missing = await t.throwsAsync(holder.tryLock(`${file}.missing`, 'ex'));
      t.is((missing as { code?: string }).code, 'ENOENT');
      t.is(await flockNonBlocking(file), 0);
    } finally {
      await holder.close();
    }
  });

  test(`${backend}: two holders in one process exclude each other; close releases everything`, async (t) => {
    const a = await lockFile();
    const b = await lockFile();
    const first = new FlockHolder({ backend });
    const second = new FlockHolder({ backend });
    try {
      t.true(await first.tryLock(a, 'ex'));
      t.true(await first.tryLock(b, 'sh'));
      t.false(await second.tryLock(a, 'ex'));
      t.false(await second.tryLock(b, 'ex'));
      await first.close();
      t.is(await flockNonBlocking(a), 0);
      t.is(await flockNonBlocking(b), 0);
      t.true(await second.tryLock(a, 'ex'));
      const closed = await t.throwsAsync(first.tryLock(a, 'ex'));
      t.is((closed as { code?: string }).code, 'flock_closed');
    } finally {
      await first.close();
      await second.close();
    }
  });

  test(`${backend}: concurrent tryLocks of one path agree`, async (t) => {
    const file = await lockFile();
    const holder = new FlockHolder({ backend });
    try {
      const answers = await Promise.all([holder.tryLock(file, 'ex'), holder.tryLock(file, 'ex'), holder.tryLock(file, 'ex')]);
      t.deepEqual(answers, [true, true, true]);
      t.is(await flockNonBlocking(file), 1);
    } finally {
      await holder.close();
    }
  });
}

test('diagnostics name the backend; only the perl backend has a helper process', async (t) => {
  const native = new FlockHolder({ backend: 'native' });
  const perl = new FlockHolder({ backend: 'perl' });
  try {
    t.like(await native.diagnostics(), { backend: 'native', helperPid: null, held: [] });
    const d = await perl.diagnostics();
    t.is(d.backend, 'perl');
    t.true(typeof d.helperPid === 'number' && d.helperPid > 0);
  } finally {
    await native.close();
    await perl.close();
  }
});

test('auto picks the native addon when it is built', async (t) => {
  const holder = await FlockHolder.open();
  try {
    t.is((await holder!.diagnostics()).backend, 'native');
  } finally {
    await holder?.close();
  }
});

test('perl: a killed helper reports its lost flocks, which are really free, and a new helper takes over', async (t) => {
  const file = await lockFile();
  let reportLost!: (paths: string[]) => void;
  const lost = new Promise<string[]>((resolve) => (reportLost = resolve));
  const holder = new FlockHolder({ backend: 'perl', onLost: (paths) => reportLost(paths) });
  try {
    t.true(await holder.tryLock(file, 'ex'));
    const { helperPid } = await holder.diagnostics();
    process.kill(helperPid!, 'SIGKILL');
    t.deepEqual(await within(lost, 20_000, 'onLost'), [file]);
    t.false(holder.isLocked(file));
    t.is(await flockNonBlocking(file), 0);
    t.true(await holder.tryLock(file, 'ex'));
    const after = await holder.diagnostics();
    t.not(after.helperPid, helperPid);
    t.is(await flockNonBlocking(file), 1);
  } finally {
    await holder.close();
  }
});

test('perl: the helper ignores SIGINT (a Ctrl-C on a foreground daemon must not drop its flocks)', async (t) => {
  const file = await lockFile();
  const holder = new FlockHolder({ backend: 'perl' });
  try {
    t.true(await holder.tryLock(file, 'ex'));
    const { helperPid } = await holder.diagnostics();
    process.kill(helperPid!, 'SIGINT');
    // A signal is handled before the process runs user code again, so a request answered after it proves the
    // helper survived it.
    const other = await lockFile();
    t.true(await holder.tryLock(other, 'ex'));
    t.is((await holder.diagnostics()).helperPid, helperPid);
    t.is(await flockNonBlocking(file), 1);
  } finally {
    await holder.close();
  }
});
