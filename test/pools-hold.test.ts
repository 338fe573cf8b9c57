/** lockd acquire --pool (reserve a named member as a hold) and lockd inspect --pool, with the real daemon. */
import test from 'ava';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, lockd, tempDir } from './helpers/lockd.js';
import { kill9 } from './helpers/crash-kit.js';

const BOARDS = { pools: { boards: { members: { 'rpi4-a': { arch: 'arm64' }, 'rpi4-b': { arch: 'arm64' } } } } };

test('a hold reserves a named member (printed as LOCKD_MEMBERS_*), survives kill -9 of the daemon, and inspect --pool tells', async (t) => {
  const dir = tempDir();
  mkdirSync(join(dir, 'state'), { recursive: true });
  writeFileSync(join(dir, 'state', 'lockd.json'), JSON.stringify(BOARDS));
  const d = await startDaemon(null, { dir });
  const a = await lockd(d, ['acquire', '--pool', 'boards', '--member', 'rpi4-a', '--ttl', 'none']);
  t.is(a.code, 0, a.stderr);
  const [idLine, membersLine] = a.stdout.trim().split('\n');
  const holdId = idLine!.replace('LOCKD_HOLD_ID=', '');
  t.is(membersLine, 'LOCKD_MEMBERS_boards=rpi4-a');
  t.is((await lockd(d, ['inspect', '--pool', 'boards/rpi4-a'])).code, 0, 'held');
  t.is((await lockd(d, ['inspect', '--pool', 'boards/rpi4-b'])).code, 1, 'free');
  t.is((await lockd(d, ['inspect', '--pool', 'boards'])).code, 1, 'one member of the pool is free');
  const other = await lockd(d, ['run', '--pool', 'boards', '--where', 'arch=arm64', '--', 'sh', '-c', 'echo "$LOCKD_MEMBERS_boards"']);
  t.is(other.stdout, 'rpi4-b\n', other.stderr);
  const any = await lockd(d, ['acquire', '--pool', 'boards', '--where', 'arch=arm64', '--ttl', 'none']);
  t.regex(any.stdout, /LOCKD_MEMBERS_boards=rpi4-b/);
  t.is((await lockd(d, ['inspect', '--pool', 'boards'])).code, 0, 'no member is free');
  await kill9(d);
  const d2 = await startDaemon(t, { dir });
  const shown = await lockd(d2, ['inspect', '--pool', 'boards/rpi4-a', '--json']);
  t.is(shown.code, 0, 'the hold was restored with its member');
  t.is((JSON.parse(shown.stdout) as { members: Array<{ holder: { id: string } }> }).members[0]!.holder.id, holdId);
  const busy = await lockd(d2, ['run', '--wait', '0', '--pool', 'boards', '--member', 'rpi4-a', '--', 'true']);
  t.is(busy.code, 75);
  t.is((await lockd(d2, ['release', holdId])).code, 0);
  t.is((await lockd(d2, ['inspect', '--pool', 'boards/rpi4-a'])).code, 1, 'free once released');
});
