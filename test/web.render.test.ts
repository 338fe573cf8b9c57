/**
 * lockd web's templates on snapshots shaped as the daemon sends them: pools (which a daemon with pools reports)
 * with disabled members and reasons, escaping of what other users control (holder strings, commands), and the
 * 24 h chart. The pages from a real daemon are tested in web.http.test.ts and web.browser.test.ts.
 */
import test from 'ava';
import type { StatusSnapshot } from '../src/protocol/messages.js';
import { historyChart } from '../src/web/render/chart.js';
import { overviewFragment } from '../src/web/render/overview.js';

const DAEMON: StatusSnapshot['daemon'] = { version: '0.1.0', pid: 1, uptime_ms: 1000, mode: 'user', socket: '/s', state_dir: '/st' };

test('pools are listed with each member, its state, a disabled member with its reason, and the holder', (t) => {
  const snap = {
    daemon: DAEMON,
    locks: [],
    runs: [],
    holds: [],
    pools: [
      {
        name: 'boards',
        config_error: null,
        members: [
          { name: 'b1', properties: { arch: 'riscv64' }, state: 'held', disabled_reason: null, holder: { holder: 'alice', request_id: 'r1' }, waiters: 2 },
          { name: 'b2', properties: { arch: 'riscv64' }, state: 'disabled', disabled_reason: 'flaky USB hub', holder: null, waiters: 0 },
        ],
      },
    ],
  } as StatusSnapshot;
  const out = overviewFragment(snap, [], '/runs').text;
  t.regex(out, /<caption>Pool boards<\/caption>/);
  t.regex(out, /<tr class="member m-held" data-member="b1"><td>b1<\/td><td>held<\/td><td>–<\/td><td class="who">alice<\/td><td>2<\/td><td>arch=riscv64<\/td>/);
  t.regex(out, /<tr class="member m-disabled" data-member="b2"><td>b2<\/td><td>disabled<\/td><td>flaky USB hub<\/td>/);
  t.regex(overviewFragment({ ...snap, pools: undefined } as StatusSnapshot, [], '/runs').text, /No pools/);
});

/** A snapshot with one lock held by a run whose holder, user and command are `holder`. */
function snapWithHolder(holder: string): StatusSnapshot {
  return {
    daemon: DAEMON,
    locks: [
      {
        key: '/b/.locks/x.lock',
        name: 'x',
        scope: 'local',
        mode: 'exclusive',
        capacity: null,
        estimated_wait_ms: null,
        holders: [
          {
            kind: 'run',
            id: 'r1',
            pid: 5,
            holder,
            user: holder,
            uid: 1,
            command_line: holder,
            since_utc: '2026-01-01T00:00:00.000Z',
            cwd: '/',
            mode: 'exclusive',
            slot_index: null,
            nested: false,
            elapsed_ms: 5,
            fencing_token: 1,
          },
        ],
        waiters: [],
      },
    ],
    runs: [],
    holds: [],
  };
}

test('holder strings and commands are escaped: markup in them is shown as text, never run', (t) => {
  const evil = '<img src=x onerror=alert(1)>"\'&';
  const snap = snapWithHolder(evil);
  const out = overviewFragment(snap, [], '/runs').text;
  t.false(out.includes('<img'), 'no tag from the holder string');
  t.true(out.includes('&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;'));
});

test('the 24 h chart has one hold bar and one wait bar per run, and an accessible label', (t) => {
  const now = Date.parse('2026-12-07T12:00:00Z');
  const svg = historyChart(
    [
      { run_id: 'a', at: now - 3600_000, wait_ms: 100, hold_ms: 2000 },
      { run_id: 'b', at: now - 60_000, wait_ms: 0, hold_ms: 500 },
    ],
    now,
  ).text;
  t.is(svg.match(/class="hold"/g)?.length, 2);
  t.is(svg.match(/class="wait"/g)?.length, 2);
  t.regex(svg, /role="img" aria-label="Hold times \(up, max 2\.0 s\) and wait times \(down, max 100 ms\) of 2 runs and holds in the last 24 hours"/);
});

test('a CI holder is shown as lockd status shows it, with the raw CI-aware string under it', (t) => {
  const raw = 'ci:github:acme/fw#9182-1/test@runner-3:4242';
  const out = overviewFragment(snapWithHolder(raw), [], '/runs').text;
  t.regex(out, /<td class="who">github run 9182 job test on runner-3<br><code class="raw-holder">ci:github:acme\/fw#9182-1\/test@runner-3:4242<\/code><\/td>/);
});
