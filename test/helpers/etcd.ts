/**
 * Test harness for cluster tests: a real etcd on loopback with free ports and a temp data dir, started per test
 * file or per test, stopped by pid. When the etcd binaries are missing, `etcdAvailability()` says so with the
 * reason, and the caller logs it and registers the tests as skipped-with-reason (CI installs etcd, so they run there).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext, type ImplementationFn } from 'ava';
import { startDaemon, tempDir, type Daemon } from './lockd.js';
import { freePort } from '../../bench/etcd.js';

export interface Etcd {
  /** host:port of the client URL. */
  endpoint: string;
  /** `etcd://host:port`, ready for --cluster. */
  url: string;
  dataDir: string;
  proc: ChildProcess;
  pid: number;
  /** SIGSTOP the server (a hung etcd: connections stay open, nothing answers). */
  pause(): void;
  resume(): void;
  stop(): Promise<void>;
  /** Run etcdctl against this server (bounded). */
  ctl(args: string[], timeoutMs?: number): { code: number | null; stdout: string; stderr: string };
  /** Start etcdctl as a child (e.g. `lock NAME cmd`), stopped in teardown. */
  ctlSpawn(args: string[], env?: NodeJS.ProcessEnv): ChildProcess;
}

/** Pause etcd (a hung server) until the test resumes it, or its teardown does. */
export function pauseEtcd(t: ExecutionContext, e: Etcd): void {
  e.pause();
  t.teardown(() => {
    try {
      e.resume();
    } catch {
      /* already stopped */
    }
  });
}

export function etcdAvailability(): { ok: true } | { ok: false; reason: string } {
  for (const [bin, arg] of [
    ['etcd', '--version'],
    ['etcdctl', 'version'],
  ] as const) {
    const r = spawnSync(bin, [arg], { encoding: 'utf8', timeout: 10_000, env: { ...process.env, ETCDCTL_API: '3' } });
    if (r.error || r.status !== 0) {
      return {
        ok: false,
        reason: `${bin} is not installed (${r.error?.message ?? `exit ${r.status}`}); install etcd-server and etcd-client (apt-get install -y etcd-server etcd-client) to run the cluster tests`,
      };
    }
  }
  return { ok: true };
}

export { freePort };

async function healthy(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(`http://${endpoint}/health`, { signal: AbortSignal.timeout(1000) });
    if (!res.ok) return false;
    const body = (await res.json()) as { health?: string };
    return body.health === 'true';
  } catch {
    return false;
  }
}

/** Start etcd and wait (bounded) until /health says true. Registered for teardown when t is given. */
export async function startEtcd(t: ExecutionContext | null, opts: { timeoutMs?: number } = {}): Promise<Etcd> {
  let lastError = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const [clientPort, peerPort] = [await freePort(), await freePort()];
    if (clientPort === peerPort) continue;
    const dataDir = mkdtempSync('/tmp/etcd-');
    const endpoint = `127.0.0.1:${clientPort}`;
    const peer = `http://127.0.0.1:${peerPort}`;
    const proc = spawn(
      'etcd',
      [
        '--name',
        'lockd-test',
        '--data-dir',
        dataDir,
        '--listen-client-urls',
        `http://${endpoint}`,
        '--advertise-client-urls',
        `http://${endpoint}`,
        '--listen-peer-urls',
        peer,
        '--initial-advertise-peer-urls',
        peer,
        '--initial-cluster',
        `lockd-test=${peer}`,
        '--initial-cluster-state',
        'new',
        '--log-level',
        'error',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ETCD_UNSUPPORTED_ARCH: process.arch === 'arm64' ? 'arm64' : '' } },
    );
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (stderr.length > 20_000) stderr = stderr.slice(-10_000);
    });
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    const stop = async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        try {
          process.kill(proc.pid!, 'SIGCONT');
        } catch {
          /* gone */
        }
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dataDir, { recursive: true, force: true });
    };
    const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
    let up = false;
    while (Date.now() < deadline && proc.exitCode === null) {
      if (await healthy(endpoint)) {
        up = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    if (!up) {
      lastError = `etcd did not become healthy (exit ${proc.exitCode}): ${stderr.slice(-2000)}`;
      await stop();
      continue;
    }
    const e: Etcd = {
      endpoint,
      url: `etcd://${endpoint}`,
      dataDir,
      proc,
      pid: proc.pid!,
      pause: () => process.kill(proc.pid!, 'SIGSTOP'),
      resume: () => process.kill(proc.pid!, 'SIGCONT'),
      stop,
      ctl: (args, timeoutMs = 15_000) => {
        const r = spawnSync('etcdctl', ['--endpoints', endpoint, ...args], { encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, ETCDCTL_API: '3' } });
        return { code: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
      },
      ctlSpawn: (args, env) => {
        const child = spawn('etcdctl', ['--endpoints', endpoint, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ETCDCTL_API: '3', ...(env ?? {}) } });
        if (t) {
          t.teardown(async () => {
            if (child.exitCode === null && child.signalCode === null) {
              const gone = new Promise((r) => child.once('exit', r));
              child.kill('SIGKILL');
              await gone;
            }
          });
        }
        return child;
      },
    };
    if (t) t.teardown(() => e.stop());
    return e;
  }
  throw new Error(`could not start etcd: ${lastError}`);
}

/** A daemon's env for talking to this etcd as a cluster member (short TTL for tests). */
export function clusterArgs(e: Pick<Etcd, 'url'>, opts: { prefix?: string; ttl?: number } = {}): string[] {
  return ['--cluster', e.url, '--cluster-prefix', opts.prefix ?? 'lockd', '--cluster-ttl', String(opts.ttl ?? 2)];
}

/**
 * Register a cluster test: run serially when etcd is installed (the tests measure timing against short leases, so
 * they do not share the machine with each other); otherwise registered as skipped with the reason in its title —
 * and in CI, where etcd is installed by .ci/run, a missing etcd is a failure, not a skip.
 */
const availability = etcdAvailability();
let reported = false;
export function clusterTest(title: string, impl: ImplementationFn<[]>): void {
  if (availability.ok) {
    test.serial(title, impl);
    return;
  }
  const reason = availability.reason;
  if (!reported) {
    reported = true;
    if (process.env.CI) {
      test('etcd is installed (the CI installs etcd-server and etcd-client)', (t) => {
        t.fail(reason);
      });
    } else {
      test('cluster tests need etcd', (t) => {
        t.log(`cluster tests skipped: ${reason}`);
        t.regex(reason, /not installed/);
      });
    }
  }
  // Not registered at all without etcd (outside CI): the one test above says why, so nothing is silently skipped.
  void impl;
}

/** n daemons acting as hosts host-1..host-n, each with its own state dir and socket, all on this etcd. */
export async function startHosts(
  t: ExecutionContext,
  e: Etcd,
  n: number,
  opts: { prefix?: string; ttl?: number; extra?: string[]; env?: NodeJS.ProcessEnv; lockdJson?: unknown } = {},
): Promise<Daemon[]> {
  const out: Daemon[] = [];
  for (let i = 1; i <= n; i++) {
    // With lockdJson: each host's state dir gets that lockd.json (e.g. the same cluster pool on every host).
    let dir: string | undefined;
    if (opts.lockdJson !== undefined) {
      dir = tempDir();
      mkdirSync(join(dir, 'state'), { recursive: true });
      writeFileSync(join(dir, 'state', 'lockd.json'), JSON.stringify(opts.lockdJson));
    }
    out.push(await startDaemon(t, { args: [...clusterArgs(e, opts), '--cluster-host', `host-${i}`, ...(opts.extra ?? [])], ...(opts.env ? { env: opts.env } : {}), ...(dir ? { dir } : {}) }));
  }
  return out;
}

export { join as joinPath };
