/**
 * Issue 21 point 3: a `lockd run` queued without a terminal (a CI log) prints a "still waiting" line on a steady
 * interval (elapsed, position, blocker, ETA, deadline) instead of one line and then silence; -q silences it.
 * Real daemon, a real run holding the lock; the interval is made small and the test waits for N lines.
 */
import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lockd, lockdSpawn, startDaemon } from './helpers/lockd.js';
import { detachedHolder, waitForWaiters } from './helpers/operate.js';

const LINE = /^lockd: still waiting for board: .+$/gm;

function progressLines(stderr: string): string[] {
  return stderr.match(LINE) ?? [];
}

async function waitForLines(p: { stderr(): string; waitForStderr(re: RegExp, ms?: number): Promise<void> }, n: number): Promise<string[]> {
  await p.waitForStderr(new RegExp(`(?:^lockd: still waiting for board: .+\\n(?:.*\\n)*?){${n}}`, 'm'), 30_000);
  return progressLines(p.stderr());
}

test('a queued run without a terminal prints a progress line on a steady interval (LOCKD_PROGRESS_INTERVAL)', async (t) => {
  const d = await startDaemon(t);
  // One recorded run of the lock gives the daemon a typical duration, so the ETA is known: the holder is past it.
  const first = await lockd(d, ['run', '-q', '--root', d.dir, '--lock', 'board', '--', 'true']);
  t.is(first.code, 0, first.stderr);
  const holder = await detachedHolder(d, 'h', ['--root', d.dir, '--lock', 'board']);
  const run = lockdSpawn(t, d, ['run', '--root', d.dir, '--lock', 'board', '--wait', '10m', '--', 'echo', 'ran'], { env: { LOCKD_PROGRESS_INTERVAL: '200ms' } });
  const lines = await waitForLines(run, 3);
  t.true(lines.length >= 3, run.stderr());
  for (const line of lines.slice(0, 3)) {
    t.regex(line, /: [0-9.]+s elapsed, position \d+, /, line);
    t.regex(line, new RegExp(`behind run ${holder.runId} \\(pid \\d+\\) `), line);
    t.regex(line, /, ETA any moment, /, line);
    t.regex(line, /, gives up in \S+( \S+)? \(at \d\d:\d\d:\d\dZ\)$/, line);
  }
  holder.release();
  const r = await run.done;
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'ran\n');
  t.regex(r.stderr, /locks granted after/);
});

test('--progress-interval and lockd.json progress_interval set it, --wait inf says there is no deadline, -q prints none', async (t) => {
  const d = await startDaemon(t);
  const holder = await detachedHolder(d, 'h', ['--root', d.dir, '--lock', 'board']);
  // The quiet run would print every 100 ms (lockd.json in its build root) if -q did not silence it.
  writeFileSync(join(d.dir, 'lockd.json'), JSON.stringify({ progress_interval: '100ms' }));
  const quiet = lockdSpawn(t, d, ['run', '-q', '--root', d.dir, '--lock', 'board', '--wait', 'inf', '--', 'true']);
  await waitForWaiters(d, 'board', 1);
  const loud = lockdSpawn(t, d, ['run', '--root', d.dir, '--lock', 'board', '--wait', 'inf', '--progress-interval', '0.2', '--', 'true']);
  const lines = await waitForLines(loud, 3);
  t.regex(lines[0]!, /position 2, .*, no deadline \(--wait inf\)$/);
  holder.release();
  const [q, l] = await Promise.all([quiet.done, loud.done]);
  t.is(q.code, 0, q.stderr);
  t.is(l.code, 0, l.stderr);
  t.deepEqual(progressLines(q.stderr), [], q.stderr);
  // The flag beats lockd.json: 0 turns it off (checked on a run that queued while the loud one printed 3 lines).
  const holder2 = await detachedHolder(d, 'h2', ['--root', d.dir, '--lock', 'board']);
  const off = lockdSpawn(t, d, ['run', '--root', d.dir, '--lock', 'board', '--wait', 'inf', '--progress-interval', '0', '--', 'true']);
  await waitForWaiters(d, 'board', 1);
  const on = lockdSpawn(t, d, ['run', '--root', d.dir, '--lock', 'board', '--wait', 'inf', '--', 'true']);
  await waitForLines(on, 3);
  holder2.release();
  const [o] = await Promise.all([off.done, on.done]);
  t.deepEqual(progressLines(o.stderr), [], o.stderr);
  const bad = await lockd(d, ['run', '--progress-interval', '0x10', '--lock', 'board', '--', 'true']);
  t.is(bad.code, 2, bad.stderr);
});

test('lockd acquire queued without a terminal prints the same progress lines (from the daemon), and then holds', async (t) => {
  const d = await startDaemon(t);
  const holder = await detachedHolder(d, 'h', ['--root', d.dir, '--lock', 'board']);
  const acq = lockdSpawn(t, d, ['acquire', '--root', d.dir, 'board', '--wait', '10m', '--ttl', 'none', '--progress-interval', '200ms']);
  const lines = await waitForLines(acq, 2);
  for (const line of lines.slice(0, 2)) {
    t.regex(line, /: [0-9.]+s elapsed, position 1, /, line);
    t.regex(line, new RegExp(`behind run ${holder.runId} \\(pid \\d+\\) `), line);
    t.regex(line, /, gives up in \S+( \S+)? \(at \d\d:\d\d:\d\dZ\)$/, line);
  }
  holder.release();
  const r = await acq.done;
  t.is(r.code, 0, r.stderr);
  const id = /^LOCKD_HOLD_ID=(\S+)$/m.exec(r.stdout)?.[1];
  t.truthy(id, r.stdout);
  const rel = await lockd(d, ['release', id!]);
  t.is(rel.code, 0, rel.stderr);
});
