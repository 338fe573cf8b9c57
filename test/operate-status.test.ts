/** `lockd status` and `lockd inspect`: holders, queues, shared and slot locks, blocking holders, estimated waits. */
import test from 'ava';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { startDaemon, lockd, lockdSpawn, readJson, printedPaths, tempDir, baseEnv } from './helpers/lockd.js';
import { detachedHolder, holdIdOf, statusJson } from './helpers/operate.js';

test('no daemon: status says nothing is held (exit 0, JSON with daemon null) and starts none; inspect exits 1', async (t) => {
  const dir = tempDir();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const d = { env: baseEnv(dir) };
  // Auto-start would be allowed here: status must still not start a daemon.
  delete d.env.LOCKD_NO_AUTOSTART;
  const human = await lockd(d, ['status']);
  t.is(human.code, 0);
  t.is(human.stdout, 'no lockd daemon is running; nothing is held\n');
  const json = await lockd(d, ['status', '--json']);
  t.is(json.code, 0);
  t.deepEqual(JSON.parse(json.stdout), { daemon: null, locks: [], runs: [], holds: [] });
  const inspect = await lockd(d, ['inspect', 'qemu', '--json']);
  t.is(inspect.code, 1);
  t.like(JSON.parse(inspect.stdout), { held: false, daemon: false, lock: null });
  t.false(existsSync(d.env.LOCKD_SOCKET!), 'no daemon was started');
});

test('an exclusive lock: holder, queue in order with what each waits for, blocking holder and ETA from recorded runs', async (t) => {
  const d = await startDaemon(t);
  const root = join(d.dir, 'build');
  // Two recorded runs under the lock give it a typical duration (median of two = the larger).
  const durations: number[] = [];
  for (let i = 0; i < 2; i++) {
    const r = await lockd(d, ['run', '--root', root, '--arch', 'riscv64', '--lock', 'qemu', '--', 'true']);
    t.is(r.code, 0);
    durations.push(readJson<{ duration_ms: number }>(printedPaths(r.stderr).result!).duration_ms);
  }
  const typical = Math.max(...durations);

  const holder = await detachedHolder(d, 'a', ['--root', root, '--arch', 'riscv64', '--lock', 'qemu']);
  const waiter = lockdSpawn(t, d, ['run', '--wait', '60', '--root', root, '--arch', 'riscv64', '--lock', 'qemu', '--', 'echo', 'b-ran']);
  await waiter.waitForStderr('waiting for qemu');
  const hold = lockdSpawn(t, d, ['acquire', '--root', root, '--arch', 'riscv64', 'qemu', '--wait', '60', '--holder', 'carol']);
  await hold.waitForStderr('waiting for qemu');

  const snap = await statusJson(d);
  t.is(snap.daemon!.pid, d.pid!);
  t.is(snap.daemon!.version.length > 0, true);
  t.true(snap.daemon!.uptime_ms >= 0);
  t.is(snap.locks.length, 1);
  const lock = snap.locks[0]!;
  t.is(lock.name, 'qemu');
  t.is(lock.scope, 'local');
  t.is(lock.mode, 'exclusive');
  t.is(lock.key, join(root, 'riscv64', '.locks', 'qemu.lock'));
  t.is(lock.holders.length, 1);
  const h = lock.holders[0]!;
  t.like(h, { kind: 'run', id: holder.runId, mode: 'exclusive', nested: false });
  t.true(typeof h.pid === 'number' && h.pid > 0);
  t.regex(h.command_line!, /^sh -c /);
  t.true(h.elapsed_ms >= 0);
  t.is(lock.waiters.length, 2);
  const [w1, w2] = lock.waiters;
  t.like(w1, { kind: 'run', position: 1, mode: 'exclusive', wants: ['qemu'] });
  t.like(w2, { kind: 'hold', holder: 'carol', position: 2, wants: ['qemu'] });
  t.deepEqual(w1!.blocked_by, [holder.runId]);
  t.is(w2!.blocked_by[0], holder.runId, 'the holder in the way comes first');
  t.true(w2!.blocked_by.includes(w1!.id), 'then the waiter ahead');
  // ETA: the head waits for what the holder has left of a typical run; the next one a typical run more.
  t.not(lock.estimated_wait_ms, null);
  t.is(lock.estimated_wait_ms, w1!.estimated_wait_ms);
  t.true(w1!.estimated_wait_ms! >= 0 && w1!.estimated_wait_ms! <= typical);
  t.is(w2!.estimated_wait_ms, w1!.estimated_wait_ms! + typical);
  t.deepEqual(
    snap.runs.map((r) => [r.run_id, r.state]).sort(),
    [
      [holder.runId, 'running'],
      [w1!.id, 'queued'],
    ].sort(),
  );

  // The human table names the same things, without colour codes when not on a terminal.
  const human = await lockd(d, ['status']);
  t.is(human.code, 0);
  t.false(human.stdout.includes('\x1b['));
  for (const s of ['qemu', lock.key, holder.runId, w1!.id, w2!.id, 'carol', 'HOLDER', 'BLOCKED BY', 'ETA', 'RUNS']) t.true(human.stdout.includes(s), s);

  // inspect: held (0) with the same lock status, by name and root.
  const ins = await lockd(d, ['inspect', '--root', root, '--arch', 'riscv64', 'qemu', '--json']);
  t.is(ins.code, 0);
  const insJson = JSON.parse(ins.stdout);
  t.is(insJson.held, true);
  t.is(insJson.key, lock.key);
  t.is(insJson.lock.holders[0].id, holder.runId);
  t.is((await lockd(d, ['inspect', '--root', root, '--arch', 'riscv64', 'qemu'])).code, 0);

  holder.release();
  const b = await waiter.done;
  t.is(b.code, 0);
  t.is(b.stdout, 'b-ran\n');
  const c = await hold.done;
  t.is(c.code, 0);
  const holdId = holdIdOf(c.stdout);
  const after = await statusJson(d);
  t.deepEqual(
    after.holds.map((x) => [x.hold_id, x.holder, x.locks]),
    [[holdId, 'carol', ['qemu']]],
  );
  t.is(after.locks[0]!.holders[0]!.id, holdId);
  t.is((await lockd(d, ['release', holdId, '--holder', 'carol'])).code, 0);
  const free = await lockd(d, ['inspect', '--root', root, '--arch', 'riscv64', 'qemu']);
  t.is(free.code, 1);
  t.regex(free.stdout, /^qemu: free/);
  t.deepEqual((await statusJson(d)).locks, []);
});

test('a shared lock: every shared holder listed; an exclusive waiter is blocked by all of them', async (t) => {
  const d = await startDaemon(t);
  const root = join(d.dir, 'b');
  const a = await detachedHolder(d, 'a', ['--root', root, '--lock', 'img:shared']);
  const b = await detachedHolder(d, 'b', ['--root', root, '--lock', 'img:shared']);
  const w = lockdSpawn(t, d, ['run', '--wait', '60', '--root', root, '--lock', 'img', '--', 'true']);
  await w.waitForStderr('waiting for img');
  const lock = (await statusJson(d)).locks[0]!;
  t.is(lock.mode, 'shared');
  t.deepEqual(
    lock.holders.map((h) => [h.id, h.mode]).sort(),
    [
      [a.runId, 'shared'],
      [b.runId, 'shared'],
    ].sort(),
  );
  t.is(lock.waiters.length, 1);
  t.like(lock.waiters[0], { mode: 'exclusive', position: 1 });
  t.deepEqual([...lock.waiters[0]!.blocked_by].sort(), [a.runId, b.runId].sort());
  // No run recorded under this lock yet: no estimate.
  t.is(lock.estimated_wait_ms, null);
  a.release();
  b.release();
  t.is((await w.done).code, 0);
});

test('a slot lock: capacity, each holder with its slot, and the waiter for the next free slot', async (t) => {
  const d = await startDaemon(t);
  const root = join(d.dir, 'b');
  const s0 = await detachedHolder(d, 's0', ['--root', root, '--lock', 'board:slots=2']);
  const s1 = await detachedHolder(d, 's1', ['--root', root, '--lock', 'board:slots=2']);
  const w = lockdSpawn(t, d, ['run', '--wait', '60', '--root', root, '--lock', 'board:slots=2', '--', 'sh', '-c', 'echo slot=$LOCKD_SLOT_board']);
  await w.waitForStderr('waiting for board');
  const lock = (await statusJson(d)).locks[0]!;
  t.is(lock.mode, 'slots');
  t.is(lock.capacity, 2);
  t.deepEqual(lock.holders.map((h) => h.slot_index).sort(), [0, 1]);
  t.deepEqual(lock.holders.map((h) => h.id).sort(), [s0.runId, s1.runId].sort());
  t.like(lock.waiters[0], { mode: 'slots', position: 1, wants: ['board:slots=2'] });
  t.is(lock.waiters[0]!.blocked_by.length, 2);
  const human = await lockd(d, ['inspect', '--root', root, 'board']);
  t.is(human.code, 0);
  t.regex(human.stdout, /slots=2/);
  t.regex(human.stdout, /slot [01]\/2/);
  const freed = lock.holders.find((h) => h.id === s1.runId)!.slot_index;
  s1.release();
  const r = await w.done;
  t.is(r.code, 0);
  t.is(r.stdout, `slot=${freed}\n`);
  s0.release();
});

test('--root narrows status to that build root; global locks stay; runs and holds follow their locks', async (t) => {
  const d = await startDaemon(t);
  const one = join(d.dir, 'one');
  const two = join(d.dir, 'two');
  const a = await detachedHolder(d, 'a', ['--root', one, '--lock', 'x']);
  const b = await detachedHolder(d, 'b', ['--root', two, '--lock', 'x']);
  const g = await lockd(d, ['acquire', '--global', 'deps', '--holder', 'ops']);
  t.is(g.code, 0);
  const snap = await statusJson(d, ['--root', one]);
  t.deepEqual(snap.locks.map((l) => l.name).sort(), ['deps', 'x']);
  t.true(snap.locks.find((l) => l.name === 'x')!.key.startsWith(`${one}/`));
  t.deepEqual(
    snap.runs.map((r) => r.run_id),
    [a.runId],
  );
  t.deepEqual(
    snap.holds.map((h) => h.hold_id),
    [holdIdOf(g.stdout)],
  );
  t.is((await statusJson(d)).locks.length, 3);
  const gi = await lockd(d, ['inspect', '--global', 'deps', '--json']);
  t.is(gi.code, 0);
  t.is(JSON.parse(gi.stdout).lock.scope, 'global');
  a.release();
  b.release();
});

test('estimated waits survive a daemon restart (durations are saved in the state dir)', async (t) => {
  const dir = tempDir();
  const first = await startDaemon(null, { dir });
  const root = join(dir, 'b');
  const r = await lockd(first, ['run', '--root', root, '--lock', 'q', '--', 'true']);
  t.is(r.code, 0);
  await first.stop();
  t.true(existsSync(join(first.stateDir, 'durations.json')));
  const d = await startDaemon(t, { dir });
  const h = await detachedHolder(d, 'h', ['--root', root, '--lock', 'q']);
  const w = lockdSpawn(t, d, ['run', '--wait', '60', '--root', root, '--lock', 'q', '--', 'true']);
  await w.waitForStderr('waiting for q');
  const lock = (await statusJson(d)).locks[0]!;
  t.not(lock.estimated_wait_ms, null);
  t.not(lock.waiters[0]!.estimated_wait_ms, null);
  h.release();
  t.is((await w.done).code, 0);
});
