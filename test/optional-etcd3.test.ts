/**
 * etcd3 is an optional package: only cluster mode loads it. Every process here runs with a module hook (registered
 * through NODE_OPTIONS=--import, so auto-started and child processes get it too) that makes `etcd3` unresolvable,
 * as on an install without it, and records every attempt to resolve it. Real daemons, real CLI.
 * Also: `lockd doctor` says which lock backend is in use and why.
 */
import test from 'ava';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { baseEnv, lockd, startDaemon, tempDir } from './helpers/lockd.js';

const MESSAGE = 'cluster mode needs the optional package etcd3: npm install etcd3';

interface NoEtcd {
  /** Environment additions: the hook, and where it records attempts. */
  env: NodeJS.ProcessEnv;
  /** The specifiers and importers of every attempt to resolve etcd3 so far. */
  attempts(): string[];
}

/** The hook files in `dir`: resolving `etcd3` (or `etcd3/...`) fails with ERR_MODULE_NOT_FOUND, as when it is not installed. */
function withoutEtcd3(dir: string): NoEtcd {
  const probe = join(dir, 'etcd3-attempts.log');
  writeFileSync(
    join(dir, 'no-etcd3-hooks.mjs'),
    `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  if (specifier === 'etcd3' || specifier.startsWith('etcd3/')) {
    appendFileSync(${JSON.stringify(probe)}, specifier + ' from ' + context.parentURL + '\\n');
    const e = new Error("Cannot find package '" + specifier + "' imported from " + context.parentURL);
    e.code = 'ERR_MODULE_NOT_FOUND';
    throw e;
  }
  return next(specifier, context);
}
`,
  );
  const register = join(dir, 'no-etcd3.mjs');
  writeFileSync(register, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(join(dir, 'no-etcd3-hooks.mjs')).href)});\n`);
  return {
    env: { NODE_OPTIONS: `--import=${pathToFileURL(register).href}` },
    attempts: () =>
      existsSync(probe)
        ? readFileSync(probe, 'utf8')
            .split('\n')
            .filter((l) => l !== '')
        : [],
  };
}

interface DoctorCheck {
  name: string;
  level: string;
  message: string;
  fix?: string;
}

async function doctorLocks(d: { env: NodeJS.ProcessEnv }, env: NodeJS.ProcessEnv = {}, cwd?: string): Promise<DoctorCheck> {
  const r = await lockd(d, ['doctor', '--json'], { env, ...(cwd ? { cwd } : {}) });
  const out = JSON.parse(r.stdout) as { checks: DoctorCheck[] };
  const check = out.checks.find((c) => c.name === 'locks');
  if (!check) throw new Error(`doctor printed no locks check: ${r.stdout}`);
  return check;
}

test('a daemon with a cluster configured and no etcd3 fails with one clear line and claims nothing', async (t) => {
  const dir = tempDir('ldoe');
  const noEtcd = withoutEtcd3(dir);
  const d = { env: { ...baseEnv(dir), ...noEtcd.env } };
  for (const how of [
    { args: ['--cluster', 'etcd://127.0.0.1:2379'], env: {} },
    { args: [], env: { LOCKD_CLUSTER: 'etcd://127.0.0.1:2379' } },
  ]) {
    const r = await lockd(d, ['daemon', ...how.args], { env: how.env });
    t.is(r.code, 125, r.stderr);
    t.is(r.stderr, `lockd: ${MESSAGE}\n`, 'exactly one line, naming the package and the command that fixes it');
    t.false(existsSync(join(dir, 's.sock')), 'no socket was claimed');
    t.false(existsSync(join(dir, 'state', 'journal.jsonl')), 'no journal was opened');
  }
  t.true(noEtcd.attempts().length >= 2, 'the daemon did try to load etcd3');
});

test('lockd doctor, no daemon running, cluster configured, no etcd3: the locks check fails with the same line and says why', async (t) => {
  const dir = tempDir('ldoe');
  const noEtcd = withoutEtcd3(dir);
  const d = { env: { ...baseEnv(dir), ...noEtcd.env } };
  const check = await doctorLocks(d, { LOCKD_CLUSTER: 'etcd://127.0.0.1:2379' });
  t.is(check.level, 'fail');
  t.true(check.message.startsWith(MESSAGE), check.message);
  t.true(check.message.endsWith('(cluster set by LOCKD_CLUSTER: a daemon would not start)'), check.message);
  t.regex(check.fix ?? '', /npm install etcd3/);
  // And in the text report, one FAIL line for it.
  const text = await lockd(d, ['doctor'], { env: { LOCKD_CLUSTER: 'etcd://127.0.0.1:2379' } });
  t.is(text.code, 1);
  t.regex(text.stdout, new RegExp(`^FAIL {2}locks {7}${MESSAGE.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`, 'm'));
});

test('without a cluster nothing even tries to resolve etcd3: daemon, lockd run, status and doctor work without it', async (t) => {
  const dir = tempDir('ldoe');
  const noEtcd = withoutEtcd3(dir);
  const d = await startDaemon(t, { dir, env: noEtcd.env });
  const run = await lockd(d, ['run', '--lock', 'x', '--', 'sh', '-c', 'echo ran-without-etcd3']);
  t.is(run.code, 0, run.stderr);
  t.regex(run.stdout, /ran-without-etcd3/);
  const status = await lockd(d, ['status']);
  t.is(status.code, 0, status.stderr);
  const check = await doctorLocks(d);
  t.is(check.level, 'ok');
  t.is(check.message, `the running daemon (pid ${d.pid}) uses lock files on this host for every lock; why: no cluster is configured (--cluster, LOCKD_CLUSTER and "cluster" in lockd.json are unset)`);
  t.deepEqual(noEtcd.attempts(), [], 'etcd3 was never asked for');
});

test('lockd doctor names the cluster backend of a running daemon: endpoints, prefix, and the flag that set it', async (t) => {
  // etcd need not answer: a daemon with a cluster serves local locks regardless, and says what it is configured with.
  const d = await startDaemon(t, { args: ['--cluster', 'etcd://127.0.0.1:1,localhost:2/lab'] });
  const check = await doctorLocks(d);
  t.is(check.level, 'ok', check.message);
  t.is(
    check.message,
    `the running daemon (pid ${d.pid}) uses the etcd cluster at 127.0.0.1:1, localhost:2 (no TLS, prefix lab) for --global locks, and lock files on this host for build-root and --host-only locks; why: cluster set by --cluster`,
  );
});

test('lockd doctor with no daemon says what one started now would use, and which lockd.json set it', async (t) => {
  const dir = tempDir('ldoe');
  const d = { env: { ...baseEnv(dir), LOCKD_STATE_DIR: dir } };
  const work = tempDir('ldoe');
  const local = await doctorLocks(d, {}, work);
  t.is(local.level, 'ok');
  t.regex(local.message, /^a daemon started now would use lock files on this host for every lock; why: no cluster is configured/);

  writeFileSync(join(dir, 'lockd.json'), JSON.stringify({ cluster: 'etcds://etcd-1:2379' }));
  const fromStateDir = await doctorLocks(d, {}, work);
  t.is(fromStateDir.level, 'ok', fromStateDir.message);
  t.regex(fromStateDir.message, /^a daemon started now would use the etcd cluster at etcd-1:2379 \(TLS, prefix lockd\) for --global locks/);
  t.true(fromStateDir.message.endsWith(`; why: cluster set by "cluster" in ${join(dir, 'lockd.json')}`), fromStateDir.message);

  // A build-root lockd.json (the daemon's working directory) comes before the state dir's; the environment before both.
  writeFileSync(join(work, 'lockd.json'), JSON.stringify({ cluster: 'etcd://etcd-2:2379' }));
  t.regex((await doctorLocks(d, {}, work)).message, new RegExp(`etcd-2:2379 .*cluster set by "cluster" in ${join(work, 'lockd.json')}`));
  t.regex((await doctorLocks(d, { LOCKD_CLUSTER: 'etcd://etcd-3:2379' }, work)).message, /etcd-3:2379 .*; why: cluster set by LOCKD_CLUSTER$/);

  const bad = await doctorLocks(d, { LOCKD_CLUSTER: 'http://nope' }, work);
  t.is(bad.level, 'fail');
  t.regex(bad.message, /the cluster settings are wrong: --cluster must look like/);
});
