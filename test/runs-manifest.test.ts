import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { digestEnv } from '../src/runs/env-digest.js';
import { readGitSha } from '../src/runs/git-sha.js';
import { buildManifest, readManifest, withStartTime, writeManifest, type ManifestInput } from '../src/runs/manifest.js';
import { createRunDir } from '../src/runs/run-id.js';
import { commandLineOf, shellQuote, windowsQuoteArg } from '../src/runs/shell-quote.js';
import { assertValidManifest, manifestSchemaAccepts, readJson, tempDir } from './runs-helpers.js';

/** Run git with an isolated config, so the tester's own settings (signing, hooks) do not interfere. */
function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'user.name=lockd test', '-c', 'user.email=test@lockd.invalid', '-c', 'commit.gpgsign=false', '-c', 'init.defaultBranch=main', ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null' },
    timeout: 30_000,
  }).trim();
}

async function repoWithCommits(t: Parameters<typeof tempDir>[0], commits = 1): Promise<string> {
  const repo = path.join(await tempDir(t, 'lockd-git-'), 'repo');
  await mkdir(repo);
  git(repo, 'init', '-q');
  for (let i = 0; i < commits; i++) {
    await writeFile(path.join(repo, 'file.txt'), `version ${i}\n`);
    git(repo, 'add', 'file.txt');
    git(repo, 'commit', '-q', '-m', `commit ${i}`);
  }
  return repo;
}

test('readGitSha reads HEAD of a branch through the loose ref, from a subdirectory too', async (t) => {
  const repo = await repoWithCommits(t, 2);
  const expected = git(repo, 'rev-parse', 'HEAD');
  t.regex(expected, /^[0-9a-f]{40}$/);
  t.is(await readGitSha(repo), expected);
  const sub = path.join(repo, 'a', 'b');
  await mkdir(sub, { recursive: true });
  t.is(await readGitSha(sub), expected);
});

test('readGitSha resolves a branch that only exists in packed-refs', async (t) => {
  const repo = await repoWithCommits(t, 2);
  const expected = git(repo, 'rev-parse', 'HEAD');
  // Neighbours that share a prefix with the branch name, and an annotated tag (peeled line).
  git(repo, 'branch', 'main-old', 'HEAD~1');
  git(repo, 'branch', 'a/main', 'HEAD~1');
  git(repo, 'tag', '-a', '-m', 'tag', 'v1', 'HEAD~1');
  git(repo, 'pack-refs', '--all', '--prune');
  const heads = await readdir(path.join(repo, '.git', 'refs', 'heads'));
  t.deepEqual(heads, [], 'the loose refs must be gone for this test to mean anything');
  t.is(await readGitSha(repo), expected);
});

test('readGitSha reads a detached HEAD', async (t) => {
  const repo = await repoWithCommits(t, 2);
  const first = git(repo, 'rev-parse', 'HEAD~1');
  git(repo, 'checkout', '-q', '--detach', first);
  t.is(await readGitSha(repo), first);
});

test('readGitSha follows a linked worktree (.git file + commondir)', async (t) => {
  const repo = await repoWithCommits(t, 2);
  const wt = path.join(path.dirname(repo), 'wt');
  git(repo, 'worktree', 'add', '-q', '-b', 'side', wt, 'HEAD~1');
  const expected = git(wt, 'rev-parse', 'HEAD');
  t.not(expected, git(repo, 'rev-parse', 'HEAD'));
  t.is(await readGitSha(wt), expected);
  // The worktree's branch lives in the common dir; packed there it must still resolve.
  git(repo, 'pack-refs', '--all', '--prune');
  t.is(await readGitSha(wt), expected);
});

test('readGitSha is null outside a repository and on an unborn branch', async (t) => {
  const plain = await tempDir(t, 'lockd-nogit-');
  t.is(await readGitSha(plain), null);
  const fresh = path.join(plain, 'fresh');
  await mkdir(fresh);
  git(fresh, 'init', '-q');
  t.is(await readGitSha(fresh), null);
  t.is(await readGitSha(path.join(plain, 'does', 'not', 'exist')), null);
});

test('on Windows the command line is quoted for the C runtime and cmd (test/windows runs it back under Wine)', (t) => {
  t.is(windowsQuoteArg('plain'), 'plain');
  t.is(windowsQuoteArg(''), '""');
  t.is(windowsQuoteArg('with space'), '"with space"');
  t.is(windowsQuoteArg('q"uote'), '"q\\"uote"');
  t.is(windowsQuoteArg('trail\\'), 'trail\\', 'bare: a backslash before no quote is literal');
  t.is(windowsQuoteArg('a b\\'), '"a b\\\\"', 'quoted: a trailing backslash is doubled before the closing quote');
  t.is(windowsQuoteArg('C:\\dir\\file'), 'C:\\dir\\file', 'backslashes not before a quote stay as they are');
  t.is(windowsQuoteArg('a&b'), '"a&b"');
  t.is(commandLineOf(['cmd', '/c', 'echo hi'], 'win32'), 'cmd /c "echo hi"');
  t.is(commandLineOf(['sh', '-c', 'echo hi'], 'linux'), "sh -c 'echo hi'");
});

test('shellQuote produces a POSIX command line that round-trips through sh', (t) => {
  const argv = ['printf', '%s|', 'plain', 'with space', "it's", '', '$HOME', 'a"b', 'back\\slash', 'new\nline', '*'];
  const line = shellQuote(argv);
  t.is(shellQuote(['make', '-j4', 'ARCH=riscv64', './out/x.bin']), 'make -j4 ARCH=riscv64 ./out/x.bin');
  const out = execFileSync('sh', ['-c', line], { encoding: 'utf8', timeout: 10_000 });
  t.is(
    out,
    argv
      .slice(2)
      .map((a) => `${a}|`)
      .join(''),
  );
});

test('env digest is order-independent, counts variables and stores no names or values', (t) => {
  const a = digestEnv({ PATH: '/bin', SECRET_TOKEN: 'hunter2', EMPTY: '', GONE: undefined });
  const b = digestEnv({ EMPTY: '', SECRET_TOKEN: 'hunter2', PATH: '/bin' });
  t.deepEqual(a, b);
  t.is(a.count, 3);
  t.is(a.algorithm, 'sha256');
  t.regex(a.value, /^[0-9a-f]{64}$/);
  t.not(digestEnv({ PATH: '/bin', SECRET_TOKEN: 'hunter3', EMPTY: '' }).value, a.value);
  // Pairs are delimited, so moving text across a pair boundary changes the digest.
  t.not(digestEnv({ A: 'xB=y' }).value, digestEnv({ A: 'x', B: 'y' }).value);
  const text = JSON.stringify(a);
  t.false(text.includes('hunter2'));
  t.false(text.includes('SECRET_TOKEN'));
});

function input(overrides: Partial<ManifestInput> = {}): ManifestInput {
  return {
    runId: '250222-2315-7f3a',
    command: ['qemu-system-riscv64', '-kernel', 'out/my kernel.elf'],
    cwd: '/tmp',
    buildRoot: '/tmp/build',
    arch: 'riscv64',
    locks: [
      { name: 'qemu', scope: 'local', mode: 'exclusive', path: '/run/lockd/locks/qemu.lock' },
      { name: 'boards', scope: 'cluster', mode: 'slots', slots: 2, path: '/run/lockd/locks/boards.lock', fencing_token: 17 },
    ],
    holder: 'alice@box pid 4242',
    clientPid: 4242,
    queuedAt: new Date('2025-02-22T23:15:01.500Z'),
    lockdVersion: '0.1.0',
    env: { PATH: '/usr/bin', API_KEY: 'sekrit' },
    ...overrides,
  };
}

test('buildManifest fills every field and matches the schema', async (t) => {
  const repo = await repoWithCommits(t, 1);
  const sha = await readGitSha(repo);
  const m = buildManifest(input({ cwd: repo, gitSha: sha, detach: true, parentRunId: '250222-2300-0001' }));
  t.is(m.schema_version, 1);
  t.deepEqual(m.command, ['qemu-system-riscv64', '-kernel', 'out/my kernel.elf']);
  t.is(m.command_line, "qemu-system-riscv64 -kernel 'out/my kernel.elf'");
  t.is(m.git_sha, git(repo, 'rev-parse', 'HEAD'));
  t.is(m.queued_at_utc, '2025-02-22T23:15:01.500Z');
  t.is(m.start_time_utc, null);
  t.is(m.env_digest.count, 2);
  t.true(m.detach);
  t.is(m.parent_run_id, '250222-2300-0001');
  t.is(m.locks[1]!.fencing_token, 17);
  t.false(JSON.stringify(m).includes('sekrit'));
  t.false(JSON.stringify(m).includes('API_KEY'));
  t.truthy(m.user);
  t.truthy(m.host);
  assertValidManifest(t, m);
});

test('manifest outside a repo has a null git_sha and minimal defaults; the schema accepts it', async (t) => {
  const cwd = await tempDir(t, 'lockd-nogit-');
  const m = buildManifest(input({ cwd, gitSha: await readGitSha(cwd), buildRoot: undefined, arch: undefined, locks: undefined }));
  t.is(m.git_sha, null);
  t.is(m.build_root, null);
  t.is(m.arch, null);
  t.deepEqual(m.locks, []);
  t.false(m.detach);
  t.is(m.parent_run_id, null);
  assertValidManifest(t, m);
});

test('writeManifest writes atomically into the run dir; the file on disk matches the schema', async (t) => {
  const root = await tempDir(t);
  const { runId, dir } = await createRunDir(root);
  const queued = buildManifest(input({ runId }));
  const file = await writeManifest(dir, queued);
  t.is(file, path.join(dir, 'manifest.json'));
  assertValidManifest(t, await readJson(file));
  const started = withStartTime(queued, new Date('2025-02-22T23:16:00Z'));
  await writeManifest(dir, started);
  const onDisk = await readJson(file);
  assertValidManifest(t, onDisk);
  t.deepEqual(onDisk, started);
  t.deepEqual(await readManifest(dir), started);
  t.deepEqual(await readdir(dir), ['manifest.json']);
  await rm(dir, { recursive: true });
  t.is(await readManifest(dir), null);
});

test('the manifest schema rejects leaked env values and malformed fields', (t) => {
  const m = buildManifest(input());
  t.true(manifestSchemaAccepts(m));
  t.false(manifestSchemaAccepts({ ...m, env: { API_KEY: 'sekrit' } }));
  t.false(manifestSchemaAccepts({ ...m, run_id: '../x' }));
  t.false(manifestSchemaAccepts({ ...m, git_sha: 'HEAD' }));
  t.false(manifestSchemaAccepts({ ...m, locks: [{ name: 'x', scope: 'planet', mode: 'exclusive', path: '/x' }] }));
  t.false(manifestSchemaAccepts({ ...m, queued_at_utc: '2025-02-22 23:15' }));
});
