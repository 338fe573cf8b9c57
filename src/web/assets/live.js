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

  // Another user's run: its log needs the token, which EventSource cannot send. So it is fetched with the token
  // (now if the tab has one, else once one is typed in), then followed live by a fetch that carries the token and
  // reads the same Server-Sent Events stream from the offset the fetch ended at.
  const followWithToken = async (runId, offset, pre) => {
    const r = await fetch(`/runs/${encodeURIComponent(runId)}/stream?offset=${encodeURIComponent(offset)}`, {
      headers: { 'X-Lockd-Token': token(), Accept: 'text/event-stream' },
    });
    if (!r.ok || !r.body) return;
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done || !pre.isConnected) break;
      buf += decoder.decode(value, { stream: true });
      for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        let event = 'message';
        const data = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
        // The verdict comes through the page's own EventSource; only the log is taken from here.
        if (event === 'log') pre.append(JSON.parse(data.join('\n')));
        if (event === 'end') return;
      }
    }
  };
  const loadHiddenLog = () => {
    const hidden = document.getElementById('log-hidden');
    if (!hidden || !token()) return;
    const runId = decodeURIComponent(location.pathname.split('/')[2] || '');
    fetch(`/runs/${encodeURIComponent(runId)}/log`, { headers: { 'X-Lockd-Token': token() } })
      .then(async (r) => (r.ok ? { text: await r.text(), offset: r.headers.get('X-Log-Offset') || '0' } : null))
      .then((got) => {
        if (got === null || !hidden.isConnected) return;
        const pre = document.createElement('pre');
        pre.id = 'log';
        pre.tabIndex = 0;
        pre.textContent = got.text;
        hidden.replaceWith(pre);
        if (live.startsWith('run:')) followWithToken(runId, got.offset, pre).catch(() => undefined);
      })
      .catch(() => undefined);
  };
  loadHiddenLog();
  if (tokenInput) tokenInput.addEventListener('change', loadHiddenLog);
})();
