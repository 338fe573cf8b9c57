/**
 * The daemon's metrics (`lockd metrics`, `/metrics`): per lock, how long requests waited, how long holders held and
 * how long a handoff to the next waiter took; live counts of holders and waiters; finished runs per verdict; the
 * daemon process itself. Fed by the event bus's tap (events.ts), so it sees exactly the transitions `lockd events`
 * shows, synchronously and in order, without the bus building an event object for it. Observing costs a few map
 * operations per event; everything else (gauges, process figures) is read only when someone asks for a snapshot,
 * so an idle daemon that nobody scrapes does no metrics work at all.
 *
 * The rendering to the Prometheus text format is src/metrics/prometheus.ts, which takes the snapshot built here and
 * imports nothing of the daemon (the web server calls it with a snapshot fetched over the socket).
 */
import { readFileSync, readdirSync } from 'node:fs';
import type { EventType, LockMetrics, MetricsSnapshot } from '../../protocol/messages.js';
import type { ResolvedLock } from '../records/lock-resolve.js';
import { RUN_STATUSES } from '../../runs/result.js';
import { readStatusField } from '../../util/proc.js';
import { HANDOFF_BUCKETS, Histogram, LOCK_TIME_BUCKETS } from './histogram.js';
import type { StatusSource } from './status.js';

/** What a snapshot reads besides what the collector counted: the table, the live runs and holds, the daemon. */
export type MetricsSource = Pick<StatusSource, 'info' | 'table' | 'runs' | 'holds' | 'adopted'>;

/**
 * Locks whose series are kept. A farm that makes a fresh build root per job creates a new lock (a new lock file
 * path) per job; without a bound those series would grow for the daemon's lifetime. Past the bound the lock used
 * least recently is forgotten (its series disappear from the scrape, as when the daemon restarts).
 */
export const MAX_TRACKED_LOCKS = 1000;

interface LockSeries {
  key: string;
  name: string;
  scope: LockMetrics['scope'];
  wait: Histogram;
  hold: Histogram;
  handoff: Histogram;
}

type LockId = Pick<ResolvedLock, 'key' | 'name' | 'scope'>;

/** Time for durations: monotonic (a wall-clock step must not make a wait negative or a day long). */
const now = (): number => performance.now();

export class MetricsCollector {
  private readonly locks = new Map<string, LockSeries>();
  /** Requests in a queue: when they were queued. */
  private readonly waiting = new Map<string, number>();
  /** Requests holding locks: since when, and which (a family's nested re-entries are not a hold of their own). */
  private readonly holding = new Map<string, { at: number; locks: LockId[] }>();
  /** Waiters granted by a release, until they start: when that release was, and on which of their locks. */
  private readonly handoffs = new Map<string, { from: number; locks: LockId[] }>();
  /**
   * The release being handed on right now. The lock gate grants the next waiters synchronously inside the release
   * (lock-gate.ts), after the `released` event: a grant seen while this is set is that release's handoff. Cleared
   * at the next microtask, so a grant that comes later for another reason (a waiter ahead gave up) is not one.
   */
  private released: { keys: Set<string>; at: number } | null = null;
  private clearScheduled = false;
  private readonly runsTotal: Record<string, number> = Object.fromEntries(RUN_STATUSES.map((s) => [s, 0]));

  constructor(private readonly src: MetricsSource) {}

  /** The event bus's tap (EventBus.tap): every lock, run and hold transition, as it happens. */
  readonly onEvent = (type: EventType, id: string, keys: string[], detail: Record<string, unknown> | undefined): void => {
    switch (type) {
      case 'queued':
        if (!this.waiting.has(id)) this.waiting.set(id, now());
        return;
      case 'granted':
        this.granted(id, keys);
        return;
      case 'started':
      case 'hold_acquired':
        this.started(id);
        return;
      case 'released':
      case 'hold_released':
      case 'hold_expired':
        this.ended(id, keys);
        return;
      case 'cancelled':
      case 'not_obtained':
        // A grant not taken up (a hold whose client left while its lock files were taken) held the lock meanwhile.
        this.ended(id, []);
        return;
      case 'exited':
        // A run this daemon started is counted in runFinished (with its final status); a re-adopted one only here.
        if (detail?.adopted === true && typeof detail.status === 'string') this.countRun(detail.status);
        this.ended(id, []);
        return;
      case 'killed':
        return;
    }
  };

  /** A run of this daemon is over and its result written: count its verdict (result.json `status`). */
  runFinished(status: string): void {
    this.countRun(status);
  }

  private countRun(status: string): void {
    this.runsTotal[status] = (this.runsTotal[status] ?? 0) + 1;
  }

  private granted(id: string, keys: string[]): void {
    if (this.holding.has(id)) return; // announced twice (a cluster grant): counted once
    const t = now();
    const queuedAt = this.waiting.get(id);
    this.waiting.delete(id);
    const locks = this.topLevelLocks(id, keys);
    const wait = queuedAt === undefined ? 0 : (t - queuedAt) / 1000;
    for (const l of locks) this.series(l).wait.observe(wait);
    this.holding.set(id, { at: t, locks });
    const rel = this.released;
    if (queuedAt !== undefined && rel) {
      const handedOn = locks.filter((l) => rel.keys.has(l.key));
      if (handedOn.length) this.handoffs.set(id, { from: rel.at, locks: handedOn });
    }
  }

  private started(id: string): void {
    const h = this.handoffs.get(id);
    if (!h) return;
    this.handoffs.delete(id);
    const s = (now() - h.from) / 1000;
    for (const l of h.locks) this.series(l).handoff.observe(s);
  }

  /** A request leaves: a holder's hold is observed; `releasedKeys` are handed on to the waiters granted next. */
  private ended(id: string, releasedKeys: string[]): void {
    this.waiting.delete(id);
    this.handoffs.delete(id);
    const h = this.holding.get(id);
    if (!h) return;
    this.holding.delete(id);
    const t = now();
    const s = (t - h.at) / 1000;
    for (const l of h.locks) this.series(l).hold.observe(s);
    if (releasedKeys.length === 0) return;
    this.released = { keys: new Set(releasedKeys), at: t };
    if (!this.clearScheduled) {
      this.clearScheduled = true;
      queueMicrotask(() => {
        this.released = null;
        this.clearScheduled = false;
      });
    }
  }

  /** The locks of a granted request by name and scope, without those it holds only as its family's re-entry. */
  private topLevelLocks(id: string, keys: string[]): LockId[] {
    const grant = this.src.table.grantOf(id);
    const known: readonly ResolvedLock[] = grant?.request.meta.locks ?? this.src.runs.get(id)?.locks ?? this.src.holds.list().find((h) => h.id === id)?.locks ?? [];
    const out: LockId[] = [];
    for (const key of keys) {
      if (grant?.claims.find((c) => c.key === key)?.nested) continue;
      out.push(known.find((l) => l.key === key) ?? { key, name: key, scope: key.startsWith('etcd:') ? 'cluster' : 'local' });
    }
    return out;
  }

  /** A lock's series, created on first use; each use makes it the most recently used (the bound forgets the least). */
  private series(l: LockId): LockSeries {
    let s = this.locks.get(l.key);
    if (s) {
      this.locks.delete(l.key);
    } else {
      s = { key: l.key, name: l.name, scope: l.scope, wait: new Histogram(LOCK_TIME_BUCKETS), hold: new Histogram(LOCK_TIME_BUCKETS), handoff: new Histogram(HANDOFF_BUCKETS) };
      if (this.locks.size >= MAX_TRACKED_LOCKS) this.locks.delete(this.locks.keys().next().value!);
    }
    this.locks.set(l.key, s);
    return s;
  }

  /**
   * Requests that left without an event the collector understands (a hold whose lock files could not be prepared)
   * would stay in its maps for good: dropped here, when a snapshot is built anyway.
   */
  private prune(): void {
    const holdIds = new Set(this.src.holds.list().map((h) => h.id));
    const live = (id: string) => this.src.runs.has(id) || holdIds.has(id) || this.src.table.isHolding(id) || this.src.table.isWaiting(id);
    for (const m of [this.waiting, this.holding, this.handoffs]) for (const id of m.keys()) if (!live(id)) m.delete(id);
  }

  /** Everything counted so far plus the state now. `holders`: also name who holds each lock (opt-in; see the docs). */
  snapshot(opts: { holders: boolean }): MetricsSnapshot {
    this.prune();
    const table = this.src.table;
    const current = new Map<string, Pick<LockMetrics, 'holders' | 'queue_depth' | 'capacity' | 'holder_names'>>();
    // Holds still queued are only in the table (the hold manager lists taken ones); one hold can wait on many keys.
    const waitingHolds = new Set<string>();
    for (const snap of table.snapshot()) {
      for (const w of snap.waiters) if (w.meta.kind === 'hold') waitingHolds.add(w.requestId);
      const top = snap.holders.filter((h) => !h.nested);
      current.set(snap.key, {
        holders: top.length,
        queue_depth: snap.waiters.length,
        capacity: snap.capacity,
        ...(opts.holders ? { holder_names: top.map((h) => ({ kind: h.meta.kind, id: h.meta.id, holder: h.meta.holder, user: h.meta.user })) } : {}),
      });
      // A lock only waited on so far still gets its series (zero counts), so `lockd_queue_depth` shows the queue.
      if (!this.locks.has(snap.key)) {
        const meta = snap.holders[0]?.meta ?? snap.waiters[0]?.meta;
        const l = meta?.locks.find((x) => x.key === snap.key);
        this.series(l ?? { key: snap.key, name: snap.key, scope: snap.key.startsWith('etcd:') ? 'cluster' : 'local' });
      }
    }
    const locks: LockMetrics[] = [...this.locks.values()]
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
      .map((s) => {
        const c = current.get(s.key);
        return {
          key: s.key,
          name: s.name,
          scope: s.scope,
          holders: c?.holders ?? 0,
          queue_depth: c?.queue_depth ?? 0,
          capacity: c?.capacity ?? null,
          wait_seconds: s.wait.snapshot(),
          hold_seconds: s.hold.snapshot(),
          handoff_seconds: s.handoff.snapshot(),
          ...(opts.holders ? { holder_names: c?.holder_names ?? [] } : {}),
        };
      });
    const runs = { queued: 0, running: 0, stopping: 0 };
    for (const job of this.src.runs.values()) {
      if (job.state === 'queued' || job.state === 'starting') runs.queued++;
      else if (job.state === 'running') runs.running++;
      else runs.stopping++;
    }
    runs.running += this.src.adopted?.list().length ?? 0;
    const holds = { held: this.src.holds.list().length, waiting: waitingHolds.size };
    const info = this.src.info();
    return {
      daemon: { version: info.version, mode: info.mode, launcher: info.launcher?.name ?? null, pid: process.pid, start_time_seconds: performance.timeOrigin / 1000 },
      process: processFigures(),
      locks,
      runs_total: { ...this.runsTotal },
      runs,
      holds,
      holder_names: opts.holders,
    };
  }
}

/** The daemon process as Prometheus' process_* series describe one; /proc figures are null off Linux. */
function processFigures(): MetricsSnapshot['process'] {
  const cpu = process.cpuUsage();
  const mem = process.memoryUsage();
  const vm = readStatusField(process.pid, 'VmSize');
  return {
    cpu_user_seconds: cpu.user / 1e6,
    cpu_system_seconds: cpu.system / 1e6,
    resident_memory_bytes: mem.rss,
    virtual_memory_bytes: vm && vm[1] === 'kB' ? Number(vm[0]) * 1024 : null,
    heap_used_bytes: mem.heapUsed,
    heap_total_bytes: mem.heapTotal,
    open_fds: openFds(),
    max_fds: maxFds(),
  };
}

function openFds(): number | null {
  try {
    // The listing's own descriptor is in it.
    return readdirSync('/proc/self/fd').length - 1;
  } catch {
    return null;
  }
}

function maxFds(): number | null {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line ? Number(line.slice('Max open files'.length).trim().split(/\s+/)[0]) : NaN;
    return Number.isFinite(soft) ? soft : null;
  } catch {
    return null;
  }
}
