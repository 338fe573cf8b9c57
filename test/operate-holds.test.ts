/** Explicit holds: acquire / heartbeat / release, TTL expiry, ownership, --force, runs under a hold, CI holders, GitHub outputs. */
import test from 'ava';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { startDaemon, lockd, lockdSpawn, readJson, printedPaths } from './helpers/lockd.js';
import { detachedHolder, followEvents, holdIdOf, statusJson, waitForWaiters } from './helpers/operate.js';
import { holderString, renderHolder } from '../src/client/holder.js';

test('acquire prints an eval-able hold id, writes the .meta while held, heartbeat renews, release removes it', async (t) => {
  const d = await startDaemon(t);
  const root = join(d.dir, 'build');
  const a = await lockd(d, ['acquire', '--root', root, '--arch', 'arm64', 'qemu', '--ttl', '300', '--holder', 'alice-ci']);
  t.is(a.code, 0);
  t.regex(a.stdout, /^LOCKD_HOLD_ID=hold-[0-9a-f]+\n$/);
  const id = holdIdOf(a.stdout);
  t.regex(a.stderr, new RegExp(`holding qemu as ${id}`));
  const lockFile = join(root, 'arm64', '.locks', 'qemu.lock');
  const meta = readJson<Record<string, unknown>>(`${lockFile}.meta`);
  t.like(meta, { hold_id: id, holder: 'alice-ci', lockd_pid: d.pid, cwd: d.dir });
  for (const k of ['pid', 'start_epoch']) t.is(typeof meta[k], 'number', k);
  t.is(typeof meta.start_utc, 'string');
  t.regex(meta.cmd as string, /lockd acquire qemu/);
  t.false('run_id' in meta);

  const before = (await statusJson(d)).holds[0]!;
  t.like(before, { hold_id: id, holder: 'alice-ci', ttl_ms: 300_000, locks: ['qemu'] });
  const hb = await lockd(d, ['heartbeat', id, '--holder', 'alice-ci']);
  t.is(hb.code, 0);
  t.regex(hb.stderr, /renewed/);
  const after = (await statusJson(d)).holds[0]!;
  t.true(Date.parse(after.expires_utc!) > Date.parse(before.expires_utc!), 'the TTL clock restarted');
  // Someone else's heartbeat is refused.
  const other = await lockd(d, ['heartbeat', id, '--holder', 'mallory']);
  t.is(other.code, 1);
  t.regex(other.stderr, /belongs to alice-ci/);

  // Busy for others meanwhile, with the one-line holder message and the conflict exit code.
  const busy = await lockd(d, ['acquire', '--root', root, '--arch', 'arm64', 'qemu', '--holder', 'bob', '--wait', '0', '--conflict-exit-code', '42']);
  t.is(busy.code, 42);
  t.is(busy.stdout, '');
  t.regex(busy.stderr, new RegExp(`^lockd: lock_busy: qemu is held by hold ${id} \\(pid \\d+, alice-ci\\) since \\S+\\n$`));

  const rel = await lockd(d, ['release', id, '--holder', 'alice-ci']);
  t.is(rel.code, 0);
  t.regex(rel.stderr, new RegExp(`released ${id}`));
  t.false(existsSync(`${lockFile}.meta`), 'meta removed on release');
  t.true(existsSync(lockFile), 'the lock file itself stays');
  t.deepEqual((await statusJson(d)).holds, []);
  const gone = await lockd(d, ['heartbeat', id, '--holder', 'alice-ci']);
  t.is(gone.code, 1);
  t.regex(gone.stderr, /no active hold/);
});

test('TTL: a hold without heartbeat expires (hold_expired event), its lock is free and the expiry is logged', async (t) => {
  const d = await startDaemon(t);
  const ev = await followEvents(t, d);
  const a = await lockd(d, ['acquire', '--root', d.dir, 'board', '--ttl', '1', '--holder', 'ci-7']);
  t.is(a.code, 0);
  const id = holdIdOf(a.stdout);
  const expired = await ev.waitFor((e) => e.type === 'hold_expired' && e.id === id, 'hold_expired');
  t.deepEqual(expired.locks, [join(d.dir, '.locks', 'board.lock')]);
  t.like(expired.detail, { holder: 'ci-7', ttl_ms: 1000 });
  const types = ev
    .all()
    .filter((e) => e.id === id)
    .map((e) => e.type);
  t.deepEqual(types, ['granted', 'hold_acquired', 'hold_expired']);
  t.deepEqual((await statusJson(d)).holds, []);
  t.is((await lockd(d, ['inspect', '--root', d.dir, 'board'])).code, 1);
  t.false(existsSync(join(d.dir, '.locks', 'board.lock.meta')));
  const log = readFileSync(join(d.stateDir, 'daemon.log'), 'utf8');
  t.regex(log, new RegExp(`hold expired without heartbeat.*${id}|${id}.*hold expired without heartbeat`));
  const ok = await lockd(d, ['run', '-q', '--root', d.dir, '--lock', 'board', '--', 'echo', 'free']);
  t.is(ok.stdout, 'free\n');
});

test('--ttl none (the default) holds until released; LOCKD_TTL sets the default', async (t) => {
  const d = await startDaemon(t);
  const a = await lockd(d, ['acquire', '--root', d.dir, 'x', '--holder', 'h']);
  t.is(a.code, 0);
  const b = await lockd(d, ['acquire', '--root', d.dir, 'y', '--holder', 'h'], { env: { LOCKD_TTL: '600' } });
  t.is(b.code, 0);
  const holds = (await statusJson(d)).holds;
  t.like(
    holds.find((h) => h.hold_id === holdIdOf(a.stdout)),
    { ttl_ms: null, expires_utc: null },
  );
  t.like(
    holds.find((h) => h.hold_id === holdIdOf(b.stdout)),
    { ttl_ms: 600_000 },
  );
  const hb = await lockd(d, ['heartbeat', holdIdOf(a.stdout), '--holder', 'h']);
  t.is(hb.code, 0);
  t.regex(hb.stderr, /no ttl/);
});

test('release by someone else is a no-op that exits 0 with a note; --force breaks it and says who did', async (t) => {
  const d = await startDaemon(t);
  const ev = await followEvents(t, d);
  const a = await lockd(d, ['acquire', '--root', d.dir, 'qemu', '--holder', 'alice']);
  const id = holdIdOf(a.stdout);
  const byId = await lockd(d, ['release', id, '--holder', 'bob']);
  t.is(byId.code, 0);
  t.regex(byId.stderr, /held by alice: not yours, left in place \(use --force to break it\)/);
  const byLock = await lockd(d, ['release', '--root', d.dir, '--lock', 'qemu', '--holder', 'bob']);
  t.is(byLock.code, 0);
  t.regex(byLock.stderr, /not yours/);
  t.deepEqual(
    (await statusJson(d)).holds.map((h) => h.hold_id),
    [id],
  );

  const forced = await lockd(d, ['release', '--root', d.dir, '--lock', 'qemu', '--holder', 'bob', '--force']);
  t.is(forced.code, 0);
  t.regex(forced.stderr, new RegExp(`released ${id}`));
  t.regex(forced.stderr, /broke .* held by alice/);
  const e = await ev.waitFor((x) => x.type === 'hold_released' && x.id === id, 'hold_released');
  t.regex(String(e.detail?.by), /^bob/);
  const log = readFileSync(join(d.stateDir, 'daemon.log'), 'utf8');
  t.regex(log, /hold broken with --force/);
  t.deepEqual((await statusJson(d)).holds, []);
  // Nothing to release at all is fine too.
  const none = await lockd(d, ['release', id, '--holder', 'alice']);
  t.is(none.code, 0);
  t.regex(none.stderr, /nothing to release/);
});

test('a run joins a hold only when it names it (LOCKD_HOLD_ID or --hold); then it runs inside and the hold stays; others still wait', async (t) => {
  const d = await startDaemon(t);
  const env = { LOCKD_HOLDER: 'ci-build-7' };
  const a = await lockd(d, ['acquire', '--root', d.dir, 'qemu'], { env });
  t.is(a.code, 0);
  const id = holdIdOf(a.stdout);
  // The same holder without naming the hold is an ordinary run: the hold is in its way.
  const plain = await lockd(d, ['run', '--wait', '0', '--root', d.dir, '--lock', 'qemu', '--', 'true'], { env });
  t.is(plain.code, 75);
  t.regex(plain.stderr, new RegExp(`held by hold ${id}`));
  const run = await lockd(d, ['run', '--wait', '0', '--root', d.dir, '--lock', 'qemu', '--', 'sh', '-c', 'echo "inside $LOCKD_RUN_ID"'], { env: { ...env, LOCKD_HOLD_ID: id } });
  t.is(run.code, 0, run.stderr);
  t.regex(run.stdout, /^inside \d{6}-/);
  const manifest = readJson<{ parent_run_id: string | null }>(printedPaths(run.stderr).manifest!);
  t.is(manifest.parent_run_id, id, 'the run is nested under the hold');
  t.is((await lockd(d, ['run', '-q', '--wait', '0', '--hold', id, '--root', d.dir, '--lock', 'qemu', '--', 'true'], { env })).code, 0, '--hold works too');
  const snap = await statusJson(d);
  t.deepEqual(
    snap.holds.map((h) => h.hold_id),
    [id],
  );
  t.is(snap.locks[0]!.holders.length, 1);
  t.is(snap.locks[0]!.holders[0]!.id, id);
  t.true(existsSync(join(d.dir, '.locks', 'qemu.lock.meta')), "the hold's meta stays");
  t.is(readJson<{ hold_id: string }>(join(d.dir, '.locks', 'qemu.lock.meta')).hold_id, id);
  const other = await lockd(d, ['run', '--wait', '0', '--root', d.dir, '--lock', 'qemu', '--', 'true'], { env: { LOCKD_HOLDER: 'someone-else' } });
  t.is(other.code, 75);
  // Someone else naming the hold is refused, not let in.
  const thief = await lockd(d, ['run', '--wait', '0', '--hold', id, '--root', d.dir, '--lock', 'qemu', '--', 'true'], { env: { LOCKD_HOLDER: 'someone-else' } });
  t.not(thief.code, 0);
  t.regex(thief.stderr, /belongs to ci-build-7/);
  // No argument: release takes the hold from LOCKD_HOLD_ID.
  const rel = await lockd(d, ['release'], { env: { ...env, LOCKD_HOLD_ID: id } });
  t.is(rel.code, 0, rel.stderr);
  t.regex(rel.stderr, new RegExp(`released ${id}`));
  // A stale LOCKD_HOLD_ID is one clear line and a usage exit, not a run that silently skips the hold.
  const stale = await lockd(d, ['run', '--wait', '0', '--root', d.dir, '--lock', 'qemu', '--', 'true'], { env: { ...env, LOCKD_HOLD_ID: id } });
  t.is(stale.code, 2);
  t.regex(stale.stderr, new RegExp(`hold ${id} .*is not active`));
});

test('exclusion under a hold: two runs inside one exclusive hold run one at a time, in order; shared ones together', async (t) => {
  const d = await startDaemon(t);
  const env = { LOCKD_HOLDER: 'lab-lead' };
  const a = await lockd(d, ['acquire', '--global', 'lab-board'], { env });
  t.is(a.code, 0, a.stderr);
  const id = holdIdOf(a.stdout);
  const inHold = { ...env, LOCKD_HOLD_ID: id };
  // Run A holds the board inside the hold until released.
  const first = await detachedHolder(d, 'A', ['--global', 'lab-board', '--wait', '0'], inHold);
  // B, same holder and same hold, must not get in while A is inside: busy with --wait 0, naming A.
  const busy = await lockd(d, ['run', '--wait', '0', '--global', 'lab-board', '--', 'true'], { env: inHold });
  t.is(busy.code, 75, busy.stderr);
  t.regex(busy.stderr, new RegExp(`held by run ${first.runId}`));
  // Queued B and C are granted in order once A ends, one at a time.
  const order = join(d.dir, 'order');
  const job = (name: string) => ['run', '-q', '--wait', '60', '--global', 'lab-board', '--', 'sh', '-c', `echo ${name} start >> ${order}; echo ${name} end >> ${order}`];
  const b = lockdSpawn(t, d, job('B'), { env: inHold });
  await waitForWaiters(d, 'lab-board', 1);
  const c = lockdSpawn(t, d, job('C'), { env: inHold });
  await waitForWaiters(d, 'lab-board', 2);
  first.release();
  t.is((await b.done).code, 0);
  t.is((await c.done).code, 0);
  t.deepEqual(readFileSync(order, 'utf8').trim().split('\n'), ['B start', 'B end', 'C start', 'C end']);
  t.deepEqual(
    (await statusJson(d)).holds.map((h) => h.hold_id),
    [id],
    'the hold is still there',
  );
  t.is((await lockd(d, ['release', id], { env })).code, 0);
  // A shared hold lets its shared runs in together.
  const s = await lockd(d, ['acquire', '--global', 'docs:shared'], { env });
  const sid = holdIdOf(s.stdout);
  const r1 = await detachedHolder(d, 'S1', ['--global', 'docs:shared', '--wait', '0'], { ...env, LOCKD_HOLD_ID: sid });
  const r2 = await lockd(d, ['run', '-q', '--wait', '0', '--global', 'docs:shared', '--', 'true'], { env: { ...env, LOCKD_HOLD_ID: sid } });
  t.is(r2.code, 0, r2.stderr);
  r1.release();
});

test('a second acquire of a lock the holder already holds is refused at once, naming the hold', async (t) => {
  const d = await startDaemon(t);
  const env = { LOCKD_HOLDER: 'alice-dbg' };
  const a = await lockd(d, ['acquire', '--global', 'board-3'], { env });
  const id = holdIdOf(a.stdout);
  const again = await lockd(d, ['acquire', '--global', 'board-3', '--wait', '30'], { env });
  t.is(again.code, 2);
  t.regex(again.stderr, new RegExp(`already hold board-3 as ${id}`));
  t.is((await statusJson(d)).locks[0]!.waiters.length, 0, 'nothing queued behind itself');
  t.is((await lockd(d, ['heartbeat'], { env: { ...env, LOCKD_HOLD_ID: id } })).code, 0, 'heartbeat takes LOCKD_HOLD_ID');
  t.is((await lockd(d, ['release', id], { env })).code, 0);
});

test('--wait timeout and a queued acquire whose client quits leave the queue; a waiting acquire is granted on release', async (t) => {
  const d = await startDaemon(t);
  const h = await detachedHolder(d, 'h', ['--root', d.dir, '--lock', 'x']);
  const timedOut = await lockd(d, ['acquire', '--root', d.dir, 'x', '--wait', '0.3', '--holder', 'b']);
  t.is(timedOut.code, 75);
  t.regex(timedOut.stderr, new RegExp(`lock_wait_timeout: x is held by run ${h.runId}`));
  t.deepEqual((await statusJson(d)).locks[0]!.waiters, []);
  // A waiting acquire whose client goes away (Ctrl+C, a cancelled CI job) leaves the queue.
  const ev = await followEvents(t, d);
  const quitter = lockdSpawn(t, d, ['acquire', '--root', d.dir, 'x', '--wait', '60', '--holder', 'q']);
  const queued = await ev.waitFor((e) => e.type === 'queued' && e.id.startsWith('hold-'), 'queued hold');
  quitter.proc.kill('SIGINT');
  const cancelled = await ev.waitFor((e) => e.type === 'cancelled' && e.id === queued.id, 'cancelled hold');
  t.like(cancelled.detail, { reason: 'client_lost' });
  t.deepEqual((await statusJson(d)).locks[0]!.waiters, []);
  const waiting = lockdSpawn(t, d, ['acquire', '--root', d.dir, 'x', '--wait', '60', '--holder', 'c']);
  await waiting.waitForStderr(/waiting for x \(position 1\) behind run/);
  h.release();
  const r = await waiting.done;
  t.is(r.code, 0);
  t.is((await statusJson(d)).holds[0]!.hold_id, holdIdOf(r.stdout));
});

const CI_ENVS: Record<string, Record<string, string>> = {
  github: { CI: 'true', GITHUB_ACTIONS: 'true', GITHUB_REPOSITORY: 'acme/kernel', GITHUB_RUN_ID: '9182', GITHUB_RUN_ATTEMPT: '1', GITHUB_JOB: 'test', RUNNER_NAME: 'runner-3' },
  gitlab: { CI: 'true', GITLAB_CI: 'true', CI_PROJECT_PATH: 'group/proj', CI_PIPELINE_ID: '77', CI_JOB_NAME: 'build' },
  jenkins: { JENKINS_URL: 'https://ci.example/', BUILD_TAG: 'jenkins-kernel-41' },
  drone: { CI: 'true', DRONE: 'true', DRONE_REPO: 'acme/kernel', DRONE_BUILD_NUMBER: '12' },
  bitbucket: { CI: 'true', BITBUCKET_BUILD_NUMBER: '33', BITBUCKET_REPO_FULL_NAME: 'acme/kernel' },
  generic: { CI: 'true', BUILDKITE: 'true' },
};

test("holder strings from each CI's variables: acquire shows them in status, and a release from another process of the job works", async (t) => {
  const d = await startDaemon(t);
  for (const [ci, env] of Object.entries(CI_ENVS)) {
    const a = await lockd(d, ['acquire', '--root', d.dir, `lock-${ci}`], { env });
    t.is(a.code, 0, `${ci}: ${a.stderr}`);
    const id = holdIdOf(a.stdout);
    const snap = await statusJson(d);
    const hold = snap.holds.find((h) => h.hold_id === id)!;
    const holder = snap.locks.find((l) => l.name === `lock-${ci}`)!.holders[0]!;
    // The hold's pid is the acquiring client's: the holder string ends with it.
    t.is(hold.holder, holderString(env, holder.pid!, hostname(), holder.user), ci);
    t.true(hold.holder.startsWith(`ci:${ci}:`), hold.holder);
    const human = await lockd(d, ['status']);
    t.true(human.stdout.includes(renderHolder(hold.holder)), `${ci}: ${renderHolder(hold.holder)}`);
    // `lockd release` is a new process (another pid) of the same job: still the owner.
    const rel = await lockd(d, ['release', id], { env });
    t.is(rel.code, 0);
    t.regex(rel.stderr, new RegExp(`released ${id}`), `${ci}: ${rel.stderr}`);
  }
  t.deepEqual((await statusJson(d)).holds, []);
  t.regex((await lockd(d, ['status'])).stdout, /nothing is held or waited on/);
});

test('under GitHub Actions acquire and release write status, lock_id and queue_wait_seconds outputs and a summary line', async (t) => {
  const d = await startDaemon(t);
  const out = join(d.dir, 'gh-output');
  const summary = join(d.dir, 'gh-summary');
  writeFileSync(out, '');
  writeFileSync(summary, '');
  const env = { ...CI_ENVS.github, GITHUB_OUTPUT: out, GITHUB_STEP_SUMMARY: summary };
  const a = await lockd(d, ['acquire', '--root', d.dir, 'qemu', '--ttl', '600'], { env });
  t.is(a.code, 0, a.stderr);
  const id = holdIdOf(a.stdout);
  t.regex(readFileSync(out, 'utf8'), new RegExp(`^status=acquired\\nlock_id=${id}\\nqueue_wait_seconds=\\d+(\\.\\d)?\\n$`));
  t.regex(readFileSync(summary, 'utf8'), new RegExp(`^\\*\\*lockd\\*\\*: acquired \`qemu\` as \`${id}\` after [0-9.]+ s .*github run 9182 job test on runner-3`));

  // Another job's acquire is not obtained: outputs say so, with an empty lock_id.
  writeFileSync(out, '');
  const busy = await lockd(d, ['acquire', '--root', d.dir, 'qemu', '--wait', '0'], { env: { ...env, GITHUB_JOB: 'other' } });
  t.is(busy.code, 75);
  t.regex(readFileSync(out, 'utf8'), /^status=not_obtained\nlock_id=\nqueue_wait_seconds=[0-9.]+\n$/);

  writeFileSync(out, '');
  const r = await lockd(d, ['release', id], { env });
  t.is(r.code, 0);
  t.is(readFileSync(out, 'utf8'), `status=released\nlock_id=${id}\nqueue_wait_seconds=0\n`);
  const lines = readFileSync(summary, 'utf8').trim().split('\n');
  t.is(lines.length, 3);
  t.regex(lines[2]!, new RegExp(`released \`${id}\``));
});

test('a hold taken at a terminal gets a 2 h TTL by default; one without a TTL is warned about in status', async (t) => {
  const d = await startDaemon(t);
  const { spawn } = await import('node:child_process');
  const { CLI } = await import('./helpers/lockd.js');
  // Under a pseudo-terminal (script(1)), as a person types it.
  const tty = spawn('script', ['-qefc', `${process.execPath} ${CLI} acquire --global desk-board --holder bob`, '/dev/null'], { env: d.env, cwd: d.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    if (tty.exitCode === null && tty.signalCode === null) tty.kill('SIGKILL');
  });
  let out = '';
  tty.stdout.on('data', (b: Buffer) => (out += b.toString()));
  const code = await new Promise<number | null | 'timeout'>((r) => {
    tty.once('close', r);
    setTimeout(() => r('timeout'), 30_000).unref();
  });
  t.is(code, 0, out);
  t.regex(out, /ttl 7200 s/);
  // From a script (no terminal): no TTL, as before — and status says so.
  const scripted = await lockd(d, ['acquire', '--global', 'ci-board', '--holder', 'carol']);
  t.is(scripted.code, 0);
  const holds = (await statusJson(d)).holds;
  t.is(holds.find((h) => h.holder === 'bob')?.ttl_ms, 7_200_000);
  t.is(holds.find((h) => h.holder === 'carol')?.ttl_ms, null);
  const status = await lockd(d, ['status']);
  t.regex(status.stdout, new RegExp(`warning: hold ${holdIdOf(scripted.stdout)} \\(carol.*\\) has no TTL`));
  t.notRegex(status.stdout, /warning: hold \S+ \(bob/);
});
