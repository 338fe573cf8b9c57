/**
 * Issue 21 point 5: "auto-start is off: LOCKD_NO_AUTOSTART is set" was printed also when it was not set. The
 * "no daemon" line names the real reason: the variable, a lockd.json key, or a command that never starts one.
 */
import test from 'ava';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { baseEnv, lockd, tempDir } from './helpers/lockd.js';

function noDaemon(t: { teardown(fn: () => void): void }) {
  const dir = tempDir();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const env = baseEnv(dir);
  delete env.LOCKD_NO_AUTOSTART;
  return { dir, env };
}

test('a look-only command without LOCKD_NO_AUTOSTART says it never starts a daemon, not that the variable is set', async (t) => {
  const { env } = noDaemon(t);
  for (const cmd of [['ping'], ['shutdown']]) {
    const r = await lockd({ env }, cmd);
    t.not(r.code, 0, cmd.join(' '));
    t.regex(r.stderr, /no lockd daemon is running on .*\(this command never starts one; `lockd daemon` or any `lockd run` does\)/, cmd.join(' '));
    t.notRegex(r.stderr, /LOCKD_NO_AUTOSTART/, cmd.join(' '));
  }
});

test('LOCKD_NO_AUTOSTART=1 and no_autostart in lockd.json are each named as the reason', async (t) => {
  const { dir, env } = noDaemon(t);
  const byEnv = await lockd({ env: { ...env, LOCKD_NO_AUTOSTART: '1' } }, ['run', '--lock', 'x', '--', 'true'], { cwd: dir });
  t.is(byEnv.code, 125, byEnv.stderr);
  t.regex(byEnv.stderr, /auto-start is off: LOCKD_NO_AUTOSTART is set/);
  mkdirSync(env.LOCKD_STATE_DIR!, { recursive: true });
  writeFileSync(join(env.LOCKD_STATE_DIR!, 'lockd.json'), JSON.stringify({ no_autostart: true }));
  const byConfig = await lockd({ env }, ['run', '--lock', 'x', '--', 'true'], { cwd: dir });
  t.is(byConfig.code, 125, byConfig.stderr);
  t.regex(byConfig.stderr, /auto-start is off: no_autostart is set in the state-dir lockd\.json/);
  t.notRegex(byConfig.stderr, /LOCKD_NO_AUTOSTART/);
});
