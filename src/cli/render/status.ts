/** `lockd status` / `lockd inspect` for people: one block per lock (holders, then the queue), then runs and holds. */
import type { HolderInfo, LockStatus, StatusSnapshot } from '../../protocol/messages.js';
import { renderHolder } from '../../client/holder.js';
import { clip, table } from './table.js';
import { formatClock, formatDuration, formatEstimate } from './format.js';
import type { Style } from './style.js';

export const NO_DAEMON_TEXT = 'no lockd daemon is running; nothing is held';

type Holder = LockStatus['holders'][number];
type Waiter = LockStatus['waiters'][number];

function who(h: Pick<HolderInfo, 'holder' | 'user'>): string {
  const shown = renderHolder(h.holder);
  // A CI holder rendered as a sentence loses the OS user; say it when it is not already the holder itself.
  // A key no lockd wrote (etcdctl lock on a cluster lock) has no user at all.
  return !h.user || shown === h.user || h.holder === h.user ? shown : `${shown} (${h.user})`;
}

function holderMode(lock: LockStatus, h: Holder): string {
  if (h.mode === 'slots') return `slot ${h.slot_index ?? '?'}/${lock.capacity ?? '?'}`;
  return h.mode === 'shared' ? 'shared' : 'exclusive';
}

/** Cluster locks: the host whose daemon holds or waits; '-' for a key no lockd wrote (etcdctl lock, ...). */
function hostOf(h: Pick<HolderInfo, 'host'>): string {
  return h.host ? h.host : '-';
}

/** Who a blocking request id is, as far as this snapshot knows. */
function describeId(id: string, lock: LockStatus, snap: StatusSnapshot | null): string {
  const on = (x: Pick<HolderInfo, 'host'>) => (lock.scope === 'cluster' && x.host ? ` on ${x.host}` : '');
  const h = lock.holders.find((x) => x.id === id);
  if (h) return `${h.kind} ${id}${on(h)} (${renderHolder(h.holder)})`;
  const w = lock.waiters.find((x) => x.id === id);
  if (w) return `waiter #${w.position} ${id}${on(w)}`;
  const run = snap?.runs.find((r) => r.run_id === id);
  if (run) return `run ${id} (${renderHolder(run.holder)})`;
  const hold = snap?.holds.find((x) => x.hold_id === id);
  if (hold) return `hold ${id} (${renderHolder(hold.holder)})`;
  return id;
}

export function renderLock(lock: LockStatus, style: Style, snap: StatusSnapshot | null = null, now = new Date()): string {
  const kind = lock.capacity !== null ? `slots=${lock.capacity}` : (lock.mode ?? lock.waiters[0]?.mode ?? 'exclusive');
  const state = lock.holders.length ? style.red('held') : style.yellow('waited on');
  let out = `${style.bold(lock.name)}  ${lock.scope} ${kind}, ${state}  ${style.dim(lock.key)}\n`;
  // Cluster locks are held and waited on from every host: say which one (its daemon's --cluster-host).
  const cluster = lock.scope === 'cluster';
  if (lock.holders.length) {
    const rows = [[...(cluster ? ['HOST'] : []), 'HOLDER', 'ID', 'PID', 'MODE', 'SINCE', 'ELAPSED', 'COMMAND'].map((h) => style.dim(h))];
    for (const h of lock.holders) {
      rows.push([
        ...(cluster ? [hostOf(h)] : []),
        who(h),
        `${h.kind} ${h.id}${h.nested ? ' (nested)' : ''}`,
        h.pid === null ? '-' : String(h.pid),
        holderMode(lock, h),
        formatClock(h.since_utc, now),
        formatDuration(h.elapsed_ms),
        h.command_line ? clip(h.command_line, 60) : '-',
      ]);
    }
    out += table(rows);
  }
  if (lock.waiters.length) {
    // PRIO only when some waiter has one (--priority): the column would be all zeros otherwise.
    const prio = lock.waiters.some((w) => (w.priority ?? 0) !== 0);
    const rows = [['#', ...(prio ? ['PRIO'] : []), ...(cluster ? ['HOST'] : []), 'WAITING', 'ID', 'WANTS', 'SINCE', 'BLOCKED BY', 'ETA'].map((h) => style.dim(h))];
    for (const w of lock.waiters as Waiter[]) {
      rows.push([
        String(w.position),
        ...(prio ? [String(w.priority ?? 0)] : []),
        ...(cluster ? [hostOf(w)] : []),
        who(w),
        `${w.kind} ${w.id}`,
        w.wants.join(' '),
        `${formatClock(w.since_utc, now)} (${formatDuration(w.waiting_ms)})`,
        w.blocked_by.length
          ? w.blocked_by
              .slice(0, 2)
              .map((id) => describeId(id, lock, snap))
              .join(', ') + (w.blocked_by.length > 2 ? ` +${w.blocked_by.length - 2}` : '')
          : '-',
        formatEstimate(w.estimated_wait_ms),
      ]);
    }
    out += table(rows);
    out += `  ${style.dim('estimated wait for the next in line:')} ${formatEstimate(lock.estimated_wait_ms)}${lock.estimated_wait_ms === null ? style.dim(' (no recorded runs under this lock, or an explicit hold is in the way)') : ''}\n`;
  }
  return out;
}

export function renderStatus(snap: StatusSnapshot, style: Style, now = new Date()): string {
  const d = snap.daemon;
  let out = `${style.bold('lockd')} ${d.version}, pid ${d.pid}, up ${formatDuration(d.uptime_ms)}, ${d.mode} mode, ${d.launcher ? `${d.launcher.name} launcher, ` : ''}socket ${d.socket}\n`;
  const c = snap.cluster;
  if (c) {
    const health = c.healthy ? style.green('healthy') : style.red(`unhealthy${c.last_error ? `: ${c.last_error}` : ''}`);
    out += `cluster: this host ${style.bold(c.host)}, etcd ${c.endpoints.join(',')}, prefix ${c.prefix || '(none)'}, lease ${c.lease ?? 'none'}, ${health}\n`;
  }
  if (snap.locks.length === 0 && snap.runs.length === 0 && snap.holds.length === 0) return `${out}\nnothing is held or waited on\n`;
  if (snap.locks.length) {
    out += `\n${style.bold('LOCKS')}\n`;
    out += snap.locks.map((l) => renderLock(l, style, snap, now)).join('\n');
  }
  if (snap.runs.length) {
    out += `\n${style.bold('RUNS')}\n`;
    const rows = [['RUN ID', 'STATE', 'PID', 'WHO', 'SINCE', 'LOCKS', 'COMMAND'].map((h) => style.dim(h))];
    for (const r of snap.runs) {
      const state = r.state === 'running' ? style.green(r.state) : r.state === 'queued' ? style.yellow(r.state) : style.red(r.state);
      rows.push([r.run_id + (r.detach ? ' (detached)' : ''), state, r.pid === null ? '-' : String(r.pid), who(r), formatClock(r.since_utc, now), r.locks.join(' ') || '-', clip(r.command_line, 60)]);
    }
    out += table(rows);
  }
  if (snap.holds.length) {
    out += `\n${style.bold('HOLDS')}\n`;
    const rows = [['HOLD ID', 'WHO', 'LOCKS', 'SINCE', 'EXPIRES'].map((h) => style.dim(h))];
    for (const h of snap.holds) {
      rows.push([
        h.hold_id,
        who(h),
        h.locks.join(' '),
        formatClock(h.since_utc, now),
        h.expires_utc ? `${formatClock(h.expires_utc, now)} (ttl ${formatDuration(h.ttl_ms ?? 0)})` : style.yellow('until released'),
      ]);
    }
    out += table(rows);
    // A hold without a TTL outlives a crashed CI job or a person gone home: say so, with the way out.
    for (const h of snap.holds) {
      if (h.ttl_ms === null) out += style.yellow(`warning: hold ${h.hold_id} (${who(h)}) has no TTL: it stays until 'lockd release ${h.hold_id}' (or --force)\n`);
    }
  }
  return out;
}
