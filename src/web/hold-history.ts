/**
 * Wait and hold times of explicit holds (`lockd acquire`) for the per-lock 24 h chart. Runs have records on disk
 * (data.ts reads them); holds have none once released, so `lockd web` counts them from the daemon's event stream
 * it already follows: `queued` (if the hold waited), `hold_acquired`, then `hold_released` or `hold_expired`. It
 * knows the holds released while it runs; bounded in time (24 h) and count.
 */
import type { LockdEvent } from '../protocol/messages.js';
import { HISTORY_MS, type LockSample } from './data.js';

const MAX_SAMPLES = 20_000;
/** Requests seen queued or holding at once, at most (a queued run's id is kept until it is granted or ends). */
const MAX_OPEN = 20_000;

export class HoldHistory {
  private readonly queuedAt = new Map<string, number>();
  private readonly held = new Map<string, { at: number; waitMs: number }>();
  private samples: Array<LockSample & { key: string }> = [];

  readonly onEvent = (e: LockdEvent): void => {
    const at = Date.parse(e.time_utc);
    if (!Number.isFinite(at)) return;
    switch (e.type) {
      case 'queued':
        if (this.queuedAt.size < MAX_OPEN) this.queuedAt.set(e.id, at);
        return;
      case 'hold_acquired': {
        const since = this.queuedAt.get(e.id);
        this.queuedAt.delete(e.id);
        if (this.held.size < MAX_OPEN) this.held.set(e.id, { at, waitMs: since === undefined ? 0 : Math.max(0, at - since) });
        return;
      }
      case 'hold_released':
      case 'hold_expired': {
        const h = this.held.get(e.id);
        this.held.delete(e.id);
        if (!h) return;
        for (const key of e.locks) this.samples.push({ key, run_id: e.id, kind: 'hold', at, wait_ms: h.waitMs, hold_ms: Math.max(0, at - h.at) });
        this.trim(at);
        return;
      }
      case 'started':
      case 'exited':
      case 'cancelled':
      case 'not_obtained':
        // A run's (or a hold that was never granted): it needs no hold sample.
        this.queuedAt.delete(e.id);
        return;
      default:
        return;
    }
  };

  /** Holds released in the last 24 h that held `key` (a lock file's path, as status shows it). */
  samplesFor(key: string, now = Date.now()): LockSample[] {
    return this.samples.filter((s) => s.key === key && now - s.at <= HISTORY_MS).map(({ key: _key, ...s }) => s);
  }

  private trim(now: number): void {
    if (this.samples.length > MAX_SAMPLES) this.samples = this.samples.slice(-MAX_SAMPLES);
    while (this.samples.length > 0 && now - this.samples[0]!.at > HISTORY_MS) this.samples.shift();
  }
}
