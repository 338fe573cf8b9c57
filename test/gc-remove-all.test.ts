/**
 * Issue 21 point 2: a `lockd gc` that would remove every finished run asks for `--all`, whatever combination got
 * there. The case the keep count did not cover: the newest runs it keeps are live (or unfinished), so `--keep 1`
 * removed every finished run. Refused with exit 2 and nothing removed, through the daemon and without one.
 */
import test from 'ava';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { lockd, startDaemon } from './helpers/lockd.js';
import { detachedHolder } from './helpers/operate.js';

function runDirs(root: string): string[] {
  return readdirSync(root)
    .filter((n) => !n.startsWith('.'))
    .sort();
}

test('gc that would remove every finished run is refused without --all (daemon and local), --all removes them', async (t) => {
  const d = await startDaemon(t);
  const root = join(d.dir, 'runs');
  for (const i of [1, 2, 3]) {
    const r = await lockd(d, ['run', '-q', '--runs-root', root, '--keep', '0', '--lock', `f${i}`, '--', 'true']);
    t.is(r.code, 0, r.stderr);
  }
  // The newest run is live: --keep 1 keeps it, and every finished run would go.
  const live = await detachedHolder(d, 'live', ['--runs-root', root, '--keep', '0', '--lock', 'l']);
  const before = runDirs(root);
  t.is(before.length, 4);
  for (const args of [
    ['--keep', '1'],
    ['--keep', '1', '--dry-run'],
    ['--keep', '1', '--older-than', '0'],
    ['--keep', '1', '--max-bytes', '0'],
  ]) {
    const r = await lockd(d, ['gc', '--runs-root', root, ...args]);
    t.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, /would remove every finished run in .* \(3\); say --all/, args.join(' '));
    t.deepEqual(runDirs(root), before, args.join(' '));
  }
  // Keeping one finished run is not "every": allowed.
  const two = await lockd(d, ['gc', '--runs-root', root, '--keep', '2', '--dry-run']);
  t.is(two.code, 0, two.stderr);
  t.is(two.stdout.trim().split('\n').length, 2, two.stdout);

  // Without a daemon (the CLI collects locally): the live run, now unrecorded, still looks unfinished; same refusal.
  await d.stop();
  const local = await lockd(d, ['gc', '--runs-root', root, '--keep', '1']);
  t.is(local.code, 2, local.stderr);
  t.regex(local.stderr, /would remove every finished run/);
  t.deepEqual(runDirs(root), before);
  const all = await lockd(d, ['gc', '--runs-root', root, '--all']);
  t.is(all.code, 0, all.stderr);
  t.deepEqual(runDirs(root), [live.runId]);
  live.release();
});
