/**
 * `lockd web`: the page (holders, queue, runs, live logs) and /metrics, served by a process of its own that is a
 * client of the daemon, like `lockd status`. Why not the daemon: the daemon stays free of HTTP (no listener, no
 * parser, no browser-facing code in the process that owns every lock), a crash or a flood of pages here cannot
 * delay a grant, and however many pages are open the daemon sees one event subscription. docs/operations.md.
 *
 * The server itself (src/web/) is imported only here, and only when this command runs.
 */
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { isIP } from 'node:net';
import { parse, parseIntOption } from '../args.js';
import { apiClient } from '../common.js';
import { LockdError } from '../../util/errors.js';
import { resolveStateDir } from '../../util/paths.js';
import { EXIT } from '../exit-codes.js';
import { RUNS_ROOT_OPTIONS, resolveRunsRoot, runsSettings } from './runs.js';

const OPTIONS = {
  ...RUNS_ROOT_OPTIONS,
  listen: { type: 'string' },
  open: { type: 'boolean' },
  origin: { type: 'string', multiple: true },
  'token-file': { type: 'string' },
  runs: { type: 'string' },
  'metrics-holders': { type: 'boolean' },
} as const;

export const DEFAULT_LISTEN = '127.0.0.1:7450';

export const WEB_HELP = `Usage: lockd web [--listen HOST:PORT | --listen unix:PATH] [--open] [options]

Serve a page showing every lock and slot with its holder, the queue in grant order with ETA, the recent runs
and each run's live output, plus /metrics (Prometheus text format) on the same listener. Runs as its own
process, a client of the daemon (it never starts one): the daemon serves no HTTP itself.
Live updates come over Server-Sent Events from the daemon's event stream; with JavaScript off the page is a
server-rendered snapshot. Actions (cancel a queued run, release a hold) and other users' logs need the token
this command keeps in a 0600 file (printed when it is created).
  --listen HOST:PORT   where to listen (default ${DEFAULT_LISTEN}, loopback only); any other address
                       serves the page to the network and prints a warning. Port 0 picks a free one.
  --listen unix:PATH   a Unix socket instead, for a reverse proxy on the same host (docs/operations.md)
  --open               open the page in the default browser
  --origin URL         a public URL the page is also reached at (a reverse proxy): its Host is accepted and
                       actions from it are allowed; repeatable
  --token-file PATH    where the action token is kept (default <state-dir>/web-token)
  --runs N             recent runs on the overview (default 20)
  --metrics-holders    name holders in /metrics (lockd_lock_holder); off by default
  --runs-root DIR, --root DIR   whose run records to show (as lockd runs)
  --socket PATH        the daemon's socket (as every lockd command)

Examples:
  lockd web --open
  lockd web --listen 0.0.0.0:7450 --origin https://locks.lab.example
  lockd web --listen unix:/run/lockd-web/web.sock --origin https://locks.lab.example
`;

export type Listen = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

export function parseListen(v: string): Listen {
  if (v.startsWith('unix:')) {
    const path = v.slice(5);
    if (!path) throw new LockdError('usage', '--listen unix:PATH needs a path');
    return { kind: 'unix', path };
  }
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(v);
  const host = m ? (m[1] ?? m[2]!) : '';
  const port = m ? Number(m[3]) : -1;
  if (!m || port > 65535) throw new LockdError('usage', `--listen must be HOST:PORT ([::1]:PORT for IPv6) or unix:PATH, not ${JSON.stringify(v)}`);
  return { kind: 'tcp', host, port };
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

/** The token: the file's if it is ours and private, else a new one written 0600 (printed once, then). */
function loadToken(path: string): { token: string; created: boolean } {
  try {
    const st = lstatSync(path);
    if (st.isFile() && (st.mode & 0o077) === 0 && (process.getuid === undefined || st.uid === process.getuid())) {
      const token = readFileSync(path, 'utf8').trim();
      if (/^[A-Za-z0-9_-]{32,}$/.test(token)) return { token, created: false };
    }
  } catch {
    // missing: made below
  }
  const token = randomBytes(24).toString('base64url');
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, `${token}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
  return { token, created: true };
}

function openBrowser(url: string): void {
  const [cmd, ...args] = process.platform === 'darwin' ? ['open', url] : process.platform === 'win32' ? ['cmd', '/c', 'start', '', url] : ['xdg-open', url];
  const child = spawn(cmd!, args, { stdio: 'ignore', detached: true });
  child.on('error', () => process.stderr.write(`lockd web: could not open a browser (${cmd}); open ${url} yourself\n`));
  child.unref();
}

function hostHeaderFor(host: string, port: number): string[] {
  const h = host.includes(':') ? `[${host}]` : host;
  const names = [`${h}:${port}`];
  if (isLoopback(host)) names.push(`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`);
  return names;
}

export async function webCommand(args: string[]): Promise<number> {
  const { values } = parse(args, OPTIONS);
  const listen = parseListen(values.listen ?? DEFAULT_LISTEN);
  const origins = (values.origin ?? []).map((o) => {
    let u: URL;
    try {
      u = new URL(o);
    } catch {
      throw new LockdError('usage', `--origin must be a URL like https://locks.example, not ${JSON.stringify(o)}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new LockdError('usage', `--origin must be an http or https URL, not ${JSON.stringify(o)}`);
    return u;
  });
  const recent = values.runs !== undefined ? parseIntOption(values.runs, '--runs', 1, 500) : 20;
  const settings = runsSettings(values);
  const runsRoot = resolveRunsRoot(settings).root;
  const client = apiClient(values, settings, { autostart: false });
  const tokenFile = values['token-file'] ?? join(resolveStateDir(settings.value('state_dir') ?? undefined), 'web-token');
  const { token, created } = loadToken(tokenFile);

  const { createWebServer } = await import('../../web/server.js');
  // Host names are known once the port is (port 0 picks one); until then every request is refused by a null set.
  const allowedHosts = new Set<string>();
  for (const o of origins) allowedHosts.add(o.host);
  const web = createWebServer({
    client,
    runsRoot,
    token,
    // Loopback: only our own names (a DNS-rebinding page on another name is refused). Behind a Unix socket, or
    // on a network address without --origin, the Host is whatever name reaches us; the Origin check on actions
    // still applies.
    allowedHosts: listen.kind === 'unix' || (!isLoopback(listen.host) && origins.length === 0) ? null : allowedHosts,
    extraOrigins: origins.map((o) => o.origin),
    recentRuns: recent,
    metricsHolders: values['metrics-holders'] ?? false,
  });

  await new Promise<void>((resolve, reject) => {
    web.server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new LockdError('web_listen_failed', `lockd web cannot listen on ${values.listen ?? DEFAULT_LISTEN}: ${e.code === 'EADDRINUSE' ? 'the address is in use' : e.message}`)),
    );
    if (listen.kind === 'unix') web.server.listen(listen.path, () => resolve());
    else web.server.listen(listen.port, listen.host, () => resolve());
  }).catch(async (e) => {
    await web.close();
    throw e;
  });

  // Listening for the stop signals before saying where we serve: whoever reads that line may stop us at once.
  const stopped = new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  let url: string;
  if (listen.kind === 'unix') {
    chmodSync(listen.path, 0o660);
    url = `unix:${listen.path}`;
  } else {
    const addr = web.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : listen.port;
    for (const h of hostHeaderFor(listen.host, port)) allowedHosts.add(h);
    url = `http://${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${port}/`;
    if (!isLoopback(listen.host))
      process.stderr.write(
        `lockd web: WARNING: listening on ${listen.host}, not loopback: anyone who can reach this address sees every holder, queue and recent run (actions and other users' logs still need the token); prefer a reverse proxy with TLS (docs/operations.md)\n`,
      );
  }
  if (created) process.stderr.write(`lockd web: action token (shown once; kept in ${tokenFile}, mode 0600): ${token}\n`);
  else process.stderr.write(`lockd web: action token in ${tokenFile}\n`);
  process.stdout.write(`lockd web: serving ${url} (metrics at ${listen.kind === 'unix' ? '/metrics' : `${url}metrics`}) for the daemon on ${client.connectOptions.socketPath}\n`);
  if (values.open && listen.kind === 'tcp') openBrowser(url);

  await stopped;
  // Stop taking requests and end the open pages' streams; a handle something still holds must not keep a
  // stopped server alive (the timer is unref'd: it fires only if something else would keep the process up).
  setTimeout(() => process.exit(EXIT.OK), 3000).unref();
  await web.close();
  return EXIT.OK;
}
