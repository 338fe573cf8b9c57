/**
 * One etcd watch per contended lock name per daemon, shared by every local request waiting on that name. Waiters
 * only need deletions (an earlier key going away is the only thing that can let them in), so each subscriber gets
 * delete events; after a reconnect or a watch error it is told to resynchronise from a fresh range, since events
 * may have been missed (e.g. compaction).
 */
import type { Etcd3, Watcher } from 'etcd3';
import type { Logger } from '../daemon/server/logger.js';
import { errorText } from './etcd-client.js';

export interface WatchSubscriber {
  onDelete(key: string, revision: number): void;
  /** Only for watches opened with puts (cluster pools, whose definition and new entries matter too). */
  onPut?(key: string, value: Buffer, revision: number): void;
  onResync(): void;
}

interface Entry {
  prefix: string;
  subscribers: Set<WatchSubscriber>;
  watcher: Watcher | null;
  creating: boolean;
  closed: boolean;
  startRevision: number;
  /** Highest revision already delivered to subscribers. */
  lastSeen: number;
}

export class NameWatches {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly client: Etcd3,
    private readonly log: Logger,
    /** Deliver puts as well as deletions (cluster pools); lock queues need deletions only. */
    private readonly puts = false,
  ) {}

  /** Subscribe to deletions under `prefix` from `fromRevision` on; returns the unsubscribe function. */
  subscribe(prefix: string, fromRevision: number, sub: WatchSubscriber): () => void {
    let e = this.entries.get(prefix);
    if (!e) {
      e = { prefix, subscribers: new Set(), watcher: null, creating: false, closed: false, startRevision: fromRevision, lastSeen: 0 };
      this.entries.set(prefix, e);
      this.open(e);
    } else if (e.startRevision > fromRevision || e.lastSeen >= fromRevision) {
      // The shared watch began after this subscriber's snapshot, or already delivered events past it (they raced
      // the subscriber's own read): read the queue again rather than wait for a deletion that already happened.
      queueMicrotask(() => sub.onResync());
    }
    e.subscribers.add(sub);
    const entry = e;
    return () => {
      entry.subscribers.delete(sub);
      if (entry.subscribers.size === 0) this.close(entry);
    };
  }

  private open(e: Entry): void {
    e.creating = true;
    const builder = this.client.watch().prefix(e.prefix);
    (this.puts ? builder : builder.only('delete'))
      .startRevision(String(e.startRevision))
      .create()
      .then((w) => {
        e.creating = false;
        if (e.closed) {
          void w.cancel().catch(() => undefined);
          return;
        }
        e.watcher = w;
        let first = true;
        w.on('delete', (kv) => {
          const key = kv.key.toString('utf8');
          const rev = Number(kv.mod_revision);
          if (rev > e.lastSeen) e.lastSeen = rev;
          for (const s of [...e.subscribers]) s.onDelete(key, rev);
        });
        if (this.puts) {
          w.on('put', (kv) => {
            const rev = Number(kv.mod_revision);
            if (rev > e.lastSeen) e.lastSeen = rev;
            for (const s of [...e.subscribers]) s.onPut?.(kv.key.toString('utf8'), kv.value, rev);
          });
        }
        w.on('connected', () => {
          if (first) {
            first = false;
            return;
          }
          for (const s of [...e.subscribers]) s.onResync();
        });
        w.on('error', (err) => {
          this.log.warn('cluster watch failed; resynchronising', { prefix: e.prefix, error: errorText(err) });
          if (e.watcher === w) e.watcher = null;
          void w.cancel().catch(() => undefined);
          if (!e.closed) {
            // Start again from "now": subscribers re-read the queue, so nothing before this point matters.
            e.startRevision = 0;
            this.reopenSoon(e);
            for (const s of [...e.subscribers]) s.onResync();
          }
        });
      })
      .catch((err: unknown) => {
        e.creating = false;
        if (e.closed) return;
        this.log.warn('cannot start a cluster watch; retrying', { prefix: e.prefix, error: errorText(err) });
        this.reopenSoon(e);
        for (const s of [...e.subscribers]) s.onResync();
      });
  }

  private reopenSoon(e: Entry): void {
    setTimeout(() => {
      if (!e.closed && !e.watcher && !e.creating) this.open(e);
    }, 200).unref();
  }

  private close(e: Entry): void {
    e.closed = true;
    if (this.entries.get(e.prefix) === e) this.entries.delete(e.prefix);
    const w = e.watcher;
    e.watcher = null;
    if (w) void w.cancel().catch(() => undefined);
  }

  closeAll(): void {
    for (const e of [...this.entries.values()]) this.close(e);
  }
}
