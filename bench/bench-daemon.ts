/**
 * A daemon of the bench's own: temp socket and state dir, started in the foreground with --ready-fd, stopped by
 * pid at the end. Nothing here touches a daemon the user may be running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ConnectOptions } from '../src/client/connection.js';

/** The repository root (dist/bench/ → ../..). */
export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(REPO, 'bin', 'lockd.js');

export interface BenchDaemon {
  /** Temp dir holding the socket, state dir and any scratch files of the scenario. */
  dir: string;
  socket: string;
  stateDir: string;
  /** Environment for clients of this daemon (CI variables removed so waits and holders are predictable). */
  env: NodeJS.ProcessEnv;
  pid: number;
  connect: ConnectOptions;
  stop(): Promise<void>;
}

/** A short temp dir: Unix socket paths are limited to ~107 bytes. */
export function benchTempDir(): string {
  const base = tmpdir().length < 40 ? tmpdir() : '/tmp';
  return mkdtempSync(join(base, 'lockd-bench-'));
}

/** The caller's environment minus everything that would change lockd's behaviour under test. */
export function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) {
    if (k.startsWith('LOCKD_') || k === 'CI' || k.startsWith('GITHUB_') || k.startsWith('GITLAB') || k === 'BUILD_TAG' || k === 'JENKINS_URL' || k === 'NODE_OPTIONS') delete env[k];
  }
  return env;
}

export interface StartOptions {
  /** Extra node flags for the daemon process (e.g. --import of the trace preload). */
  nodeArgs?: string[];
  /** Extra environment for the daemon only. */
  daemonEnv?: NodeJS.ProcessEnv;
  /** Another lockd's bin/lockd.js to run the daemon from (a before/after comparison in one run); default this tree's. */
  cli?: string;
}

/** The launcher every bench daemon uses (LOCKD_LAUNCHER), set by main.ts per pass; null: the daemon's own choice. */
let benchLauncher: 'native' | 'portable' | null = null;

export function setBenchLauncher(l: 'native' | 'portable' | null): void {
  benchLauncher = l;
}

export async function startBenchDaemon(opts: StartOptions = {}): Promise<BenchDaemon> {
  const dir = benchTempDir();
  const env = cleanEnv();
  env.LOCKD_SOCKET = join(dir, 's.sock');
  env.LOCKD_STATE_DIR = join(dir, 'state');
  env.LOCKD_NO_AUTOSTART = '1';
  const proc = spawn(process.execPath, [...(opts.nodeArgs ?? []), opts.cli ?? CLI, 'daemon', '--ready-fd', '3'], {
    env: { ...env, ...(benchLauncher ? { LOCKD_LAUNCHER: benchLauncher } : {}), ...(opts.daemonEnv ?? {}) },
    cwd: dir,
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
  });
  trackStarted(proc);
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`bench daemon not ready within 30 s: ${stderr}`)), 30_000);
      let text = '';
      (proc.stdio[3] as NodeJS.ReadableStream).on('data', (d: Buffer) => {
        text += d.toString();
        if (text.includes('ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.once('exit', (code, sig) => {
        clearTimeout(timer);
        reject(new Error(`bench daemon exited (${code ?? sig}) before it was ready: ${stderr}`));
      });
    });
  } catch (e) {
    await stopProcess(proc);
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  let stopped: Promise<void> | null = null;
  return {
    dir,
    socket: env.LOCKD_SOCKET,
    stateDir: env.LOCKD_STATE_DIR,
    env,
    pid: proc.pid!,
    connect: { socketPath: env.LOCKD_SOCKET, stateDir: env.LOCKD_STATE_DIR, autostart: false },
    stop: () =>
      (stopped ??= (async () => {
        await stopProcess(proc);
        rmSync(dir, { recursive: true, force: true });
      })()),
  };
}

/**
 * Processes the bench started and has not stopped yet (daemons, etcd), so an interrupted bench (Ctrl+C) can still
 * stop each of them by pid (stopAllStarted) instead of leaving them behind.
 */
const live = new Set<ChildProcess>();

export function trackStarted(proc: ChildProcess): void {
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
}

export async function stopAllStarted(): Promise<void> {
  await Promise.all([...live].map((p) => stopProcess(p, 3000)));
}

/** SIGTERM (the daemon's graceful stop), SIGKILL after a bound; resolves once the process is gone. */
export async function stopProcess(proc: ChildProcess, graceMs = 15_000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      try {
        proc.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }, graceMs);
    proc.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    try {
      proc.kill('SIGTERM');
    } catch {
      clearTimeout(timer);
      resolve();
    }
  });
}
