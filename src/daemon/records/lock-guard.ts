/**
 * What holding a lock means outside the daemon's memory: a real flock(2) on the lock file (so legacy
 * `flock -n build/.locks/x.lock cmd` users and lockd jobs exclude each other) and a `.meta` file next to it
 * (so `ls .locks/` and old scripts keep working). The lock table decides who holds what; this guard mirrors it.
 * One flock per key however many lockd holders share it (shared/slots/nested), refcounted. Nested claims count
 * too: a family member that outlives the request that took the flock (a run nested in a hold whose TTL ran out)
 * keeps the file locked until it gives its own reference back.
 */
import { dirname } from 'node:path';
import type { Logger } from '../server/logger.js';
import { isClusterKey } from '../locks/cluster-keys.js';

export interface FlockLike {
  tryLock(path: string, mode: 'ex' | 'sh'): Promise<boolean>;
  unlock(path: string): Promise<void>;
  close(): void | Promise<void>;
}

export interface MetaWriter {
  prepareLockFile(path: string, opts: { uid: number | null }): Promise<void>;
  writeMeta(path: string, meta: Record<string, unknown>): Promise<void>;
  removeMeta(path: string): Promise<void>;
}

interface KeyState {
  refs: number;
  flocked: boolean;
}

export class LockGuard {
  private keys = new Map<string, KeyState>();
  /** Per key, the last `.meta` write (writes are chained, so the newest holder's meta is the one that lands). */
  private metaWrites = new Map<string, Promise<void>>();
  /** Per key, a release still removing the meta and dropping the flock; a new take waits for it. */
  private releasing = new Map<string, Promise<void>>();

  constructor(
    private readonly flock: FlockLike | null,
    private readonly files: MetaWriter,
    private readonly log: Logger,
  ) {}

  /**
   * Called when the table grants claims, before the child starts. Returns false when an outside flock holder has
   * one of the files: the caller keeps its table grant (it is first in line) and retries when told.
   */
  async take(claims: Array<{ key: string; mode: 'exclusive' | 'shared' | 'slots' }>, uid: number | null): Promise<boolean> {
    const taken: string[] = [];
    for (const c of claims) {
      // A cluster lock lives in etcd and has no lock file; give() and describe() pass over keys never taken.
      if (isClusterKey(c.key)) continue;
      let st = this.keys.get(c.key);
      const finishing = st ? undefined : this.releasing.get(c.key);
      if (finishing) {
        // The last holder's give is still dropping the flock: our tryLock would see it as held by us, and its
        // unlock would then take it away from under us. Let it finish first.
        await finishing;
        st = this.keys.get(c.key);
      }
      if (st) {
        st.refs++;
        taken.push(c.key);
        continue;
      }
      const state: KeyState = { refs: 1, flocked: false };
      this.keys.set(c.key, state);
      taken.push(c.key);
      try {
        await this.files.prepareLockFile(c.key, { uid });
      } catch (e) {
        await this.give(taken);
        throw e;
      }
      if (this.flock) {
        const ok = await this.flock.tryLock(c.key, c.mode === 'exclusive' ? 'ex' : 'sh');
        if (!ok) {
          await this.give(taken);
          return false;
        }
        state.flocked = true;
      }
    }
    return true;
  }

  /** Record who holds, for `.meta` readers. Runs leave it fire-and-forget after the child started: never on the handoff path. */
  describe(keys: string[], meta: Record<string, unknown>): Promise<void> {
    const writes: Promise<void>[] = [];
    for (const key of keys) {
      // Given back already (a command that exits at once): no meta may appear for a lock nobody holds.
      if (!this.keys.has(key)) continue;
      const prev = this.metaWrites.get(key) ?? Promise.resolve();
      const write: Promise<void> = prev
        .then(() => (this.keys.has(key) ? this.files.writeMeta(key, meta) : undefined))
        .then(
          () => undefined,
          (e: Error) => {
            this.log.warn('meta write failed', { key, error: e.message });
          },
        )
        .finally(() => {
          if (this.metaWrites.get(key) === write) this.metaWrites.delete(key);
        });
      this.metaWrites.set(key, write);
      writes.push(write);
    }
    // Resolves (never rejects) once these metas are written: a caller that must not answer before may wait.
    return Promise.all(writes).then(() => undefined);
  }

  async give(keys: string[]): Promise<void> {
    for (const key of keys) {
      const st = this.keys.get(key);
      if (!st) continue;
      if (--st.refs > 0) continue;
      this.keys.delete(key);
      const done = (async () => {
        // A meta still being written must land before it is removed, never after (it would outlive the lock).
        await this.metaWrites.get(key);
        // Remove the meta first: a reader that sees a .meta must be able to trust the flock is still ours.
        await this.files.removeMeta(key).catch(() => undefined);
        if (st.flocked && this.flock) await this.flock.unlock(key).catch(() => undefined);
      })();
      this.releasing.set(key, done);
      await done;
      if (this.releasing.get(key) === done) this.releasing.delete(key);
    }
  }

  isHeld(path: string): boolean {
    return this.keys.has(path);
  }

  heldDirs(): string[] {
    return [...new Set([...this.keys.keys()].map((k) => dirname(k)))];
  }

  async close(): Promise<void> {
    await this.flock?.close();
  }
}
