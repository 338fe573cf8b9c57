/** --priority with the real daemon: status shows each waiter's priority and position; the higher one goes first. */
import test from 'ava';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, lockd, lockdSpawn, tempDir } from './helpers/lockd.js';
import { detachedHolder, statusJson, waitForWaiters } from './helpers/operate.js';

test('status shows waiters by priority then arrival, with priority and position; the higher priority is granted first', async (t) => {
  const dir = tempDir();
  mkdirSync(join(dir, 'state'), { recursive: true });
  writeFileSync(join(dir, 'state', 'lockd.json'), JSON.stringify({ pools: { boards: { members: { a: {} } } } }));
  const d = await startDaemon(t, { dir });
  const order = join(dir, 'order');
  const h = await detachedHolder(d, 'h', ['--pool', 'boards']);
  const low = lockdSpawn(t, d, ['run', '--wait', 'inf', '--pool', 'boards', '--', 'sh', '-c', `echo low >> ${order}`]);
  await waitForWaiters(d, 'boards/a', 1);
  const high = lockdSpawn(t, d, ['run', '--wait', 'inf', '--priority', '5', '--pool', 'boards', '--', 'sh', '-c', `echo high >> ${order}`]);
  await waitForWaiters(d, 'boards/a', 2);
  const waiters = (await statusJson(d)).locks.find((l) => l.name === 'boards/a')!.waiters;
  t.deepEqual(
    waiters.map((w) => [w.position, w.priority]),
    [
      [1, 5],
      [2, 0],
    ],
  );
  const text = await lockd(d, ['status']);
  t.regex(text.stdout, /#\s+PRIO\s+WAITING/);
  h.release();
  const [l, hi] = await Promise.all([low.done, high.done]);
  t.is(l.code, 0, l.stderr);
  t.is(hi.code, 0, hi.stderr);
  t.is(readFileSync(order, 'utf8'), 'high\nlow\n');
});
