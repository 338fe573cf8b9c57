/** The daemon's life: auto-start races, socket claiming, ping, shutdown, permissions, logging. */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, chmodSync, writeFileSync, statSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, baseEnv, lockd, lockdSpawn, startDaemon, waitForFile, waitPidsGone, stopProcess, CLI, printedPaths, readJson } from './helpers/lockd.js';

/** Pids of live `lockd daemon` processes serving this socket (found by argv, stopped by pid). */
function daemonsOn(socket: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (argv.includes('daemon') && argv.includes(socket)) out.push(Number(name));
    } catch {
      /* gone */
    }
  }
  return out;
}

function killAll(pids: number[]): void {
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

test('ten clients starting at once on an idle machine end up talking to one daemon', async (t) => {
  const dir = tempDir();
  const env: NodeJS.ProcessEnv = { ...baseEnv(dir), LOCKD_NO_AUTOSTART: '' };
  t.teardown(async () => {
    killAll(daemonsOn(env.LOCKD_SOCKET!));
    await waitPidsGone(daemonsOn(env.LOCKD_SOCKET!));
    rmSync(dir, { recursive: true, force: true });
  });
  const runs = await Promise.all(Array.from({ length: 10 }, (_, i) => lockd({ env }, ['run', '-q', '--lock', 'x', '--wait', 'inf', '--', 'echo', `c${i}`])));
  t.deepEqual(
    runs.map((r) => r.code),
    Array(10).fill(0),
    runs.map((r) => r.stderr).join('\n'),
  );
  // Losers of the race exit at once; give them a bounded moment, then exactly one daemon must remain.
  const deadline = Date.now() + 10_000;
  while (daemonsOn(env.LOCKD_SOCKET!).length > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const daemons = daemonsOn(env.LOCKD_SOCKET!);
  t.is(daemons.length, 1);
  const ping = await lockd({ env }, ['ping', '--json']);
  t.is(JSON.parse(ping.stdout).pid, daemons[0]);
  // the auto-started daemon logs structured JSON lines in the state dir
  const log = readFileSync(join(env.LOCKD_STATE_DIR!, 'daemon.log'), 'utf8');
  t.truthy(log.split('\n').find((l) => l.startsWith('{') && JSON.parse(l).message === 'lockd daemon started'));
});

test('LOCKD_NO_AUTOSTART=1 and ping never start a daemon', async (t) => {
  const dir = tempDir();
  const env = baseEnv(dir);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const run = await lockd({ env }, ['run', '--', 'true']);
  t.is(run.code, 125);
  t.regex(run.stderr, /no lockd daemon is running/);
  const ping = await lockd({ env: { ...env, LOCKD_NO_AUTOSTART: '' } }, ['ping']);
  t.is(ping.code, 125);
  t.deepEqual(daemonsOn(env.LOCKD_SOCKET!), []);
});

test('a second daemon on a live socket refuses with a clear error; a stale socket file is replaced', async (t) => {
  const d = await startDaemon(t);
  const second = spawnSync(process.execPath, [CLI, 'daemon'], { env: d.env, encoding: 'utf8', timeout: 20_000 });
  t.not(second.status, 0);
  t.regex(second.stderr, /already listening on/);
  t.is((await lockd(d, ['ping'])).code, 0);

  // A stale socket: a listener that died without unlinking (simulated by closing a server without cleanup).
  const dir = tempDir();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const env = baseEnv(dir);
  mkdirSync(dir, { recursive: true });
  const stale = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(env.LOCKD_SOCKET)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  t.is(stale.signal, 'SIGKILL');
  t.true(statSync(env.LOCKD_SOCKET!).isSocket());
  const d2 = await startDaemon(t, { dir });
  t.is((await lockd(d2, ['ping'])).code, 0);
});

test('the socket is 0600 in a 0700 directory; a directory others can write is refused', async (t) => {
  const d = await startDaemon(t);
  t.is(statSync(d.socket).mode & 0o777, 0o600);
  t.is(statSync(d.dir).mode & 0o077, 0);
  const dir = tempDir();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const sockDir = join(dir, 'open');
  mkdirSync(sockDir);
  chmodSync(sockDir, 0o777);
  const r = spawnSync(process.execPath, [CLI, 'daemon'], { env: { ...baseEnv(dir), LOCKD_SOCKET: join(sockDir, 's.sock') }, encoding: 'utf8', timeout: 20_000 });
  t.not(r.status, 0);
  t.regex(r.stderr, /writable by others/);
});

test('a socket path over the Unix limit names the variable to set', async (t) => {
  const dir = tempDir();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const long = join(dir, 'x'.repeat(120), 's.sock');
  const r = await lockd({ env: { ...baseEnv(dir), LOCKD_SOCKET: long } }, ['run', '--', 'true']);
  t.is(r.code, 125);
  t.regex(r.stderr, /over the 10\d-byte limit.*set LOCKD_SOCKET/);
});

test('shutdown refuses while jobs run; --force stops them and writes their results; ping then fails', async (t) => {
  const d = await startDaemon(t);
  const ready = join(d.dir, 'ready');
  const job = lockdSpawn(t, d, ['run', '--lock', 'x', '--', 'sh', '-c', `touch ${ready}; exec sleep 60`]);
  await waitForFile(ready);
  const refused = await lockd(d, ['shutdown']);
  t.not(refused.code, 0);
  t.regex(refused.stderr, /run\(s\) in progress.*--force/);
  const forced = await lockd(d, ['shutdown', '--force']);
  t.is(forced.code, 0);
  const r = await job.done;
  t.not(r.code, 0);
  const res = readJson(printedPaths(r.stderr).result ?? printedPaths(job.stderr()).result!);
  t.is(res.status, 'infra_fail');
  t.is((await lockd(d, ['ping'])).code, 125);
  await stopProcess(d.proc!);
});

test('the daemon log never contains the environment', async (t) => {
  const d = await startDaemon(t);
  const r = await lockd(d, ['run', '-q', '--lock', 'x', '--', 'true'], { env: { SECRET_TOKEN: 'hunter2-do-not-log' } });
  t.is(r.code, 0);
  writeFileSync(join(d.dir, 'x'), '');
  await lockd(d, ['ping']);
  t.false(readFileSync(join(d.stateDir, 'daemon.log'), 'utf8').includes('hunter2'));
  t.false(readFileSync(join(d.stateDir, 'journal.jsonl'), 'utf8').includes('hunter2'));
});
