/**
 * Issue 21 point 5: one duration grammar for every duration option (--wait, --timeout, --kill-after, --ttl,
 * gc --older-than, --progress-interval): bare seconds, or numbers with units (`10m`, `1h30m`); `0x10`, `1e3` and
 * other things Number() would take are refused with a usage error (exit 2) that names the option.
 */
import test from 'ava';
import { lockd, startDaemon } from './helpers/lockd.js';

test('--wait, --timeout, --ttl and gc --older-than take 10m, 1h30m and bare seconds', async (t) => {
  const d = await startDaemon(t);
  const ok = await lockd(d, ['run', '--root', d.dir, '--lock', 'x', '--wait', '1h30m', '--timeout', '10m', '--kill-after', '2s', '--', 'echo', 'hi']);
  t.is(ok.code, 0, ok.stderr);
  t.is(ok.stdout, 'hi\n');
  // The unit really counts: half a second of --timeout stops a 30 s sleep (exit 124).
  const timedOut = await lockd(d, ['run', '--root', d.dir, '--lock', 'x', '--timeout', '500ms', '--', 'sleep', '30']);
  t.is(timedOut.code, 124, timedOut.stderr);
  const held = await lockd(d, ['acquire', '--root', d.dir, 'y', '--ttl', '1h30m', '--wait', '90']);
  t.is(held.code, 0, held.stderr);
  t.regex(held.stderr, /ttl 5400 s/);
  const gcBare = await lockd(d, ['gc', '--root', d.dir, '--older-than', '7', '--dry-run']);
  t.is(gcBare.code, 0, gcBare.stderr);
  const gcUnits = await lockd(d, ['gc', '--root', d.dir, '--older-than', '1h30m', '--dry-run']);
  t.is(gcUnits.code, 0, gcUnits.stderr);
  const env = await lockd(d, ['run', '--root', d.dir, '--lock', 'x', '--', 'true'], { env: { LOCKD_WAIT: '10m', LOCKD_TIMEOUT: '1h' } });
  t.is(env.code, 0, env.stderr);
});

test('0x10, 1e3, -5 and words are refused by every duration option, naming it', async (t) => {
  const d = await startDaemon(t);
  const cases: Array<[string[], string]> = [
    [['run', '--wait', '0x10', '--lock', 'x', '--', 'true'], '--wait'],
    [['run', '--timeout', '1e3', '--lock', 'x', '--', 'true'], '--timeout'],
    [['run', '--kill-after=-5', '--lock', 'x', '--', 'true'], '--kill-after'],
    [['acquire', 'x', '--ttl', '0x10'], '--ttl'],
    [['acquire', 'x', '--wait', 'ten'], '--wait'],
    [['gc', '--root', d.dir, '--older-than', '0x10'], '--older-than'],
  ];
  for (const [args, what] of cases) {
    const r = await lockd(d, args);
    t.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, new RegExp(`${what} must be seconds .*1h30m`), args.join(' '));
  }
});
