/**
 * The lock table's way out: a release or cancel hands the freed locks on at once (runs and holds are started by the
 * router the daemon gives), then tells the cluster backend. Queue-position updates for people watching a queue are
 * batched once a second, after the granted jobs are running, never between one job's exit and the next one's start.
 */
import type { Grant, LockTable } from '../locks/lock-table.js';
import type { Owner } from '../locks/owner.js';
import type { ClusterService } from '../locks/cluster-port.js';
import type { EventSink, LockGate } from '../ports.js';

/** How often, at most, waiting runs hear about their new queue position while the queue moves. */
const WAITING_UPDATE_MS = 1000;

const NO_STARTS: Promise<number> = Promise.resolve(0);

export interface GrantRouter {
  /**
   * A run or hold was granted everything it asked for. A run returns its start: settled once the job is launched
   * (or has given up), so the run that freed the lock can write its records after that launch, not before it.
   */
  granted(grant: Grant<Owner>): Promise<void> | undefined;
  /** Queues moved on these keys: tell whoever waits there (batched). */
  queuesMoved(keys: Set<string>): void;
}

export class DaemonLockGate implements LockGate {
  /** Set at start-up when a cluster is configured. */
  cluster: ClusterService | null = null;
  private movedKeys = new Set<string>();
  private movedTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly table: LockTable<Owner>,
    private readonly events: EventSink,
    private readonly router: GrantRouter,
  ) {}

  /** Start whatever the table granted as a consequence of a release or cancel; settles (with how many runs started) when those starts have. */
  dispatch(grants: Grant<Owner>[]): Promise<number> {
    const starts: Promise<void>[] = [];
    for (const g of grants) {
      this.events.emit(
        'granted',
        g.request.id,
        g.claims.map((c) => c.key),
      );
      const started = this.router.granted(g);
      // A start that fails records its own failure; the releasing run only waits for it to be over.
      if (started) starts.push(started.catch(() => undefined));
    }
    if (grants.length === 0) return NO_STARTS;
    for (const g of grants) for (const c of g.claims) this.movedKeys.add(c.key);
    if (!this.movedTimer) {
      this.movedTimer = setTimeout(() => {
        const keys = this.movedKeys;
        this.movedKeys = new Set();
        this.movedTimer = null;
        this.router.queuesMoved(keys);
      }, WAITING_UPDATE_MS);
      this.movedTimer.unref();
    }
    return starts.length === 0 ? NO_STARTS : Promise.all(starts).then(() => starts.length);
  }

  release(id: string): Promise<number> {
    const started = this.dispatch(this.table.release(id));
    this.cluster?.release(id);
    return started;
  }

  cancel(id: string): Promise<number> {
    const started = this.dispatch(this.table.cancel(id));
    this.cluster?.cancel(id);
    return started;
  }
}
