/**
 * `lockd web` over plain HTTP against a real daemon: where it listens, the token file, /metrics checked by
 * promtool on a real scrape, bad input (404, 400, never a crash), and actions (POST only, Origin + token).
 * The browser tests (web.browser.test.ts) drive the same server from Chromium.
 */
import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { DEFAULT_LISTEN, isLoopback, parseListen } from '../src/cli/commands/web.js';
import { REPO, lockd, lockdSpawn, startDaemon, tempDir, waitForFile } from './helpers/lockd.js';
import { detachedHolder, holdIdOf, statusJson, waitForWaiters } from './helpers/operate.js';
import { startWeb } from './helpers/web.js';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTP request with exactly the headers given (Origin included, which fetch may not send as asked). */
/** The first event of an SSE endpoint (its event and data lines), then the connection is closed. */
function firstSseMessage(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, (res) => {
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        buf += c;
        // Blocks without an event (the `retry:` line, comments) are not messages.
        for (let end = buf.indexOf('\n\n'); end >= 0; end = buf.indexOf('\n\n')) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          if (block.startsWith('event: ')) {
            resolve(block);
            req.destroy();
            return;
          }
        }
      });
      res.on('end', () => resolve(buf));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('no SSE message in 10 s')));
    req.on('error', reject);
    req.end();
  });
}

function http(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string; path?: string } = {}): Promise<Reply> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, method: opts.method ?? 'GET', path: opts.path ?? `${u.pathname}${u.search}`, headers: opts.headers ?? {}, timeout: 20_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} in 20 s`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

function promtoolCheck(text: string): { ok: boolean; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('promtool is not installed: apt-get install prometheus (.ci/run installs it)');
  return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
}

test('the default listen address is loopback; --listen parses HOST:PORT, [v6]:PORT and unix:PATH, and refuses junk', (t) => {
  const def = parseListen(DEFAULT_LISTEN);
  t.true(def.kind === 'tcp' && isLoopback(def.host), DEFAULT_LISTEN);
  t.deepEqual(parseListen('[::1]:80'), { kind: 'tcp', host: '::1', port: 80 });
  t.deepEqual(parseListen('unix:/run/x.sock'), { kind: 'unix', path: '/run/x.sock' });
  t.false(isLoopback('0.0.0.0'));
  t.false(isLoopback('192.168.1.4'));
  for (const bad of ['7450', 'host:', 'host:99999', 'unix:']) t.throws(() => parseListen(bad), { message: /--listen/ }, bad);
});

test('lockd web on loopback prints no warning; on a non-loopback address it warns, and still serves', async (t) => {
  const d = await startDaemon(t);
  const local = await startWeb(t, d);
  t.notRegex(local.proc.stderr(), /WARNING/);
  t.regex(local.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
  const wide = lockdSpawn(t, d, ['web', '--listen', '0.0.0.0:0', '--token-file', join(d.dir, 'tok2')]);
  await wide.waitForStdout(/serving http:\/\/0\.0\.0\.0:(\d+)\//);
  t.regex(wide.stderr(), /WARNING: listening on 0\.0\.0\.0, not loopback/);
  const port = /:(\d+)\//.exec(wide.stdout())![1]!;
  t.is((await http(`http://127.0.0.1:${port}/`)).status, 200);
  const help = await lockd(d, ['web', '--help']);
  t.regex(help.stdout, /Examples:\n {2}lockd web --open/);
});

test('the token file is mode 0600 and the token is printed once, when the file is made; a second start reuses it', async (t) => {
  const d = await startDaemon(t);
  const file = join(d.dir, 'tok');
  const first = await startWeb(t, d, [], file);
  t.is(statSync(file).mode & 0o777, 0o600);
  t.true(first.proc.stderr().includes(first.token), 'printed when made');
  first.proc.proc.kill('SIGTERM');
  const stopped = await Promise.race([first.proc.done, new Promise<null>((r) => setTimeout(() => r(null), 20_000).unref())]);
  t.deepEqual(stopped && { code: stopped.code, signal: stopped.signal }, { code: 0, signal: null }, `SIGTERM stops it cleanly within 20 s: ${first.proc.stderr()}`);
  const second = await startWeb(t, d, [], file);
  t.is(second.token, first.token);
  t.false(second.proc.stderr().includes(first.token), 'not printed again');
  t.regex(second.proc.stderr(), /action token in /);
});

test('/metrics on the same listener passes promtool check metrics on a real scrape, with lock series and no holder names', async (t) => {
  const d = await startDaemon(t);
  const web = await startWeb(t, d);
  const r = await lockd(d, ['run', '--lock', 'board', '--holder', 'secret-holder-name', '--', 'true']);
  t.is(r.code, 0, r.stderr);
  const scrape = await http(`${web.url}metrics`);
  t.is(scrape.status, 200);
  t.regex(String(scrape.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  const check = promtoolCheck(scrape.body);
  t.true(check.ok, check.output);
  t.regex(scrape.body, /^lockd_lock_wait_seconds_count\{lock="board",scope="local",path="[^"]+board\.lock"\} 1$/m);
  t.regex(scrape.body, /^lockd_runs_total\{verdict="pass"\} 1$/m);
  t.false(scrape.body.includes('secret-holder-name'), 'no holder names unless --metrics-holders');
});

test('unknown run or lock is a 404 page, a malformed or oversized query a 400, and the server keeps serving', async (t) => {
  const d = await startDaemon(t);
  const web = await startWeb(t, d);
  const cases: Array<[string, number]> = [
    ['runs/261207-0000-dead', 404],
    ['lock?key=%2Fno%2Fsuch.lock', 404],
    ['nothing-here', 404],
    ['runs/..%2Fetc', 400],
    ['?runs=abc', 400],
    ['?runs=1&runs=2', 400],
    ['?x=%zz', 400],
    ['?nope=1', 400],
    ['lock', 400],
    [`?runs=${'9'.repeat(5000)}`, 400],
    [`runs/${'a'.repeat(200)}`, 400],
  ];
  for (const [path, status] of cases) {
    const r = await http(`${web.url}${path}`);
    t.is(r.status, status, path.slice(0, 60));
    t.regex(String(r.headers['content-type']), /^text\/html/, path.slice(0, 60));
    t.regex(r.body, /<p class="error">/, path.slice(0, 60));
  }
  t.is((await http(web.url, { method: 'DELETE' })).status, 405);
  t.is((await http(web.url)).status, 200, 'still serving after all that');
  t.is(web.proc.proc.exitCode, null, 'lockd web did not exit');
});

test('actions are POST only and need an Origin naming the page and the token; with both, a hold is released and a queued run cancelled', async (t) => {
  const d = await startDaemon(t);
  const web = await startWeb(t, d);
  const a = await lockd(d, ['acquire', 'rig', '--ttl', '600']);
  t.is(a.code, 0, a.stderr);
  const holdId = holdIdOf(a.stdout);
  const origin = web.url.replace(/\/$/, '');
  const body = JSON.stringify({ id: holdId });
  const json = { 'Content-Type': 'application/json' };

  t.is((await http(`${web.url}actions/release`, { method: 'GET' })).status, 405, 'a GET never acts');
  const noOrigin = await http(`${web.url}actions/release`, { method: 'POST', headers: { ...json, 'X-Lockd-Token': web.token }, body });
  t.is(noOrigin.status, 403);
  t.regex(noOrigin.body, /bad_origin/);
  const foreign = await http(`${web.url}actions/release`, { method: 'POST', headers: { ...json, Origin: 'http://evil.example', 'X-Lockd-Token': web.token }, body });
  t.is(foreign.status, 403);
  const noToken = await http(`${web.url}actions/release`, { method: 'POST', headers: { ...json, Origin: origin }, body });
  t.is(noToken.status, 403);
  t.regex(noToken.body, /bad_token/);
  const wrong = await http(`${web.url}actions/release`, { method: 'POST', headers: { ...json, Origin: origin, 'X-Lockd-Token': 'x'.repeat(web.token.length) }, body });
  t.is(wrong.status, 403);
  t.true(
    (await statusJson(d)).holds.some((h) => h.hold_id === holdId),
    'refused requests changed nothing',
  );

  const ok = await http(`${web.url}actions/release`, { method: 'POST', headers: { ...json, Origin: origin, 'X-Lockd-Token': web.token }, body });
  t.is(ok.status, 200, ok.body);
  t.false(
    (await statusJson(d)).holds.some((h) => h.hold_id === holdId),
    'the hold is gone',
  );
  const again = await http(`${web.url}actions/release`, { method: 'POST', headers: { ...json, Origin: origin, 'X-Lockd-Token': web.token }, body });
  t.is(again.status, 404);

  const holder = await detachedHolder(d, 'h', ['--lock', 'board']);
  t.teardown(holder.release);
  const waiter = lockdSpawn(t, d, ['run', '--lock', 'board', '--wait', '120', '--', 'true']);
  await waitForWaiters(d, 'board', 1);
  const queued = (await statusJson(d)).runs.find((r) => r.state === 'queued')!;
  const running = await http(`${web.url}actions/cancel`, {
    method: 'POST',
    headers: { ...json, Origin: origin, 'X-Lockd-Token': web.token },
    body: JSON.stringify({ id: holder.runId }),
  });
  t.is(running.status, 409, 'a running run is not cancelled from the page');
  const cancel = await http(`${web.url}actions/cancel`, { method: 'POST', headers: { ...json, Origin: origin, 'X-Lockd-Token': web.token }, body: JSON.stringify({ id: queued.run_id }) });
  t.is(cancel.status, 200, cancel.body);
  const end = await waiter.done;
  t.not(end.code, 0, 'the cancelled waiter did not run');
  t.is((await http(`${web.url}actions/cancel`, { method: 'POST', headers: { ...json, Origin: origin, 'X-Lockd-Token': web.token }, body: '{"id":' })).status, 400);
});

test("another user's run log needs the token; the user's own run log does not", async (t) => {
  const d = await startDaemon(t);
  const web = await startWeb(t, d);
  const r = await lockd(d, ['run', '--lock', 'x', '--', 'echo', 'mine-output']);
  t.is(r.code, 0, r.stderr);
  const runs = join(d.stateDir, 'runs');
  const mine = /runs\/([^/]+)\/manifest\.json/.exec(r.stderr)![1]!;
  // Another user's run: the same real record, with the manifest's and result's user changed.
  const other = `${mine}-other`;
  cpSync(join(runs, mine), join(runs, other), { recursive: true });
  for (const f of ['manifest.json', 'result.json']) {
    const p = join(runs, other, f);
    const j = JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
    j.run_id = other;
    if ('user' in j) j.user = 'somebody-else';
    if ('log_path' in j) j.log_path = join(runs, other, 'output.log');
    writeFileSync(p, JSON.stringify(j));
  }
  writeFileSync(join(runs, other, 'output.log'), 'their-secret-output\n');
  await waitForFile(join(runs, other, 'output.log'));

  const own = await http(`${web.url}runs/${mine}`);
  t.is(own.status, 200);
  t.regex(own.body, /mine-output/);
  const theirs = await http(`${web.url}runs/${other}`);
  t.is(theirs.status, 200);
  t.false(theirs.body.includes('their-secret-output'));
  t.regex(theirs.body, /another user's run/);
  t.is((await http(`${web.url}runs/${other}/log`)).status, 403);
  const withToken = await http(`${web.url}runs/${other}/log`, { headers: { 'X-Lockd-Token': web.token } });
  t.is(withToken.status, 200);
  t.is(withToken.body, 'their-secret-output\n');
  const stream = await http(`${web.url}runs/${other}/stream`);
  t.is(stream.status, 200, 'the stream still says how the run ended');
  t.regex(stream.body, /event: result\n/);
  t.false(stream.body.includes('their-secret-output'), 'but carries no log without the token');
  const ownStream = await http(`${web.url}runs/${mine}/stream`);
  t.regex(ownStream.body, /event: log\ndata: "mine-output\\n"/);
});

test('with the daemon gone the page says so instead of failing, /metrics answers 503, and both recover when it is back', async (t) => {
  const d = await startDaemon(t);
  const web = await startWeb(t, d);
  t.is((await http(web.url)).status, 200);
  await d.stop();
  const down = await http(web.url);
  t.is(down.status, 200);
  t.regex(down.body, /No lockd daemon is running/);
  t.is((await http(`${web.url}metrics`)).status, 503);
  await startDaemon(t, { dir: d.dir });
  const up = await http(web.url);
  t.regex(up.body, /<p class="daemon">lockd /);
  t.is((await http(`${web.url}metrics`)).status, 200);
  t.is(web.proc.proc.exitCode, null, 'lockd web kept running throughout');
});

test("a lock's page shows who holds it now and an inline SVG of its runs' wait and hold times over 24 h", async (t) => {
  const d = await startDaemon(t);
  const web = await startWeb(t, d);
  for (let i = 0; i < 2; i++) t.is((await lockd(d, ['run', '--lock', 'chart', '--', 'true'])).code, 0);
  const holder = await detachedHolder(d, 'c', ['--lock', 'chart']);
  t.teardown(holder.release);
  const key = (await statusJson(d)).locks.find((l) => l.name === 'chart')!.key;
  const overview = await http(web.url);
  t.true(overview.body.includes(`/lock?key=${encodeURIComponent(key)}`), 'the overview links the lock page');
  const page = await http(`${web.url}lock?key=${encodeURIComponent(key)}`);
  t.is(page.status, 200);
  t.regex(page.body, /<svg class="history"[^>]*role="img"/);
  t.is(page.body.match(/<rect class="hold"/g)?.length, 2, 'one bar per finished run');
  t.true(page.body.includes(holder.runId), 'the current holder');
  t.false(/<script[^>]+src="http/.test(page.body), 'nothing loaded from elsewhere');
});

test('--listen unix:PATH serves the page and /metrics on a Unix socket (for a reverse proxy)', async (t) => {
  const d = await startDaemon(t);
  const sock = join(d.dir, 'web.sock');
  const web = lockdSpawn(t, d, ['web', '--listen', `unix:${sock}`, '--token-file', join(d.dir, 'tok')]);
  await web.waitForStdout(`serving unix:${sock}`);
  const get = (path: string) =>
    new Promise<Reply>((resolve, reject) => {
      const req = request({ socketPath: sock, path, headers: { Host: 'locks.lab.example' } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on('error', reject);
      req.end();
    });
  const page = await get('/');
  t.is(page.status, 200);
  t.regex(page.body, /<h2 id="h-locks">Locks and slots<\/h2>/);
  const metrics = await get('/metrics');
  t.is(metrics.status, 200);
  t.true(promtoolCheck(metrics.body).ok);
});

test('--open hands the page URL to the desktop opener (xdg-open)', async (t) => {
  const d = await startDaemon(t);
  const seen = join(d.dir, 'opened');
  // A stand-in xdg-open first on PATH: it writes down the URL it was given.
  writeFileSync(join(d.dir, 'xdg-open'), `#!/bin/sh\nprintf '%s' "$1" > ${seen}.tmp && mv ${seen}.tmp ${seen}\n`);
  chmodSync(join(d.dir, 'xdg-open'), 0o755);
  const web = lockdSpawn(t, d, ['web', '--listen', '127.0.0.1:0', '--open', '--token-file', join(d.dir, 'tok')], { env: { PATH: `${d.dir}:${process.env.PATH ?? ''}` } });
  await web.waitForStdout(/serving (http:\/\/\S+\/)/);
  const url = /serving (http:\/\/\S+\/)/.exec(web.stdout())![1]!;
  await waitForFile(seen);
  t.is(readFileSync(seen, 'utf8'), url);
});

test("the page's script and stylesheet ship in the npm package (nothing is fetched at run time) and are what lockd web serves", async (t) => {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: REPO, encoding: 'utf8' });
  const files = (JSON.parse(out) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path);
  for (const f of ['src/web/assets/live.js', 'src/web/assets/style.css', 'dist/src/web/server.js', 'dist/src/cli/commands/web.js']) t.true(files.includes(f), f);
  const d = await startDaemon(t);
  const web = await startWeb(t, d);
  const js = await http(`${web.url}assets/live.js`);
  t.is(js.status, 200);
  t.regex(String(js.headers['content-type']), /^text\/javascript/);
  t.is(js.body, readFileSync(join(REPO, 'src', 'web', 'assets', 'live.js'), 'utf8'));
  t.false(/https?:\/\//.test(js.body), 'the script names no other site');
});

test('pools are on the page from the daemon, and a member is disabled and enabled again by a POST with the token', async (t) => {
  const dir = tempDir();
  mkdirSync(join(dir, 'state'), { recursive: true });
  writeFileSync(join(dir, 'state', 'lockd.json'), JSON.stringify({ pools: { boards: { members: { 'rpi4-a': { arch: 'arm64' }, nuc: { arch: 'x86_64' } } } } }));
  const d = await startDaemon(t, { dir });
  const web = await startWeb(t, d);
  const page = await http(web.url);
  t.is(page.status, 200);
  t.regex(page.body, /data-pool="boards"/);
  t.regex(page.body, /data-action="pool-disable" data-id="boards\/nuc"/);
  const origin = web.url.replace(/\/$/, '');
  const headers = { 'Content-Type': 'application/json', Origin: origin };
  const body = JSON.stringify({ id: 'boards/nuc' });
  const noToken = await http(`${web.url}actions/pool-disable`, { method: 'POST', headers, body });
  t.is(noToken.status, 403);
  const state = async (): Promise<string | undefined> => {
    const r = await lockd(d, ['pool', 'show', 'boards/nuc', '--json']);
    return (JSON.parse(r.stdout) as Array<{ members: Array<{ state: string; disabled_reason: string | null }> }>)[0]?.members[0]?.state;
  };
  t.is(await state(), 'free', 'a refused action changed nothing');
  const off = await http(`${web.url}actions/pool-disable`, { method: 'POST', headers: { ...headers, 'X-Lockd-Token': web.token }, body });
  t.is(off.status, 200, off.body);
  t.is(await state(), 'disabled');
  t.regex((await http(web.url)).body, /disabled from lockd web by/);
  const on = await http(`${web.url}actions/pool-enable`, { method: 'POST', headers: { ...headers, 'X-Lockd-Token': web.token }, body });
  t.is(on.status, 200, on.body);
  t.is(await state(), 'free');
  const unknown = await http(`${web.url}actions/pool-disable`, { method: 'POST', headers: { ...headers, 'X-Lockd-Token': web.token }, body: JSON.stringify({ id: 'boards/none' }) });
  t.is(unknown.status, 404, unknown.body);
  const malformed = await http(`${web.url}actions/pool-disable`, { method: 'POST', headers: { ...headers, 'X-Lockd-Token': web.token }, body: JSON.stringify({ id: 'boards' }) });
  t.is(malformed.status, 400);
});

test("a lock's page charts explicit holds too: a hold taken and released while lockd web runs is a bar and a row", async (t) => {
  const d = await startDaemon(t);
  const web = await startWeb(t, d);
  // Holds are counted from the daemon's event stream: wait until lockd web follows it (an SSE page is told).
  const deadline = Date.now() + 20_000;
  let said = await firstSseMessage(`${web.url}events`);
  while (said !== 'event: daemon\ndata: connected' && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    said = await firstSseMessage(`${web.url}events`);
  }
  t.is(said, 'event: daemon\ndata: connected', 'lockd web follows the daemon');
  t.is((await lockd(d, ['run', '--lock', 'bench', '--', 'true'])).code, 0);
  const a = await lockd(d, ['acquire', 'bench', '--ttl', '600']);
  t.is(a.code, 0, a.stderr);
  const holdId = holdIdOf(a.stdout);
  const key = (await statusJson(d)).locks.find((l) => l.name === 'bench')!.key;
  t.is((await lockd(d, ['release', holdId])).code, 0);
  const until = Date.now() + 20_000;
  let page = await http(`${web.url}lock?key=${encodeURIComponent(key)}`);
  while (!page.body.includes(`hold ${holdId}`) && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 50));
    page = await http(`${web.url}lock?key=${encodeURIComponent(key)}`);
  }
  t.true(page.body.includes(`hold ${holdId}`), 'the released hold is a row of the history');
  t.is(page.body.match(/<rect class="hold"/g)?.length, 2, 'one bar for the run, one for the hold');
  t.regex(page.body, /of 2 runs and holds in the last 24 hours/);
});
