/**
 * The job's output on both paths (docs/protocol.md, "Descriptor passing"): the caller's own descriptors relayed by
 * the daemon in the kernel ('fds', the default on Linux with the addon), and the framed stream forced by
 * LOCKD_STDIO=framed. Every test runs once per path, with a real daemon, real pipes and real processes.
 */
import test, { type ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync, createReadStream } from 'node:fs';
import { basename, join } from 'node:path';
import { CLI, startDaemon, stopProcess, pidAlive, lockd, type Daemon } from './helpers/lockd.js';
import { kill9, within } from './helpers/crash-kit.js';

type Path = 'fds' | 'framed';
const PATHS: Path[] = ['fds', 'framed'];

function clientEnv(d: Daemon, path: Path): NodeJS.ProcessEnv {
  const env = { ...d.env };
  // (a daemon's own LOCKD_STDIO is in d.env: the client decides by its own)
  if (path === 'framed') env.LOCKD_STDIO = 'framed';
  else delete env.LOCKD_STDIO;
  return env;
}

interface Ran {
  code: number | null;
  stdout: Buffer;
  stderr: Buffer;
}

/** `lockd run ARGS` with its stdout and stderr as pipes read by this process (bounded by the test timeout). */
function run(t: ExecutionContext, d: Daemon, path: Path, args: string[], input?: Buffer): Promise<Ran> & { proc: ChildProcess } {
  const proc = spawn(process.execPath, [CLI, 'run', '-q', '--runs-root', join(d.dir, 'runs'), ...args], {
    env: clientEnv(d, path),
    cwd: d.dir,
    stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => stopProcess(proc, 3000));
  if (input) proc.stdin!.end(input);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  proc.stdout!.on('data', (b: Buffer) => out.push(b));
  proc.stderr!.on('data', (b: Buffer) => err.push(b));
  const p = new Promise<Ran>((resolve) => proc.once('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err) }))) as Promise<Ran> & {
    proc: ChildProcess;
  };
  p.proc = proc;
  return p;
}

/** The one run directory under the daemon's runs root (each test runs one job per daemon unless it says so). */
function runDirs(d: Daemon): string[] {
  const root = join(d.dir, 'runs');
  try {
    return readdirSync(root)
      .filter((n) => !n.startsWith('.'))
      .map((n) => join(root, n))
      .filter((p) => statSync(p).isDirectory());
  } catch {
    return [];
  }
}

function manifestStdio(dir: string): { path: string; reason: string | null } {
  return (JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { stdio: { path: string; reason: string | null } }).stdio;
}

async function fileSha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Poll (bounded) until `ok()`; for states only visible in /proc or on disk. */
async function until(ok: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function vmRssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

for (const path of PATHS) {
  test(`${path}: binary output without a trailing newline arrives byte-exact, in output.log too, and the manifest names the path`, async (t) => {
    const d = await startDaemon(t);
    const data = Buffer.concat([randomBytes(300_000), Buffer.from([0, 255, 13, 10, 0, 0x41])]);
    const file = join(d.dir, 'in.bin');
    writeFileSync(file, data);
    const r = await run(t, d, path, ['--', 'cat', file]);
    t.is(r.code, 0, r.stderr.toString());
    t.true(r.stdout.equals(data), 'stdout is byte-exact');
    const [dir] = runDirs(d);
    t.true(readFileSync(join(dir!, 'output.log')).equals(data), 'output.log is byte-exact');
    const stdio = manifestStdio(dir!);
    t.is(stdio.path, path);
    if (path === 'framed') t.is(stdio.reason, 'chosen by the client');
  });

  test(`${path}: stdout and stderr each arrive in order`, async (t) => {
    const d = await startDaemon(t);
    const n = 3000;
    const r = await run(t, d, path, ['--', 'sh', '-c', `i=1; while [ $i -le ${n} ]; do echo out$i; echo err$i >&2; i=$((i+1)); done`]);
    t.is(r.code, 0);
    const expect = (tag: string) => `${Array.from({ length: n }, (_, i) => `${tag}${i + 1}`).join('\n')}\n`;
    t.is(r.stdout.toString(), expect('out'));
    t.is(r.stderr.toString(), expect('err'));
    // The log holds both, each stream in its own order.
    const log = readFileSync(join(runDirs(d)[0]!, 'output.log'), 'utf8');
    t.is(
      log
        .split('\n')
        .filter((l) => l.startsWith('out'))
        .join('\n'),
      expect('out').trimEnd(),
    );
    t.is(
      log
        .split('\n')
        .filter((l) => l.startsWith('err'))
        .join('\n'),
      expect('err').trimEnd(),
    );
  });

  test(`${path}: 100 MiB through a pipe reader, output.log equal by sha256`, async (t) => {
    const d = await startDaemon(t);
    const file = join(d.dir, 'big.bin');
    writeFileSync(file, randomBytes(100 * 1024 * 1024));
    const proc = spawn(process.execPath, [CLI, 'run', '-q', '--runs-root', join(d.dir, 'runs'), '--', 'cat', file], { env: clientEnv(d, path), cwd: d.dir, stdio: ['ignore', 'pipe', 'inherit'] });
    t.teardown(() => stopProcess(proc, 3000));
    const h = createHash('sha256');
    let bytes = 0;
    proc.stdout!.on('data', (b: Buffer) => {
      bytes += b.length;
      h.update(b);
    });
    const code = await new Promise<number | null>((r) => proc.once('close', (c) => r(c)));
    t.is(code, 0);
    t.is(bytes, 100 * 1024 * 1024);
    const want = await fileSha256(file);
    t.is(h.digest('hex'), want, 'the reader got every byte');
    t.is(await fileSha256(join(runDirs(d)[0]!, 'output.log')), want, 'output.log is complete');
  });

  test(`${path}: a marker split across a 1 MiB chunk boundary and across two writes is found`, async (t) => {
    const d = await startDaemon(t);
    // The marker's line starts 8 bytes before 1 MiB and is written in two halves with a pause between them.
    const script = "head -c 1048567 /dev/zero | tr '\\000' x; printf '\\nSPLIT-MAR'; sleep 0.3; printf 'KER-FOUND\\n'";
    const r = await run(t, d, path, ['--require-marker', 'SPLIT-MARKER-FOUND', '--', 'sh', '-c', script]);
    t.is(r.code, 0, r.stderr.toString());
    const result = JSON.parse(readFileSync(join(runDirs(d)[0]!, 'result.json'), 'utf8')) as { status: string };
    t.is(result.status, 'pass');
  });

  test(`${path}: a missing marker still fails the run (the scan really looks)`, async (t) => {
    const d = await startDaemon(t);
    const r = await run(t, d, path, ['--require-marker', 'NEVER-PRINTED', '--', 'sh', '-c', 'echo something else']);
    t.is(r.code, 1);
  });

  test(`${path}: SIGKILL of the client mid-stream kills the job and frees the lock`, async (t) => {
    const d = await startDaemon(t);
    const first = run(t, d, path, ['--root', d.dir, '--lock', 'L', '--', 'sh', '-c', 'echo pid=$$; exec yes']);
    let seen = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no output from the job')), 20_000);
      first.proc.stdout!.on('data', (b: Buffer) => {
        if (seen.length < 4096) seen += b.toString();
        if (seen.length > 1000) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    const jobPid = Number(/pid=(\d+)/.exec(seen)?.[1]);
    t.true(jobPid > 0);
    first.proc.kill('SIGKILL');
    // The lock is free again: a second run under it starts and finishes.
    const second = await lockd(d, ['run', '-q', '--root', d.dir, '--lock', 'L', '--wait', '30', '--runs-root', join(d.dir, 'runs'), '--', 'echo', 'second'], { env: clientEnv(d, path) });
    t.is(second.code, 0, second.stderr);
    t.is(second.stdout, 'second\n');
    await until(() => !pidAlive(jobPid), 'the job to be gone');
    t.false(pidAlive(jobPid));
  });

  test(`${path}: a stopped reader blocks the job, and the daemon's RSS stays flat`, async (t) => {
    const d = await startDaemon(t);
    const total = 256 * 1024 * 1024;
    // consumer: cat into /dev/null, stopped (SIGSTOP) before the job starts: its pipe is the lockd client's stdout.
    const consumer = spawn('sh', ['-c', 'exec cat > /dev/null'], { stdio: ['pipe', 'ignore', 'inherit'] });
    t.teardown(() => stopProcess(consumer, 3000));
    consumer.kill('SIGSTOP');
    const client = spawn(process.execPath, [CLI, 'run', '-q', '--runs-root', join(d.dir, 'runs'), '--', 'head', '-c', String(total), '/dev/zero'], {
      env: clientEnv(d, path),
      cwd: d.dir,
      stdio: ['ignore', consumer.stdin!, 'inherit'],
    });
    t.teardown(() => stopProcess(client, 3000));
    const logOf = () => {
      const [dir] = runDirs(d);
      try {
        return dir ? statSync(join(dir, 'output.log')).size : 0;
      } catch {
        return 0;
      }
    };
    await until(() => logOf() > 0, 'output to start');
    // The job fills the pipes and blocks: the log stops growing (bounded), far short of what the job would write.
    let last = -1;
    let stable = 0;
    await until(() => {
      const now = logOf();
      stable = now === last ? stable + 1 : 0;
      last = now;
      return stable >= 10;
    }, 'the log to stop growing');
    const rssBefore = vmRssKiB(d.pid!);
    const logBefore = logOf();
    // Ask the job for more while it is blocked: the same bounded check again, and the daemon has not buffered it.
    stable = 0;
    await until(() => {
      const now = logOf();
      stable = now === last ? stable + 1 : 0;
      last = now;
      return stable >= 10;
    }, 'the log to stay put');
    const rssAfter = vmRssKiB(d.pid!);
    t.true(logBefore < 64 * 1024 * 1024, `the job blocked (log ${logBefore} bytes of ${total})`);
    t.true(rssAfter - rssBefore < 16 * 1024, `daemon RSS grew by ${rssAfter - rssBefore} KiB while the reader was stopped`);
    consumer.kill('SIGCONT');
    const code = await new Promise<number | null>((r) => client.once('close', (c) => r(c)));
    t.is(code, 0);
    t.is(logOf(), total, 'the whole output reached the log once the reader went on');
  });

  test(`${path}: -i passes binary stdin exactly, EOF included`, async (t) => {
    const d = await startDaemon(t);
    const input = Buffer.concat([randomBytes(200_000), Buffer.from([0, 4, 26, 0])]);
    const r = await run(t, d, path, ['-i', '--', 'sh', '-c', 'cat; printf EOF-SEEN'], input);
    t.is(r.code, 0, r.stderr.toString());
    t.true(r.stdout.equals(Buffer.concat([input, Buffer.from('EOF-SEEN')])));
  });
}

test('fds: the daemon declines descriptors for --log-max-bytes and says why in the manifest', async (t) => {
  const d = await startDaemon(t);
  const r = await run(t, d, 'fds', ['--log-max-bytes', '4096', '--', 'sh', '-c', 'printf hello']);
  t.is(r.code, 0);
  t.is(r.stdout.toString(), 'hello');
  const stdio = manifestStdio(runDirs(d)[0]!);
  t.is(stdio.path, 'framed');
  t.regex(stdio.reason ?? '', /log-max-bytes/);
});

test('fds: a daemon started with LOCKD_STDIO=framed keeps the framed stream', async (t) => {
  const d = await startDaemon(t, { env: { LOCKD_STDIO: 'framed' } });
  const r = await run(t, d, 'fds', ['--', 'sh', '-c', 'printf hi']);
  t.is(r.stdout.toString(), 'hi');
  t.deepEqual(manifestStdio(runDirs(d)[0]!), { path: 'framed', reason: 'LOCKD_STDIO=framed in the daemon' });
});

test('fds: a reader that goes away ends the job as under flock (yes | head -c 5)', async (t) => {
  const d = await startDaemon(t);
  const env = clientEnv(d, 'fds');
  const proc = spawn('sh', ['-c', `"${process.execPath}" "${CLI}" run -q --runs-root "${join(d.dir, 'runs')}" -- yes | head -c 5`], { env, cwd: d.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => stopProcess(proc, 3000));
  let out = '';
  proc.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  const code = await new Promise<number | null>((r) => proc.once('close', (c) => r(c)));
  t.is(out, 'y\ny\ny');
  t.is(code, 0);
  // The run is over (result.json written): yes died of the closed pipe instead of running for ever.
  const [dir] = runDirs(d);
  const result = JSON.parse(readFileSync(join(dir!, 'result.json'), 'utf8')) as { run_id: string };
  t.is(result.run_id, basename(dir!));
});

test('fds: under a real pty (script) the output reaches the terminal and the child sees a terminal (a relayed pty)', async (t) => {
  const d = await startDaemon(t);
  const cmd = `"${process.execPath}" "${CLI}" run -q --runs-root "${join(d.dir, 'runs')}" -- sh -c 'if [ -t 1 ]; then echo CHILD-TTY; else echo CHILD-PIPE; fi'`;
  const proc = spawn('script', ['-qec', cmd, '/dev/null'], { env: clientEnv(d, 'fds'), cwd: d.dir, stdio: ['pipe', 'pipe', 'pipe'] });
  t.teardown(() => stopProcess(proc, 3000));
  let out = '';
  proc.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  const code = await new Promise<number | null>((r) => proc.once('close', (c) => r(c)));
  t.is(code, 0, out);
  t.regex(out, /CHILD-TTY/);
  t.is(manifestStdio(runDirs(d)[0]!).path, 'fds');
});

test('fds: kill -9 of the daemon mid-stream: the job dies of the lost pipe, and the next daemon records the run', async (t) => {
  const d = await startDaemon(t);
  const first = run(t, d, 'fds', ['--', 'sh', '-c', 'echo pid=$$; exec yes']);
  let seen = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no output from the job')), 20_000);
    first.proc.stdout!.on('data', (b: Buffer) => {
      if (seen.length < 4096) seen += b.toString();
      if (seen.length > 1000) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  const jobPid = Number(/pid=(\d+)/.exec(seen)?.[1]);
  t.true(jobPid > 0);
  const [dir] = runDirs(d);
  t.is(manifestStdio(dir!).path, 'fds');
  await kill9(d);
  const r = await within(first, 15_000, 'the client to see the daemon gone');
  t.is(r.code, 125);
  // The relay died with the daemon: the job's next write has no reader (SIGPIPE), as on the framed path.
  await until(() => !pidAlive(jobPid), 'the job to die of its lost pipe', 15_000);
  // The next daemon settles the journal before it serves: the run gets its result.json.
  const d2 = await startDaemon(t, { dir: d.dir });
  t.truthy(d2.pid);
  const result = JSON.parse(readFileSync(join(dir!, 'result.json'), 'utf8')) as { status: string; reason: string };
  t.is(result.status, 'infra_fail');
  t.is(result.reason, 'daemon_lost');
});
