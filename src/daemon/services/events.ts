/** The live event stream (`lockd events`): every lock and run transition, in order, to every subscriber. */
import type { EventType, LockdEvent } from '../../protocol/messages.js';

export type EventListener = (e: LockdEvent) => void;

/** A synchronous observer of every emit, given the parts of the event without an event object (the metrics). */
export type EventTap = (type: EventType, id: string, locks: string[], detail: Record<string, unknown> | undefined) => void;

export class EventBus {
  private seq = 0;
  private listeners = new Set<EventListener>();
  private taps: EventTap[] = [];

  subscribe(fn: EventListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /**
   * Always called, listeners or not: a tap is in-process counting that must see every transition from the start,
   * and it costs one call where a listener would cost a timestamp string and an object per event.
   */
  tap(fn: EventTap): void {
    this.taps.push(fn);
  }

  emit(type: EventType, id: string, locks: string[], detail?: Record<string, unknown>): void {
    for (const t of this.taps) {
      try {
        t(type, id, locks, detail);
      } catch {
        // A tap only counts: a fault in the counting must never stop a release from handing the lock on.
      }
    }
    // Nothing to build when nobody listens: events sit on the lock handoff path.
    if (this.listeners.size === 0) {
      this.seq++;
      return;
    }
    const e: LockdEvent = { seq: ++this.seq, time_utc: new Date().toISOString(), type, id, locks, ...(detail ? { detail } : {}) };
    for (const fn of this.listeners) fn(e);
  }
}
