/** The live event stream (`lockd events`): every lock and run transition, in order, to every subscriber. */
import type { EventType, LockdEvent } from '../../protocol/messages.js';

export type EventListener = (e: LockdEvent) => void;

export class EventBus {
  private seq = 0;
  private listeners = new Set<EventListener>();

  subscribe(fn: EventListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  emit(type: EventType, id: string, locks: string[], detail?: Record<string, unknown>): void {
    // Nothing to build when nobody listens: events sit on the lock handoff path.
    if (this.listeners.size === 0) {
      this.seq++;
      return;
    }
    const e: LockdEvent = { seq: ++this.seq, time_utc: new Date().toISOString(), type, id, locks, ...(detail ? { detail } : {}) };
    for (const fn of this.listeners) fn(e);
  }
}
