/**
 * `npm run bench:web [-- --cycles N --pages 0,50,500]`: what `lockd web` costs the daemon and what it serves.
 * A daemon and a real `lockd web` on temp paths; per page count, that many open SSE pages (GET /events, read as a
 * browser would) while the bench takes and releases a free lock N times through the daemon's socket: the grant's
 * round trip (acquire sent → acquired) and the daemon's CPU over the cycles. Then page weight (the overview with
 * 20 recent runs, plus its script and stylesheet) and the server's time to first byte of the overview.
 * Separate from `npm run bench` (its own figures in docs/performance.md, "lockd web").
 */
import { spawn } from 'node:child_process';
import { request, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CLI, startBenchDaemon, stopProcess, trackStarted, type BenchDaemon } from './bench-daemon.js';
import { acquireHold, localLock, releaseHold } from './lockd-api.js';
import { cpuMs } from './procfs.js';
import { roundSummary, summarize, type Summary } from './stats.js';
import { nowMs } from './timing.js';

interface WebProc {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

async function startWeb(d: BenchDaemon): Promise<WebProc> {
  const proc = spawn(process.execPath, [CLI, 'web', '--listen', '127.0.0.1:0', '--token-file', join(d.dir, 'web-token')], { env: d.env, cwd: d.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  trackStarted(proc);
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`lockd web did not start in 30 s: ${out}`)), 30_000);
    proc.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /serving (http:\/\/\S+\/)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    proc.once('exit', (c) => reject(new Error(`lockd web exited (${c}): ${out}`)));
  });
  proc.stderr!.resume();
  return { url, pid: proc.pid!, stop: () => stopProcess(proc) };
}

/** One open page: the SSE stream, read and counted (what a browser tab costs the server). */
function openPage(url: string): Promise<{ messages: () => number; close: () => void }> {
  return new Promise((resolve, reject) => {
    const MARK = 'event: overview\n';
    let messages = 0;
    let carry = '';
    const req = request(`${url}events`, (res: IncomingMessage) => {
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        // Count each pushed overview once, also when a chunk boundary splits its first line.
        const buf = carry + c;
        messages += buf.split(MARK).length - 1;
        carry = buf.slice(-(MARK.length - 1));
      });
      resolve({ messages: () => messages, close: () => req.destroy() });
    });
    req.on('error', reject);
    req.end();
  });
}

function get(url: string): Promise<{ ttfbMs: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const t0 = nowMs();
    const req = request(url, (res) => {
      const ttfb = nowMs() - t0;
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.on('end', () => resolve({ ttfbMs: ttfb, bytes }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function grantCycles(d: BenchDaemon, cycles: number): Promise<{ grant: Summary; daemonCpuMs: number }> {
  const lock = localLock('web-bench', d.dir);
  const samples: number[] = [];
  const cpu0 = cpuMs(d.pid) ?? 0;
  for (let i = 0; i < cycles; i++) {
    const t0 = nowMs();
    const h = acquireHold(d, lock, d.dir);
    const { holdId, at } = await h.acquired;
    samples.push(at - t0);
    await releaseHold(d, holdId, d.dir);
    (await h.conn).close();
  }
  return { grant: roundSummary(summarize(samples)), daemonCpuMs: (cpuMs(d.pid) ?? 0) - cpu0 };
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { cycles: { type: 'string' }, pages: { type: 'string' } } });
  const cycles = Number(values.cycles ?? 200);
  const pageCounts = (values.pages ?? '0,50,500').split(',').map(Number);
  const d = await startBenchDaemon();
  const web = await startWeb(d);
  try {
    // 20 finished runs, so the overview has its usual table of recent runs.
    for (let i = 0; i < 20; i++) {
      await new Promise<void>((resolve, reject) => {
        const p = spawn(process.execPath, [CLI, 'run', '-q', '--lock', 'seed', '--', 'true'], { env: d.env, cwd: d.dir, stdio: 'ignore' });
        p.once('exit', (c) => (c === 0 ? resolve() : reject(new Error(`seed run exited ${c}`))));
      });
    }
    const rows: Array<Record<string, unknown>> = [];
    for (const n of pageCounts) {
      const pages = [];
      for (let i = 0; i < n; i++) pages.push(await openPage(web.url));
      const webCpu0 = cpuMs(web.pid) ?? 0;
      const self0 = process.cpuUsage();
      const t0 = nowMs();
      const r = await grantCycles(d, cycles);
      const wallMs = nowMs() - t0;
      const self = process.cpuUsage(self0);
      const pushes = pages.reduce((a, p) => a + p.messages(), 0);
      rows.push({
        pages: n,
        cycles,
        wall_ms: Math.round(wallMs),
        grant_ms: r.grant,
        daemon_cpu_ms: r.daemonCpuMs,
        web_cpu_ms: (cpuMs(web.pid) ?? 0) - webCpu0,
        // The bench's own CPU (it is the 500 browsers too): on a small machine all three share the cores.
        bench_cpu_ms: Math.round((self.user + self.system) / 1000),
        overview_pushes_received: pushes,
      });
      for (const p of pages) p.close();
    }
    const ttfb: number[] = [];
    let html = 0;
    for (let i = 0; i < 30; i++) {
      const r = await get(web.url);
      ttfb.push(r.ttfbMs);
      html = r.bytes;
    }
    const js = (await get(`${web.url}assets/live.js`)).bytes;
    const css = (await get(`${web.url}assets/style.css`)).bytes;
    const out = { grants: rows, page_weight_bytes: { html, js, css, total: html + js + css }, ttfb_ms: roundSummary(summarize(ttfb)) };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return 0;
  } finally {
    await web.stop();
    await d.stop();
  }
}

main().then(
  (c) => process.exit(c),
  (e: unknown) => {
    process.stderr.write(`bench web: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(1);
  },
);
