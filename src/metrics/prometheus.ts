/**
 * A metrics snapshot (the daemon's `metrics` reply) as the Prometheus text exposition format, version 0.0.4: what
 * every Prometheus scrapes, what OpenMetrics scrapers accept too, and what `promtool check metrics` validates.
 * Written here rather than with prom-client: the daemon counts, this only formats a plain snapshot (the web server
 * renders one it fetched over the socket, in another process), and prom-client's registry of live collectors would
 * be a second model of the same numbers. No daemon imports: protocol types only.
 */
import type { HistogramSnapshot, LockMetrics, MetricsSnapshot } from '../protocol/messages.js';

/** The Content-Type of renderPrometheus's output on an HTTP /metrics endpoint. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

type Labels = Record<string, string>;

/** One metric family: its samples must stay together under one HELP and TYPE. */
class Family {
  private readonly lines: string[] = [];

  constructor(
    readonly name: string,
    readonly type: 'counter' | 'gauge' | 'histogram',
    readonly help: string,
  ) {}

  sample(labels: Labels, value: number, suffix = ''): void {
    this.lines.push(`${this.name}${suffix}${labelText(labels)} ${num(value)}`);
  }

  histogram(labels: Labels, h: HistogramSnapshot): void {
    let cumulative = 0;
    h.buckets.forEach((le, i) => {
      cumulative += h.counts[i] ?? 0;
      this.sample({ ...labels, le: num(le) }, cumulative, '_bucket');
    });
    this.sample({ ...labels, le: '+Inf' }, h.count, '_bucket');
    this.sample(labels, h.sum, '_sum');
    this.sample(labels, h.count, '_count');
  }

  text(): string {
    return `# HELP ${this.name} ${escapeHelp(this.help)}\n# TYPE ${this.name} ${this.type}\n${this.lines.map((l) => `${l}\n`).join('')}`;
  }
}

function num(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function escapeHelp(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function escapeLabel(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

/** A lock's identifying labels: its name and scope, and its lock file path (two build roots can both have a "qemu"). */
function lockLabels(l: LockMetrics): Labels {
  return { lock: l.name, scope: l.scope, path: l.key };
}

/**
 * The whole exposition. Families without samples are still written with HELP and TYPE (a scrape of a fresh daemon
 * shows what there will be). Holder names appear only when the snapshot carries them (asked for with `holders`).
 */
export function renderPrometheus(s: MetricsSnapshot): string {
  const families: Family[] = [];
  const fam = (name: string, type: Family['type'], help: string) => {
    const f = new Family(name, type, help);
    families.push(f);
    return f;
  };

  fam('lockd_info', 'gauge', 'The lockd daemon answering: version, mode (user or system) and job launcher; always 1.').sample(
    { version: s.daemon.version, mode: s.daemon.mode, launcher: s.daemon.launcher ?? '' },
    1,
  );

  const wait = fam('lockd_lock_wait_seconds', 'histogram', 'Seconds a request waited in the queue before it was granted the lock (0 when granted at once).');
  const hold = fam('lockd_lock_hold_seconds', 'histogram', 'Seconds a run or hold held the lock, from grant to release.');
  const handoff = fam('lockd_handoff_seconds', 'histogram', "Seconds from a holder's release of the lock to the start of the waiting request it let in (its command spawned, or its hold taken).");
  const depth = fam('lockd_queue_depth', 'gauge', 'Requests waiting for the lock now.');
  const holders = fam('lockd_holders', 'gauge', 'Holders of the lock now (slots in use for a slots lock; nested re-entries count once).');
  const slots = fam('lockd_lock_slots', 'gauge', 'Slot count of a slots lock while it is in use.');
  const names = s.holder_names ? fam('lockd_lock_holder', 'gauge', 'Who holds the lock now (holder names are shown because they were asked for); the value counts their entries.') : null;
  for (const l of s.locks) {
    const labels = lockLabels(l);
    wait.histogram(labels, l.wait_seconds);
    hold.histogram(labels, l.hold_seconds);
    handoff.histogram(labels, l.handoff_seconds);
    depth.sample(labels, l.queue_depth);
    holders.sample(labels, l.holders);
    if (l.capacity !== null) slots.sample(labels, l.capacity);
    if (names && l.holder_names) {
      // One series per distinct holder: a slots lock can have the same holder string twice.
      const counts = new Map<string, { labels: Labels; n: number }>();
      for (const h of l.holder_names) {
        const key = JSON.stringify([h.kind, h.holder, h.user]);
        const c = counts.get(key) ?? { labels: { ...labels, kind: h.kind, holder: h.holder, user: h.user }, n: 0 };
        c.n++;
        counts.set(key, c);
      }
      for (const c of counts.values()) names.sample(c.labels, c.n);
    }
  }

  const runsTotal = fam('lockd_runs_total', 'counter', 'Runs finished since the daemon started, by verdict (result.json status).');
  for (const verdict of Object.keys(s.runs_total).sort()) runsTotal.sample({ verdict }, s.runs_total[verdict]!);
  if (s.pools && s.pools.length > 0) {
    const pm = fam('lockd_pool_members', 'gauge', 'Members of a resource pool now, by state (free, held, disabled, removed: held and going at release).');
    for (const p of s.pools) for (const [state, n] of Object.entries(p.members)) pm.sample({ pool: p.pool, state }, n);
  }
  const live = fam('lockd_live_runs', 'gauge', 'Runs now, by state (queued, running, stopping).');
  for (const state of ['queued', 'running', 'stopping'] as const) live.sample({ state }, s.runs[state]);
  const holds = fam('lockd_holds', 'gauge', 'Explicit holds (lockd acquire) now, by state (held, waiting).');
  holds.sample({ state: 'held' }, s.holds.held);
  holds.sample({ state: 'waiting' }, s.holds.waiting);

  const p = s.process;
  fam('process_cpu_user_seconds_total', 'counter', 'User CPU time spent by the lockd daemon in seconds.').sample({}, p.cpu_user_seconds);
  fam('process_cpu_system_seconds_total', 'counter', 'System CPU time spent by the lockd daemon in seconds.').sample({}, p.cpu_system_seconds);
  fam('process_cpu_seconds_total', 'counter', 'Total user and system CPU time spent by the lockd daemon in seconds.').sample({}, p.cpu_user_seconds + p.cpu_system_seconds);
  fam('process_start_time_seconds', 'gauge', 'Start time of the lockd daemon since the Unix epoch in seconds.').sample({}, s.daemon.start_time_seconds);
  fam('process_resident_memory_bytes', 'gauge', 'Resident memory size of the lockd daemon in bytes.').sample({}, p.resident_memory_bytes);
  const vm = fam('process_virtual_memory_bytes', 'gauge', 'Virtual memory size of the lockd daemon in bytes.');
  if (p.virtual_memory_bytes !== null) vm.sample({}, p.virtual_memory_bytes);
  const fds = fam('process_open_fds', 'gauge', 'Open file descriptors of the lockd daemon.');
  if (p.open_fds !== null) fds.sample({}, p.open_fds);
  const maxFds = fam('process_max_fds', 'gauge', 'Limit on open file descriptors of the lockd daemon.');
  if (p.max_fds !== null) maxFds.sample({}, p.max_fds);
  fam('nodejs_heap_size_used_bytes', 'gauge', 'V8 heap in use by the lockd daemon in bytes.').sample({}, p.heap_used_bytes);
  fam('nodejs_heap_size_total_bytes', 'gauge', 'V8 heap allocated by the lockd daemon in bytes.').sample({}, p.heap_total_bytes);

  return families.map((f) => f.text()).join('');
}
