/**
 * Bad environments: a runs root that is read-only, full or deleted mid-run; corrupt result files; hostile lock
 * names and planted symlinks; a daemon out of file descriptors. Each time the run fails with a clear error and a
 * reason, its locks are released, and the daemon stays up.
 *
 * Tests run as root in CI, where chmod does not stop anyone: read-only and full filesystems are real mounts
 * (`mount -t tmpfs`, read-only or with a 64 KiB size). Where mount is not permitted, those cases say SKIPPED and
 * assert that mount was indeed refused; the "file in place of the directory" variant always runs.
 */
import test, { type ExecutionContext } from 'ava';
import { execFileSync, spawn } from 'node:child_process';
import { createConnection, type Socket } from 'node:net';
import { chownSync, existsSync, lchownSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, lockd, lockdSpawn, tempDir, readJson, printedPaths, baseEnv, CLI, stopProcess, type Daemon } from './helpers/lockd.js';
import { statusOf, cleanupRunsUnder, until, within } from './helpers/crash-kit.js';

/** Mount a tmpfs (unmounted in teardown); the error when mount is not permitted. */
function mountTmpfs(t: ExecutionContext, dir: string, options: string): Error | null {
  mkdirSync(dir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (e) {
    return e as Error;
  }
  t.teardown(() => {
    try {
      execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
  });
  return null;
}

function skipped(t: ExecutionContext, err: Error, what: string): void {
  t.log(`SKIPPED ${what}: mount -t tmpfs is not permitted here (${err.message.split('\n')[0]})`);
  t.truthy(err, 'mount was refused, so this environment cannot be built here');
}

async function lockIsFree(t: ExecutionContext, d: Daemon, root: string, lock: string): Promise<void> {
  const st = await statusOf(d);
  t.deepEqual(
    st.locks.filter((l) => l.name === lock),
    [],
    `no one holds ${lock}`,
  );
  const r = await lockd(d, ['run', '-q', '--root', root, '--runs-root', join(d.dir, 'good-runs'), '--lock', lock, '--wait', '0', '--', 'true']);
  t.is(r.code, 0, `the lock can be taken again: ${r.stderr}`);
}

test('a read-only runs root (read-only mount) and a file in its place: a clear error, nothing held, the daemon serves', async (t) => {
  const d = await startDaemon(t);
  const root = join(d.dir, 'root');
  const file = join(d.dir, 'not-a-dir');
  writeFileSync(file, 'x');
  const r = await lockd(d, ['run', '--root', root, '--runs-root', file, '--lock', 'ro', '--', 'true']);
  t.is(r.code, 125);
  t.regex(r.stderr, new RegExp(`cannot create a run directory under ${file}: (EEXIST|ENOTDIR)`));
  await lockIsFree(t, d, root, 'ro');

  const ro = join(d.dir, 'ro');
  const err = mountTmpfs(t, ro, 'ro,size=64k');
  if (err) return skipped(t, err, 'the read-only mount half');
  const r2 = await lockd(d, ['run', '--root', root, '--runs-root', ro, '--lock', 'ro', '--', 'true']);
  t.is(r2.code, 125);
  t.regex(r2.stderr, /cannot create a run directory under .*: EROFS/);
  await lockIsFree(t, d, root, 'ro');
  t.is((await lockd(d, ['ping'])).code, 0);
});

test('a full runs root: the output that does not fit fails the run with log_write_failed and frees its lock', async (t) => {
  const d = await startDaemon(t);
  cleanupRunsUnder(t, d.dir);
  const root = join(d.dir, 'root');
  const small = join(d.dir, 'small');
  const err = mountTmpfs(t, small, 'size=64k');
  if (err) return skipped(t, err, 'a full filesystem');
  // 256 KiB of output into a 64 KiB filesystem.
  const r = await lockd(d, ['run', '--root', root, '--runs-root', small, '--lock', 'full', '--', 'sh', '-c', 'head -c 262144 /dev/zero | tr "\\0" x; echo; sleep 1; echo never-seen-if-stopped']);
  t.is(r.code, 74, r.stderr);
  t.regex(r.stderr, /ENOSPC|no space/i);
  const resultPath = printedPaths(r.stderr).result!;
  // The result may not fit either: then the client was told so.
  if (existsSync(resultPath)) {
    const res = readJson(resultPath);
    t.is(res.status, 'infra_fail');
    t.is(res.reason, 'log_write_failed');
  } else t.regex(r.stderr, /result.json could not be written/);
  await lockIsFree(t, d, root, 'full');
  t.is((await lockd(d, ['ping'])).code, 0);
});

test('a runs root already full: the run cannot even write its manifest, fails with a reason, never launches, holds nothing', async (t) => {
  const d = await startDaemon(t);
  const root = join(d.dir, 'root');
  const small = join(d.dir, 'small');
  const err = mountTmpfs(t, small, 'size=64k');
  if (err) return skipped(t, err, 'a full filesystem');
  try {
    execFileSync('sh', ['-c', `head -c 1048576 /dev/zero > ${join(small, 'filler')}`], { stdio: 'ignore' });
  } catch {
    /* ENOSPC is the point */
  }
  // The manifest is written while the lock is granted and its files taken: the launch still waits for it.
  const marker = join(d.dir, 'launched');
  const r = await lockd(d, ['run', '--root', root, '--runs-root', small, '--lock', 'pre', '--', 'touch', marker]);
  t.true(r.code === 74 || r.code === 125, `exit ${r.code}: ${r.stderr}`);
  t.regex(r.stderr, /ENOSPC|no space/i);
  t.false(existsSync(marker), 'the command never ran');
  await lockIsFree(t, d, root, 'pre');
  t.is((await lockd(d, ['ping'])).code, 0);
});

test('the runs root deleted mid-run: the run ends infra_fail / log_write_failed with a clear message, its lock free', async (t) => {
  const d = await startDaemon(t);
  cleanupRunsUnder(t, d.dir);
  const root = join(d.dir, 'root');
  const runs = join(d.dir, 'doomed');
  const go = join(d.dir, 'go');
  const run = lockdSpawn(t, d, ['run', '--root', root, '--runs-root', runs, '--lock', 'del', '--', 'sh', '-c', `echo started; while [ ! -e ${go} ]; do sleep 0.05; done; echo after`]);
  await run.waitForStdout('started');
  rmSync(runs, { recursive: true, force: true });
  writeFileSync(go, '');
  const r = await within(run.done, 20_000, 'the run');
  t.is(r.code, 74, r.stderr);
  t.regex(r.stderr, /result.json could not be written: ENOENT/);
  await lockIsFree(t, d, root, 'del');
  t.false(existsSync(runs), "nothing was recreated behind the user's back");
});

test('corrupt and truncated result files: lockd runs reports them, lockd result and auto-GC do not crash', async (t) => {
  const d = await startDaemon(t);
  const root = join(d.dir, 'root');
  const ids: string[] = [];
  for (let i = 0; i < 4; i++) {
    const r = await lockd(d, ['run', '--root', root, '--keep', '0', '--', 'true']);
    ids.push(printedPaths(r.stderr).result!.split('/').at(-2)!);
  }
  const dirOf = (id: string) => join(root, 'runs', id);
  writeFileSync(join(dirOf(ids[0]!), 'result.json'), '{"schema_version":1,"run_id":"x","sta'); // truncated
  writeFileSync(join(dirOf(ids[1]!), 'result.json'), Buffer.from([0xff, 0xfe, 0x00, 0x7b])); // garbage
  writeFileSync(join(dirOf(ids[2]!), 'manifest.json'), '['); // a corrupt manifest too
  const list = await lockd(d, ['runs', '--root', root]);
  t.is(list.code, 0, list.stderr);
  for (const id of [ids[0]!, ids[1]!]) t.regex(list.stdout, new RegExp(`${id}\\s+\\?`), 'a corrupt result shows as unknown, not as a status');
  t.regex(list.stdout, new RegExp(`${ids[3]!}\\s+pass`));
  const json = await lockd(d, ['runs', '--root', root, '--json']);
  const rows = JSON.parse(json.stdout) as Array<{ run_id: string; status: string | null }>;
  t.is(rows.find((r) => r.run_id === ids[0])?.status, null);
  for (const id of [ids[0]!, ids[1]!]) {
    const res = await lockd(d, ['result', '--root', root, id]);
    t.notRegex(res.stderr, /internal error|at .*\.js:\d+/, 'no crash, no stack trace');
  }
  // Auto-GC over the damaged runs (keep 1) neither crashes the daemon nor touches a live run.
  const last = await lockd(d, ['run', '--root', root, '--keep', '1', '--', 'true']);
  t.is(last.code, 0);
  await until(() => (readdirSync(join(root, 'runs')).length <= 3 ? true : undefined), 10_000, 'auto-GC to prune');
  t.is((await lockd(d, ['ping'])).code, 0);
});

test('hostile lock names and arches are refused before anything is created', async (t) => {
  const d = await startDaemon(t);
  const root = join(d.dir, 'root');
  mkdirSync(root);
  const outside = join(d.dir, 'outside');
  const cases: string[][] = [
    ['--lock', '../escape'],
    ['--lock', '../../outside/x'],
    ['--lock', '/etc/passwd'],
    ['--lock', `${outside}/abs`],
    ['--lock', 'a/b'],
    ['--lock', '..'],
    ['--lock', '.hidden'],
    ['--lock', 'x'.repeat(5000)],
    ['--lock', 'new\nline'],
    ['--lock', 'nul\u0001byte'],
    ['--lock', 'ok', '--arch', '../..'],
    ['--lock', 'ok', '--arch', '/abs'],
    ['--global', '../../etc/shadow'],
    ['--global', 'g/../../x'],
  ];
  for (const c of cases) {
    const r = await lockd(d, ['run', '-q', '--root', root, ...c, '--', 'true']);
    t.is(r.code, 2, `${JSON.stringify(c).slice(0, 80)} → ${r.stderr}`);
    t.regex(r.stderr, /invalid (lock name|arch)|lock name|arch/i);
  }
  t.false(existsSync(outside));
  t.deepEqual(readdirSync(root), [], 'nothing was created under the root either');
  t.deepEqual((await statusOf(d)).locks, []);
  t.is((await lockd(d, ['ping'])).code, 0);
});

test('a symlinked .locks owned by another user (uid 65534) is refused; the link target is never written', async (t) => {
  if (process.getuid?.() !== 0) {
    t.log('SKIPPED: creating a link owned by another user needs root (chown)');
    t.not(process.getuid?.(), 0);
    return;
  }
  const d = await startDaemon(t);
  const root = join(d.dir, 'root');
  const elsewhere = join(d.dir, 'elsewhere');
  mkdirSync(root);
  mkdirSync(elsewhere);
  chownSync(elsewhere, 65534, 65534);
  symlinkSync(elsewhere, join(root, '.locks'));
  lchownSync(join(root, '.locks'), 65534, 65534);
  const r = await lockd(d, ['run', '-q', '--root', root, '--lock', 'x', '--', 'true']);
  t.is(r.code, 2, r.stderr);
  t.regex(r.stderr, /symlink not owned by you|refusing/);
  t.deepEqual(readdirSync(elsewhere), [], 'nothing was created through the link');

  // Owned by the caller, pointing at the caller's own directory: followed (a user may move their lock dir).
  const mine = join(d.dir, 'mine');
  const root2 = join(d.dir, 'root2');
  mkdirSync(mine);
  mkdirSync(root2);
  symlinkSync(mine, join(root2, '.locks'));
  const ok = await lockd(d, ['run', '-q', '--root', root2, '--lock', 'x', '--', 'true']);
  t.is(ok.code, 0, ok.stderr);
  t.true(readdirSync(mine).includes('x.lock'));

  // A planted lock-file symlink (to a file someone else owns) is never opened through.
  const root3 = join(d.dir, 'root3');
  const victim = join(d.dir, 'victim');
  writeFileSync(victim, 'precious\n');
  chownSync(victim, 65534, 65534);
  mkdirSync(join(root3, '.locks'), { recursive: true });
  symlinkSync(victim, join(root3, '.locks', 'y.lock'));
  lchownSync(join(root3, '.locks', 'y.lock'), 65534, 65534);
  const planted = await lockd(d, ['run', '-q', '--root', root3, '--lock', 'y', '--', 'true']);
  t.not(planted.code, 0);
  t.regex(planted.stderr, /refusing|symlink|not a regular file|unsafe/i);
  t.is(readFileSync(victim, 'utf8'), 'precious\n');
  t.false(existsSync(`${victim}.meta`));
  t.deepEqual((await statusOf(d)).locks, [], 'the refused run holds nothing');
});

test('a daemon out of file descriptors keeps running and serves again once connections close', async (t) => {
  const dir = tempDir();
  const env = baseEnv(dir);
  // The daemon under a small descriptor limit; thousands of clients would do the same to a default limit.
  const proc = spawn('sh', ['-c', `ulimit -n 160 && exec "${process.execPath}" "${CLI}" daemon --ready-fd 3`], { env, stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
  t.teardown(async () => {
    await stopProcess(proc);
    rmSync(dir, { recursive: true, force: true });
  });
  await within(
    new Promise<void>((resolve, reject) => {
      (proc.stdio[3] as NodeJS.ReadableStream).on('data', () => resolve());
      proc.once('exit', (c) => reject(new Error(`daemon exited ${c}`)));
    }),
    20_000,
    'the daemon to start',
  );
  const d = { dir, socket: env.LOCKD_SOCKET!, stateDir: env.LOCKD_STATE_DIR!, env, proc, pid: proc.pid!, stop: () => stopProcess(proc) } as Daemon;
  const sockets: Socket[] = [];
  for (let i = 0; i < 400; i++) {
    const s = createConnection(d.socket);
    s.on('error', () => undefined);
    s.resume();
    sockets.push(s);
  }
  // Give the daemon the chance to hit EMFILE on accept (each accepted connection costs it a descriptor).
  await until(() => (sockets.filter((s) => !s.connecting).length >= 300 ? true : undefined), 20_000, 'the connections to be made');
  t.is(proc.exitCode, null, 'still running at the limit');
  // The daemon really is at its limit (libuv then accepts and drops what it cannot hold; Node may report EMFILE).
  const open = await until(
    () => {
      const n = readdirSync(`/proc/${proc.pid}/fd`).length;
      return n >= 155 ? n : undefined;
    },
    10_000,
    'the daemon to run out of descriptors',
  );
  t.true(open >= 155);
  for (const s of sockets) s.destroy();
  const pong = await until(
    async () => {
      const r = await lockd(d, ['ping']);
      return r.code === 0 ? r : undefined;
    },
    20_000,
    'the daemon to answer again',
    200,
  );
  t.regex(pong.stdout, /lockd/);
  const run = await lockd(d, ['run', '-q', '--root', join(dir, 'root'), '--lock', 'fd', '--', 'echo', 'served']);
  t.is(run.stdout, 'served\n');
  t.is(proc.exitCode, null);
});
