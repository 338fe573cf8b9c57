/**
 * Issue 21 point 5: exit codes that say what happened. `lockd wait RUN...` and `lockd logs -f` of a detached run exit
 * with the run's own code; a refused `lockd shutdown` exits 75 (not 125, lockd's own failure) and names the runs in
 * the way; `lockd run -h` prints run's help instead of "needs a command".
 */
import test from 'ava';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { lockd, lockdSpawn, startDaemon, waitForFile } from './helpers/lockd.js';

/** A detached run that exits with `code` once its go-file appears; resolves when its command is running. */
async function detachedExiting(d: Awaited<ReturnType<typeof startDaemon>>, name: string, code: number) {
  const go = join(d.dir, `go-${name}`);
  const ready = join(d.dir, `ready-${name}`);
  const r = await lockd(d, [
    'run',
    '--detach',
    '--root',
    d.dir,
    '--lock',
    name,
    '--',
    'sh',
    '-c',
    `echo out-${name}; touch ${ready}; while [ ! -e ${go} ] && [ -d ${d.dir} ]; do sleep 0.05; done; exit ${code}`,
  ]);
  if (r.code !== 0) throw new Error(`detached run failed (${r.code}): ${r.stderr}`);
  await waitForFile(ready);
  return { runId: r.stdout.trim(), go: () => writeFileSync(go, '') };
}

test('lockd wait exits with the run code: live runs, runs already ended, the first non-zero of several', async (t) => {
  const d = await startDaemon(t);
  const a = await detachedExiting(d, 'a', 3);
  const b = await detachedExiting(d, 'b', 0);
  const waiting = lockdSpawn(t, d, ['wait', b.runId, a.runId]);
  const waitingB = lockdSpawn(t, d, ['wait', b.runId]);
  // Both watches are set up (each says so) before the runs end: this is the live path.
  await waiting.waitForStderr(`waiting for run ${a.runId}`);
  await waiting.waitForStderr(`waiting for run ${b.runId}`);
  await waitingB.waitForStderr(`waiting for run ${b.runId}`);
  a.go();
  b.go();
  const [w, wb] = await Promise.all([waiting.done, waitingB.done]);
  t.is(w.code, 3, w.stderr);
  t.regex(w.stderr, new RegExp(`run ${a.runId} ended: fail \\(\\w+\\), exit 3`));
  t.is(wb.code, 0, wb.stderr);
  // Already ended: answered from result.json.
  const again = await lockd(d, ['wait', '-q', a.runId]);
  t.is(again.code, 3, again.stderr);
  t.is(again.stderr, '');
  const none = await lockd(d, ['wait', '261207-0000-0000']);
  t.is(none.code, 2, none.stderr);
  t.is((await lockd(d, ['wait'])).code, 2);
});

test('lockd wait --timeout gives up with 124 and names the runs still going, which it leaves running', async (t) => {
  const d = await startDaemon(t);
  const a = await detachedExiting(d, 'ta', 0);
  const b = await detachedExiting(d, 'tb', 4);
  b.go();
  t.is((await lockd(d, ['wait', b.runId])).code, 4, 'b has ended before the timed wait starts');
  // b answers from its result.json at once; a never ends by itself, so the timeout is what ends this wait.
  const w = await lockd(d, ['wait', '--timeout', '3', b.runId, a.runId]);
  t.is(w.code, 124, w.stderr);
  t.regex(w.stderr, new RegExp(`^lockd: gave up after 3: still running: run ${a.runId} \\(not stopped\\)$`, 'm'));
  t.notRegex(w.stderr, new RegExp(`still running: .*${b.runId}`));
  // a is still live: a second wait sees it end with its own code once it is let go.
  const again = lockdSpawn(t, d, ['wait', '--timeout', '10m', a.runId]);
  await again.waitForStderr(`waiting for run ${a.runId}`);
  a.go();
  t.is((await again.done).code, 0);
  t.is((await lockd(d, ['wait', '--timeout', 'soon', a.runId])).code, 2, 'a bad duration is a usage error');
});

test('lockd logs -f of a detached run prints its output and exits with its code', async (t) => {
  const d = await startDaemon(t);
  const a = await detachedExiting(d, 'a', 3);
  const following = lockdSpawn(t, d, ['logs', '-f', a.runId]);
  await following.waitForStdout('out-a');
  a.go();
  const r = await following.done;
  t.is(r.code, 3, r.stderr);
  t.regex(r.stderr, /exit 3/);
  // -f of a run that already ended gives the same code; without -f, printing the log succeeds (0).
  t.is((await lockd(d, ['logs', '-f', a.runId])).code, 3);
  t.is((await lockd(d, ['logs', a.runId])).code, 0);
});

test('a refused shutdown exits 75 and names the runs in the way', async (t) => {
  const d = await startDaemon(t);
  const a = await detachedExiting(d, 'a', 0);
  const r = await lockd(d, ['shutdown']);
  t.is(r.code, 75, r.stderr);
  t.regex(r.stderr, new RegExp(`1 run\\(s\\) in progress: run ${a.runId} \\(pid \\d+, .*sh -c`));
  t.regex(r.stderr, /lockd shutdown --force/);
  a.go();
  t.is((await lockd(d, ['wait', a.runId])).code, 0);
});

test('lockd run -h prints run help; -h after the command belongs to the command', async (t) => {
  const d = await startDaemon(t);
  for (const args of [
    ['run', '-h'],
    ['run', '--lock', 'x', '-h'],
    ['run', '--help'],
  ]) {
    const r = await lockd(d, args);
    t.is(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stdout, /^Usage: lockd run /, args.join(' '));
  }
  const cmd = await lockd(d, ['run', '--root', d.dir, '--lock', 'x', 'sh', '-c', 'echo "$1"', 'sh', '-h']);
  t.is(cmd.code, 0, cmd.stderr);
  t.is(cmd.stdout, '-h\n');
});
