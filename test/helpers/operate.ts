/** Helpers for the operate-* tests: the live event stream, status snapshots, detached lock holders. */
import type { ExecutionContext } from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LockdEvent, StatusSnapshot } from '../../src/protocol/messages.js';
import { lockd, lockdSpawn, waitForFile, type Daemon } from './lockd.js';

export interface EventFollower {
  /** Every event received so far, in order. */
  all(): LockdEvent[];
  /** Resolves with the first event (already received or still to come) matching pred; bounded. */
  waitFor(pred: (e: LockdEvent) => boolean, what: string, timeoutMs?: number): Promise<LockdEvent>;
}

/** `lockd events --json`, resolved once it is subscribed (its "listening" note), stopped in teardown. */
export async function followEvents(t: ExecutionContext, d: Pick<Daemon, 'env'>): Promise<EventFollower> {
  const p = lockdSpawn(t, d, ['events', '--json']);
  const events: LockdEvent[] = [];
  const waiters = new Set<() => void>();
  let buf = '';
  p.proc.stdout!.on('data', (b: Buffer) => {
    buf += b.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.trim()) events.push(JSON.parse(line) as LockdEvent);
    }
    for (const w of [...waiters]) w();
  });
  await p.waitForStderr('listening');
  return {
    all: () => [...events],
    waitFor: (pred, what, timeoutMs = 20_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const e = events.find(pred);
          if (!e) return;
          cleanup();
          resolve(e);
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out waiting for event: ${what}; got ${JSON.stringify(events.map((e) => [e.type, e.id]))}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      }),
  };
}

export async function statusJson(d: Pick<Daemon, 'env'>, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<StatusSnapshot> {
  const r = await lockd(d, ['status', '--json', ...args], { env });
  if (r.code !== 0) throw new Error(`lockd status failed (${r.code}): ${r.stderr}`);
  const snap = JSON.parse(r.stdout) as StatusSnapshot;
  // The CLI passes the daemon's bytes through unparsed: they must be exactly what serializing the snapshot gives.
  if (r.stdout !== `${JSON.stringify(snap)}\n`) throw new Error(`lockd status --json printed non-canonical JSON: ${r.stdout.slice(0, 200)}`);
  return snap;
}

/** The hold id from `lockd acquire`'s eval-able line. */
export function holdIdOf(stdout: string): string {
  const m = /^LOCKD_HOLD_ID=(hold-[0-9a-f]+)$/m.exec(stdout);
  if (!m) throw new Error(`no LOCKD_HOLD_ID in ${JSON.stringify(stdout)}`);
  return m[1]!;
}

/** The run id from the manifest line `lockd run` prints. */
export function runIdOf(stderr: string): string {
  const m = /lockd: manifest -> .*\/([^/]+)\/manifest\.json/.exec(stderr);
  if (!m) throw new Error(`no manifest line in ${JSON.stringify(stderr)}`);
  return m[1]!;
}

/**
 * A detached run that holds `lockArgs` until `release()` creates its go-file. Resolves once its command runs
 * (so the locks are granted): `lockd run --detach` returns as soon as the run is recorded, before any grant.
 */
export async function detachedHolder(d: Daemon, name: string, lockArgs: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<{ runId: string; release: () => void; go: string }> {
  const go = join(d.dir, `go-${name}`);
  const ready = join(d.dir, `ready-${name}`);
  // A detached run outlives its daemon on purpose; it also ends once the test's temp dir is gone, so a test that
  // fails before release() leaves no process behind.
  const r = await lockd(d, ['run', '--detach', ...lockArgs, '--', 'sh', '-c', `touch ${ready}; while [ ! -e ${go} ] && [ -d ${d.dir} ]; do sleep 0.05; done`], { env: extraEnv });
  if (r.code !== 0) throw new Error(`detached holder ${name} failed (${r.code}): ${r.stderr}`);
  await waitForFile(ready);
  return { runId: r.stdout.trim(), go, release: () => writeFileSync(go, '') };
}

/** Wait (bounded) until lock `name` has at least `n` waiters in the daemon's status: a queued run is really queued. */
export async function waitForWaiters(d: Pick<Daemon, 'env'>, name: string, n: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const lock = (await statusJson(d)).locks.find((l) => l.name === name);
    if (lock && lock.waiters.length >= n) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${n} waiter(s) on ${name}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
