import test from 'ava';
import { currentHolder, defaultWaitSeconds, detectCi, holderString, renderHolder } from '../src/client/holder.js';

const PID = 4242;
const HOST = 'box7';
const USER = 'alice';

const github = {
  CI: 'true',
  GITHUB_ACTIONS: 'true',
  GITHUB_REPOSITORY: 'acme/kernel',
  GITHUB_RUN_ID: '9182',
  GITHUB_RUN_ATTEMPT: '1',
  GITHUB_JOB: 'test',
  RUNNER_NAME: 'runner-3',
};
const gitlab = { CI: 'true', GITLAB_CI: 'true', CI_PROJECT_PATH: 'group/proj', CI_PIPELINE_ID: '77', CI_JOB_NAME: 'build', CI_JOB_ID: '555' };
const jenkins = { JENKINS_URL: 'https://ci.example/', BUILD_TAG: 'jenkins-kernel-41', BUILD_ID: '41' };
const drone = { CI: 'true', DRONE: 'true', DRONE_REPO: 'acme/kernel', DRONE_BUILD_NUMBER: '12' };
const bitbucket = { CI: 'true', BITBUCKET_BUILD_NUMBER: '33', BITBUCKET_REPO_FULL_NAME: 'acme/kernel' };

test('detectCi names each provider, and generic CI markers', (t) => {
  t.deepEqual(detectCi(github), { provider: 'github' });
  t.deepEqual(detectCi(gitlab), { provider: 'gitlab' });
  t.deepEqual(detectCi(jenkins), { provider: 'jenkins' });
  t.deepEqual(detectCi({ BUILD_TAG: 'jenkins-x-1' }), { provider: 'jenkins' });
  t.deepEqual(detectCi(drone), { provider: 'drone' });
  t.deepEqual(detectCi(bitbucket), { provider: 'bitbucket' });
  for (const name of ['CI', 'BUILD_ID', 'TF_BUILD', 'BUILDKITE', 'CIRCLECI', 'TEAMCITY_VERSION']) {
    t.deepEqual(detectCi({ [name]: 'true' }), { provider: 'generic' }, name);
  }
});

test('detectCi: a developer machine, including CI=false and empty values, is not CI', (t) => {
  t.deepEqual(detectCi({}), { provider: null });
  t.deepEqual(detectCi({ CI: 'false', HOME: '/home/alice' }), { provider: null });
  t.deepEqual(detectCi({ CI: '0', GITHUB_ACTIONS: '' }), { provider: null });
});

test('holderString: the format of each CI', (t) => {
  t.is(holderString(github, PID, HOST, USER), 'ci:github:acme/kernel#9182-1/test@runner-3:4242');
  t.is(holderString(gitlab, PID, HOST, USER), 'ci:gitlab:group/proj#77/build:4242@box7');
  t.is(holderString({ ...gitlab, CI_JOB_NAME: undefined }, PID, HOST, USER), 'ci:gitlab:group/proj#77/555:4242@box7');
  t.is(holderString(jenkins, PID, HOST, USER), 'ci:jenkins:jenkins-kernel-41:4242@box7');
  t.is(holderString({ JENKINS_URL: 'x', JOB_NAME: 'kernel', BUILD_NUMBER: '9' }, PID, HOST, USER), 'ci:jenkins:jenkins-kernel-9:4242@box7');
  t.is(holderString(drone, PID, HOST, USER), 'ci:drone:acme/kernel#12:4242@box7');
  t.is(holderString(bitbucket, PID, HOST, USER), 'ci:bitbucket:acme/kernel#33:4242@box7');
  t.is(holderString({ BUILDKITE: 'true' }, PID, HOST, USER), 'ci:generic:box7:4242');
});

test('holderString: the developer case is the OS user', (t) => {
  t.is(holderString({ HOME: '/home/alice' }, PID, HOST, USER), 'alice');
});

test('holderString: two matrix jobs of one run on one runner differ by pid', (t) => {
  t.not(holderString(github, 100, HOST, USER), holderString(github, 101, HOST, USER));
});

test('holderString: LOCKD_HOLDER overrides CI and developer identities', (t) => {
  t.is(holderString({ ...github, LOCKD_HOLDER: 'shared-reservation' }, PID, HOST, USER), 'shared-reservation');
  t.is(holderString({ LOCKD_HOLDER: 'bob' }, PID, HOST, USER), 'bob');
  t.is(holderString({ LOCKD_HOLDER: '  ' }, PID, HOST, USER), 'alice');
});

test('holderString: missing CI values get placeholders and control characters are dropped', (t) => {
  t.is(holderString({ GITHUB_ACTIONS: 'true', GITHUB_JOB: 'te\nst' }, PID, HOST, USER), 'ci:github:unknown#unknown-1/test@box7:4242');
});

test('renderHolder: CI holders become short sentences', (t) => {
  t.is(renderHolder('ci:github:acme/kernel#9182-1/test@runner-3:4242'), 'github run 9182 job test on runner-3');
  t.is(renderHolder('ci:github:acme/kernel#9182-2/test@runner-3:4242'), 'github run 9182 (attempt 2) job test on runner-3');
  t.is(renderHolder('ci:gitlab:group/proj#77/build:4242@host'), 'gitlab pipeline 77 job build on host');
  t.is(renderHolder('ci:jenkins:build-tag:4242@host'), 'jenkins build-tag on host');
  t.is(renderHolder('ci:drone:acme/kernel#12:4242@box7'), 'drone acme/kernel build 12 on box7');
  t.is(renderHolder('ci:bitbucket:acme/kernel#33:4242@box7'), 'bitbucket acme/kernel build 33 on box7');
  t.is(renderHolder('ci:generic:box7:4242'), 'ci job pid 4242 on box7');
});

test('renderHolder: GitLab job names with ":" and "/" (parallel matrix jobs) still render', (t) => {
  const holder = holderString({ ...gitlab, CI_JOB_NAME: 'test: [linux, 1/3]' }, PID, HOST, USER);
  t.is(renderHolder(holder), 'gitlab pipeline 77 job test: [linux, 1/3] on box7');
});

test('renderHolder: renders what holderString writes for every provider', (t) => {
  const cases: Array<[Record<string, string>, string]> = [
    [github, 'github run 9182 job test on runner-3'],
    [gitlab, 'gitlab pipeline 77 job build on box7'],
    [jenkins, 'jenkins jenkins-kernel-41 on box7'],
    [drone, 'drone acme/kernel build 12 on box7'],
    [bitbucket, 'bitbucket acme/kernel build 33 on box7'],
    [{ CI: 'true' }, 'ci job pid 4242 on box7'],
  ];
  for (const [env, rendered] of cases) t.is(renderHolder(holderString(env, PID, HOST, USER)), rendered);
});

test('renderHolder: a user name or a custom holder is shown as it is', (t) => {
  t.is(renderHolder('alice'), 'alice');
  t.is(renderHolder('shared-reservation'), 'shared-reservation');
});

test('defaultWaitSeconds: 0 at a desk, 1800 in CI', (t) => {
  t.is(defaultWaitSeconds({}), 0);
  t.is(defaultWaitSeconds(github), 1800);
  t.is(defaultWaitSeconds({ CI: 'true' }), 1800);
});

test('currentHolder uses the real pid and host', (t) => {
  const holder = currentHolder({ CI: 'true' });
  t.regex(holder, new RegExp(`^ci:generic:.+:${process.pid}$`));
  t.true(currentHolder({}).length > 0);
});
