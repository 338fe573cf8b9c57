/** Explicit holds: acquire / heartbeat / release, TTL expiry, ownership, --force, runs under a hold, CI holders, GitHub outputs. */
import test from 'ava';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { startDaemon, lockd, lockdSpawn, readJson, printedPaths } from './helpers/lockd.js';
import { detachedHolder, followEvents, holdIdOf, statusJson } from './helpers/operate.js';
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
  const types = ev.all().filter((e) => e.id === id).map((e) => e.type);
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
  t.like(holds.find((h) => h.hold_id === holdIdOf(a.stdout)), { ttl_ms: null, expires_utc: null });
  t.like(holds.find((h) => h.hold_id === holdIdOf(b.stdout)), { ttl_ms: 600_000 });
  const hb = await lockd(d, ['heartbeat', holdIdOf(a.stdout), '--holder', 'h']);
  t.is(hb.code, 0);
  t.regex(hb.stderr, /no ttl/);
});

test("release by someone else is a no-op that exits 0 with a note; --force breaks it and says who did", async (t) => {
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
  t.deepEqual((await statusJson(d)).holds.map((h) => h.hold_id), [id]);

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

test('a run by the same holder proceeds under its own hold and leaves the hold in place; others still wait', async (t) => {
  const d = await startDaemon(t);
  const env = { LOCKD_HOLDER: 'ci-build-7' };
  const a = await lockd(d, ['acquire', '--root', d.dir, 'qemu'], { env });
  t.is(a.code, 0);
  const id = holdIdOf(a.stdout);
  const run = await lockd(d, ['run', '--wait', '0', '--root', d.dir, '--lock', 'qemu', '--', 'sh', '-c', 'echo "inside $LOCKD_RUN_ID"'], { env });
  t.is(run.code, 0, run.stderr);
  t.regex(run.stdout, /^inside \d{6}-/);
  const manifest = readJson<{ parent_run_id: string | null }>(printedPaths(run.stderr).manifest!);
  t.is(manifest.parent_run_id, id, 'the run is nested under the hold');
  const snap = await statusJson(d);
  t.deepEqual(snap.holds.map((h) => h.hold_id), [id]);
  t.is(snap.locks[0]!.holders.length, 1);
  t.is(snap.locks[0]!.holders[0]!.id, id);
  t.true(existsSync(join(d.dir, '.locks', 'qemu.lock.meta')), "the hold's meta stays");
  t.is(readJson<{ hold_id: string }>(join(d.dir, '.locks', 'qemu.lock.meta')).hold_id, id);
  const other = await lockd(d, ['run', '--wait', '0', '--root', d.dir, '--lock', 'qemu', '--', 'true'], { env: { LOCKD_HOLDER: 'someone-else' } });
  t.is(other.code, 75);
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
