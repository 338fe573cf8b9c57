/**
 * The two `lockd run` clients cannot drift: the native client's table (native/client/run-text.h) is generated from
 * the one the Node client reads (src/client/run-text.ts), its prebuilt binary is built from the sources in the tree,
 * and given the same situation both clients print the same lines and exit with the same code.
 */
import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { exitCodeFor } from '../src/cli/exit-codes.js';
import { NOT_OBTAINED_ERROR_CODES, USAGE_ERROR_CODES } from '../src/client/run-text.js';
import { CLI, FAST_BIN, REPO, startDaemon, waitForFile, lockdSpawn } from './helpers/lockd.js';

const onLinuxX64 = process.platform === 'linux' && process.arch === 'x64';

test('native/client/run-text.h is generated from src/client/run-text.ts (else: node native/client/gen-table.mjs)', async (t) => {
  const gen = (await import(join(REPO, 'native', 'client', 'gen-table.mjs'))) as { renderHeader(): Promise<string>; HEADER: string };
  t.is(readFileSync(gen.HEADER, 'utf8'), await gen.renderHeader());
});

test('the exit-code table: usage and not-obtained codes map as the header lists them, anything else is 125', (t) => {
  for (const c of USAGE_ERROR_CODES) t.is(exitCodeFor(c), 2, c);
  for (const c of NOT_OBTAINED_ERROR_CODES) t.is(exitCodeFor(c), 75, c);
  t.is(exitCodeFor('internal_error'), 125);
  const header = readFileSync(join(REPO, 'native', 'client', 'run-text.h'), 'utf8');
  for (const c of [...USAGE_ERROR_CODES, ...NOT_OBTAINED_ERROR_CODES]) t.true(header.includes(`"${c}",`), c);
});

test('the prebuilt lockd-fast was built from the sources in the tree (else: npm run build:native)', async (t) => {
  const prebuilt = join(REPO, 'prebuilds', 'linux-x64', 'lockd-fast');
  if (!onLinuxX64) {
    t.log(`the prebuilt client is for linux-x64; this is ${process.platform}-${process.arch}`);
    t.false(existsSync(join(REPO, 'prebuilds', `${process.platform}-${process.arch}`, 'lockd-fast')));
    return;
  }
  t.true(existsSync(prebuilt));
  const b = (await import(join(REPO, 'native', 'client', 'build.mjs'))) as { fastClientFingerprint(): string };
  t.is(readFileSync(`${prebuilt}.sources`, 'utf8').trim(), b.fastClientFingerprint(), 'native/client/ changed since the prebuild: run npm run build:native and commit prebuilds/');
});

function runWith(program: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(program, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    p.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    p.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * Run ids and the holder's pid differ between two runs; everything else must not. The job writes to the passed stderr
 * itself, so its lines and lockd's interleave as the two processes race: each kind is compared in its own order.
 */
const normalize = (s: string) => {
  const lines = s
    .replace(/\d{6}-\d{4}-[0-9a-f]{4,}/g, 'RUN')
    .replace(/\(pid \d+\)/g, '(pid N)')
    .split('\n');
  return { lockd: lines.filter((l) => l.startsWith('lockd: ')), job: lines.filter((l) => !l.startsWith('lockd: ')) };
};

test('same situation, same lines and exit code: busy lock, bounded wait given up, spawn failure, timeout, pass', async (t) => {
  if (!existsSync(FAST_BIN)) return t.fail(`no native client at ${FAST_BIN}`);
  const d = await startDaemon(t);
  const ready = join(d.dir, 'ready');
  const go = join(d.dir, 'go');
  const holder = lockdSpawn(t, d, ['run', '-q', '--lock', 'x', '--holder', 'alice', '--', 'sh', '-c', `touch ${ready}; while [ ! -e ${go} ]; do sleep 0.02; done`]);
  await waitForFile(ready);
  const cases: string[][] = [
    ['run', '--lock', 'x', '--wait', '0', '--', 'true'],
    ['run', '--lock', 'x', '--wait', '0', '--conflict-exit-code', '9', '--', 'true'],
    ['run', '--lock', 'x', '--wait', '0.3', '--', 'true'],
    ['run', '--', 'lockd-no-such-command-xyz'],
    ['run', '--timeout', '0.2', '--kill-after', '0.2', '--', 'sleep', '30'],
    ['run', '--lock', 'y', '--', 'sh', '-c', 'echo out; echo err >&2; exit 4'],
    ['run', '-q', '--global', 'g:shared', '--', 'echo', 'quiet'],
  ];
  for (const args of cases) {
    const node = await runWith(process.execPath, [CLI, ...args], d.env, d.dir);
    const fast = await runWith(FAST_BIN, args, { ...d.env, LOCKD_FAST_DEBUG: '1' }, d.dir);
    t.false(fast.stderr.includes('handing over'), `${args.join(' ')}: the native client did it itself (${fast.stderr})`);
    t.is(fast.code, node.code, args.join(' '));
    t.is(fast.stdout, node.stdout, args.join(' '));
    t.deepEqual(normalize(fast.stderr), normalize(node.stderr), args.join(' '));
  }
  const { writeFileSync } = await import('node:fs');
  writeFileSync(go, '');
  t.is((await holder.done).code, 0);
});
