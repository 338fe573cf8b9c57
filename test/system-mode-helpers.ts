/**
 * Fixtures for the system-mode tests: real users and groups (created with useradd/groupadd, removed after),
 * a system daemon on temp paths, and clients run as those users through setpriv. Root only (CI runs as root);
 * `systemTestsUnavailable()` says why when a machine cannot run them.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { loadNative, nativeOrigin } from '../src/util/peercred.js';
import { CLI, REPO, startDaemon, stopProcess, type Daemon } from './helpers/lockd.js';

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  /** `id -G name`, sorted. */
  groups: number[];
}

export interface Fixture {
  sockGroup: string;
  adminGroup: string;
  /** Two ordinary users and one admin (member of adminGroup); all three may use the socket. */
  a: TestUser;
  b: TestUser;
  admin: TestUser;
  /** World-readable scratch directory (the raw client script lives here). */
  dir: string;
  rawClient: string;
}

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p)) ?? null;

/** Null when this machine can run the real-user tests, else the reason (shown instead of running them). */
export function systemTestsUnavailable(): string | null {
  if (process.platform !== 'linux') return `system mode user switching is Linux-only (this is ${process.platform})`;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'the system-mode tests create users and run a root daemon: run them as root (CI does)';
  if (!SETPRIV) return 'setpriv(1) (util-linux) is not installed';
  // The addon as the daemon finds it (a local build or the shipped prebuilt): system mode needs its SO_PEERCRED.
  if (loadNative() === null) return `the native addon does not load (${nativeOrigin().error ?? 'unknown'}): system mode needs SO_PEERCRED`;
  for (const tool of ['useradd', 'userdel', 'groupadd', 'groupdel']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
    } catch {
      return `${tool} is not installed`;
    }
  }
  return null;
}

const ADMIN_PATH = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };

function run(file: string, args: string[]): string {
  return execFileSync(file, args, { encoding: 'utf8', env: ADMIN_PATH, stdio: ['ignore', 'pipe', 'pipe'] });
}

function userInfo(name: string): TestUser {
  const line = run('getent', ['passwd', name]).trim().split(':');
  return {
    name,
    uid: Number(line[2]),
    gid: Number(line[3]),
    home: line[5]!,
    groups: run('id', ['-G', name])
      .trim()
      .split(/\s+/)
      .map(Number)
      .sort((x, y) => x - y),
  };
}

/** Create two users, an admin and their groups (short random names); removed by `removeFixture`. */
export function createFixture(): Fixture {
  const tag = randomBytes(3).toString('hex');
  const sockGroup = `lds${tag}`;
  const adminGroup = `lda${tag}`;
  run('groupadd', [sockGroup]);
  run('groupadd', [adminGroup]);
  const names = { a: `ldu${tag}a`, b: `ldu${tag}b`, admin: `ldu${tag}c` };
  run('useradd', ['-m', '-U', '-s', '/bin/sh', '-G', sockGroup, names.a]);
  run('useradd', ['-m', '-U', '-s', '/bin/sh', '-G', sockGroup, names.b]);
  run('useradd', ['-m', '-U', '-s', '/bin/sh', '-G', `${sockGroup},${adminGroup}`, names.admin]);
  const dir = mkdtempSync('/tmp/ldsys-');
  chmodSync(dir, 0o755);
  const rawClient = join(dir, 'raw-client.mjs');
  writeFileSync(rawClient, RAW_CLIENT, { mode: 0o644 });
  const fx: Fixture = { sockGroup, adminGroup, a: userInfo(names.a), b: userInfo(names.b), admin: userInfo(names.admin), dir, rawClient };
  for (const u of [fx.a, fx.b, fx.admin]) chmodSync(u.home, 0o755);
  // Also on a worker that exits without running after.always hooks (ava's global timeout).
  process.once('exit', () => removeFixture(fx));
  return fx;
}

const removed = new WeakSet<Fixture>();

export function removeFixture(fx: Fixture): void {
  if (removed.has(fx)) return;
  removed.add(fx);
  for (const u of [fx.a, fx.b, fx.admin]) {
    try {
      run('userdel', ['-r', '-f', u.name]);
    } catch {
      /* already gone */
    }
  }
  for (const g of [fx.sockGroup, fx.adminGroup]) {
    try {
      run('groupdel', [g]);
    } catch {
      /* already gone */
    }
  }
  execFileSync('rm', ['-rf', '--', fx.dir]);
}

/** A system daemon on temp paths (socket dir 0755 so the users can reach the 0660 socket). */
export async function startSystemDaemon(t: ExecutionContext, fx: Fixture, extra: string[] = []): Promise<Daemon> {
  const dir = mkdtempSync('/tmp/ldsd-');
  chmodSync(dir, 0o755);
  const socket = join(dir, 's.sock');
  const stateDir = join(dir, 'state');
  return startDaemon(t, {
    dir,
    args: ['--system', '--socket', socket, '--state-dir', stateDir, '--admin-group', fx.adminGroup, '--socket-group', fx.sockGroup, ...extra],
  });
}

export interface UserProcess {
  proc: ChildProcess;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
  waitForStdout(text: string | RegExp, timeoutMs?: number): Promise<void>;
  stdout(): string;
  stderr(): string;
}

/** Start `argv` as `user` through setpriv with a login-like environment; killed in teardown if still running. */
export function spawnAsUser(t: ExecutionContext | null, user: Pick<TestUser, 'uid' | 'gid' | 'home' | 'name'>, argv: string[], env: Record<string, string> = {}): UserProcess {
  const ids = user.uid === 65534 ? ['--clear-groups'] : ['--init-groups'];
  const proc = spawn(SETPRIV!, ['--reuid', String(user.uid), '--regid', String(user.gid), ...ids, '--', ...argv], {
    cwd: user.home,
    env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: user.home, USER: user.name, LOGNAME: user.name, LOCKD_NO_AUTOSTART: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const waiters = new Set<() => void>();
  proc.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    for (const w of [...waiters]) w();
  });
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) => {
    proc.once('close', (code, signal) => {
      for (const w of [...waiters]) w();
      resolve({ code, signal, stdout: out, stderr: err });
    });
  });
  const waitForStdout = (text: string | RegExp, timeoutMs = 20_000) =>
    new Promise<void>((resolve, reject) => {
      const hit = () => (typeof text === 'string' ? out.includes(text) : text.test(out));
      if (hit()) return resolve();
      const check = () => {
        if (hit()) {
          cleanup();
          resolve();
        } else if (proc.exitCode !== null || proc.signalCode !== null) {
          cleanup();
          reject(new Error(`process ended before ${String(text)}; stdout=${out} stderr=${err}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out waiting for ${String(text)}; stdout=${out} stderr=${err}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
    });
  if (t) t.teardown(() => stopProcess(proc, 3000));
  return { proc, done, waitForStdout, stdout: () => out, stderr: () => err };
}

/** `lockd ARGS` as `user` against daemon `d`. */
export function lockdAs(t: ExecutionContext | null, user: TestUser, d: Daemon, args: string[]): UserProcess {
  return spawnAsUser(t, user, [process.execPath, CLI, ...args], { LOCKD_SOCKET: d.socket });
}

/** Every JSON reply frame the raw client printed, and the output bytes (as text) it received. */
export interface RawExchange {
  replies: Array<Record<string, unknown> & { type: string }>;
  output: string;
  code: number | null;
  stderr: string;
  /** The raw client's pid (setpriv execs node, so it is the connecting process). */
  pid: number;
}

/**
 * Speak the protocol directly as `user`: a hello (with a pid the test chooses, e.g. a forged 1) and then the
 * given messages, verbatim. Ends when the daemon closes the connection.
 */
export async function rawAs(fx: Fixture, user: TestUser, d: Daemon, helloPid: number | null, messages: unknown[]): Promise<RawExchange> {
  const p = spawnAsUser(null, user, [process.execPath, fx.rawClient, d.socket, String(helloPid ?? 0), JSON.stringify(messages)]);
  const timer = setTimeout(() => p.proc.kill('SIGKILL'), 60_000);
  const r = await p.done;
  clearTimeout(timer);
  const replies: RawExchange['replies'] = [];
  let output = '';
  for (const line of r.stdout.split('\n')) {
    if (line.startsWith('J ')) replies.push(JSON.parse(line.slice(2)) as RawExchange['replies'][number]);
    else if (line.startsWith('D ')) output += Buffer.from(line.slice(2), 'base64').toString();
  }
  return { replies, output, code: r.code, stderr: r.stderr, pid: p.proc.pid! };
}

/** The raw client (runs as the test user; imports only the compiled framing and version modules). */
const RAW_CLIENT = `
import { createConnection } from 'node:net';
import { encodeJson, FrameDecoder } from ${JSON.stringify(`file://${REPO}/dist/src/protocol/framing.js`)};
import { PROTOCOL_VERSION, LOCKD_VERSION } from ${JSON.stringify(`file://${REPO}/dist/src/protocol/version.js`)};
const [socketPath, helloPid, messages] = process.argv.slice(2);
const s = createConnection(socketPath);
const decoder = new FrameDecoder();
s.on('connect', () => {
  const hello = { type: 'hello', protocol: PROTOCOL_VERSION, client_version: LOCKD_VERSION, pid: Number(helloPid) || process.pid };
  s.write(Buffer.concat([encodeJson(hello), ...JSON.parse(messages).map((m) => encodeJson(m))]));
});
s.on('data', (chunk) => {
  for (const f of decoder.push(chunk)) {
    if (f.kind === 0) process.stdout.write('J ' + f.payload.toString() + '\\n');
    else process.stdout.write('D ' + f.payload.toString('base64') + '\\n');
  }
});
s.on('error', (e) => { process.stderr.write(String(e.message) + '\\n'); process.exitCode = 3; });
`;

/** A RunRequest as the real client builds it, with every field the validator wants. */
export function runRequest(over: Record<string, unknown>): Record<string, unknown> {
  return {
    holder: 'x',
    user: 'x',
    client_pid: 1,
    parent_run_id: null,
    argv: ['true'],
    cwd: '/',
    env: { PATH: '/usr/bin:/bin' },
    locks: [],
    wait_ms: 0,
    timeout_ms: null,
    kill_after_ms: 2000,
    interactive: false,
    detach: false,
    run_id: null,
    runs_root: null,
    build_root: null,
    arch: null,
    log_path: null,
    log_max_bytes: null,
    verdict: { require_structured: false, require_marker: [], require_all: [], forbid_marker: [], expect_timeout: false },
    keep: 0,
    conflict_exit_code: 75,
    ...over,
  };
}

export function acquireRequest(over: Record<string, unknown>): Record<string, unknown> {
  return { holder: 'x', user: 'x', client_pid: 1, parent_run_id: null, locks: [], cwd: '/', wait_ms: 0, ttl_ms: null, conflict_exit_code: 75, ...over };
}
