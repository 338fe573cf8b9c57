/**
 * lockd web's HTTP server, on node:http alone: the routes, the input checks (400 for a bad query, 404 for an
 * unknown run or lock, never a crash), the token and Origin checks on the actions, and /metrics. Every page is
 * rendered here from the daemon's status and the run records; live.js only replaces fragments this server sent.
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import type { LockdClient } from '../api/client.js';
import { currentUser } from '../client/holder.js';
import { PROMETHEUS_CONTENT_TYPE, renderPrometheus } from '../metrics/prometheus.js';
import { isValidRunId } from '../runs/run-id.js';
import { isLockdError } from '../util/errors.js';
import { loadAssets } from './assets-files.js';
import { fetchStatus, findRun, lockHistory, recentRuns, type RunRecord } from './data.js';
import { HoldHistory } from './hold-history.js';
import { errorPage } from './render/error.js';
import { html, raw } from './render/html.js';
import { page } from './render/layout.js';
import { lockBody } from './render/lock.js';
import { overviewFragment } from './render/overview.js';
import { resultFragment, runBody } from './render/run.js';
import { EventHub, sseMessage, startSse } from './sse.js';
import { readLogTail, watchRun } from './run-watch.js';
import { LogTail } from '../runs/log-tail.js';

export interface WebOptions {
  client: LockdClient;
  runsRoot: string;
  /** The action token (from the 0600 token file). */
  token: string;
  /** Host headers accepted (DNS rebinding: a page on another name must not read this one); null accepts any. */
  allowedHosts: Set<string> | null;
  /** Origins allowed to POST actions besides http://<an allowed Host> (a reverse proxy's public URL). */
  extraOrigins: string[];
  recentRuns?: number;
  maxSseClients?: number;
  /** Name holders in /metrics (lockd_lock_holder); off by default, as `lockd metrics`. */
  metricsHolders?: boolean;
}

export const TOKEN_HEADER = 'x-lockd-token';
const MAX_URL = 4096;
const MAX_PARAM = 1024;
const MAX_BODY = 4096;
/** The first paint carries at most this much of a log; the rest is in the file (and `lockd logs`). */
const LOG_PAGE_BYTES = 256 * 1024;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The query, strictly: known names only, each once, bounded, and well-formed percent escapes. */
function parseQuery(url: URL, rawQuery: string, allowed: readonly string[]): Map<string, string> {
  if (/%(?![0-9a-fA-F]{2})/.test(rawQuery)) throw new HttpError(400, 'malformed query: a % not followed by two hex digits');
  const out = new Map<string, string>();
  for (const [k, v] of url.searchParams) {
    if (!allowed.includes(k))
      throw new HttpError(400, `unknown query parameter ${JSON.stringify(k.slice(0, 64))}${allowed.length ? ` (this page takes ${allowed.join(', ')})` : ' (this page takes none)'}`);
    if (out.has(k)) throw new HttpError(400, `query parameter ${k} given twice`);
    if (v.length > MAX_PARAM) throw new HttpError(400, `query parameter ${k} is longer than ${MAX_PARAM} characters`);
    out.set(k, v);
  }
  return out;
}

function intParam(q: Map<string, string>, name: string, min: number, max: number, dflt: number): number {
  const v = q.get(name);
  if (v === undefined) return dflt;
  if (!/^\d{1,9}$/.test(v) || Number(v) < min || Number(v) > max) throw new HttpError(400, `${name} must be a whole number from ${min} to ${max}`);
  return Number(v);
}

function sendHtml(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, {
    'Content-Type': 'text/html; charset=utf-8',
    'Cache-Control': 'no-store',
    // Nothing is loaded from anywhere else: the page works offline and an injected <script src> could not run.
    'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
  });
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' });
  res.end(`${JSON.stringify(body)}\n`);
}

function tokenMatches(given: string | string[] | undefined, token: string): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

async function readBody(req: IncomingMessage): Promise<string> {
  let size = 0;
  const parts: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new HttpError(413, `request body over ${MAX_BODY} bytes`);
    parts.push(chunk);
  }
  return Buffer.concat(parts).toString('utf8');
}

export interface WebServer {
  server: Server;
  hub: EventHub;
  close(): Promise<void>;
}

export function createWebServer(opts: WebOptions): WebServer {
  const assets = loadAssets();
  const me = currentUser(process.env);
  const runsLimit = opts.recentRuns ?? 20;
  const renderOverview = async (limit = runsLimit) => overviewFragment(await fetchStatus(opts.client), await recentRuns(opts.runsRoot, limit), opts.runsRoot).text;
  const hub = new EventHub(opts.client, () => renderOverview(), opts.maxSseClients ?? 1000);
  const holdHistory = new HoldHistory();
  hub.onEvent(holdHistory.onEvent);
  const askDaemon = async (runId: string) => {
    const w = await watchRun(opts.client.connectOptions, runId);
    w?.close();
    return w;
  };
  const visibleLog = (rec: RunRecord, req: IncomingMessage) => !rec.manifest || rec.manifest.user === me || tokenMatches(req.headers[TOKEN_HEADER], opts.token);

  async function findOr404(runId: string): Promise<RunRecord> {
    if (!isValidRunId(runId)) throw new HttpError(400, `invalid run id ${JSON.stringify(String(runId).slice(0, 80))}`);
    const rec = await findRun(opts.runsRoot, runId, askDaemon);
    if (!rec) throw new HttpError(404, `no run ${runId} in ${opts.runsRoot}`);
    return rec;
  }

  function originAllowed(req: IncomingMessage): boolean {
    const origin = req.headers.origin;
    if (!origin) return false;
    if (opts.extraOrigins.includes(origin)) return true;
    const host = req.headers.host;
    return !!host && (opts.allowedHosts === null || opts.allowedHosts.has(host)) && origin === `http://${host}`;
  }

  async function action(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    // The Origin check first: a cross-site form post is refused before anything else is looked at.
    if (!originAllowed(req)) return sendJson(res, 403, { ok: false, error: { code: 'bad_origin', message: 'actions need an Origin header naming this page' } });
    if (!tokenMatches(req.headers[TOKEN_HEADER], opts.token))
      return sendJson(res, 403, { ok: false, error: { code: 'bad_token', message: `actions need the token lockd web printed, in the ${TOKEN_HEADER} header` } });
    let body: { id?: unknown };
    try {
      body = JSON.parse(await readBody(req)) as { id?: unknown };
    } catch (e) {
      if (e instanceof HttpError) throw e;
      throw new HttpError(400, 'the body must be JSON: {"id": "..."}');
    }
    const id = body?.id;
    if (typeof id !== 'string' || id.length === 0 || id.length > 128) throw new HttpError(400, 'the body must be JSON: {"id": "..."}');
    try {
      if (name === 'cancel') {
        const status = await fetchStatus(opts.client);
        const run = status?.runs.find((r) => r.run_id === id);
        if (!run) return sendJson(res, 404, { ok: false, error: { code: 'no_such_run', message: `no live run ${id}` } });
        if (run.state !== 'queued') return sendJson(res, 409, { ok: false, error: { code: 'not_queued', message: `run ${id} is ${run.state}, not queued: stop it with lockd kill` } });
        const r = await opts.client.kill(id);
        return sendJson(res, 200, { ok: true, note: r.note });
      }
      if (name === 'pool-disable' || name === 'pool-enable') {
        const at = id.indexOf('/');
        if (at <= 0 || at === id.length - 1) throw new HttpError(400, 'a pool action names POOL/MEMBER');
        const pool = id.slice(0, at);
        const member = id.slice(at + 1);
        // The daemon decides who may (system mode: admins only); the reason names where it came from.
        const r = await opts.client.pool({
          action: name === 'pool-disable' ? 'disable' : 'enable',
          pool,
          member,
          properties: {},
          reason: name === 'pool-disable' ? `disabled from lockd web by ${me}` : null,
        });
        return sendJson(res, 200, { ok: true, note: r.note });
      }
      const r = await opts.client.release(id, { force: true, holder: `lockd web (${me})` });
      if (!r.released) return sendJson(res, 404, { ok: false, error: { code: 'no_such_hold', message: r.note ?? `no active hold ${id}` } });
      return sendJson(res, 200, { ok: true, note: r.note });
    } catch (e) {
      if (isLockdError(e) && (e.code === 'unknown_pool' || e.code === 'unknown_member' || e.code === 'usage')) return sendJson(res, 404, { ok: false, error: { code: e.code, message: e.message } });
      if (isLockdError(e)) return sendJson(res, e.code === 'not_authorized' || e.code === 'not_owner' ? 403 : 409, { ok: false, error: { code: e.code, message: e.message } });
      throw e;
    }
  }

  async function followRun(req: IncomingMessage, res: ServerResponse, rec: RunRecord, offset: number, withLog: boolean): Promise<void> {
    startSse(res);
    const decoder = new StringDecoder('utf8');
    const state = rec.live ? await watchRun(opts.client.connectOptions, rec.runId) : null;
    const logPath = state?.logPath ?? rec.logPath;
    const tail =
      logPath && withLog
        ? new LogTail(logPath, offset, (b) => {
            res.write(sseMessage('log', JSON.stringify(decoder.write(b))));
          })
        : null;
    let done = false;
    const finish = async () => {
      if (done) return;
      done = true;
      await tail?.pump();
      await tail?.close();
      state?.close();
      const after = await findRun(opts.runsRoot, rec.runId, async () => null).catch(() => null);
      res.write(sseMessage('result', resultFragment({ result: after?.result ?? rec.result, live: false }).text));
      res.end(sseMessage('end', ''));
    };
    req.on('close', () => {
      done = true;
      state?.close();
      void tail?.close();
    });
    if (!state?.live) return void (await finish());
    tail?.follow();
    await tail?.pump();
    await state.ended;
    await finish();
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const rawUrl = req.url ?? '/';
    if (rawUrl.length > MAX_URL) throw new HttpError(400, `request URL over ${MAX_URL} characters`);
    if (opts.allowedHosts && !opts.allowedHosts.has(req.headers.host ?? ''))
      throw new HttpError(421, `unexpected Host ${JSON.stringify((req.headers.host ?? '').slice(0, 100))}: use the address lockd web printed (or start it with --origin)`);
    let url: URL;
    try {
      url = new URL(rawUrl, 'http://lockd.invalid');
    } catch {
      throw new HttpError(400, 'malformed request URL');
    }
    const rawQuery = rawUrl.includes('?') ? rawUrl.slice(rawUrl.indexOf('?') + 1) : '';
    const path = url.pathname;
    const method = req.method ?? 'GET';

    if (path.startsWith('/actions/')) {
      const name = path.slice('/actions/'.length);
      if (name !== 'cancel' && name !== 'release' && name !== 'pool-disable' && name !== 'pool-enable') throw new HttpError(404, `no action ${name.slice(0, 40)}`);
      if (method !== 'POST') throw new HttpError(405, 'actions are POST requests (with the token header); a GET never changes anything');
      parseQuery(url, rawQuery, []);
      return await action(req, res, name);
    }
    if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, `${method} is not served here; pages are GET, actions POST to /actions/…`);

    const asset = assets.get(path);
    if (asset) {
      parseQuery(url, rawQuery, []);
      res.writeHead(200, { 'Content-Type': asset.type, 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff' });
      return void res.end(asset.body);
    }
    if (path === '/') {
      const q = parseQuery(url, rawQuery, ['runs']);
      const limit = intParam(q, 'runs', 1, 500, runsLimit);
      return sendHtml(
        res,
        200,
        page({
          title: 'Overview',
          live: 'overview',
          body: html`<div id="overview">${raw(await renderOverview(limit))}</div><noscript><p class="note">Without JavaScript this page is a snapshot: reload it to see changes. Actions need JavaScript.</p></noscript>`,
        }).text,
      );
    }
    if (path === '/events') {
      parseQuery(url, rawQuery, []);
      if (!hub.add(res)) throw new HttpError(503, 'too many open pages');
      return;
    }
    if (path === '/metrics') {
      parseQuery(url, rawQuery, []);
      try {
        const text = renderPrometheus(await opts.client.metrics({ holders: opts.metricsHolders ?? false }));
        res.writeHead(200, { 'Content-Type': PROMETHEUS_CONTENT_TYPE, 'Cache-Control': 'no-store' });
        return void res.end(text);
      } catch (e) {
        if (isLockdError(e, 'daemon_not_running')) throw new HttpError(503, 'no lockd daemon is running');
        throw e;
      }
    }
    if (path === '/lock') {
      const q = parseQuery(url, rawQuery, ['key']);
      const key = q.get('key');
      if (!key) throw new HttpError(400, 'which lock? /lock?key=LOCK_FILE_PATH (the links on the overview)');
      const status = await fetchStatus(opts.client);
      const now = status?.locks.find((l) => l.key === key) ?? null;
      const at = Date.now();
      const samples = [...(await lockHistory(opts.runsRoot, key, at)), ...holdHistory.samplesFor(key, at)].sort((a, b) => a.at - b.at);
      if (!now && samples.length === 0) throw new HttpError(404, `no lock ${key} is held, waited on, or in a run or hold of the last 24 h`);
      const name = now?.name ?? key.replace(/^.*\//, '').replace(/\.lock$/, '');
      return sendHtml(res, 200, page({ title: `Lock ${name}`, body: lockBody(key, now, samples, at) }).text);
    }
    const m = /^\/runs\/([^/]+)(\/log|\/stream)?$/.exec(path);
    if (m) {
      let runId: string;
      try {
        runId = decodeURIComponent(m[1]!);
      } catch {
        throw new HttpError(400, 'malformed run id in the URL');
      }
      const q = parseQuery(url, rawQuery, m[2] === '/stream' ? ['offset'] : []);
      const rec = await findOr404(runId);
      if (m[2] === '/log') {
        if (!visibleLog(rec, req)) throw new HttpError(403, `run ${runId} is another user's: its log needs the token in the ${TOKEN_HEADER} header`);
        const log = rec.logPath ? await readLogTail(rec.logPath, LOG_PAGE_BYTES) : null;
        res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store', 'X-Log-Offset': String(log?.offset ?? 0), 'X-Content-Type-Options': 'nosniff' });
        return void res.end(log?.text ?? '');
      }
      if (m[2] === '/stream') {
        // Another user's run without the token (EventSource cannot send it): the verdict when it ends, not the log.
        return await followRun(req, res, rec, intParam(q, 'offset', 0, Number.MAX_SAFE_INTEGER, 0), visibleLog(rec, req));
      }
      const log = visibleLog(rec, req) ? ((rec.logPath ? await readLogTail(rec.logPath, LOG_PAGE_BYTES) : null) ?? { text: '', offset: 0, truncated: false }) : null;
      return sendHtml(res, 200, page({ title: `Run ${runId}`, live: rec.live ? `run:${runId}` : undefined, body: runBody(rec, log) }).text);
    }
    throw new HttpError(404, `nothing at ${path.slice(0, 200)}`);
  }

  const server = createServer((req, res) => {
    route(req, res).catch((e: unknown) => {
      const status = e instanceof HttpError ? e.status : 500;
      const message = e instanceof HttpError ? e.message : `internal error: ${(e as Error)?.message ?? String(e)}`;
      if (status === 500) process.stderr.write(`lockd web: ${req.method} ${(req.url ?? '').slice(0, 200)}: ${(e as Error)?.stack ?? String(e)}\n`);
      if (res.headersSent) return void res.end();
      if ((req.url ?? '').startsWith('/actions/')) return sendJson(res, status, { ok: false, error: { code: `http_${status}`, message } });
      sendHtml(res, status, errorPage(status, message).text);
    });
  });
  // Slow or stuck clients must not pile up: bounded headers, and requests (not SSE streams, which are long-lived by design).
  server.headersTimeout = 10_000;
  server.requestTimeout = 0;
  server.maxHeadersCount = 100;

  return {
    server,
    hub,
    close: async () => {
      hub.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
