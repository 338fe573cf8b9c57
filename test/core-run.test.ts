/** `lockd run` end to end: exit codes, output, signals, timeouts, spawn failures, detach. */
import test from 'ava';
import { writeFileSync, chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, lockd, lockdSpawn, waitForFile, readJson, waitPidsGone, printedPaths } from './helpers/lockd.js';

test('runs a command, streams both streams byte for byte and passes the exit code', async (t) => {
  const d = await startDaemon(t);
  const r = await lockd(d, ['run', '--lock', 'demo', '--', 'sh', '-c', 'printf "out\\0bin\\n"; printf "err\\n" >&2; exit 3']);
  t.is(r.code, 3);
  t.is(r.stdout, 'out\0bin\n');
  t.regex(r.stderr, /^err$/m);
  const p = printedPaths(r.stderr);
  t.truthy(p.manifest);
  t.truthy(p.result);
  const result = readJson(p.result!);
  t.is(result.status, 'fail');
  t.is(result.reason, 'exit_nonzero');
  t.is(result.child_exit_code, 3);
  // the log has both streams
  const log = readFileSync(result.log_path as string, 'utf8');
  t.true(log.includes('out') && log.includes('err'));
});

test('runs without any lock, and -q silences the record lines', async (t) => {
  const d = await startDaemon(t);
  const r = await lockd(d, ['run', '-q', '--', 'echo', 'hello']);
  t.is(r.code, 0);
  t.is(r.stdout, 'hello\n');
  t.is(r.stderr, '');
});

test('argv is passed exactly, with no shell', async (t) => {
  const d = await startDaemon(t);
  const r = await lockd(d, ['run', '-q', '--lock', 'x', '--', 'printf', '%s|', 'a b', '$HOME', '*', "'q'"]);
  t.is(r.code, 0);
  t.is(r.stdout, "a b|$HOME|*|'q'|");
});

test('a child killed by signal N gives 128+N and an external-signal verdict', async (t) => {
  const d = await startDaemon(t);
  const r = await lockd(d, ['run', '--', 'sh', '-c', 'kill -TERM $$']);
  t.is(r.code, 143);
  const res = readJson(printedPaths(r.stderr).result!);
  t.is(res.status, 'infra_fail');
  t.is(res.reason, 'external_sigterm');
  t.deepEqual((res.signals as { exit_signal: string }).exit_signal, 'SIGTERM');
});

test('command not found exits 127 and not executable 126, with a one-line message and a record', async (t) => {
  const d = await startDaemon(t);
  const nf = await lockd(d, ['run', '--lock', 'x', '--', 'lockd-no-such-command-xyz']);
  t.is(nf.code, 127);
  t.regex(nf.stderr, /command not found: lockd-no-such-command-xyz/);
  t.is(readJson(printedPaths(nf.stderr).result!).reason, 'command_not_found');
  const f = join(d.dir, 'notexec.sh');
  writeFileSync(f, '#!/bin/sh\necho hi\n');
  chmodSync(f, 0o644);
  const ne = await lockd(d, ['run', '--', f]);
  t.is(ne.code, 126);
  t.regex(ne.stderr, /not executable/);
  // the lock was released after the failed spawn
  const again = await lockd(d, ['run', '-q', '--lock', 'x', '--', 'true']);
  t.is(again.code, 0);
});

test('--timeout kills the whole tree and exits 124', async (t) => {
  const d = await startDaemon(t);
  const pidfile = join(d.dir, 'pids');
  const r = await lockd(d, ['run', '--timeout', '1', '--kill-after', '1', '--lock', 'x', '--', 'sh', '-c', `sleep 60 & echo $! > ${pidfile}; trap "" TERM; sleep 60`]);
  t.is(r.code, 124);
  const res = readJson(printedPaths(r.stderr).result!);
  t.is(res.status, 'timeout');
  t.is(res.reason, 'timeout');
  const bg = Number(readFileSync(pidfile, 'utf8'));
  t.deepEqual(await waitPidsGone([bg]), []);
});

test('Ctrl+C is forwarded to the child, whose exit code comes back', async (t) => {
  const d = await startDaemon(t);
  const ready = join(d.dir, 'ready');
  const c = lockdSpawn(t, d, ['run', '--lock', 'x', '--', 'sh', '-c', `trap 'echo got-int; exit 7' INT; touch ${ready}; while :; do sleep 0.1; done`]);
  await waitForFile(ready);
  c.proc.kill('SIGINT');
  const r = await c.done;
  t.is(r.code, 7);
  t.regex(r.stdout, /got-int/);
});

test('a second Ctrl+C kills the whole tree', async (t) => {
  const d = await startDaemon(t);
  const ready = join(d.dir, 'ready');
  const c = lockdSpawn(t, d, ['run', '--lock', 'x', '--', 'sh', '-c', `trap 'echo ignoring' INT; touch ${ready}; while :; do sleep 0.1; done`]);
  await waitForFile(ready);
  c.proc.kill('SIGINT');
  await c.waitForStdout('ignoring');
  c.proc.kill('SIGINT');
  const r = await c.done;
  t.is(r.code, 137);
});

test('client SIGKILL: the child tree is killed and the lock is free again', async (t) => {
  const d = await startDaemon(t);
  const pidfile = join(d.dir, 'pids');
  const c = lockdSpawn(t, d, ['run', '--lock', 'x', '--', 'sh', '-c', `sleep 60 & echo $! > ${pidfile}.tmp; echo $$ >> ${pidfile}.tmp; mv ${pidfile}.tmp ${pidfile}; sleep 60`]);
  await waitForFile(pidfile);
  const pids = readFileSync(pidfile, 'utf8').trim().split('\n').map(Number);
  t.is(pids.length, 2);
  c.proc.kill('SIGKILL');
  t.deepEqual(await waitPidsGone(pids), []);
  const r = await lockd(d, ['run', '-q', '--wait', '20', '--lock', 'x', '--', 'echo', 'free']);
  t.is(r.code, 0);
  t.is(r.stdout, 'free\n');
});

test('--interactive forwards stdin including EOF', async (t) => {
  const d = await startDaemon(t);
  const r = await lockd(d, ['run', '-q', '-i', '--', 'sh', '-c', 'cat; echo done'], { input: 'line1\nline2\n' });
  t.is(r.code, 0);
  t.is(r.stdout, 'line1\nline2\ndone\n');
  const noInput = await lockd(d, ['run', '-q', '--', 'sh', '-c', 'cat; echo eof'], { input: 'ignored\n' });
  t.is(noInput.stdout, 'eof\n');
});

test('--detach prints the run id and returns; the job keeps its lock until it exits', async (t) => {
  const d = await startDaemon(t);
  const go = join(d.dir, 'go');
  const r = await lockd(d, ['run', '--detach', '--lock', 'x', '--', 'sh', '-c', `while [ ! -e ${go} ]; do sleep 0.05; done`]);
  t.is(r.code, 0);
  t.regex(r.stdout, /^\d{6}-\d{4}-[0-9a-f]{4,}\n$/);
  const busy = await lockd(d, ['run', '--wait', '0', '--lock', 'x', '--', 'true']);
  t.is(busy.code, 75);
  writeFileSync(go, '');
  const after = await lockd(d, ['run', '-q', '--wait', '20', '--lock', 'x', '--', 'echo', 'ok']);
  t.is(after.code, 0);
  // the detached run's record is written when its child exits
  const resultPath = printedPaths(r.stderr).result!;
  await waitForFile(resultPath);
  t.is(readJson(resultPath).status, 'pass');
});

test('the child gets LOCKD_RUN_ID, LOCKD_LOCKS and LOCKD_SOCKET, in its own process group and the caller cwd', async (t) => {
  const d = await startDaemon(t);
  const r = await lockd(d, ['run', '-q', '--root', d.dir, '--lock', 'x', '--', 'sh', '-c', 'echo "$LOCKD_RUN_ID|$LOCKD_LOCKS|$LOCKD_SOCKET|$(pwd)"; ps -o pgid= -p $$; echo $$'], { cwd: d.dir });
  t.is(r.code, 0);
  const [line, pgid, pid] = r.stdout.trim().split('\n');
  const [runId, locks, sock, cwd] = line!.split('|');
  t.regex(runId!, /^\d{6}-\d{4}-/);
  t.is(locks, join(d.dir, '.locks', 'x.lock'));
  t.is(sock, d.socket);
  t.is(cwd, d.dir);
  t.is(Number(pgid), Number(pid));
});

for (const sig of ['SIGTERM', 'SIGHUP', 'SIGQUIT'] as const) {
  test(`${sig} received by the client is forwarded to the child's process group`, async (t) => {
    const d = await startDaemon(t);
    const ready = join(d.dir, 'ready');
    const name = sig.slice(3);
    const c = lockdSpawn(t, d, ['run', '--lock', 'x', '--', 'sh', '-c', `trap 'echo got-${name}; exit 9' ${name}; touch ${ready}; while :; do sleep 0.1; done`]);
    await waitForFile(ready);
    c.proc.kill(sig);
    const r = await c.done;
    t.is(r.code, 9);
    t.regex(r.stdout, new RegExp(`got-${name}`));
  });
}

test('on a terminal the wait shows a live line with the position and the holder', async (t) => {
  const d = await startDaemon(t);
  const go = join(d.dir, 'go');
  const ready = join(d.dir, 'ready');
  const holder = lockdSpawn(t, d, ['run', '-q', '--lock', 'x', '--holder', 'alice', '--', 'sh', '-c', `touch ${ready}; while [ ! -e ${go} ]; do sleep 0.02; done`]);
  await waitForFile(ready);
  const cli = join(process.cwd(), 'bin', 'lockd.js');
  const waiter = lockdSpawn(t, d, ['run', '--wait', '30', '--lock', 'x', '--', 'true']);
  await waiter.waitForStderr('waiting for x (position 1)');
  // the same wait under a pseudo-terminal: a carriage-return-updated line
  const { spawn } = await import('node:child_process');
  const tty = spawn('script', ['-qefc', `${process.execPath} ${cli} run --wait 30 --lock x -- true`, '/dev/null'], { env: d.env, cwd: d.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  // Listened for from the start: it may close while the other two are awaited below.
  const ttyClosed = new Promise<number | null>((r) => tty.once('close', r));
  t.teardown(() => {
    if (tty.exitCode === null && tty.signalCode === null) tty.kill('SIGKILL');
  });
  let out = '';
  tty.stdout.on('data', (b: Buffer) => (out += b.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no live line: ${out}`)), 20_000);
    tty.stdout.on('data', () => {
      if (/\rlockd: waiting for x \(position 2\) behind run \S+ \(pid \d+\) alice/.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  writeFileSync(go, '');
  t.is((await holder.done).code, 0);
  t.is((await waiter.done).code, 0);
  const code = await Promise.race([ttyClosed, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30_000).unref())]);
  t.is(code, 0, `the terminal client's exit (${out.slice(-200)})`);
});
