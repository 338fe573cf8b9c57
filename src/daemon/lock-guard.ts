/**
 * What holding a lock means outside the daemon's memory: a real flock(2) on the lock file (so legacy
 * `flock -n build/.locks/x.lock cmd` users and lockd jobs exclude each other) and a `.meta` file next to it
 * (so `ls .locks/` and old scripts keep working). The lock table decides who holds what; this guard mirrors it.
 * One flock per key however many lockd holders share it (shared/slots/nested), refcounted.
 */
import { dirname } from 'node:path';
import type { Logger } from './logger.js';

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
      const st = this.keys.get(c.key);
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

  /** Record who holds, for `.meta` readers. Fire-and-forget after the child started: never on the handoff path. */
  describe(keys: string[], meta: Record<string, unknown>): void {
    for (const key of keys) {
      this.files.writeMeta(key, meta).catch((e: Error) => this.log.warn('meta write failed', { key, error: e.message }));
    }
  }

  async give(keys: string[]): Promise<void> {
    for (const key of keys) {
      const st = this.keys.get(key);
      if (!st) continue;
      if (--st.refs > 0) continue;
      this.keys.delete(key);
      // Remove the meta first: a reader that sees a .meta must be able to trust the flock is still ours.
      await this.files.removeMeta(key).catch(() => undefined);
      if (st.flocked && this.flock) await this.flock.unlock(key).catch(() => undefined);
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
