/**
 * A run's page: what it was asked to do (manifest), how it ended (result), and its output log, which live.js
 * keeps following over SSE while the run is running. The result part is also what the stream sends at the end.
 */
import type { RunRecord } from '../data.js';
import { formatMs, formatTime } from './format.js';
import { html, type Html } from './html.js';
import { lockLink } from './overview.js';

export function resultFragment(rec: Pick<RunRecord, 'result' | 'live'>): Html {
  const r = rec.result;
  if (!r) return html`<p class="verdict v-running">${rec.live ? 'running' : 'no result (yet)'}</p>`;
  return html`<p class="verdict v-${r.status}">${r.status} (${r.reason})</p>
<dl>
<dt>Exit code</dt><dd>${r.exit_code}${r.child_exit_code !== null ? ` (child ${r.child_exit_code})` : ''}${r.signals.exit_signal ? `, signal ${r.signals.exit_signal}` : ''}</dd>
<dt>Verdict source</dt><dd>${r.verdict_source}</dd>
<dt>Started</dt><dd>${formatTime(r.start_time_utc)}</dd><dt>Ended</dt><dd>${formatTime(r.end_time_utc)}</dd>
<dt>Duration</dt><dd>${formatMs(r.duration_ms)}</dd><dt>Queue wait</dt><dd>${formatMs(r.queue_wait_ms)}</dd>
<dt>Locks</dt><dd>${r.locks.length ? r.locks.map((l, i) => html`${i ? ', ' : ''}${lockLink({ key: l.path, name: l.name })} (waited ${formatMs(l.wait_ms)})`) : '–'}</dd>
${r.message ? html`<dt>Message</dt><dd>${r.message}</dd>` : ''}${r.cancelled_by ? html`<dt>Cancelled by</dt><dd>${r.cancelled_by}</dd>` : ''}
</dl>`;
}

/** `log` null: not shown (another user's run without the token); `truncated`: only the tail is in the page. */
export function runBody(rec: RunRecord, log: { text: string; offset: number; truncated: boolean } | null): Html {
  const m = rec.manifest;
  const manifest = m
    ? html`<dl><dt>Command</dt><dd><code>${m.command_line}</code></dd><dt>Holder</dt><dd>${m.holder}</dd><dt>User</dt><dd>${m.user}@${m.host}</dd><dt>Directory</dt><dd>${m.cwd}</dd><dt>Queued</dt><dd>${formatTime(m.queued_at_utc)}</dd><dt>Git</dt><dd>${m.git_sha ?? '–'}</dd></dl>
<details><summary>manifest.json</summary><pre>${JSON.stringify(m, null, 2)}</pre></details>`
    : html`<p class="empty">No manifest.</p>`;
  const logPart = log
    ? html`${log.truncated ? html`<p class="note">Only the last part of the log is shown; the whole log is ${rec.logPath ?? ''}.</p>` : ''}<pre id="log" tabindex="0" aria-label="output log" data-offset="${log.offset}">${log.text}</pre>`
    : html`<p class="note" id="log-hidden">This is another user's run: its log needs the action token.</p>`;
  return html`<section id="result" aria-labelledby="h-result" data-live-run="${rec.live ? 'yes' : 'no'}"><h2 id="h-result">Result</h2><div id="result-body">${resultFragment(rec)}</div>${rec.result ? html`<details><summary>result.json</summary><pre>${JSON.stringify(rec.result, null, 2)}</pre></details>` : ''}</section>
<section id="manifest" aria-labelledby="h-manifest"><h2 id="h-manifest">Manifest</h2>${manifest}</section>
<section id="output" aria-labelledby="h-output"><h2 id="h-output">Output</h2>${logPart}</section>`;
}
