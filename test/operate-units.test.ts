/** The pure parts of operating lockd: wait estimates, holder ownership, duration persistence, output formats. */
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { estimateWaits } from '../src/daemon/locks/wait-estimate.js';
import { holderBase, sameOwner } from '../src/daemon/services/holder-base.js';
import { DurationStats } from '../src/daemon/records/duration-stats.js';
import { holderString } from '../src/client/holder.js';
import { formatOutputs, secondsText } from '../src/cli/github.js';
import { formatDuration, formatEstimate } from '../src/cli/render/format.js';
import { colorEnabled, makeStyle, visibleLength } from '../src/cli/render/style.js';
import { table } from '../src/cli/render/table.js';

const T = 1000;

test('estimateWaits: exclusive queue waits for the holder, then one typical run per waiter ahead', (t) => {
  const w = estimateWaits(null, [{ mode: 'exclusive', remainingMs: 300 }], [{ mode: 'exclusive' }, { mode: 'exclusive' }, { mode: 'exclusive' }], T);
  t.deepEqual(w, [300, 1300, 2300]);
});

test('estimateWaits: shared waiters start together after an exclusive holder; an exclusive one waits for all of them', (t) => {
  const w = estimateWaits(null, [{ mode: 'exclusive', remainingMs: 200 }], [{ mode: 'shared' }, { mode: 'shared' }, { mode: 'exclusive' }, { mode: 'shared' }], T);
  t.deepEqual(w, [200, 200, 1200, 2200]);
});

test('estimateWaits: an exclusive waiter behind shared holders waits for the last of them', (t) => {
  const w = estimateWaits(
    null,
    [
      { mode: 'shared', remainingMs: 100 },
      { mode: 'shared', remainingMs: 700 },
    ],
    [{ mode: 'exclusive' }],
    T,
  );
  t.deepEqual(w, [700]);
});

test('estimateWaits: slot waiters take the first slot that frees, in FIFO order', (t) => {
  const w = estimateWaits(
    2,
    [
      { mode: 'slots', remainingMs: 500 },
      { mode: 'slots', remainingMs: 100 },
    ],
    [{ mode: 'slots' }, { mode: 'slots' }, { mode: 'slots' }],
    T,
  );
  // slot B frees at 100 → waiter 1 (ends 1100); slot A at 500 → waiter 2 (ends 1500); then slot B at 1100.
  t.deepEqual(w, [100, 500, 1100]);
  t.deepEqual(estimateWaits(3, [{ mode: 'slots', remainingMs: 500 }], [{ mode: 'slots' }], T), [0]);
});

test('estimateWaits: unknown without recorded runs, or when an explicit hold is in the way', (t) => {
  t.deepEqual(estimateWaits(null, [{ mode: 'exclusive', remainingMs: 10 }], [{ mode: 'exclusive' }, { mode: 'shared' }], null), [null, null]);
  t.deepEqual(estimateWaits(null, [{ mode: 'exclusive', remainingMs: null }], [{ mode: 'exclusive' }], T), [null]);
  // A slot held by a hold is unknown, but the other slot's run still gives an answer.
  t.deepEqual(
    estimateWaits(
      2,
      [
        { mode: 'slots', remainingMs: null },
        { mode: 'slots', remainingMs: 300 },
      ],
      [{ mode: 'slots' }, { mode: 'slots' }],
      T,
    ),
    [300, 1300],
  );
  t.deepEqual(estimateWaits(1, [{ mode: 'slots', remainingMs: null }], [{ mode: 'slots' }, { mode: 'slots' }], T), [null, null]);
  t.deepEqual(estimateWaits(null, [], [], T), []);
});

const CI_ENVS: Record<string, Record<string, string>> = {
  github: { GITHUB_ACTIONS: 'true', GITHUB_REPOSITORY: 'acme/kernel', GITHUB_RUN_ID: '9182', GITHUB_RUN_ATTEMPT: '2', GITHUB_JOB: 'test', RUNNER_NAME: 'runner-3' },
  gitlab: { GITLAB_CI: 'true', CI_PROJECT_PATH: 'group/proj', CI_PIPELINE_ID: '77', CI_JOB_NAME: 'test: [arm64, 1]' },
  jenkins: { JENKINS_URL: 'https://ci/', BUILD_TAG: 'jenkins-kernel-41' },
  drone: { DRONE: 'true', DRONE_REPO: 'acme/kernel', DRONE_BUILD_NUMBER: '12' },
  bitbucket: { BITBUCKET_BUILD_NUMBER: '33', BITBUCKET_REPO_FULL_NAME: 'acme/kernel' },
  generic: { BUILDKITE: 'true' },
};

test('holderBase: two processes of one CI job are one owner, for every CI format', (t) => {
  for (const [ci, env] of Object.entries(CI_ENVS)) {
    const a = holderString(env, 4242, 'box7', 'alice');
    const b = holderString(env, 5151, 'box7', 'alice');
    t.not(a, b, ci);
    t.true(sameOwner(a, b), `${ci}: ${a} vs ${b}`);
    t.false(holderBase(a).includes('4242'), `${ci}: ${holderBase(a)}`);
  }
});

test('holderBase: different jobs, runs, runners or hosts stay different owners', (t) => {
  const gh = CI_ENVS.github!;
  const base = holderString(gh, 1, 'box7', 'alice');
  t.false(sameOwner(base, holderString({ ...gh, GITHUB_JOB: 'build' }, 1, 'box7', 'alice')));
  t.false(sameOwner(base, holderString({ ...gh, GITHUB_RUN_ID: '9183' }, 1, 'box7', 'alice')));
  t.false(sameOwner(base, holderString({ ...gh, RUNNER_NAME: 'runner-4' }, 1, 'box7', 'alice')));
  const gl = CI_ENVS.gitlab!;
  t.false(sameOwner(holderString(gl, 1, 'box7', 'a'), holderString(gl, 1, 'box8', 'a')));
  t.false(sameOwner(holderString(gl, 1, 'box7', 'a'), holderString({ ...gl, CI_JOB_NAME: 'test: [x86, 1]' }, 1, 'box7', 'a')));
  t.false(sameOwner(holderString(CI_ENVS.jenkins!, 1, 'h', 'a'), holderString({ JENKINS_URL: 'x', BUILD_TAG: 'jenkins-kernel-42' }, 1, 'h', 'a')));
});

test('holderBase: user names and --holder overrides compare exactly, even when they end in :digits', (t) => {
  t.is(holderBase('alice'), 'alice');
  t.is(holderBase('deploy:42'), 'deploy:42');
  t.false(sameOwner('deploy:42', 'deploy:43'));
  t.false(sameOwner('alice', 'bob'));
  t.true(sameOwner('alice', 'alice'));
  // Not a CI prefix we write, so not stripped.
  t.is(holderBase('ci:other:x:12'), 'ci:other:x:12');
});

test('DurationStats: median of recent runs, persisted to a file and loaded by the next daemon', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lockd-dur-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'durations.json');
  const a = new DurationStats();
  a.persistTo(file, 60_000);
  t.is(a.typical('/k'), null);
  for (const ms of [300, 100, 200]) a.record('/k', ms);
  t.is(a.typical('/k'), 200);
  t.is(a.samples('/k'), 3);
  await a.flush();
  const stored = JSON.parse(readFileSync(file, 'utf8')) as { version: number; keys: Record<string, { durations_ms: number[] }> };
  t.is(stored.version, 1);
  t.deepEqual(stored.keys['/k']!.durations_ms, [300, 100, 200]);
  const b = new DurationStats();
  b.persistTo(file);
  t.is(b.typical('/k'), 200);
  // The ring keeps the most recent 20.
  for (let i = 0; i < 30; i++) b.record('/k', 1000 + i);
  t.is(b.samples('/k'), 20);
  t.is(b.typical('/k'), 1020);
});

test('DurationStats: a missing or garbled file is an empty start', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lockd-dur-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const s = new DurationStats();
  s.persistTo(join(dir, 'none.json'));
  t.is(s.typical('/k'), null);
  writeFileSync(join(dir, 'bad.json'), '{not json');
  const s2 = new DurationStats();
  s2.persistTo(join(dir, 'bad.json'));
  t.is(s2.typical('/k'), null);
  writeFileSync(join(dir, 'odd.json'), JSON.stringify({ version: 1, keys: { '/k': { durations_ms: ['x', -5, 40], updated_at: Date.now() } } }));
  const s3 = new DurationStats();
  s3.persistTo(join(dir, 'odd.json'));
  t.is(s3.typical('/k'), 40);
});

test('GitHub outputs: name=value lines, the heredoc form for multi-line values, seconds with one decimal', (t) => {
  t.is(formatOutputs({ status: 'acquired', lock_id: 'hold-1', queue_wait_seconds: '1.5' }), 'status=acquired\nlock_id=hold-1\nqueue_wait_seconds=1.5\n');
  const multi = formatOutputs({ note: 'a\nb' });
  const m = /^note<<(ghadelimiter_[0-9a-f]+)\na\nb\n(ghadelimiter_[0-9a-f]+)\n$/.exec(multi);
  t.truthy(m);
  t.is(m![1], m![2]);
  t.is(secondsText(0), '0');
  t.is(secondsText(1449), '1.4');
  t.is(secondsText(61_000), '61');
});

test('human formats: durations, estimates, colour only on a TTY without NO_COLOR, aligned tables', (t) => {
  t.is(formatDuration(850), '0.8s');
  t.is(formatDuration(61_000), '1m 01s');
  t.is(formatDuration(7_380_000), '2h 03m');
  t.is(formatEstimate(null), 'unknown');
  t.is(formatEstimate(130_000), '~2m 10s');
  t.false(colorEnabled({ isTTY: false }, {}));
  t.true(colorEnabled({ isTTY: true }, {}));
  t.false(colorEnabled({ isTTY: true }, { NO_COLOR: '1' }));
  t.true(colorEnabled({ isTTY: true }, { NO_COLOR: '' }));
  t.false(colorEnabled({ isTTY: true }, { TERM: 'dumb' }));
  t.is(makeStyle(false).red('x'), 'x');
  const red = makeStyle(true).red('x');
  t.not(red, 'x');
  t.is(visibleLength(red), 1);
  t.is(
    table(
      [
        [makeStyle(true).bold('A'), 'B'],
        ['long', 'c'],
      ],
      '',
    ),
    `${makeStyle(true).bold('A')}     B\nlong  c\n`,
  );
});
