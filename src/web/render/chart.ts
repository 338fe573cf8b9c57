/**
 * A lock's last 24 h as a small inline SVG: one bar per run or hold, hold time up from the middle line and wait time
 * down from it, placed by when the run ended. Plain SVG (a few rects) needs no chart library; a table under it
 * carries the same numbers for screen readers and for copying.
 */
import { HISTORY_MS, type LockSample } from '../data.js';
import { formatMs, formatTime } from './format.js';
import { html, raw, type Html } from './html.js';

const W = 600;
const H = 160;
const MID = H / 2;

export function historyChart(samples: LockSample[], now: number): Html {
  const maxHold = Math.max(1, ...samples.map((s) => s.hold_ms ?? 0));
  const maxWait = Math.max(1, ...samples.map((s) => s.wait_ms));
  const bars = samples
    .map((s) => {
      const x = Math.max(0, Math.min(W - 2, ((s.at - (now - HISTORY_MS)) / HISTORY_MS) * (W - 2)));
      const hold = ((s.hold_ms ?? 0) / maxHold) * (MID - 4);
      const wait = (s.wait_ms / maxWait) * (MID - 4);
      return `<rect class="hold" x="${x.toFixed(1)}" y="${(MID - hold).toFixed(1)}" width="2" height="${hold.toFixed(1)}"/><rect class="wait" x="${x.toFixed(1)}" y="${MID}" width="2" height="${wait.toFixed(1)}"/>`;
    })
    .join('');
  const label = `Hold times (up, max ${formatMs(maxHold)}) and wait times (down, max ${formatMs(maxWait)}) of ${samples.length} runs and holds in the last 24 hours`;
  return html`<figure><svg class="history" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${label}"><title>${label}</title>
<line x1="0" y1="${MID}" x2="${W}" y2="${MID}" class="axis"/>${raw(bars)}</svg>
<figcaption>Last 24 h: <span class="key-hold">hold</span> up (max ${formatMs(maxHold)}), <span class="key-wait">wait</span> down (max ${formatMs(maxWait)}); ${formatTime(new Date(now - HISTORY_MS).toISOString())} to now.</figcaption></figure>`;
}

export function historyTable(samples: LockSample[]): Html {
  if (samples.length === 0) return html`<p class="empty">No run or hold took this lock in the last 24 hours.</p>`;
  return html`<table><caption>Runs and holds under this lock, last 24 h</caption><thead><tr><th scope="col">Run / hold</th><th scope="col">Ended</th><th scope="col">Waited</th><th scope="col">Held</th></tr></thead><tbody>${samples.map(
    (s) =>
      html`<tr><td>${s.kind === 'hold' ? html`hold ${s.run_id}` : html`<a href="/runs/${encodeURIComponent(s.run_id)}">${s.run_id}</a>`}</td><td>${formatTime(new Date(s.at).toISOString())}</td><td>${formatMs(s.wait_ms)}</td><td>${formatMs(s.hold_ms)}</td></tr>`,
  )}</tbody></table>`;
}
