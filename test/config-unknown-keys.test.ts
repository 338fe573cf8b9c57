/**
 * Issue 21 point 5: a lockd.json key lockd does not know (a typo: `wiat`) used to mean the default, silently. Each
 * is warned about, with the nearest known key, before the command's own output; known keys give no warning.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, lockd, startDaemon } from './helpers/lockd.js';

/** stdout and stderr of the CLI in one pipe, in the order they were written. */
function combined(env: NodeJS.ProcessEnv, args: string[], cwd: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn('sh', ['-c', '"$0" "$@" 2>&1', process.execPath, CLI, ...args], { env, cwd, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    p.once('close', (code) => resolve({ code, out }));
  });
}

test('unknown lockd.json keys are warned about with the nearest known key, before the output', async (t) => {
  const d = await startDaemon(t);
  const root = join(d.dir, 'b');
  mkdirSync(root);
  writeFileSync(join(root, 'lockd.json'), JSON.stringify({ wiat: 5, 'kill-after': 2, zzqq: 1, keep: 3, $schema: 'x' }));
  const r = await combined(d.env, ['run', '--root', root, '--lock', 'x', '-q', '--', 'echo', 'the-output'], root);
  t.is(r.code, 0, r.out);
  const lines = r.out.trim().split('\n');
  const file = join(root, 'lockd.json');
  t.deepEqual(lines, [
    `lockd: warning: ${file}: unknown key "wiat" (did you mean "wait"?); lockd config lists the known keys`,
    `lockd: warning: ${file}: unknown key "kill-after" (did you mean "kill_after"?); lockd config lists the known keys`,
    `lockd: warning: ${file}: unknown key "zzqq"; lockd config lists the known keys`,
    'the-output',
  ]);
  // Known keys only: no warning.
  writeFileSync(join(root, 'lockd.json'), JSON.stringify({ wait: 5, keep: 3 }));
  const clean = await lockd(d, ['run', '--root', root, '--lock', 'x', '-q', '--', 'true']);
  t.is(clean.code, 0, clean.stderr);
  t.is(clean.stderr, '');
});
