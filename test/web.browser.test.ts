/// <reference lib="dom" />
/**
 * lockd web in a real browser: Debian's chromium, headless, driven by playwright-core, against a real daemon and
 * a real `lockd web`. Every wait is on something the page shows (bounded); none is a bare sleep. A missing
 * chromium fails these tests (helpers/web.ts), it never skips them.
 *
 * LOCKD_WEB_SCREENSHOTS=DIR also saves the overview and a run page there (docs/web-*.png were made that way).
 */
import test from 'ava';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { lockd, lockdSpawn, startDaemon } from './helpers/lockd.js';
import { detachedHolder, holdIdOf, runIdOf, statusJson, waitForWaiters } from './helpers/operate.js';
import { browserContext, closeChromium, startWeb } from './helpers/web.js';

const WAIT = { timeout: 30_000 };

test.after.always(closeChromium);

/** Mark the window: if the page reloads, the mark is gone (live updates must not reload). */
async function mark(page: Page): Promise<void> {
  await page.evaluate(() => {
    (window as unknown as { lockdMark: number }).lockdMark = 42;
  });
}
async function stillMarked(page: Page): Promise<boolean> {
  return await page.evaluate(() => (window as unknown as { lockdMark?: number }).lockdMark === 42);
}

async function text(page: Page, selector: string): Promise<string> {
  return (await page.locator(selector).first().textContent()) ?? '';
}

async function screenshot(page: Page, name: string): Promise<void> {
  const dir = process.env.LOCKD_WEB_SCREENSHOTS;
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: join(dir, name), fullPage: true });
}

test('the overview shows a held lock, its waiter with blocker and ETA; the grant and the release appear without a reload', async (t) => {
  const d = await startDaemon(t);
  const web = await startWeb(t, d);
  // One finished run under the lock gives the daemon a typical duration, so the waiter gets an ETA.
  t.is((await lockd(d, ['run', '--lock', 'board', '--', 'true'])).code, 0);
  const holder = await detachedHolder(d, 'first', ['--lock', 'board']);
  t.teardown(holder.release);
  const go2 = join(d.dir, 'go-second');
  t.teardown(() => writeFileSync(go2, ''));
  const waiter = lockdSpawn(t, d, ['run', '--lock', 'board', '--wait', '120', '--', 'sh', '-c', `while [ ! -e ${go2} ]; do sleep 0.05; done`]);
  await waitForWaiters(d, 'board', 1);
  const waiterId = (await statusJson(d)).runs.find((r) => r.state === 'queued')!.run_id;

  const page = await (await browserContext(t)).newPage();
  const fetched: string[] = [];
  page.on('request', (r) => fetched.push(r.url()));
  await page.goto(web.url);
  await page.waitForFunction(() => document.getElementById('live-state')?.textContent?.startsWith('live'), undefined, WAIT);
  await mark(page);
  const held = page.locator(`tr.holder[data-id="${holder.runId}"]`);
  t.is(await held.count(), 1, 'the holder row');
  t.regex((await held.textContent()) ?? '', /board/);
  const queued = page.locator(`tr.waiter[data-id="${waiterId}"]`);
  t.is(await queued.count(), 1, 'the waiter row');
  t.is(await text(page, `tr.waiter[data-id="${waiterId}"] td.blocker`), holder.runId, 'blocked by the holder');
  t.regex(await text(page, `tr.waiter[data-id="${waiterId}"] td.eta`), /^~\d/, 'an ETA from the past run');
  await screenshot(page, 'web-overview.png');

  holder.release();
  await page.waitForSelector(`tr.holder[data-id="${waiterId}"]`, WAIT);
  t.is(await page.locator('tr.waiter').count(), 0, 'the queue is empty once the waiter is granted');
  t.is(await page.locator(`tr.holder[data-id="${holder.runId}"]`).count(), 0, 'the first holder is gone');
  writeFileSync(go2, '');
  await page.waitForSelector('#locks p.empty', WAIT);
  t.is(await page.locator('tr.holder').count(), 0, 'released: nobody holds anything');
  await page.waitForSelector(`tr.run[data-id="${waiterId}"]`, WAIT);
  t.true(await stillMarked(page), 'all of it without a reload');
  t.deepEqual(
    fetched.filter((u) => !u.startsWith(web.url)),
    [],
    'nothing is fetched from anywhere but lockd web',
  );
  t.true(
    fetched.some((u) => u === `${web.url}assets/live.js`),
    'its own script',
  );
  t.is((await waiter.done).code, 0);
});

test("the run page follows a running job's output live and shows its verdict when it ends", async (t) => {
  const d = await startDaemon(t);
  const web = await startWeb(t, d);
  const go = join(d.dir, 'go');
  t.teardown(() => writeFileSync(go, ''));
  const run = lockdSpawn(t, d, ['run', '--lock', 'rig', '--', 'sh', '-c', `echo first-line; while [ ! -e ${go} ]; do sleep 0.05; done; echo second-line; exit 3`]);
  await run.waitForStdout('first-line');
  // The job writes straight to our stdout (fds path): the client's manifest line on stderr may come just after.
  await run.waitForStderr('manifest ->');
  const runId = runIdOf(run.stderr());

  const page = await (await browserContext(t)).newPage();
  await page.goto(`${web.url}runs/${runId}`);
  t.is(await page.getAttribute('body', 'data-live'), `run:${runId}`);
  await page.waitForFunction(() => document.getElementById('log')?.textContent?.includes('first-line'), undefined, WAIT);
  t.regex(await text(page, '#result-body'), /running/);
  await page.waitForFunction(() => document.getElementById('live-state')?.textContent === 'following the log live', undefined, WAIT);
  await mark(page);
  writeFileSync(go, '');
  await page.waitForFunction(() => document.getElementById('log')?.textContent?.includes('second-line'), undefined, WAIT);
  await page.waitForFunction(() => document.querySelector('#result-body .verdict')?.textContent?.startsWith('fail'), undefined, WAIT);
  t.regex(await text(page, '#result-body'), /Exit code\s*3/);
  t.is((await text(page, '#log')).match(/first-line/g)?.length, 1, 'no line twice');
  t.true(await stillMarked(page), 'followed without a reload');
  await page.waitForFunction(() => document.getElementById('live-state')?.textContent === 'the run has ended', undefined, WAIT);
  await screenshot(page, 'web-run.png');
  t.is((await run.done).code, 3);
});

test('keyboard navigation: the skip link, then Tab into the content, and Enter on a run link opens its run page', async (t) => {
  const d = await startDaemon(t);
  const web = await startWeb(t, d);
  const r = await lockd(d, ['run', '--lock', 'k', '--', 'echo', 'keyboard']);
  const runId = runIdOf(r.stderr);
  const page = await (await browserContext(t)).newPage();
  await page.goto(web.url);
  await page.keyboard.press('Tab');
  t.is(await page.evaluate(() => document.activeElement?.textContent), 'Skip to content');
  await page.keyboard.press('Enter');
  await page.keyboard.press('Tab');
  t.true(await page.evaluate(() => !!document.activeElement?.closest('main')), 'focus is in the content after the skip link');
  // Tab on (bounded) until the run's link has focus, then open it.
  let found = false;
  for (let i = 0; i < 50 && !found; i++) {
    found = (await page.evaluate(() => document.activeElement?.getAttribute('data-focus'))) === `run-${runId}`;
    if (!found) await page.keyboard.press('Tab');
  }
  t.true(found, 'the run link is reachable with Tab');
  await Promise.all([page.waitForURL(`**/runs/${runId}`, WAIT), page.keyboard.press('Enter')]);
  t.regex(await text(page, '#log'), /keyboard/);
  t.regex(await text(page, '#result-body .verdict'), /^pass/);
});

test('an action without the token is refused; with the token typed in, Release (pressed from the keyboard) works', async (t) => {
  const d = await startDaemon(t);
  const web = await startWeb(t, d);
  const a = await lockd(d, ['acquire', 'bench-rig', '--ttl', '600']);
  const holdId = holdIdOf(a.stdout);
  const page = await (await browserContext(t)).newPage();
  await page.goto(web.url);
  await page.waitForFunction(() => document.getElementById('live-state')?.textContent?.startsWith('live'), undefined, WAIT);
  t.regex(await text(page, `tr.holder[data-id="${holdId}"]`), /TTL 10 min 0 s, expires \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ/, "the hold's TTL and expiry");
  const button = page.locator(`button[data-action="release"][data-id="${holdId}"]`);
  await button.click();
  t.regex(await text(page, '#action-state'), /enter the action token/);
  // The page's own fetch without the token, as a script on it would send it: refused by the server.
  const status = await page.evaluate(async (id) => (await fetch('/actions/release', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ id }) })).status, holdId);
  t.is(status, 403);
  t.true(
    (await statusJson(d)).holds.some((h) => h.hold_id === holdId),
    'still held',
  );

  await page.fill('#token', web.token);
  await button.focus();
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.getElementById('action-state')?.textContent?.startsWith('release: done'), undefined, WAIT);
  await page.waitForSelector(`tr.holder[data-id="${holdId}"]`, { state: 'detached', ...WAIT });
  t.false(
    (await statusJson(d)).holds.some((h) => h.hold_id === holdId),
    'released',
  );
});

test('with JavaScript disabled the first paint still lists the holders', async (t) => {
  const d = await startDaemon(t);
  const web = await startWeb(t, d);
  const holder = await detachedHolder(d, 'nojs', ['--lock', 'scope', '--holder', 'lab-bench-7']);
  t.teardown(holder.release);
  const page = await (await browserContext(t, { javaScriptEnabled: false })).newPage();
  await page.goto(web.url);
  const row = page.locator(`tr.holder[data-id="${holder.runId}"]`);
  t.is(await row.count(), 1);
  t.regex((await row.textContent()) ?? '', /scope/);
  t.is(await text(page, `tr.holder[data-id="${holder.runId}"] td.who`), 'lab-bench-7');
  t.is(await text(page, '#live-state'), 'static (live updates need JavaScript)');
  t.true(await page.locator('#token-form').isHidden(), 'no token field without scripts (actions need them)');
});

test('a live update keeps the keyboard focus on the same control', async (t) => {
  const d = await startDaemon(t);
  const web = await startWeb(t, d);
  const holder = await detachedHolder(d, 'focus', ['--lock', 'desk']);
  t.teardown(holder.release);
  const page = await (await browserContext(t)).newPage();
  await page.goto(web.url);
  await page.waitForFunction(() => document.getElementById('live-state')?.textContent?.startsWith('live'), undefined, WAIT);
  await page.focus(`a[data-focus="run-${holder.runId}"]`);
  await page.evaluate(() => document.activeElement?.setAttribute('data-old', 'yes'));
  const r = await lockd(d, ['run', '--lock', 'other', '--', 'true']);
  const newRun = runIdOf(r.stderr);
  await page.waitForSelector(`tr.run[data-id="${newRun}"]`, WAIT);
  t.is(await page.evaluate(() => document.activeElement?.getAttribute('data-focus')), `run-${holder.runId}`, 'focus is on the same link');
  t.is(await page.evaluate(() => document.activeElement?.getAttribute('data-old')), null, 'in the new markup (the fragment was replaced)');
});

test("another user's running job: with the token typed in, its log is fetched and then followed live", async (t) => {
  const d = await startDaemon(t);
  const web = await startWeb(t, d);
  const go = join(d.dir, 'go');
  t.teardown(() => writeFileSync(go, ''));
  const run = lockdSpawn(t, d, ['run', '--lock', 'rig', '--', 'sh', '-c', `echo first-line; while [ ! -e ${go} ]; do sleep 0.05; done; echo second-line`]);
  await run.waitForStdout('first-line');
  await run.waitForStderr('manifest ->');
  const runId = runIdOf(run.stderr());
  // The same real run, shown as another user's: its manifest names somebody else once the daemon's start-time
  // rewrite has landed (the daemon writes it no more after that).
  const manifestPath = join(d.stateDir, 'runs', runId, 'manifest.json');
  const deadline = Date.now() + 20_000;
  let manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as Record<string, unknown>;
  while (manifest.start_time_utc === null && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as Record<string, unknown>;
  }
  t.not(manifest.start_time_utc, null, 'the start-time manifest was written');
  writeFileSync(manifestPath, JSON.stringify({ ...manifest, user: 'somebody-else' }));

  const page = await (await browserContext(t)).newPage();
  await page.goto(`${web.url}runs/${runId}`);
  t.is(await page.locator('#log-hidden').count(), 1, 'without the token the log is not shown');
  await page.fill('#token', web.token);
  await page.locator('#token').dispatchEvent('change');
  await page.waitForFunction(() => document.getElementById('log')?.textContent?.includes('first-line'), undefined, WAIT);
  writeFileSync(go, '');
  await page.waitForFunction(() => document.getElementById('log')?.textContent?.includes('second-line'), undefined, WAIT);
  t.is((await text(page, '#log')).match(/first-line/g)?.length, 1, 'no line twice');
  t.is((await run.done).code, 0);
});
