/**
 * Holder identity: the string that says who holds a lock. The client computes it (node built-ins only — this
 * is on every client start-up) and sends it with each request; the daemon stores and shows it.
 *
 * On a developer machine the holder is the OS user. In CI it names the job, and always ends with the client's
 * pid (and runner/host), so two matrix items of the same workflow run on one box get distinct holders and
 * exclude each other. `LOCKD_HOLDER` (and the CLI's --holder) override it, e.g. to make two jobs share one
 * reservation on purpose.
 */
import { hostname, userInfo } from 'node:os';

export type CiProvider = 'github' | 'gitlab' | 'jenkins' | 'drone' | 'bitbucket' | 'generic';

export type Env = Readonly<Record<string, string | undefined>>;

/** How long a client waits for a busy lock when the user did not say: fail fast at a desk, queue in CI. */
export const CI_DEFAULT_WAIT_SECONDS = 1800;

/** A variable counts as set when it is non-empty and not an explicit "false"/"0" (e.g. `CI=false`). */
function isSet(env: Env, name: string): boolean {
  const v = env[name];
  return v !== undefined && v !== '' && v.toLowerCase() !== 'false' && v !== '0';
}

/** Generic markers: any of these means "some CI we have no holder format for". */
const GENERIC_CI_VARS = ['CI', 'BUILD_ID', 'TF_BUILD', 'BUILDKITE', 'CIRCLECI', 'TEAMCITY_VERSION'] as const;

export function detectCi(env: Env): { provider: CiProvider | null } {
  // Providers before the generic markers: most of them also set CI=true.
  if (isSet(env, 'GITHUB_ACTIONS')) return { provider: 'github' };
  if (isSet(env, 'GITLAB_CI')) return { provider: 'gitlab' };
  if (isSet(env, 'JENKINS_URL') || isSet(env, 'BUILD_TAG')) return { provider: 'jenkins' };
  if (isSet(env, 'DRONE')) return { provider: 'drone' };
  if (isSet(env, 'BITBUCKET_BUILD_NUMBER')) return { provider: 'bitbucket' };
  if (GENERIC_CI_VARS.some((name) => isSet(env, name))) return { provider: 'generic' };
  return { provider: null };
}

/**
 * An env value as it goes into a holder: control characters removed (the holder ends up in logs, tables and
 * line-oriented output), and a placeholder when the CI did not set it.
 */
function part(env: Env, name: string, fallback = 'unknown'): string {
  const v = (env[name] ?? '').replace(/[\u0000-\u001f\u007f]/g, '').trim();
  return v === '' ? fallback : v;
}

/** The holder string for this environment; pure, so tests pass synthetic envs. */
export function holderString(env: Env, pid: number, host: string, user: string): string {
  const override = env.LOCKD_HOLDER?.trim();
  if (override) return override;
  switch (detectCi(env).provider) {
    case 'github':
      return `ci:github:${part(env, 'GITHUB_REPOSITORY')}#${part(env, 'GITHUB_RUN_ID')}-${part(env, 'GITHUB_RUN_ATTEMPT', '1')}/${part(env, 'GITHUB_JOB')}@${part(env, 'RUNNER_NAME', host)}:${pid}`;
    case 'gitlab': {
      const job = part(env, 'CI_JOB_NAME', part(env, 'CI_JOB_ID'));
      return `ci:gitlab:${part(env, 'CI_PROJECT_PATH')}#${part(env, 'CI_PIPELINE_ID')}/${job}:${pid}@${host}`;
    }
    case 'jenkins': {
      // BUILD_TAG is Jenkins' own "jenkins-<job>-<number>"; rebuild it when only JENKINS_URL is set.
      const tag = part(env, 'BUILD_TAG', `jenkins-${part(env, 'JOB_NAME')}-${part(env, 'BUILD_NUMBER')}`);
      return `ci:jenkins:${tag}:${pid}@${host}`;
    }
    case 'drone':
      return `ci:drone:${part(env, 'DRONE_REPO')}#${part(env, 'DRONE_BUILD_NUMBER')}:${pid}@${host}`;
    case 'bitbucket':
      return `ci:bitbucket:${part(env, 'BITBUCKET_REPO_FULL_NAME')}#${part(env, 'BITBUCKET_BUILD_NUMBER')}:${pid}@${host}`;
    case 'generic':
      return `ci:generic:${host}:${pid}`;
    case null:
      return user;
  }
}

/** The OS user; containers without a passwd entry make userInfo() throw, so fall back to the env, then the uid. */
export function currentUser(env: Env = process.env): string {
  try {
    const name = userInfo().username;
    if (name) return name;
  } catch {
    // fall through
  }
  return env.USER || env.LOGNAME || `uid-${typeof process.getuid === 'function' ? process.getuid() : 'unknown'}`;
}

/** The holder of this process, from the real environment. */
export function currentHolder(env: Env = process.env, pid: number = process.pid): string {
  return holderString(env, pid, hostname(), currentUser(env));
}

// Parsers for the formats holderString writes. Fields are matched from both ends, so a job name that
// contains ':' or '/' (GitLab matrix jobs do) still renders.
const GITHUB = /^ci:github:(.*)#([^#/]*)-([^-/]*)\/(.*)@([^@]*):(\d+)$/;
const GITLAB = /^ci:gitlab:(.*)#([^#/]*)\/(.*):(\d+)@([^@]*)$/;
const JENKINS = /^ci:jenkins:(.*):(\d+)@([^@]*)$/;
const DRONE = /^ci:drone:(.*)#([^#]*):(\d+)@([^@]*)$/;
const BITBUCKET = /^ci:bitbucket:(.*)#([^#]*):(\d+)@([^@]*)$/;
const GENERIC = /^ci:generic:(.*):(\d+)$/;

/**
 * A holder for humans (status tables, "busy, held by …" messages). CI holders become a short sentence; anything
 * else (a user name, a LOCKD_HOLDER override) is shown as it is.
 */
export function renderHolder(holder: string): string {
  let m: RegExpExecArray | null;
  if ((m = GITHUB.exec(holder))) {
    const [, , run, attempt, job, runner] = m;
    const retry = attempt && attempt !== '1' ? ` (attempt ${attempt})` : '';
    return `github run ${run}${retry} job ${job} on ${runner}`;
  }
  if ((m = GITLAB.exec(holder))) {
    const [, , pipeline, job, , host] = m;
    return `gitlab pipeline ${pipeline} job ${job} on ${host}`;
  }
  if ((m = JENKINS.exec(holder))) {
    const [, tag, , host] = m;
    return `jenkins ${tag} on ${host}`;
  }
  if ((m = DRONE.exec(holder))) {
    const [, repo, build, , host] = m;
    return `drone ${repo} build ${build} on ${host}`;
  }
  if ((m = BITBUCKET.exec(holder))) {
    const [, repo, build, , host] = m;
    return `bitbucket ${repo} build ${build} on ${host}`;
  }
  if ((m = GENERIC.exec(holder))) {
    const [, host, pid] = m;
    return `ci job pid ${pid} on ${host}`;
  }
  return holder;
}

/** 0 (fail fast) on a developer machine, 30 minutes when a CI environment is detected. */
export function defaultWaitSeconds(env: Env): number {
  return detectCi(env).provider === null ? 0 : CI_DEFAULT_WAIT_SECONDS;
}
