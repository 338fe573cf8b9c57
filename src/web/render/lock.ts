/** One lock's page: who holds and waits for it now, and its wait and hold times over the last 24 h. */
import type { LockStatus } from '../../protocol/messages.js';
import type { LockSample } from '../data.js';
import { historyChart, historyTable } from './chart.js';
import { formatMs, formatTime } from './format.js';
import { html, type Html } from './html.js';
import { runLink } from './overview.js';

export function lockBody(key: string, now: LockStatus | null, samples: LockSample[], at: number): Html {
  const who = (kind: 'run' | 'hold', id: string) => (kind === 'run' ? runLink(id) : html`hold ${id}`);
  const state = now
    ? html`<p>${now.scope} ${now.mode ?? ''} lock${now.capacity ? `, ${now.capacity} slots` : ''}: ${now.holders.length} holder(s), ${now.waiters.length} waiting${now.estimated_wait_ms !== null ? `, next grant in ~${formatMs(now.estimated_wait_ms)}` : ''}.</p>
<ul class="lock-now">${now.holders.map((h) => html`<li class="holder">held by ${who(h.kind, h.id)}: <span class="who">${h.holder}</span> since ${formatTime(h.since_utc)} (${formatMs(h.elapsed_ms)})</li>`)}${now.waiters.map(
        (w) => html`<li class="waiter">#${w.position} waiting: ${who(w.kind, w.id)}: <span class="who">${w.holder}</span> for ${formatMs(w.waiting_ms)}</li>`,
      )}</ul>`
    : html`<p>Not held or waited on right now.</p>`;
  return html`<p class="note">Lock file <code>${key}</code></p>${state}
<section aria-labelledby="h-history"><h2 id="h-history">Wait and hold times</h2>
<p class="note">Source: the run records (result.json) of this runs root: each run's wait for this lock and how long it ran holding it. Holds taken with <code>lockd acquire</code> leave no run record and are not in the chart.</p>
${historyChart(samples, at)}${historyTable(samples)}</section>`;
}
