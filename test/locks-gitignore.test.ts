import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { lockd, startDaemon } from './helpers/lockd.js';

test('a .locks/ directory lockd creates has its own .gitignore, so git status stays clean', async (t) => {
  const d = await startDaemon(t);
  const repo = join(d.dir, 'repo');
  mkdirSync(repo);
  execFileSync('git', ['init', '-q'], { cwd: repo });
  const r = await lockd(d, ['run', '--root', repo, '--runs-root', join(d.dir, 'runs'), '--lock', 'x', '--', 'true']);
  t.is(r.code, 0, r.stderr);
  t.is(readFileSync(join(repo, '.locks', '.gitignore'), 'utf8'), '*\n');
  const status = execFileSync('git', ['status', '--porcelain'], { cwd: repo, encoding: 'utf8' });
  t.false(status.includes('.locks'), status);
});
