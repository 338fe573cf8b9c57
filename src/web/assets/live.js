// lockd web's only script: live updates over Server-Sent Events and the two actions. The page works without
// it (server-rendered); this replaces fragments the server rendered, and never polls.
'use strict';
(() => {
  const body = document.body;
  const live = body.dataset.live || '';
  const state = document.getElementById('live-state');
  const tokenForm = document.getElementById('token-form');
  const tokenInput = document.getElementById('token');
  const actionState = document.getElementById('action-state');
  const say = (text) => {
    if (state) state.textContent = text;
  };
  // Action outcomes have their own line: a live update right after an action must not overwrite what it said.
  const tell = (text) => {
    if (actionState) actionState.textContent = text;
  };

  // The action token lives in this tab only (sessionStorage), never in a cookie or a URL.
  if (tokenForm && tokenInput) {
    tokenForm.hidden = false;
    tokenInput.value = sessionStorage.getItem('lockd-token') || '';
    tokenInput.addEventListener('input', () => sessionStorage.setItem('lockd-token', tokenInput.value));
    tokenForm.addEventListener('submit', (e) => e.preventDefault());
  }
  const token = () => (tokenInput ? tokenInput.value.trim() : '');

  // Replacing a fragment must not lose the keyboard user's place: focus goes back to the same link or button.
  const replaceKeepingFocus = (el, markup) => {
    const focused = document.activeElement && document.activeElement.getAttribute('data-focus');
    el.innerHTML = markup;
    if (focused) {
      for (const c of el.querySelectorAll('[data-focus]')) {
        if (c.getAttribute('data-focus') === focused) {
          c.focus();
          break;
        }
      }
    }
  };

  document.addEventListener('click', async (e) => {
    const b = e.target instanceof Element ? e.target.closest('button.act') : null;
    if (!b) return;
    const t = token();
    if (!t) {
      tell('enter the action token first (lockd web printed it)');
      if (tokenInput) tokenInput.focus();
      return;
    }
    b.disabled = true;
    try {
      const r = await fetch(`/actions/${b.dataset.action}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-Lockd-Token': t },
        body: JSON.stringify({ id: b.dataset.id }),
      });
      const j = await r.json();
      tell(j.ok ? `${b.dataset.action}: done${j.note ? ` (${j.note})` : ''}` : `${b.dataset.action} refused: ${j.error.message}`);
    } catch (err) {
      tell(`${b.dataset.action} failed: ${err}`);
    } finally {
      b.disabled = false;
    }
  });

  if (live === 'overview') {
    const target = document.getElementById('overview');
    const es = new EventSource('/events');
    es.addEventListener('overview', (e) => {
      if (target) replaceKeepingFocus(target, e.data);
      say(`live, updated ${new Date().toLocaleTimeString()}`);
    });
    es.addEventListener('daemon', (e) => say(e.data === 'connected' ? 'live' : 'daemon unreachable, waiting for it'));
    es.onerror = () => say('reconnecting…');
  } else if (live.startsWith('run:')) {
    const runId = live.slice(4);
    const log = document.getElementById('log');
    const result = document.getElementById('result-body');
    const offset = log ? log.dataset.offset || '0' : '0';
    const es = new EventSource(`/runs/${encodeURIComponent(runId)}/stream?offset=${encodeURIComponent(offset)}`);
    say('following the log live');
    es.addEventListener('log', (e) => {
      if (!log) return;
      const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.append(JSON.parse(e.data));
      if (atBottom) log.scrollTop = log.scrollHeight;
    });
    es.addEventListener('result', (e) => {
      if (result) replaceKeepingFocus(result, e.data);
    });
    es.addEventListener('end', () => {
      es.close();
      say('the run has ended');
    });
  }

  // Another user's run: its log is fetched with the token, now if the tab has one, else once one is typed in.
  // (EventSource cannot send the token header, so such a log is as of the fetch; reload for more.)
  const loadHiddenLog = () => {
    const hidden = document.getElementById('log-hidden');
    if (!hidden || !token()) return;
    fetch(`/runs/${encodeURIComponent(location.pathname.split('/')[2] || '')}/log`, { headers: { 'X-Lockd-Token': token() } })
      .then((r) => (r.ok ? r.text() : null))
      .then((text) => {
        if (text === null || !hidden.isConnected) return;
        const pre = document.createElement('pre');
        pre.id = 'log';
        pre.tabIndex = 0;
        pre.textContent = text;
        hidden.replaceWith(pre);
      })
      .catch(() => undefined);
  };
  loadHiddenLog();
  if (tokenInput) tokenInput.addEventListener('change', loadHiddenLog);
})();
