/**
 * Helpers for the crash, hostile, fuzz and stress tests: protocol-level clients (no CLI process per request),
 * the process table as the tests' source of truth, and clean-up by pid of everything a test's runs started.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import type { ExecutionContext } from 'ava';
import { connectDaemon, request, type ConnectOptions, type DaemonConnection } from '../../src/client/connection.js';
import { buildRunRequest } from '../../src/cli/commands/run.js';
import type { ClientMessage, DaemonMessage, RunOutcome, StatusSnapshot } from '../../src/protocol/messages.js';
import type { Daemon } from './lockd.js';

export const LONG = process.env.LOCKD_TEST_LONG === '1';

export function connectOpts(d: Pick<Daemon, 'socket' | 'stateDir'>): ConnectOptions {
  return { socketPath: d.socket, stateDir: d.stateDir, autostart: false };
}

export function ask<T extends DaemonMessage['type']>(d: Pick<Daemon, 'socket' | 'stateDir'>, msg: ClientMessage, until: T[]): Promise<Extract<DaemonMessage, { type: T }>> {
  return request(connectOpts(d), msg, until);
}

export async function statusOf(d: Pick<Daemon, 'socket' | 'stateDir'>): Promise<StatusSnapshot> {
  return (await ask(d, { type: 'status', root: null }, ['status'])).snapshot;
}

/** What one `lockd run` over the protocol saw. */
export interface ApiRun {
  conn: DaemonConnection;
  /** Resolves with the run id and child pid once started (rejects if it finished or the connection closed first). */
  started: Promise<{ runId: string; pid: number; resultPath: string }>;
  /** The run id as soon as the daemon named it (queued or started). */
  named: Promise<{ runId: string; resultPath: string }>;
  /** Resolves with the outcome, or null when the connection closed without one. */
  done: Promise<RunOutcome | null>;
  output(): string;
  messages: DaemonMessage[];
}

/** Start a run through the Node client API with `lockd run` arguments (parsed by the CLI's own parser). */
export async function apiRun(d: Pick<Daemon, 'socket' | 'stateDir' | 'env'>, args: string[]): Promise<ApiRun> {
  // `lockd run` arguments, with or without the leading `run`.
  const { req } = buildRunRequest(args[0] === 'run' ? args.slice(1) : args, d.env);
  const conn = await connectDaemon(connectOpts(d), { type: 'run', req });
  let out = '';
  const messages: DaemonMessage[] = [];
  let resolveStarted!: (v: { runId: string; pid: number; resultPath: string }) => void;
  let rejectStarted!: (e: Error) => void;
  let resolveNamed!: (v: { runId: string; resultPath: string }) => void;
  let rejectNamed!: (e: Error) => void;
  let resolveDone!: (v: RunOutcome | null) => void;
  const started = new Promise<{ runId: string; pid: number; resultPath: string }>((a, b) => {
    resolveStarted = a;
    rejectStarted = b;
  });
  const named = new Promise<{ runId: string; resultPath: string }>((a, b) => {
    resolveNamed = a;
    rejectNamed = b;
  });
  const done = new Promise<RunOutcome | null>((a) => (resolveDone = a));
  started.catch(() => undefined);
  named.catch(() => undefined);
  conn.onData = (_kind, data) => {
    out += data.toString();
  };
  conn.onMessage = (m) => {
    messages.push(m);
    if (m.type === 'queued') resolveNamed({ runId: m.run_id, resultPath: m.result_path });
    if (m.type === 'started') {
      resolveNamed({ runId: m.run_id, resultPath: m.result_path });
      resolveStarted({ runId: m.run_id, pid: m.pid, resultPath: m.result_path });
    }
    if (m.type === 'detached') {
      resolveNamed({ runId: m.run_id, resultPath: m.result_path });
      resolveDone(null);
    }
    if (m.type === 'finished') {
      resolveNamed({ runId: m.outcome.run_id, resultPath: m.outcome.result_path });
      rejectStarted(new Error(`finished before starting: ${m.outcome.reason} ${m.outcome.message ?? ''}`));
      resolveDone(m.outcome);
    }
    if (m.type === 'error') {
      rejectNamed(new Error(`${m.code}: ${m.message}`));
      rejectStarted(new Error(`${m.code}: ${m.message}`));
      resolveDone(null);
    }
  };
  conn.onClose = () => {
    rejectNamed(new Error('connection closed'));
    rejectStarted(new Error('connection closed'));
    resolveDone(null);
  };
  return { conn, started, named, done, output: () => out, messages };
}

/** A bounded wait for a promise. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/** Poll `check` (cheap) until it returns a non-undefined value; bounded. */
export async function until<T>(check: () => T | undefined | Promise<T | undefined>, ms: number, what: string, stepMs = 25): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** Bounded wait for a state change of a non-child process (there is no event for that); yields between checks. */
export async function pollUntil(cond: () => boolean, timeoutMs = 10_000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() >= end) return false;
    await new Promise((r) => setTimeout(r, 5));
  }
  return true;
}

// ---- the process table ----

export interface ProcInfo {
  pid: number;
  ppid: number;
  pgid: number;
  state: string;
}

export function procInfo(pid: number): ProcInfo | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { pid, state: rest[0]!, ppid: Number(rest[1]), pgid: Number(rest[2]) };
  } catch {
    return null;
  }
}

/** Live (not zombie) processes whose environment has `name=<value starting with valuePrefix>`; `value` is the whole value. */
export async function processesWithEnv(name: string, valuePrefix = ''): Promise<Array<ProcInfo & { value: string }>> {
  const head = Buffer.from(`\0${name}=`);
  const needle = Buffer.from(`\0${name}=${valuePrefix}`);
  const out: Array<ProcInfo & { value: string }> = [];
  const names = (await readdir('/proc')).filter((n) => /^\d+$/.test(n));
  await Promise.all(
    names.map(async (n) => {
      const pid = Number(n);
      if (pid === process.pid) return;
      let env: Buffer;
      try {
        // A leading NUL makes the first variable match like the others.
        env = Buffer.concat([Buffer.from([0]), await readFile(`/proc/${pid}/environ`)]);
      } catch {
        return;
      }
      const at = env.indexOf(needle);
      if (at === -1) return;
      const end = env.indexOf(0, at + 1);
      const info = procInfo(pid);
      if (!info || info.state === 'Z' || info.state === 'X') return;
      out.push({ ...info, value: env.subarray(at + head.length, end === -1 ? env.length : end).toString() });
    }),
  );
  return out;
}

/** Live processes started by runs whose run dir is under `dir` (every run process carries LOCKD_RUN_DIR). */
export function runProcessesUnder(dir: string): Promise<Array<ProcInfo & { value: string }>> {
  return processesWithEnv('LOCKD_RUN_DIR', dir);
}

/** SIGKILL every process a test's runs left behind (by pid, found by their LOCKD_RUN_DIR). */
export async function killRunProcessesUnder(dir: string): Promise<void> {
  for (let i = 0; i < 5; i++) {
    const left = await runProcessesUnder(dir);
    if (left.length === 0) return;
    for (const p of left) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function cleanupRunsUnder(t: ExecutionContext, dir: string): void {
  t.teardown(() => killRunProcessesUnder(dir));
}

/** Zombie children of `pid`, from /proc. */
export function zombieChildren(pid: number): number[] {
  const out: number[] = [];
  for (const n of readdirSync('/proc')) {
    if (!/^\d+$/.test(n)) continue;
    const info = procInfo(Number(n));
    if (info && info.ppid === pid && info.state === 'Z') out.push(info.pid);
  }
  return out;
}

/** SIGKILL a daemon started by the harness and wait for it to be gone. */
export async function kill9(d: Daemon): Promise<void> {
  const proc = d.proc!;
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill('SIGKILL');
  await within(exited, 10_000, 'the daemon to die');
}

/** A small deterministic PRNG (mulberry32), so a failing random test can be replayed from its printed seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function seedFromEnv(name: string): number {
  const v = Number(process.env[name]);
  return Number.isInteger(v) && v > 0 ? v : (Date.now() ^ (process.pid << 8)) >>> 0;
}
