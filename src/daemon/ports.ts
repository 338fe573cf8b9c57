/**
 * The capabilities the daemon's parts are given instead of the daemon itself. Each handler and service receives the
 * few of these it uses, at construction; the implementations live in their parts and are wired together by
 * server/core.ts (the daemon's state) and main.ts (start-up). Interfaces only: this file imports no implementation,
 * so every part can depend on it without an import circle.
 */
import type { Connection } from './server/connection.js';
import type { LockTable } from './locks/lock-table.js';
import type { Owner } from './locks/owner.js';
import type { JournalEntry } from './records/journal.js';
import type { EventBus } from './services/events.js';
import type { Logger } from './server/logger.js';
import type { LockGuard } from './records/lock-guard.js';
import type { ClusterService } from './locks/cluster-port.js';

/**
 * The lock table and the two ways out of it that hand the freed locks on: to the next run or hold, and to the
 * cluster backend when one is configured.
 */
export interface LockGate {
  readonly table: LockTable<Owner>;
  /**
   * A holder or waiter leaves: whatever becomes grantable is started, in the same tick. Settles once the runs it
   * started are launched (or gave up), with how many runs it started: the job that freed the locks writes its
   * records after that.
   */
  release(id: string): Promise<number>;
  /** A waiter gives up (a holder is left alone). Settles like release(). */
  cancel(id: string): Promise<number>;
}

/** Where the daemon's events go (the `lockd events` stream, the page, the metrics). */
export type EventSink = Pick<EventBus, 'emit'>;

/** The crash journal (records/journal.ts): one line per run and hold state change. */
export interface JournalSink {
  append(e: JournalEntry): void;
}

/** Who is asking on a connection: kernel-verified where the platform tells, else what the client claims. */
export interface Callers {
  uidOf(conn: Connection): number | null;
  /** The pid that really asked: kernel-verified when the peer credentials are available, else the claimed one. */
  pidOf(conn: Connection, claimed: number): number;
  /** Root or the lockd admin group: may kill, release or --force others' runs and holds. */
  isAdmin(conn: Connection): boolean;
}

/** What every part that takes locks on disk and reports uses (the flock'ed lock files, the log, the cluster). */
export interface LockParts {
  readonly gate: LockGate;
  readonly events: EventSink;
  readonly guard: LockGuard;
  readonly log: Logger;
  /** Set at start-up when a cluster is configured (read late, so parts built before it see it). */
  readonly cluster: ClusterService | null;
}
