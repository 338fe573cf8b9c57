/**
 * Wine harness for the Windows suite: lockd's real daemon and CLI run as Node's official Windows build (node.exe)
 * under Wine, and the jobs are real Windows programs (cmd.exe, .cmd scripts, node.exe). The environment comes from
 * scripts/wine-node.sh (LOCKD_WINE, LOCKD_WINE_NODE, WINEPREFIX), which scripts/test-windows.sh evals first.
 *
 * Two Wine facts shape it:
 *  - node.exe cannot use a Unix pipe or socket as its stdio under Wine (libuv's open of the handle fails: EBADF),
 *    so every CLI's stdout and stderr go to files, which the waits below read (bounded).
 *  - A Windows process under Wine is a Linux process whose /proc/<pid>/cmdline is the Windows command line, so a
 *    process is found by a unique word on its command line (the daemon: its pipe name; a job's child: a marker) and
 *    checked and ended by its Linux pid, as the Linux suite does.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { ExecutionContext } from 'ava';
import { CLI, REPO, pidAlive, stopProcess, waitPidsGone } from '../helpers/lockd.js';

export { pidAlive, waitPidsGone, REPO };

const wine = process.env.LOCKD_WINE;
const nodeExe = process.env.LOCKD_WINE_NODE;
if (!wine || !nodeExe) throw new Error('the Windows suite needs LOCKD_WINE and LOCKD_WINE_NODE: run it with `npm run test:windows`');
export const WINE = wine;
export const NODE_EXE_LINUX = nodeExe;

/** A Linux path as Wine's Z: drive shows it to Windows programs. */
export function winPath(p: string): string {
  return `Z:${p.replace(/\//g, '\\')}`;
}
export const NODE_EXE = winPath(nodeExe);
export const CLI_WIN = winPath(CLI);
export const FIXTURES = join(REPO, 'test', 'windows', 'fixtures');

export interface WinLockd {
  /** The test's temp dir (Linux path); also the CLI's default cwd, so local locks land in it. */
  dir: string;
  /** The daemon's named pipe, unique to this test. */
  pipe: string;
  /** Linux path of the state dir (LOCKD_STATE_DIR is its Windows form). */
  stateDir: string;
  env: NodeJS.ProcessEnv;
}

/**
 * A per-test lockd environment: its own named pipe and state dir, auto-start on (the first CLI starts the daemon as
 * a Windows user's first `lockd run` does). Teardown: `lockd shutdown`, then SIGKILL of whatever still carries the
 * pipe name on its command line (a daemon that did not answer), by pid.
 */
export function winLockd(t: ExecutionContext): WinLockd {
  const dir = mkdtempSync('/tmp/lw-');
  const pipe = `\\\\.\\pipe\\lockd-test-${randomBytes(4).toString('hex')}`;
  const env: NodeJS.ProcessEnv = {};
  for (const k of ['PATH', 'HOME', 'WINEPREFIX', 'WINEDEBUG', 'WINEDLLOVERRIDES', 'LANG', 'TZ']) if (process.env[k] !== undefined) env[k] = process.env[k];
  env.LOCKD_SOCKET = pipe;
  env.LOCKD_STATE_DIR = winPath(join(dir, 'state'));
  env.LOCKD_TEST_NODE_EXE = NODE_EXE;
  const w: WinLockd = { dir, pipe, stateDir: join(dir, 'state'), env };
  t.teardown(async () => {
    await winCli(null, w, ['shutdown']).done;
    const left = pidsByCmdline(pipe);
    for (const pid of left) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await waitPidsGone(left, 10_000);
    rmSync(dir, { recursive: true, force: true });
  });
  return w;
}

/** Linux pids of the processes whose command line contains `word` (Windows programs under Wine included). */
export function pidsByCmdline(word: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(word)) found.push(Number(name));
    } catch {
      /* exited while we looked */
    }
  }
  return found;
}

export interface WinResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface WinCli {
  proc: ChildProcess;
  done: Promise<WinResult>;
  waitForStderr(text: string | RegExp, timeoutMs?: number): Promise<void>;
  waitForStdout(text: string | RegExp, timeoutMs?: number): Promise<void>;
}

let seq = 0;

/**
 * Run `lockd ARGS` as node.exe under Wine; stdout/stderr go to files (see above). Killed by pid in teardown.
 * `entry` is the JS file node.exe runs (default bin/lockd.js, the Node CLI).
 */
export function winCli(t: ExecutionContext | null, w: WinLockd, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; entry?: string } = {}): WinCli {
  const n = ++seq;
  const outPath = join(w.dir, `cli-${n}.out`);
  const errPath = join(w.dir, `cli-${n}.err`);
  const out = openSync(outPath, 'w');
  const err = openSync(errPath, 'w');
  const proc = spawn(WINE, [nodeExe as string, winPath(opts.entry ?? CLI), ...args], { cwd: opts.cwd ?? w.dir, env: { ...w.env, ...(opts.env ?? {}) }, stdio: ['ignore', out, err] });
  closeSync(out);
  closeSync(err);
  const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : '');
  let closed = false;
  const done = new Promise<WinResult>((resolve) =>
    proc.once('close', (code) => {
      closed = true;
      resolve({ code, stdout: read(outPath), stderr: read(errPath) });
    }),
  );
  const waitFor = async (p: string, text: string | RegExp, timeoutMs = 60_000) => {
    const deadline = Date.now() + timeoutMs;
    const has = () => (typeof text === 'string' ? read(p).includes(text) : text.test(read(p)));
    for (;;) {
      if (has()) return;
      if (closed) throw new Error(`lockd ${args.join(' ')} ended before ${String(text)}: stdout=${read(outPath)} stderr=${read(errPath)}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${String(text)}: stdout=${read(outPath)} stderr=${read(errPath)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  if (t) t.teardown(() => stopProcess(proc, 3000));
  return { proc, done, waitForStderr: (text, ms) => waitFor(errPath, text, ms), waitForStdout: (text, ms) => waitFor(outPath, text, ms) };
}

/** `lockd ARGS` to completion. */
export function runCli(w: WinLockd, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; entry?: string } = {}): Promise<WinResult> {
  return winCli(null, w, args, opts).done;
}

/** Wait until a (Linux) file exists, bounded. */
export async function waitForPath(path: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${path}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The Linux path of a Windows Z: path printed by lockd. */
export function linuxPath(p: string): string {
  return p.trim().replace(/^Z:/i, '').replace(/\\/g, '/');
}

/** The manifest and result paths `lockd run` prints, as Linux paths. */
export function printedPaths(stderr: string): { manifest: string | null; result: string | null } {
  const m = /lockd: manifest -> (.+)/.exec(stderr)?.[1];
  const r = /lockd: result -> (.+)/.exec(stderr)?.[1];
  return { manifest: m ? linuxPath(m) : null, result: r ? linuxPath(r) : null };
}
