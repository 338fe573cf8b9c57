/** Real flock(1) users and lockd exclude each other, both ways, on the same lock files. */
import test from 'ava';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, lockd, lockdSpawn, readJson, waitForFile } from './helpers/lockd.js';
import { detachedHolder, holdIdOf, statusJson } from './helpers/operate.js';
import { flockNonBlocking, outsideHolder } from './flock-helpers.js';

test('flock -n fails on a lock file while a lockd run or hold has it, and succeeds once it is released', async (t) => {
  const d = await startDaemon(t);
  const lockFile = join(d.dir, '.locks', 'qemu.lock');
  const h = await detachedHolder(d, 'h', ['--root', d.dir, '--lock', 'qemu']);
  t.is(await flockNonBlocking(lockFile), 1, 'busy while the run holds it');
  t.is(await flockNonBlocking(lockFile, true), 1, 'no shared flock beside an exclusive holder either');
  h.release();
  const w = await lockd(d, ['run', '-q', '--wait', '30', '--root', d.dir, '--lock', 'qemu', '--', 'true']);
  t.is(w.code, 0);
  t.is(await flockNonBlocking(lockFile), 0, 'free after the run');

  const a = await lockd(d, ['acquire', '--root', d.dir, 'qemu', '--holder', 'me']);
  t.is(a.code, 0);
  t.is(await flockNonBlocking(lockFile), 1, 'busy while the hold has it');
  t.is((await lockd(d, ['release', holdIdOf(a.stdout), '--holder', 'me'])).code, 0);
  t.is(await flockNonBlocking(lockFile), 0, 'free after release');
});

test('a shared lockd holder lets flock -s in and keeps flock -x out', async (t) => {
  const d = await startDaemon(t);
  const lockFile = join(d.dir, '.locks', 'img.lock');
  const h = await detachedHolder(d, 'h', ['--root', d.dir, '--lock', 'img:shared']);
  t.is(await flockNonBlocking(lockFile, true), 0);
  t.is(await flockNonBlocking(lockFile), 1);
  h.release();
});

test('lockd run --wait waits while flock(1) holds the lock file, and runs once that process is killed', async (t) => {
  const d = await startDaemon(t);
  const locksDir = join(d.dir, '.locks');
  mkdirSync(locksDir, { recursive: true });
  const lockFile = join(locksDir, 'qemu.lock');
  const outside = await outsideHolder(lockFile);
  t.teardown(() => outside.stop());
  const run = lockdSpawn(t, d, ['run', '--wait', '60', '--root', d.dir, '--lock', 'qemu', '--', 'echo', 'ran']);
  // The daemon's table grants it (nobody inside lockd holds qemu), but the file is flock'ed outside: it waits.
  let seen = false;
  for (let i = 0; i < 100 && !seen; i++) {
    const snap = await statusJson(d);
    // Recorded first, then put in the table: wait for both.
    if (snap.runs.length === 1 && snap.locks.length === 1) {
      seen = true;
      t.is(snap.runs[0]!.state, 'queued');
      t.is(snap.runs[0]!.pid, null);
      t.is(snap.locks[0]!.holders[0]!.id, snap.runs[0]!.run_id, 'first in line inside lockd');
    }
  }
  t.true(seen, 'the run reached the daemon');
  t.is(run.stdout(), '', 'not run while flock(1) holds the file');
  // A hold cannot get it either, within its --wait.
  const a = await lockd(d, ['acquire', '--root', d.dir, 'qemu', '--wait', '0.5', '--holder', 'x']);
  t.is(a.code, 75);
  t.regex(a.stderr, /busy|flock|held/);
  await outside.stop();
  const r = await run.done;
  t.is(r.code, 0);
  t.is(r.stdout, 'ran\n');
});

test('lockd acquire waits for an outside flock(1) holder within --wait and is not obtained after it', async (t) => {
  const d = await startDaemon(t);
  const locksDir = join(d.dir, '.locks');
  mkdirSync(locksDir, { recursive: true });
  const outside = await outsideHolder(join(locksDir, 'board.lock'));
  t.teardown(() => outside.stop());
  const a = await lockd(d, ['acquire', '--root', d.dir, 'board', '--wait', '0.5', '--holder', 'x']);
  t.is(a.code, 75);
  t.regex(a.stderr, /lock_wait_timeout: a lock file is flock'ed by a process outside lockd: .*board\.lock/);
  t.deepEqual((await statusJson(d)).locks, [], 'nothing left in the table');
  const waiting = lockdSpawn(t, d, ['acquire', '--root', d.dir, 'board', '--wait', '60', '--holder', 'x']);
  await outside.stop();
  const r = await waiting.done;
  t.is(r.code, 0);
  t.regex(r.stdout, /^LOCKD_HOLD_ID=hold-/);
  t.deepEqual(
    (await statusJson(d)).holds.map((h) => h.holder),
    ['x'],
  );
});

test("a run's .meta names the run while it holds the lock and is removed after", async (t) => {
  const d = await startDaemon(t);
  const root = join(d.dir, 'build');
  const lockFile = join(root, 'riscv64', '.locks', 'qemu.lock');
  const h = await detachedHolder(d, 'h', ['--root', root, '--arch', 'riscv64', '--lock', 'qemu'], { LOCKD_HOLDER: 'meta-test' });
  // The meta is written just after the child starts, off the handoff path.
  await waitForFile(`${lockFile}.meta`);
  const meta = readJson<Record<string, unknown>>(`${lockFile}.meta`);
  const holder = (await statusJson(d)).locks[0]!.holders[0]!;
  t.like(meta, { pid: holder.pid, run_id: h.runId, holder: 'meta-test', lockd_pid: d.pid, cwd: d.dir });
  t.regex(meta.cmd as string, /^sh -c /);
  t.is(typeof meta.pid_start_time, 'string');
  t.is((Date.parse(meta.start_utc as string) / 1000) | 0, meta.start_epoch as number);
  t.false('hold_id' in meta);
  h.release();
  t.is((await lockd(d, ['run', '-q', '--wait', '30', '--root', root, '--arch', 'riscv64', '--lock', 'qemu', '--', 'true'])).code, 0);
  t.false(existsSync(`${lockFile}.meta`));
  t.true(existsSync(lockFile));
});

test("a run nested in a hold keeps the lock file flock'ed after the hold's TTL runs out, until the run ends", async (t) => {
  const d = await startDaemon(t);
  const lockFile = join(d.dir, '.locks', 'board.lock');
  // Long enough for the run to join it on a loaded machine; the wait below is bounded well past it.
  const a = await lockd(d, ['acquire', '--root', d.dir, 'board', '--holder', 'ci-job', '--ttl', '5']);
  t.is(a.code, 0, a.stderr);
  const holdId = holdIdOf(a.stdout);
  // The holder runs inside its hold (naming it): the run is nested under it (same family), no queueing.
  const run = await detachedHolder(d, 'nested', ['--root', d.dir, '--lock', 'board', '--holder', 'ci-job', '--wait', '0', '--hold', holdId]);
  // The hold expires (no heartbeat) while the run still holds the lock inside lockd.
  let expired = false;
  for (let i = 0; i < 600 && !expired; i++) {
    const snap = await statusJson(d);
    expired = !snap.holds.some((h) => h.hold_id === holdId);
    if (!expired) await new Promise((r) => setTimeout(r, 50));
  }
  t.true(expired, 'the hold expired');
  const snap = await statusJson(d);
  t.is(snap.locks.find((l) => l.name === 'board')?.holders[0]?.id, run.runId, 'the nested run still holds the lock');
  t.is(await flockNonBlocking(lockFile), 1, 'and the file stays flock-ed for outside users');
  run.release();
  const w = await lockd(d, ['run', '-q', '--wait', '30', '--root', d.dir, '--lock', 'board', '--', 'true']);
  t.is(w.code, 0);
  t.is(await flockNonBlocking(lockFile), 0, 'free once the run ended');
});
