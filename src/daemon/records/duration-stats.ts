/**
 * Recorded run durations per lock, for `lockd status`'s estimated wait. A small ring per key, no timers on the
 * handoff path. With `persistTo` the rings survive restarts in a small JSON file in the state dir: loaded once at
 * start, written a while after the last change (coalesced, off the hot path) and on shutdown.
 */
import { readFileSync } from 'node:fs';
import { writeJsonAtomic } from '../../runs/atomic-write.js';

const KEEP = 20;
/** Keys not touched for this long are dropped when saving, so build roots deleted long ago do not pile up. */
const FORGET_AFTER_MS = 90 * 24 * 3600 * 1000;
export const DURATIONS_FILE = 'durations.json';

interface StoredFile {
  version: 1;
  keys: Record<string, { durations_ms: number[]; updated_at: number }>;
}

export class DurationStats {
  private byKey = new Map<string, number[]>();
  private updatedAt = new Map<string, number>();
  private file: string | null = null;
  private saveDelayMs = 10_000;
  private timer: NodeJS.Timeout | null = null;
  private dirty = false;
  private saving: Promise<void> | null = null;

  record(key: string, ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    let ring = this.byKey.get(key);
    if (!ring) this.byKey.set(key, (ring = []));
    ring.push(ms);
    if (ring.length > KEEP) ring.shift();
    this.updatedAt.set(key, Date.now());
    this.scheduleSave();
  }

  /** Median of the recent durations, or null before the first recorded run. */
  typical(key: string): number | null {
    const ring = this.byKey.get(key);
    if (!ring || ring.length === 0) return null;
    const sorted = [...ring].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)]!;
  }

  /** How many durations the estimate for this key is based on. */
  samples(key: string): number {
    return this.byKey.get(key)?.length ?? 0;
  }

  toJSON(): Record<string, number[]> {
    return Object.fromEntries(this.byKey);
  }

  load(data: Record<string, number[]>): void {
    for (const [k, v] of Object.entries(data)) {
      if (!Array.isArray(v)) continue;
      const ring = v.filter((x) => typeof x === 'number' && Number.isFinite(x) && x >= 0).slice(-KEEP);
      if (ring.length) {
        this.byKey.set(k, ring);
        if (!this.updatedAt.has(k)) this.updatedAt.set(k, Date.now());
      }
    }
  }

  /**
   * Keep the stats in `path`: load what is there now (a missing or unreadable file is simply an empty start —
   * these are estimates, never worth failing a start-up for), save `delayMs` after changes and on `flush`.
   */
  persistTo(path: string, delayMs = 10_000): void {
    this.file = path;
    this.saveDelayMs = delayMs;
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(path, 'utf8'));
    } catch {
      return;
    }
    const keys = (parsed as Partial<StoredFile> | null)?.keys;
    if (typeof keys !== 'object' || keys === null) return;
    const now = Date.now();
    for (const [k, v] of Object.entries(keys)) {
      if (!v || !Array.isArray(v.durations_ms)) continue;
      const at = typeof v.updated_at === 'number' ? v.updated_at : now;
      if (now - at > FORGET_AFTER_MS) continue;
      this.load({ [k]: v.durations_ms });
      if (this.byKey.has(k)) this.updatedAt.set(k, at);
    }
  }

  private scheduleSave(): void {
    if (!this.file) return;
    this.dirty = true;
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.save().catch(() => undefined);
    }, this.saveDelayMs);
    this.timer.unref();
  }

  private snapshotFile(): StoredFile {
    const now = Date.now();
    const keys: StoredFile['keys'] = {};
    for (const [k, ring] of this.byKey) {
      const at = this.updatedAt.get(k) ?? now;
      if (now - at > FORGET_AFTER_MS) continue;
      keys[k] = { durations_ms: [...ring], updated_at: at };
    }
    return { version: 1, keys };
  }

  private async save(): Promise<void> {
    if (!this.file || !this.dirty) return;
    // One write at a time; a change made during a write is picked up by the next one.
    while (this.saving) await this.saving;
    if (!this.dirty) return;
    this.dirty = false;
    const file = this.file;
    this.saving = writeJsonAtomic(file, this.snapshotFile(), { mode: 0o600 })
      .catch((e: unknown) => {
        this.dirty = true;
        throw e;
      })
      .finally(() => {
        this.saving = null;
      });
    await this.saving;
  }

  /** Write pending changes now (daemon shutdown). Rejects when the file cannot be written. */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.save();
  }
}
