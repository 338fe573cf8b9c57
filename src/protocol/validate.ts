/**
 * Validation of everything that arrives at the daemon. A client may be buggy, old, or hostile; whatever it
 * sends, the daemon either gets a fully typed message or a LockdError('bad_request') naming the first bad
 * field. Nothing here throws anything else, so one bad connection can never take the daemon down.
 */
import { LockdError } from '../util/errors.js';
import { FORWARD_SIGNALS, type ClientMessage, type LockRef, type PoolRef, type VerdictSpec } from './messages.js';

type Obj = Record<string, unknown>;

function fail(path: string, what: string): never {
  throw new LockdError('bad_request', `invalid request: ${path} ${what}`);
}

function obj(v: unknown, path: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, 'must be an object');
  return v as Obj;
}
function str(o: Obj, k: string, path: string, max = 64 * 1024): string {
  const v = o[k];
  if (typeof v !== 'string') fail(`${path}.${k}`, 'must be a string');
  if (v.length > max) fail(`${path}.${k}`, `is longer than ${max} characters`);
  return v;
}
function strOrNull(o: Obj, k: string, path: string): string | null {
  return o[k] === null || o[k] === undefined ? null : str(o, k, path);
}
function bool(o: Obj, k: string, path: string): boolean {
  const v = o[k];
  if (typeof v !== 'boolean') fail(`${path}.${k}`, 'must be a boolean');
  return v;
}
function int(o: Obj, k: string, path: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(`${path}.${k}`, `must be an integer in [${min}, ${max}]`);
  return v;
}
function intOrNull(o: Obj, k: string, path: string, min = 0): number | null {
  return o[k] === null || o[k] === undefined ? null : int(o, k, path, min);
}
function strArray(o: Obj, k: string, path: string, maxItems = 4096): string[] {
  const v = o[k];
  if (!Array.isArray(v)) fail(`${path}.${k}`, 'must be an array');
  if (v.length > maxItems) fail(`${path}.${k}`, `has more than ${maxItems} items`);
  v.forEach((x, i) => {
    if (typeof x !== 'string') fail(`${path}.${k}[${i}]`, 'must be a string');
  });
  return v as string[];
}
function oneOf<T extends string>(o: Obj, k: string, path: string, allowed: readonly T[]): T {
  const v = o[k];
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) fail(`${path}.${k}`, `must be one of ${allowed.join(', ')}`);
  return v as T;
}

function lockRef(v: unknown, path: string): LockRef {
  const o = obj(v, path);
  const ref: LockRef = {
    name: str(o, 'name', path, 255),
    scope: oneOf(o, 'scope', path, ['local', 'global'] as const),
    mode: oneOf(o, 'mode', path, ['exclusive', 'shared', 'slots'] as const),
  };
  if (ref.mode === 'slots') ref.slots = int(o, 'slots', path, 1, 1_000_000);
  if (o.root !== undefined && o.root !== null) ref.root = str(o, 'root', path, 4096);
  if (o.arch !== undefined && o.arch !== null) ref.arch = str(o, 'arch', path, 255);
  if (o.global_dir !== undefined && o.global_dir !== null) ref.global_dir = str(o, 'global_dir', path, 4096);
  if (o.host_only !== undefined) ref.host_only = bool(o, 'host_only', path);
  return ref;
}
function lockRefs(o: Obj, k: string, path: string): LockRef[] {
  const v = o[k];
  if (!Array.isArray(v)) fail(`${path}.${k}`, 'must be an array');
  if (v.length > 256) fail(`${path}.${k}`, 'names more than 256 locks');
  return v.map((x, i) => lockRef(x, `${path}.${k}[${i}]`));
}
/** Pool and member names: they name lock files, so a conservative character set. */
const POOL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
function poolRefs(o: Obj, k: string, path: string): PoolRef[] {
  const v = o[k];
  if (!Array.isArray(v)) fail(`${path}.${k}`, 'must be an array');
  if (v.length > 16) fail(`${path}.${k}`, 'names more than 16 pools');
  return v.map((x, i) => {
    const p = `${path}.${k}[${i}]`;
    const r = obj(x, p);
    const pool = str(r, 'pool', p, 128);
    if (!POOL_NAME.test(pool)) fail(`${p}.pool`, 'must be a pool name (letters, digits, . _ -)');
    const where = obj(r.where, `${p}.where`);
    const entries = Object.entries(where);
    if (entries.length > 64) fail(`${p}.where`, 'has more than 64 conditions');
    for (const [wk, wv] of entries) if (typeof wv !== 'string' || wv.length > 1024) fail(`${p}.where.${wk}`, 'must be a string');
    const member = strOrNull(r, 'member', p);
    if (member !== null && !POOL_NAME.test(member)) fail(`${p}.member`, 'must be a member name (letters, digits, . _ -)');
    return { pool, count: int(r, 'count', p, 1, 100_000), where: where as Record<string, string>, member };
  });
}

function env(o: Obj, k: string, path: string): Record<string, string> {
  const e = obj(o[k], `${path}.${k}`);
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(e)) {
    if (typeof value !== 'string') fail(`${path}.${k}.${name}`, 'must be a string');
    out[name] = value;
  }
  return out;
}
function verdict(v: unknown, path: string): VerdictSpec {
  const o = obj(v, path);
  return {
    require_structured: bool(o, 'require_structured', path),
    require_marker: strArray(o, 'require_marker', path, 256),
    require_all: strArray(o, 'require_all', path, 256),
    forbid_marker: strArray(o, 'forbid_marker', path, 256),
    expect_timeout: bool(o, 'expect_timeout', path),
  };
}
function caller(o: Obj, path: string) {
  return {
    holder: str(o, 'holder', path, 1024),
    user: str(o, 'user', path, 256),
    client_pid: int(o, 'client_pid', path, 0, 2 ** 31),
    parent_run_id: strOrNull(o, 'parent_run_id', path),
  };
}

/** Parse and validate one JSON control frame from a client. */
export function parseClientMessage(payload: Buffer): ClientMessage {
  let raw: unknown;
  try {
    raw = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new LockdError('bad_request', 'invalid request: frame is not valid JSON');
  }
  const m = obj(raw, 'message');
  const type = m.type;
  switch (type) {
    case 'hello':
      return { type, protocol: int(m, 'protocol', 'hello'), client_version: str(m, 'client_version', 'hello', 64), pid: int(m, 'pid', 'hello') };
    case 'ping':
    case 'events':
    case 'stdin_end':
      return { type };
    case 'run': {
      const r = obj(m.req, 'run.req');
      const p = 'run.req';
      const argv = strArray(r, 'argv', p, 100_000);
      if (argv.length === 0) fail(`${p}.argv`, 'must name a command');
      return {
        type,
        req: {
          ...caller(r, p),
          argv,
          cwd: str(r, 'cwd', p, 4096),
          env: env(r, 'env', p),
          locks: lockRefs(r, 'locks', p),
          wait_ms: intOrNull(r, 'wait_ms', p),
          timeout_ms: intOrNull(r, 'timeout_ms', p, 1),
          kill_after_ms: int(r, 'kill_after_ms', p),
          interactive: bool(r, 'interactive', p),
          detach: bool(r, 'detach', p),
          run_id: strOrNull(r, 'run_id', p),
          runs_root: strOrNull(r, 'runs_root', p),
          build_root: strOrNull(r, 'build_root', p),
          arch: strOrNull(r, 'arch', p),
          log_path: strOrNull(r, 'log_path', p),
          log_max_bytes: intOrNull(r, 'log_max_bytes', p, 1024),
          verdict: verdict(r.verdict, `${p}.verdict`),
          keep: intOrNull(r, 'keep', p),
          conflict_exit_code: int(r, 'conflict_exit_code', p, 0, 255),
          ...(r.on_lock_lost !== undefined && r.on_lock_lost !== null ? { on_lock_lost: oneOf(r, 'on_lock_lost', p, ['stop', 'warn'] as const) } : {}),
          ...(r.hold_id !== undefined && r.hold_id !== null ? { hold_id: str(r, 'hold_id', p, 128) } : {}),
          ...(r.pools !== undefined ? { pools: poolRefs(r, 'pools', p) } : {}),
          ...(r.priority !== undefined ? { priority: int(r, 'priority', p, -1_000_000, 1_000_000) } : {}),
          ...(r.supersede !== undefined && r.supersede !== null ? { supersede: str(r, 'supersede', p, 256) } : {}),
          ...(r.cancel_running !== undefined ? { cancel_running: bool(r, 'cancel_running', p) } : {}),
          ...(r.progress_ms !== undefined && r.progress_ms !== null ? { progress_ms: int(r, 'progress_ms', p, 1, 2 ** 31 - 1) } : {}),
          ...(r.stdio !== undefined && r.stdio !== null ? { stdio: oneOf(r, 'stdio', p, ['fds', 'framed'] as const) } : {}),
        },
      };
    }
    case 'signal':
      return { type, signal: oneOf(m, 'signal', 'signal', FORWARD_SIGNALS) };
    case 'resize':
      return { type, cols: int(m, 'cols', 'resize', 1, 65535), rows: int(m, 'rows', 'resize', 1, 65535) };
    case 'acquire': {
      const r = obj(m.req, 'acquire.req');
      const p = 'acquire.req';
      return {
        type,
        req: {
          ...caller(r, p),
          locks: lockRefs(r, 'locks', p),
          cwd: str(r, 'cwd', p, 4096),
          wait_ms: intOrNull(r, 'wait_ms', p),
          ttl_ms: intOrNull(r, 'ttl_ms', p, 1),
          conflict_exit_code: int(r, 'conflict_exit_code', p, 0, 255),
          ...(r.pools !== undefined ? { pools: poolRefs(r, 'pools', p) } : {}),
          ...(r.priority !== undefined ? { priority: int(r, 'priority', p, -1_000_000, 1_000_000) } : {}),
          ...(r.progress_ms !== undefined && r.progress_ms !== null ? { progress_ms: int(r, 'progress_ms', p, 1, 2 ** 31 - 1) } : {}),
        },
      };
    }
    case 'heartbeat':
      return { type, hold_id: str(m, 'hold_id', 'heartbeat', 128), holder: str(m, 'holder', 'heartbeat', 1024) };
    case 'release':
      return {
        type,
        hold_id: strOrNull(m, 'hold_id', 'release'),
        locks: lockRefs(m, 'locks', 'release'),
        cwd: str(m, 'cwd', 'release', 4096),
        holder: str(m, 'holder', 'release', 1024),
        force: bool(m, 'force', 'release'),
      };
    case 'status':
      return { type, root: strOrNull(m, 'root', 'status') };
    case 'inspect':
      return { type, lock: lockRef(m.lock, 'inspect.lock') };
    case 'kill':
      return { type, run_id: str(m, 'run_id', 'kill', 128), signal: str(m, 'signal', 'kill', 16), force: bool(m, 'force', 'kill') };
    case 'watch_run':
      return { type, run_id: str(m, 'run_id', 'watch_run', 128) };
    case 'gc':
      return {
        type,
        runs_root: strOrNull(m, 'runs_root', 'gc'),
        keep: int(m, 'keep', 'gc'),
        older_than_ms: intOrNull(m, 'older_than_ms', 'gc'),
        max_bytes: intOrNull(m, 'max_bytes', 'gc'),
        dry_run: bool(m, 'dry_run', 'gc'),
        ...(m.all === undefined ? {} : { all: bool(m, 'all', 'gc') }),
      };
    case 'shutdown':
      return { type, force: bool(m, 'force', 'shutdown') };
    case 'metrics':
      // holders is optional on the wire (absent = false), so a client that only wants counts can send {type} alone.
      return { type, holders: m.holders === undefined ? false : bool(m, 'holders', 'metrics') };
    case 'pool': {
      const r = obj(m.req, 'pool.req');
      const pool = strOrNull(r, 'pool', 'pool.req');
      if (pool !== null && !POOL_NAME.test(pool)) fail('pool.req.pool', 'must be a pool name (letters, digits, . _ -)');
      const member = strOrNull(r, 'member', 'pool.req');
      if (member !== null && !POOL_NAME.test(member)) fail('pool.req.member', 'must be a member name (letters, digits, . _ -)');
      const props = r.properties === undefined ? {} : obj(r.properties, 'pool.req.properties');
      for (const [k, v] of Object.entries(props)) if (typeof v !== 'string' || v.length > 4096 || k.length > 256) fail(`pool.req.properties.${k}`, 'must be a string');
      const reason = strOrNull(r, 'reason', 'pool.req');
      if (reason !== null && reason.length > 1024) fail('pool.req.reason', 'is longer than 1024 characters');
      return {
        type,
        req: { action: oneOf(r, 'action', 'pool.req', ['list', 'show', 'add', 'remove', 'disable', 'enable'] as const), pool, member, properties: props as Record<string, string>, reason },
      };
    }
    default:
      throw new LockdError('bad_request', `invalid request: unknown message type ${JSON.stringify(String(type)).slice(0, 80)}`);
  }
}
