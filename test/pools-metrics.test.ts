/** Issue 17 point 4: `lockd_pool_members{pool,state}` in /metrics, from the real daemon's pools, checked by promtool. */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lockd, startDaemon, tempDir } from './helpers/lockd.js';
import { detachedHolder } from './helpers/operate.js';

const BOARDS = { pools: { boards: { members: { 'rpi4-a': { arch: 'arm64' }, 'rpi4-b': { arch: 'arm64' }, nuc: { arch: 'x86_64' } } } } };

test('lockd_pool_members counts each pool by state (held, disabled, free) and the scrape passes promtool', async (t) => {
  const dir = tempDir();
  mkdirSync(join(dir, 'state'), { recursive: true });
  writeFileSync(join(dir, 'state', 'lockd.json'), JSON.stringify(BOARDS));
  const d = await startDaemon(t, { dir });
  const h = await detachedHolder(d, 'h', ['--pool', 'boards', '--member', 'rpi4-a']);
  t.teardown(() => h.release());
  t.is((await lockd(d, ['pool', 'disable', 'boards/nuc', '--reason', 'in repair'])).code, 0);
  const m = await lockd(d, ['metrics']);
  t.is(m.code, 0, m.stderr);
  t.regex(m.stdout, /^# TYPE lockd_pool_members gauge$/m);
  t.regex(m.stdout, /^lockd_pool_members\{pool="boards",state="held"\} 1$/m);
  t.regex(m.stdout, /^lockd_pool_members\{pool="boards",state="disabled"\} 1$/m);
  t.regex(m.stdout, /^lockd_pool_members\{pool="boards",state="free"\} 1$/m);
  t.regex(m.stdout, /^lockd_pool_members\{pool="boards",state="removed"\} 0$/m);
  const check = spawnSync('promtool', ['check', 'metrics'], { input: m.stdout, encoding: 'utf8', timeout: 30_000 });
  if (check.error) {
    t.fail('promtool is not installed: install the Debian package "prometheus" (.ci/run installs it)');
    return;
  }
  t.is(check.status, 0, `${check.stdout}${check.stderr}`);
});
