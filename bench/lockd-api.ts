/**
 * Talking to the bench daemon through the Node API (src/client/connection.ts), so that scenarios about the daemon
 * (handoff, throughput, scale) measure the daemon, not a client process starting per job.
 */
import { connectDaemon, request, type DaemonConnection } from '../src/client/connection.js';
import { buildRunRequest } from '../src/cli/commands/run.js';
import type { AcquireRequest, DaemonMessage, LockRef, RunOutcome } from '../src/protocol/messages.js';
import type { BenchDaemon } from './bench-daemon.js';
import { nowMs } from './timing.js';

export const BENCH_HOLDER = 'lockd-bench';
/**
 * Runs use another identity than holds: a run whose holder owns a hold covering its locks proceeds under that hold
 * (nesting), and the bench's gate holds must make runs queue, not wave them through.
 */
export const BENCH_RUN_HOLDER = 'lockd-bench-run';

export interface RunHandle {
  /** The daemon answered 'queued' (or started the job at once). */
  queued: Promise<void>;
  /** bench-clock ms when 'started' arrived. */
  started: Promise<number>;
  /** The outcome and the bench-clock ms when 'finished' arrived. */
  finished: Promise<{ outcome: RunOutcome; at: number }>;
  conn: Promise<DaemonConnection>;
}

/**
 * Queue one `lockd run` the way the CLI would build it (buildRunRequest), from `cwd`, waiting forever for its locks.
 * Output frames are discarded.
 */
export function submitRun(d: BenchDaemon, runArgs: string[], cwd: string): RunHandle {
  const { req } = buildRunRequest(['--root', cwd, '--wait', 'inf', '-q', ...runArgs], d.env);
  req.cwd = cwd;
  req.holder = BENCH_RUN_HOLDER;
  let onQueued!: () => void;
  let onStarted!: (at: number) => void;
  let onFinished!: (v: { outcome: RunOutcome; at: number }) => void;
  let fail!: (e: Error) => void;
  const queued = new Promise<void>((r) => (onQueued = r));
  const started = new Promise<number>((r) => (onStarted = r));
  const finished = new Promise<{ outcome: RunOutcome; at: number }>((resolve, reject) => {
    onFinished = resolve;
    fail = reject;
  });
  const conn = connectDaemon(d.connect, { type: 'run', req });
  conn.then(
    (c) => {
      c.onData = () => undefined;
      c.onMessage = (m: DaemonMessage) => {
        if (m.type === 'queued') onQueued();
        else if (m.type === 'started') {
          onQueued();
          onStarted(nowMs());
        } else if (m.type === 'finished') {
          onQueued();
          onFinished({ outcome: m.outcome, at: nowMs() });
        } else if (m.type === 'error' || m.type === 'not_obtained') {
          fail(new Error(`run not accepted: ${m.message}`));
        }
      };
      c.onClose = () => fail(new Error('daemon closed the run connection before finishing'));
    },
    (e: Error) => fail(e),
  );
  // Callers await what they need; an unobserved rejection must not crash the bench.
  for (const p of [queued, started, finished]) p.catch(() => undefined);
  return { queued: Promise.race([queued, finished.then(() => undefined)]), started, finished, conn };
}

export function localLock(name: string, root: string): LockRef {
  return { name, scope: 'local', mode: 'exclusive', root };
}

let holdSeq = 0;
/** Which holder string took each hold, so its release is its owner's. */
const holderOf = new Map<string, string>();

/** Each bench hold stands for a different caller: the daemon refuses one holder a second hold on what it holds. */
function acquireRequest(lock: LockRef, cwd: string, waitMs: number | null): AcquireRequest {
  return { locks: [lock], cwd, wait_ms: waitMs, ttl_ms: null, conflict_exit_code: 75, holder: `${BENCH_HOLDER}-${++holdSeq}`, user: 'bench', client_pid: process.pid, parent_run_id: null };
}

export interface HoldWaiter {
  /** Resolves when the daemon queued the request (or granted it at once). */
  queued: Promise<void>;
  /** The hold id once granted, with the bench-clock ms it arrived. */
  acquired: Promise<{ holdId: string; at: number }>;
  conn: Promise<DaemonConnection>;
}

/** An explicit hold (`acquire`), waiting forever; the connection stays open while it waits. */
export function acquireHold(d: BenchDaemon, lock: LockRef, cwd: string): HoldWaiter {
  let onQueued!: () => void;
  let onAcquired!: (v: { holdId: string; at: number }) => void;
  let fail!: (e: Error) => void;
  const queued = new Promise<void>((r) => (onQueued = r));
  const acquired = new Promise<{ holdId: string; at: number }>((resolve, reject) => {
    onAcquired = resolve;
    fail = reject;
  });
  const req = acquireRequest(lock, cwd, null);
  const conn = connectDaemon(d.connect, { type: 'acquire', req });
  let done = false;
  conn.then(
    (c) => {
      c.onMessage = (m: DaemonMessage) => {
        if (m.type === 'queued') onQueued();
        else if (m.type === 'acquired') {
          done = true;
          onQueued();
          holderOf.set(m.hold_id, req.holder);
          onAcquired({ holdId: m.hold_id, at: nowMs() });
        } else if (m.type === 'error' || m.type === 'not_obtained') fail(new Error(`acquire failed: ${m.message}`));
      };
      c.onClose = () => {
        if (!done) fail(new Error('daemon closed the acquire connection before granting'));
      };
    },
    (e: Error) => fail(e),
  );
  queued.catch(() => undefined);
  acquired.catch(() => undefined);
  return { queued: Promise.race([queued, acquired.then(() => undefined)]), acquired, conn };
}

export async function releaseHold(d: BenchDaemon, holdId: string, cwd: string): Promise<void> {
  const r = await request(d.connect, { type: 'release', hold_id: holdId, locks: [], cwd, holder: holderOf.get(holdId) ?? BENCH_HOLDER, force: false }, ['released']);
  if (!r.released) throw new Error(`hold ${holdId} was not released: ${r.note ?? ''}`);
  holderOf.delete(holdId);
}

/** Run `fn` over items with at most `limit` in flight (connection bursts beyond the listen backlog get refused). */
export async function inBatches<T, R>(items: T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  });
  await Promise.all(workers);
  return out;
}
