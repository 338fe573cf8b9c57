/**
 * The native `lockd run` client (native/client/): what it sends is what the Node client sends (the records of two
 * runs agree), and every case it does not handle is handed to the Node CLI unchanged. The `lockd run` tests of the
 * suite run through it too with LOCKD_TEST_CLIENT=native (test/helpers/lockd.ts).
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { CLI, FAST_BIN, REPO, baseEnv, printedPaths, readJson, runProgram, startDaemon, tempDir, waitPidsGone } from './helpers/lockd.js';

const run = runProgram;
const fast = (args: string[], env: NodeJS.ProcessEnv, cwd: string) => run(FAST_BIN, args, { ...env, LOCKD_FAST_DEBUG: '1' }, cwd);
const HANDOVER = /^lockd-fast: handing over to the Node CLI: (.+)$/m;

test.before((t) => {
  t.true(existsSync(FAST_BIN), `no native client at ${FAST_BIN} (npm run build:native)`);
});

test('the request is the Node client’s: manifests of the same run agree, CI holder included (pid aside)', async (t) => {
  const d = await startDaemon(t);
  const root = join(d.dir, 'build');
  const env = { ...d.env, LOCKD_FAST_DEBUG: '1', GITHUB_ACTIONS: 'true', GITHUB_REPOSITORY: 'org/repo', GITHUB_RUN_ID: '77', GITHUB_JOB: 'test', RUNNER_NAME: ' runner-3\u0007 ' };
  const args = [
    'run',
    '--root',
    root,
    '--arch',
    'riscv64',
    '--lock',
    'qemu',
    '--lock',
    'board:slots=2',
    '--global',
    'deps:shared',
    '--wait',
    '5',
    '--timeout',
    '30',
    '--keep',
    '5',
    '--',
    'printf',
    '%s',
    'a b',
  ];
  const node = await run(process.execPath, [CLI, ...args], env, d.dir);
  const native = await run(FAST_BIN, args, env, d.dir);
  t.is(native.code, 0, native.stderr);
  t.is(node.code, 0, node.stderr);
  t.notRegex(native.stderr, HANDOVER);
  t.is(native.stdout, 'a b');
  const a = readJson(printedPaths(node.stderr).manifest!);
  const b = readJson(printedPaths(native.stderr).manifest!);
  const strip = (m: Record<string, unknown>) => {
    const rest: Record<string, unknown> = { ...m };
    for (const k of ['run_id', 'queued_at_utc', 'start_time_utc', 'client_pid', 'holder', 'locks']) delete rest[k];
    const locks = (m.locks as Array<Record<string, unknown>>).map((l) => {
      const { fencing_token: _token, ...same } = l;
      return same;
    });
    return { ...rest, holder: String(m.holder).replace(`:${m.client_pid}`, ':PID'), locks };
  };
  t.deepEqual(strip(b), strip(a));
  t.is(strip(b).holder, 'ci:github:org/repo#77-1/test@runner-3:PID');
  const ra = readJson(printedPaths(node.stderr).result!);
  const rb = readJson(printedPaths(native.stderr).result!);
  t.is(rb.status, ra.status);
});

test('hand-over: another verb, an option it does not handle, --help, a lockd.json Node warns about, no command', async (t) => {
  const d = await startDaemon(t);
  const status = await fast(['status'], d.env, d.dir);
  t.is(status.code, 0);
  t.regex(status.stderr, /handing over to the Node CLI: not `lockd run`/);
  t.regex(status.stdout, /lockd \d+\.\d+\.\d+, pid \d+/);
  const lmb = await fast(['run', '-q', '--log-max-bytes', '1k', '--', 'echo', 'capped'], d.env, d.dir);
  t.is(lmb.code, 0);
  t.is(lmb.stdout, 'capped\n');
  t.regex(lmb.stderr, /handing over to the Node CLI: an option this client does not handle/);
  const help = await fast(['run', '--help'], d.env, d.dir);
  t.is(help.code, 0);
  t.regex(help.stdout, /Usage: lockd run/);
  t.regex(help.stderr, HANDOVER);
  const cfgRoot = join(d.dir, 'cfg');
  mkdirSync(cfgRoot);
  // A lockd.json the native client reads itself is in native-client-config.test.ts; one Node would warn about is Node's.
  writeFileSync(join(cfgRoot, 'lockd.json'), JSON.stringify({ wiat: 0 }));
  const cfg = await fast(['run', '-q', '--root', cfgRoot, '--', 'echo', 'c'], d.env, d.dir);
  t.is(cfg.code, 0);
  t.regex(cfg.stderr, /handing over to the Node CLI: a lockd.json with a key lockd does not know/);
  t.regex(cfg.stderr, /unknown key "wiat" \(did you mean "wait"\?\)/);
  const none = await fast(['run', '--lock', 'x'], d.env, d.dir);
  t.is(none.code, 2);
  t.regex(none.stderr, /lockd run needs a command/);
  const bad = await fast(['run', '--lock', 'no/slash', '--', 'true'], d.env, d.dir);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /invalid lock name/);
});

test('hand-over: no daemon on the socket (auto-start off: the Node CLI says so; on: it starts one)', async (t) => {
  const dir = tempDir('nc');
  const env = baseEnv(dir);
  const off = await fast(['run', '--', 'true'], env, dir);
  t.is(off.code, 125);
  t.regex(off.stderr, /handing over to the Node CLI: no daemon answers/);
  t.regex(off.stderr, /no lockd daemon is running on .*auto-start is off/);
  const on = await fast(['run', '-q', '--', 'echo', 'started'], { ...env, LOCKD_NO_AUTOSTART: '0' }, dir);
  t.teardown(async () => {
    // The auto-started daemon, stopped by its pid (status names it).
    const st = await run(process.execPath, [CLI, 'status'], env, dir).catch(() => null);
    const pid = Number(/, pid (\d+),/.exec(st?.stdout ?? '')?.[1] ?? 0);
    if (pid > 0) {
      const signal = (sig: NodeJS.Signals) => {
        try {
          process.kill(pid, sig);
        } catch {
          // already gone
        }
      };
      signal('SIGTERM');
      if ((await waitPidsGone([pid], 10_000)).length > 0) signal('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  });
  t.is(on.code, 0, on.stderr);
  t.is(on.stdout, 'started\n');
  // the next call finds the auto-started daemon and stays native
  const again = await fast(['run', '-q', '--', 'echo', 'native'], { ...env, LOCKD_NO_AUTOSTART: '0' }, dir);
  t.is(again.stdout, 'native\n');
  t.notRegex(again.stderr, HANDOVER);
});

/** A fake daemon: answers each connection with `reply` (after reading the client's first bytes), then closes. */
async function fakeDaemon(t: import('ava').ExecutionContext, reply: (conn: number) => Buffer | null): Promise<{ socket: string; dir: string; connections: () => number }> {
  const dir = tempDir('ncf');
  const socket = join(dir, 'fake.sock');
  let n = 0;
  const peers = new Set<Socket>();
  const server = createServer((s) => {
    peers.add(s);
    const i = ++n;
    s.on('error', () => undefined);
    s.once('data', () => {
      const r = reply(i);
      if (r === null) s.destroy();
      else s.end(r);
    });
  });
  await new Promise<void>((r) => server.listen(socket, r));
  t.teardown(() => {
    for (const p of peers) p.destroy();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { socket, dir, connections: () => n };
}

function jsonFrame(msg: unknown): Buffer {
  const p = Buffer.from(JSON.stringify(msg));
  const h = Buffer.alloc(5);
  h.writeUInt32BE(p.length, 0);
  return Buffer.concat([h, p]);
}

test('hand-over: a daemon of another protocol version (refused at hello, or hello_ok with another protocol)', async (t) => {
  const mismatch = await fakeDaemon(t, () => jsonFrame({ type: 'error', code: 'protocol_mismatch', message: 'protocol mismatch: daemon speaks 2, client 1' }));
  const env = { ...baseEnv(mismatch.dir), LOCKD_SOCKET: mismatch.socket };
  const r = await fast(['run', '--', 'true'], env, mismatch.dir);
  t.regex(r.stderr, /handing over to the Node CLI: the daemon refused our protocol version/);
  // the Node CLI then met the same daemon and said what it said
  t.regex(r.stderr, /lockd: protocol mismatch: daemon speaks 2, client 1/);
  t.is(r.code, 125);
  t.is(mismatch.connections(), 2);
  const newer = await fakeDaemon(t, (i) => (i === 1 ? jsonFrame({ type: 'hello_ok', protocol: 2, version: '9.0.0' }) : jsonFrame({ type: 'error', code: 'internal_error', message: 'second client' })));
  const r2 = await fast(['run', '--', 'true'], { ...env, LOCKD_SOCKET: newer.socket }, newer.dir);
  t.regex(r2.stderr, /handing over to the Node CLI: a daemon of another protocol version/);
  t.regex(r2.stderr, /lockd: second client/);
});

test('a daemon lost after `launching` is never retried; lost while queued, it is sent once more', async (t) => {
  const hello = jsonFrame({ type: 'hello_ok', protocol: 1, version: '0.1.0', pid: 1, uptime_ms: 1, mode: 'user', socket: 's', state_dir: 'd' });
  const launched = await fakeDaemon(t, () =>
    Buffer.concat([hello, jsonFrame({ type: 'stdio', mode: 'framed', reason: 'test' }), jsonFrame({ type: 'launching', run_id: 'r1', result_path: '/x/result.json' })]),
  );
  const env = { ...baseEnv(launched.dir), LOCKD_SOCKET: launched.socket };
  const r = await fast(['run', '--', 'true'], env, launched.dir);
  t.is(r.code, 125);
  t.regex(r.stderr, /^lockd: lost the connection to the lockd daemon; the run's result will be at \/x\/result.json$/m);
  t.is(launched.connections(), 1);
  const queued = await fakeDaemon(t, () =>
    Buffer.concat([
      hello,
      jsonFrame({ type: 'stdio', mode: 'framed', reason: 'test' }),
      jsonFrame({ type: 'queued', run_id: 'r2', position: 1, blockers: [], manifest_path: '/x/m.json', result_path: '/x/r.json' }),
    ]),
  );
  const q = await fast(['run', '--wait', '10', '--lock', 'x', '--', 'true'], { ...env, LOCKD_SOCKET: queued.socket }, queued.dir);
  t.is(q.code, 125);
  t.regex(q.stderr, /retrying once/);
  t.is(queued.connections(), 2);
  t.notRegex(q.stderr, HANDOVER);
});

test('bin/lockd-fast runs the native client for run, the Node CLI for the rest, and works through a symlink', async (t) => {
  const d = await startDaemon(t);
  const link = join(d.dir, 'lockd-link');
  const { symlinkSync } = await import('node:fs');
  symlinkSync(join(REPO, 'bin', 'lockd-fast'), link);
  const r = await run(link, ['run', '-q', '--', 'echo', 'via-launcher'], { ...d.env, LOCKD_FAST_DEBUG: '1' }, d.dir);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'via-launcher\n');
  t.notRegex(r.stderr, HANDOVER);
  const v = await run(link, ['--version'], d.env, d.dir);
  t.is(v.stdout.trim(), `lockd ${JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version}`);
});

test('the CI-aware holder is the Node client’s for every provider (pid aside)', async (t) => {
  const d = await startDaemon(t);
  const envs: Array<Record<string, string>> = [
    {},
    { GITHUB_ACTIONS: 'true', GITHUB_REPOSITORY: 'o/r', GITHUB_RUN_ID: '5', GITHUB_RUN_ATTEMPT: '2', GITHUB_JOB: 'build' },
    { GITLAB_CI: 'true', CI_PROJECT_PATH: 'g/p', CI_PIPELINE_ID: '9', CI_JOB_ID: '31' },
    { JENKINS_URL: 'http://j', JOB_NAME: 'nightly', BUILD_NUMBER: '12' },
    { BUILD_TAG: 'jenkins-x-3' },
    { DRONE: 'true', DRONE_REPO: 'a/b', DRONE_BUILD_NUMBER: '4' },
    { BITBUCKET_BUILD_NUMBER: '8', BITBUCKET_REPO_FULL_NAME: 'w/r' },
    { CI: 'true' },
    { CI: 'false' },
    { LOCKD_HOLDER: 'shared-reservation' },
  ];
  for (const extra of envs) {
    const env = { ...d.env, ...extra };
    const holders: string[] = [];
    for (const [program, args] of [
      [process.execPath, [CLI, 'run', '--wait', '0', '--', 'true']],
      [FAST_BIN, ['run', '--wait', '0', '--', 'true']],
    ] as Array<[string, string[]]>) {
      const r = await run(program, args, { ...env, LOCKD_FAST_DEBUG: '1' }, d.dir);
      t.is(r.code, 0, r.stderr);
      t.notRegex(r.stderr, HANDOVER);
      const m = readJson(printedPaths(r.stderr).manifest!);
      holders.push(String(m.holder).replace(String(m.client_pid), 'PID'));
    }
    t.is(holders[1], holders[0], JSON.stringify(extra));
  }
});

test('--result-fd N: the result JSON on fd N as the Node client writes it (JSON.stringify of result.json); a closed fd is handed over', async (t) => {
  const d = await startDaemon(t);
  const withFd3 = (program: string, args: string[]) =>
    new Promise<{ code: number | null; stderr: string; fd3: string }>((resolve) => {
      const p = spawn(program, args, { env: { ...d.env, LOCKD_FAST_DEBUG: '1' }, cwd: d.dir, stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
      let stderr = '';
      let fd3 = '';
      p.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
      (p.stdio[3] as NodeJS.ReadableStream).on('data', (b: Buffer) => (fd3 += b.toString()));
      p.once('close', (code) => resolve({ code, stderr, fd3 }));
    });
  const r = await withFd3(FAST_BIN, ['run', '--result-fd', '3', '--run-id', 'fd-native', '--', 'sh', '-c', 'exit 6']);
  t.is(r.code, 6);
  t.notRegex(r.stderr, HANDOVER);
  t.true(r.fd3.endsWith('\n'));
  const record = readJson(join(d.stateDir, 'runs', 'fd-native', 'result.json'));
  t.is(r.fd3, `${JSON.stringify(record)}\n`);
  const closed = await run(FAST_BIN, ['run', '--result-fd', '9', '--', 'true'], { ...d.env, LOCKD_FAST_DEBUG: '1' }, d.dir);
  t.regex(closed.stderr, /handing over to the Node CLI: a --result-fd that is not open/);
  t.regex(closed.stderr, /lockd: cannot write the result to fd 9/);
});

test('-i: stdin reaches the job, EOF included, with passed descriptors and on the framed stream', async (t) => {
  const d = await startDaemon(t);
  for (const stdio of ['fds', 'framed']) {
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const p = spawn(FAST_BIN, ['run', '-q', '-i', '--', 'sh', '-c', 'cat; echo eof'], { env: { ...d.env, LOCKD_FAST_DEBUG: '1', LOCKD_STDIO: stdio }, cwd: d.dir, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
      p.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      p.stdin.end('line1\nline2\n');
      p.once('close', (code) => resolve({ code, stdout, stderr }));
    });
    t.is(r.code, 0, `${stdio}: ${r.stderr}`);
    t.is(r.stdout, 'line1\nline2\neof\n', stdio);
    t.notRegex(r.stderr, HANDOVER);
  }
});
