/**
 * Test harness: a real daemon on a temp socket and state dir, and the real CLI as a child process.
 * Everything started here is stopped by pid in teardown; every wait is bounded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ExecutionContext } from 'ava';
import { stopProcess } from '../../bench/bench-daemon.js';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(REPO, 'bin', 'lockd.js');
/**
 * The native `lockd run` client (native/client/): LOCKD_FAST_BIN, else the prebuilt one. With LOCKD_TEST_CLIENT=native
 * every `lockd run` the helpers start goes through it instead of the Node CLI (same tests, same expectations).
 */
export const FAST_BIN = process.env.LOCKD_FAST_BIN ? resolve(process.env.LOCKD_FAST_BIN) : join(REPO, 'prebuilds', `${process.platform}-${process.arch}`, 'lockd-fast');
export const NATIVE_CLIENT = process.env.LOCKD_TEST_CLIENT === 'native';

/** The program and arguments that run `lockd ARGS...` with the client under test. */
export function cliCommand(args: string[]): [string, string[]] {
  return NATIVE_CLIENT && args[0] === 'run' ? [FAST_BIN, args] : [process.execPath, [CLI, ...args]];
}

export interface Daemon {
  dir: string;
  socket: string;
  stateDir: string;
  env: NodeJS.ProcessEnv;
  proc: ChildProcess | null;
  pid: number | null;
  stop(): Promise<void>;
}

/** A temp dir with a short path (Unix socket paths are limited to ~107 bytes). */
export function tempDir(prefix = 'ld'): string {
  return mkdtempSync(join('/tmp', `${prefix}-`));
}

export function baseEnv(dir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  // LOCKD_LAUNCHER stays: .ci/run runs the whole suite once per launcher.
  for (const k of Object.keys(env))
    if ((k.startsWith('LOCKD_') && k !== 'LOCKD_LAUNCHER') || k === 'CI' || k.startsWith('GITHUB_') || k.startsWith('GITLAB') || k === 'BUILD_TAG' || k === 'JENKINS_URL') delete env[k];
  env.LOCKD_SOCKET = join(dir, 's.sock');
  env.LOCKD_STATE_DIR = join(dir, 'state');
  env.LOCKD_NO_AUTOSTART = '1';
  return env;
}

/** Start a daemon in the foreground and wait for its "ready" line (bounded). */
export async function startDaemon(t: ExecutionContext | null, opts: { dir?: string; args?: string[]; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<Daemon> {
  const dir = opts.dir ?? tempDir();
  const env = { ...baseEnv(dir), ...(opts.env ?? {}) };
  const proc = spawn(process.execPath, [CLI, 'daemon', '--ready-fd', '3', ...(opts.args ?? [])], {
    env,
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
  });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  proc.stdout!.resume();
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      // Nobody will stop a daemon the test never got: kill it now rather than leave it running.
      proc.kill('SIGKILL');
      reject(new Error(`daemon did not become ready in 60 s: ${stderr}`));
    }, 60_000);
    const ready = proc.stdio[3] as NodeJS.ReadableStream;
    let text = '';
    ready.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`daemon exited with ${code} before ready: ${stderr}`));
    });
  });
  const d: Daemon = {
    dir,
    socket: env.LOCKD_SOCKET!,
    stateDir: env.LOCKD_STATE_DIR!,
    env,
    proc,
    pid: proc.pid ?? null,
    stop: () => stopProcess(proc, 8000),
  };
  if (t) {
    t.teardown(async () => {
      await d.stop();
      rmSync(dir, { recursive: true, force: true });
    });
  }
  return d;
}

/** SIGTERM, then SIGKILL after a bound; resolves when the process has exited (the bench's, one copy for both). */
export { stopProcess };

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliProcess {
  proc: ChildProcess;
  done: Promise<CliResult>;
  /** Resolves when stderr contains the text (bounded). */
  waitForStderr(text: string | RegExp, timeoutMs?: number): Promise<void>;
  waitForStdout(text: string | RegExp, timeoutMs?: number): Promise<void>;
  stdout(): string;
  stderr(): string;
}

/** Start the CLI; the returned process is killed in teardown if still running. */
export function lockdSpawn(t: ExecutionContext | null, d: Pick<Daemon, 'env'>, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string } = {}): CliProcess {
  const [program, argv] = cliCommand(args);
  const proc = spawn(program, argv, {
    // No extra variable for the native client (a hand-over runs the `node` on PATH): the job's environment, which
    // the manifest digests, must be the same whichever client ran it.
    env: { ...d.env, ...(opts.env ?? {}) },
    // Default cwd: the daemon's temp dir, so `--lock x` without --root never shares lock files (and their real
    // flocks) with other tests' daemons.
    cwd: opts.cwd ?? (d.env.LOCKD_SOCKET && existsSync(dirname(d.env.LOCKD_SOCKET)) ? dirname(d.env.LOCKD_SOCKET) : REPO),
    stdio: [opts.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  if (opts.input !== undefined) proc.stdin!.end(opts.input);
  let out = '';
  let err = '';
  const waiters: Array<() => void> = [];
  proc.stdout!.on('data', (b: Buffer) => {
    out += b.toString();
    for (const w of [...waiters]) w();
  });
  proc.stderr!.on('data', (b: Buffer) => {
    err += b.toString();
    for (const w of [...waiters]) w();
  });
  const done = new Promise<CliResult>((resolve) => {
    proc.once('close', (code, signal) => resolve({ code, signal, stdout: out, stderr: err }));
  });
  const waitFor = (get: () => string, text: string | RegExp, timeoutMs = 20_000) =>
    new Promise<void>((resolve, reject) => {
      const test = () => (typeof text === 'string' ? get().includes(text) : text.test(get()));
      if (test()) return resolve();
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out waiting for ${String(text)}; stdout=${out} stderr=${err}`));
      }, timeoutMs);
      const check = () => {
        if (test()) {
          cleanup();
          resolve();
        }
      };
      const onClose = () => {
        if (!test()) {
          cleanup();
          reject(new Error(`process ended before ${String(text)}; stdout=${out} stderr=${err}`));
        }
      };
      const cleanup = () => {
        clearTimeout(timer);
        const i = waiters.indexOf(check);
        if (i >= 0) waiters.splice(i, 1);
        proc.removeListener('close', onClose);
      };
      waiters.push(check);
      proc.once('close', onClose);
    });
  if (t) t.teardown(() => stopProcess(proc, 3000));
  return {
    proc,
    done,
    waitForStderr: (text, ms) => waitFor(() => err, text, ms),
    waitForStdout: (text, ms) => waitFor(() => out, text, ms),
    stdout: () => out,
    stderr: () => err,
  };
}

/** Run the CLI to completion (bounded by the test timeout). */
export function lockd(d: Pick<Daemon, 'env'>, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string } = {}): Promise<CliResult> {
  return lockdSpawn(null, d, args, opts).done;
}

/** Wait until a file exists (fs.watch on its directory plus a check; bounded). */
export async function waitForFile(path: string, timeoutMs = 20_000): Promise<void> {
  const { watch } = await import('node:fs');
  if (existsSync(path)) return;
  await new Promise<void>((resolve, reject) => {
    const w = watch(dirname(path), () => {
      if (existsSync(path)) done();
    });
    // fs.watch can miss events on some filesystems; a slow re-check bounds that.
    const iv = setInterval(() => existsSync(path) && done(), 50);
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out waiting for ${path}`));
    }, timeoutMs);
    const cleanup = () => {
      w.close();
      clearInterval(iv);
      clearTimeout(timer);
    };
    const done = () => {
      cleanup();
      resolve();
    };
  });
}

export function readJson<T = Record<string, unknown>>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

/** Is this pid alive (and not a zombie)? */
export function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Wait until none of the pids is alive (bounded). */
export async function waitPidsGone(pids: number[], timeoutMs = 15_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const alive = pids.filter(pidAlive);
    if (alive.length === 0 || Date.now() > deadline) return alive;
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Paths printed on stderr by `lockd run`. */
export function printedPaths(stderr: string): { manifest: string | null; result: string | null } {
  return {
    manifest: /lockd: manifest -> (.+)/.exec(stderr)?.[1] ?? null,
    result: /lockd: result -> (.+)/.exec(stderr)?.[1] ?? null,
  };
}

export interface ProgramResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run any program (the native client, `node bin/lockd.js`, …) to its end, bounded; stdin closed. */
export function runProgram(program: string, args: string[], env: NodeJS.ProcessEnv, cwd: string, timeoutMs = 60_000): Promise<ProgramResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(program, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
    p.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`${program} ${args.join(' ')} did not end in ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    p.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}
