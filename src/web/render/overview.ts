/**
 * The overview: every lock and slot with who holds it, the queue in grant order with blocker and ETA, pools, and
 * the recent runs. The same fragment is the first paint (server-rendered, useful with JavaScript off) and what
 * the SSE stream pushes after each daemon event, so the live page and the static page can never disagree.
 */
import type { LockStatus, StatusSnapshot } from '../../protocol/messages.js';
import type { RecentRun } from '../data.js';
import { renderHolder } from '../../client/holder.js';
import { formatMs, formatTime } from './format.js';
import { html, type Html } from './html.js';

/** A holder as `lockd status` shows it (a CI holder as a short sentence), with the raw CI-aware string under it. */
export function holderCell(holder: string): Html {
  const human = renderHolder(holder);
  return human === holder ? html`<td class="who">${holder}</td>` : html`<td class="who">${human}<br><code class="raw-holder">${holder}</code></td>`;
}

export function runLink(runId: string): Html {
  return html`<a href="/runs/${encodeURIComponent(runId)}" data-focus="run-${runId}">${runId}</a>`;
}

export function lockLink(lock: { key: string; name: string }): Html {
  return html`<a href="/lock?key=${encodeURIComponent(lock.key)}" data-focus="lock-${lock.key}">${lock.name}</a>`;
}

function idCell(kind: 'run' | 'hold', id: string): Html {
  return kind === 'run' ? runLink(id) : html`<span class="hold-id">${id}</span>`;
}

function holdersTable(s: StatusSnapshot): Html {
  const holds = new Map(s.holds.map((h) => [h.hold_id, h]));
  const rows = s.locks.flatMap((l) =>
    l.holders.map((h) => {
      const hold = h.kind === 'hold' ? holds.get(h.id) : undefined;
      const ttl = hold ? (hold.ttl_ms === null ? 'no TTL' : html`TTL ${formatMs(hold.ttl_ms)}, expires ${formatTime(hold.expires_utc)} (heartbeat renews)`) : '–';
      const action = h.kind === 'hold' ? html`<button type="button" class="act" data-action="release" data-id="${h.id}" data-focus="release-${h.id}">Release ${h.id}</button>` : '';
      return html`<tr class="holder" data-lock="${l.name}" data-id="${h.id}">
<td>${lockLink(l)}</td><td>${l.scope}</td><td>${h.mode}${h.slot_index !== null ? ` (slot ${h.slot_index + 1}/${l.capacity ?? '?'})` : ''}</td>
<td>${h.kind} ${idCell(h.kind, h.id)}</td>${holderCell(h.holder)}<td>${h.user}</td><td>${h.pid ?? '–'}</td>
<td><time datetime="${h.since_utc}">${formatTime(h.since_utc)}</time> (${formatMs(h.elapsed_ms)})</td><td>${ttl}</td><td>${action}</td></tr>`;
    }),
  );
  if (rows.length === 0) return html`<p class="empty">No lock is held.</p>`;
  return html`<table><caption>Holders</caption><thead><tr><th scope="col">Lock</th><th scope="col">Scope</th><th scope="col">Mode</th><th scope="col">Run / hold</th><th scope="col">Holder</th><th scope="col">User</th><th scope="col">PID</th><th scope="col">Since</th><th scope="col">TTL / heartbeat</th><th scope="col">Action</th></tr></thead><tbody>${rows}</tbody></table>`;
}

function eta(w: LockStatus['waiters'][number], l: LockStatus): string {
  const ms = w.estimated_wait_ms ?? (w.position === 1 ? l.estimated_wait_ms : null);
  return ms === null ? 'unknown (no past runs, or behind a hold)' : `~${formatMs(ms)}`;
}

/** A daemon with priorities reports one per waiter (higher first, FIFO within one); without, the queue is FIFO. */
function priority(w: LockStatus['waiters'][number]): string {
  const p = (w as { priority?: unknown }).priority;
  return typeof p === 'number' ? String(p) : '0 (FIFO)';
}

function queueTable(s: StatusSnapshot): Html {
  const runs = new Map(s.runs.map((r) => [r.run_id, r]));
  const rows = s.locks.flatMap((l) =>
    [...l.waiters]
      .sort((a, b) => a.position - b.position)
      .map((w) => {
        const run = w.kind === 'run' ? runs.get(w.id) : undefined;
        const action = run?.state === 'queued' ? html`<button type="button" class="act" data-action="cancel" data-id="${w.id}" data-focus="cancel-${w.id}">Cancel ${w.id}</button>` : '';
        return html`<tr class="waiter" data-lock="${l.name}" data-id="${w.id}">
<td>${lockLink(l)}</td><td>${w.position}</td><td>${priority(w)}</td><td>${w.kind} ${idCell(w.kind, w.id)}</td>${holderCell(w.holder)}<td>${w.mode}${w.wants.length > 1 ? ` (wants ${w.wants.join(', ')})` : ''}</td>
<td>${formatMs(w.waiting_ms)}</td><td class="blocker">${w.blocked_by.join(', ') || '–'}</td><td class="eta">${eta(w, l)}</td><td>${action}</td></tr>`;
      }),
  );
  if (rows.length === 0) return html`<p class="empty">Nobody is waiting.</p>`;
  return html`<table><caption>Queue, in grant order</caption><thead><tr><th scope="col">Lock</th><th scope="col">Position</th><th scope="col">Priority</th><th scope="col">Run / hold</th><th scope="col">Waiter</th><th scope="col">Wants</th><th scope="col">Waiting</th><th scope="col">Blocked by</th><th scope="col">ETA</th><th scope="col">Action</th></tr></thead><tbody>${rows}</tbody></table>`;
}

/**
 * Pools, as a daemon with pools reports them (`pools` in the status snapshot: name, members with state, disabled
 * reason, holder). Read structurally so this page works with daemons before and after pools: without them the
 * section says so; pool members that appear as locks (POOL/MEMBER) are in the holders and queue tables anyway.
 */
interface PoolView {
  name: string;
  config_error?: string | null;
  members: Array<{ name: string; state: string; disabled_reason?: string | null; properties?: Record<string, string> | null; holder?: { holder: string; id?: string } | null; waiters?: number }>;
}

function poolViews(s: StatusSnapshot): PoolView[] {
  const pools = (s as { pools?: unknown }).pools;
  if (!Array.isArray(pools)) return [];
  return pools.filter((p): p is PoolView => !!p && typeof p === 'object' && typeof (p as PoolView).name === 'string' && Array.isArray((p as PoolView).members));
}

/** Disable a member that is in service, enable one that is not (a removed member has nothing to switch). */
function memberAction(pool: string, m: { name: string; state: string }): Html | string {
  const id = `${pool}/${m.name}`;
  if (m.state === 'disabled') return html`<button type="button" class="act" data-action="pool-enable" data-id="${id}" data-focus="pool-enable-${id}">Enable ${id}</button>`;
  if (m.state === 'free' || m.state === 'held') return html`<button type="button" class="act" data-action="pool-disable" data-id="${id}" data-focus="pool-disable-${id}">Disable ${id}</button>`;
  return '–';
}

function poolsSection(s: StatusSnapshot): Html {
  const pools = poolViews(s);
  if (pools.length === 0) return html`<p class="empty">No pools: this daemon's status reports none.</p>`;
  return html`${pools.map(
    (p) => html`<table class="pool" data-pool="${p.name}"><caption>Pool ${p.name}${p.config_error ? html` <span class="error">(lockd.json not used: ${p.config_error})</span>` : ''}</caption>
<thead><tr><th scope="col">Member</th><th scope="col">State</th><th scope="col">Reason</th><th scope="col">Holder</th><th scope="col">Waiting</th><th scope="col">Properties</th><th scope="col">Action</th></tr></thead><tbody>${p.members.map(
      (m) =>
        html`<tr class="member m-${m.state}" data-member="${m.name}"><td>${m.name}</td><td>${m.state}</td><td>${m.disabled_reason ?? '–'}</td><td class="who">${m.holder?.holder ?? '–'}</td><td>${m.waiters ?? 0}</td><td>${Object.entries(
          m.properties ?? {},
        )
          .map(([k, v]) => `${k}=${v}`)
          .join(' ')}</td><td>${memberAction(p.name, m)}</td></tr>`,
    )}</tbody></table>`,
  )}`;
}

function runsTable(runs: RecentRun[], live: Map<string, string>): Html {
  if (runs.length === 0) return html`<p class="empty">No runs recorded in this runs root.</p>`;
  const rows = runs.map(({ summary, result, manifest }) => {
    // A run without result.json is live: the daemon says whether it is still queued or running.
    const verdict = result ? (summary.status ?? 'unknown') : (live.get(summary.run_id) ?? summary.status ?? 'unknown');
    const locks = (result?.locks ?? manifest?.locks ?? []).map((l) => l.name).join(', ');
    return html`<tr class="run" data-id="${summary.run_id}"><td>${runLink(summary.run_id)}</td><td class="verdict v-${verdict}">${verdict}${summary.reason ? ` (${summary.reason})` : ''}</td>
<td>${result?.exit_code ?? '–'}</td><td>${formatMs(summary.duration_ms)}</td><td>${locks || '–'}</td><td>${formatTime(summary.start_time_utc)}</td><td class="cmd">${summary.command_line ?? ''}</td></tr>`;
  });
  return html`<table><caption>Recent runs, newest first</caption><thead><tr><th scope="col">Run</th><th scope="col">Verdict</th><th scope="col">Exit</th><th scope="col">Duration</th><th scope="col">Locks</th><th scope="col">Started</th><th scope="col">Command</th></tr></thead><tbody>${rows}</tbody></table>`;
}

/** The part of the overview that changes; `status` null means no daemon answers. */
export function overviewFragment(status: StatusSnapshot | null, runs: RecentRun[], runsRoot: string): Html {
  const daemon = status
    ? html`<p class="daemon">lockd ${status.daemon.version}, pid ${status.daemon.pid}, ${status.daemon.mode} mode, up ${formatMs(status.daemon.uptime_ms)}</p>`
    : html`<p class="daemon error">No lockd daemon is running: nothing is held.</p>`;
  const s: StatusSnapshot = status ?? { daemon: null as never, locks: [], runs: [], holds: [] };
  return html`${daemon}
<section id="locks" aria-labelledby="h-locks"><h2 id="h-locks">Locks and slots</h2>${holdersTable(s)}</section>
<section id="queue" aria-labelledby="h-queue"><h2 id="h-queue">Queue</h2>${queueTable(s)}</section>
<section id="pools" aria-labelledby="h-pools"><h2 id="h-pools">Pools</h2>${poolsSection(s)}</section>
<section id="runs" aria-labelledby="h-runs"><h2 id="h-runs">Runs</h2><p class="note">From ${runsRoot}</p>${runsTable(runs, new Map(s.runs.map((r) => [r.run_id, r.state])))}</section>`;
}
