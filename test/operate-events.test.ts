/** `lockd events` (the order of a run's events) and `lockd kill` (whole tree, cancelled, cancelled_by). */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, lockd, lockdSpawn, readJson, printedPaths, waitForFile, waitPidsGone } from './helpers/lockd.js';
import { detachedHolder, followEvents, runIdOf, statusJson } from './helpers/operate.js';

test("events: a run's events arrive in order (granted, started, released, exited) with its lock and details", async (t) => {
  const d = await startDaemon(t);
  const ev = await followEvents(t, d);
  const r = await lockd(d, ['run', '--root', d.dir, '--lock', 'x', '--', 'sh', '-c', 'exit 3']);
  t.is(r.code, 3);
  const id = runIdOf(r.stderr);
  await ev.waitFor((e) => e.type === 'exited' && e.id === id, 'exited');
  const mine = ev.all().filter((e) => e.id === id);
  t.deepEqual(
    mine.map((e) => e.type),
    ['granted', 'started', 'released', 'exited'],
  );
  for (const e of mine) t.deepEqual(e.locks, [join(d.dir, '.locks', 'x.lock')]);
  t.true(typeof mine[1]!.detail?.pid === 'number');
  t.like(mine[3]!.detail, { exit_code: 3, status: 'fail', reason: 'exit_nonzero' });
  const seqs = mine.map((e) => e.seq);
  t.deepEqual(
    [...seqs].sort((a, b) => a - b),
    seqs,
    'sequence numbers increase',
  );
  for (const e of mine) t.false(Number.isNaN(Date.parse(e.time_utc)));
});

test('events: a queued run is queued first, then granted when the holder releases; human lines name them', async (t) => {
  const d = await startDaemon(t);
  const ev = await followEvents(t, d);
  const human = lockdSpawn(t, d, ['events']);
  await human.waitForStderr('listening');
  const h = await detachedHolder(d, 'h', ['--root', d.dir, '--lock', 'x']);
  const w = lockdSpawn(t, d, ['run', '--wait', '60', '--root', d.dir, '--lock', 'x', '--', 'true']);
  await w.waitForStderr('waiting for x');
  const id = runIdOf(w.stderr());
  h.release();
  t.is((await w.done).code, 0);
  await ev.waitFor((e) => e.type === 'exited' && e.id === id, 'exited');
  t.deepEqual(
    ev
      .all()
      .filter((e) => e.id === id)
      .map((e) => e.type),
    ['queued', 'granted', 'started', 'released', 'exited'],
  );
  // The holder released before the waiter was granted.
  const all = ev.all();
  const releasedHolder = all.findIndex((e) => e.type === 'released' && e.id === h.runId);
  const grantedWaiter = all.findIndex((e) => e.type === 'granted' && e.id === id);
  t.true(releasedHolder >= 0 && releasedHolder < grantedWaiter);
  t.like(all.find((e) => e.type === 'queued' && e.id === id)!.detail, { position: 1 });
  await human.waitForStdout(new RegExp(`exited +${id} x\\.lock exit_code=0`));
  t.regex(human.stdout(), new RegExp(`queued +${id} x\\.lock position=1`));
  t.false(human.stdout().includes('\x1b['), 'no colour when not on a terminal');
});

test('events: no daemon → exit 125 with a message, and none is started', async (t) => {
  const d = await startDaemon(t);
  await d.stop();
  const r = await lockd(d, ['events']);
  t.is(r.code, 125);
  t.regex(r.stderr, /no lockd daemon is running/);
});

test("kill: stops a run's whole tree; result.json says cancelled and who cancelled it; the lock is free", async (t) => {
  const d = await startDaemon(t);
  const ev = await followEvents(t, d);
  const pids = join(d.dir, 'pids');
  const started = await lockd(d, ['run', '--detach', '--root', d.dir, '--lock', 'x', '--', 'sh', '-c', `sleep 60 & echo $! > ${pids}.tmp; echo $$ >> ${pids}.tmp; mv ${pids}.tmp ${pids}; wait`]);
  t.is(started.code, 0);
  const id = started.stdout.trim();
  await waitForFile(pids);
  const tree = readFileSync(pids, 'utf8').trim().split('\n').map(Number);
  t.is(tree.length, 2);
  const k = await lockd(d, ['kill', id]);
  t.is(k.code, 0, k.stderr);
  t.regex(k.stderr, new RegExp(`run ${id} stopped; result -> (.+)`));
  t.deepEqual(await waitPidsGone(tree), []);
  const resultPath = /result -> (.+)/.exec(k.stderr)![1]!;
  const result = readJson<Record<string, unknown>>(resultPath);
  t.is(result.reason, 'cancelled');
  t.is(result.status, 'error');
  t.regex(String(result.cancelled_by), new RegExp(`uid ${process.getuid!()}, pid \\d+`));
  t.like(result.signals, { sent_by: 'cancel' });
  const killed = await ev.waitFor((e) => e.type === 'killed' && e.id === id, 'killed');
  t.like(killed.detail, { reason: 'cancel' });
  t.deepEqual(
    ev
      .all()
      .filter((e) => e.id === id)
      .map((e) => e.type)
      .slice(-3),
    ['killed', 'released', 'exited'],
  );
  t.deepEqual((await statusJson(d)).runs, []);
  const again = await lockd(d, ['run', '-q', '--wait', '0', '--root', d.dir, '--lock', 'x', '--', 'echo', 'free']);
  t.is(again.stdout, 'free\n');
});

test('kill: a queued run is cancelled without running; --signal is passed on; unknown runs exit 1; bad signals are usage errors', async (t) => {
  const d = await startDaemon(t);
  const h = await detachedHolder(d, 'h', ['--root', d.dir, '--lock', 'x']);
  const w = lockdSpawn(t, d, ['run', '--wait', '60', '--root', d.dir, '--lock', 'x', '--', 'echo', 'never']);
  await w.waitForStderr('waiting for x');
  const id = runIdOf(w.stderr());
  const k = await lockd(d, ['kill', id]);
  t.is(k.code, 0, k.stderr);
  const r = await w.done;
  t.not(r.code, 0);
  t.is(r.stdout, '');
  const result = readJson<Record<string, unknown>>(printedPaths(r.stderr).result!);
  t.is(result.reason, 'cancelled');
  t.regex(String(result.message), /cancelled by .*uid/);

  // The holder, killed with INT: a shell trap sees SIGINT.
  const marker = join(d.dir, 'got-int');
  const trapping = await lockd(d, ['run', '--detach', '--root', d.dir, '--lock', 'y', '--', 'sh', '-c', `trap 'touch ${marker}; exit 9' INT; touch ${marker}.ready; while :; do sleep 0.05; done`]);
  await waitForFile(`${marker}.ready`);
  const ki = await lockd(d, ['kill', trapping.stdout.trim(), '--signal', 'INT']);
  t.is(ki.code, 0, ki.stderr);
  await waitForFile(marker);
  const tr = readJson<Record<string, unknown>>(/result -> (.+)/.exec(ki.stderr)![1]!);
  t.is(tr.reason, 'cancelled');
  t.is(tr.child_exit_code, 9);

  const unknown = await lockd(d, ['kill', '250101-0000-dead']);
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /no live run 250101-0000-dead/);
  const bad = await lockd(d, ['kill', h.runId, '--signal', 'NOPE']);
  t.is(bad.code, 2);
  h.release();
});
