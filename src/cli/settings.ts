/**
 * Every option has a flag, a LOCKD_* variable and a key in an optional `lockd.json` (in the build root or the
 * state dir). Precedence: flag > environment > build-root lockd.json > state-dir lockd.json > default.
 * `lockd config` prints the effective values and where each came from, from this same table.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { defaultStateDir } from '../util/paths.js';
import { defaultWaitSeconds } from '../client/holder.js';

export type Source = 'flag' | 'env' | 'config:build-root' | 'config:state-dir' | 'default';

export interface SettingSpec {
  env: string;
  description: string;
  default: (env: NodeJS.ProcessEnv) => string | null;
  /** A secret (a password): `lockd config` shows that it is set and where from, never the value. */
  secret?: boolean;
}

export const SETTINGS = {
  socket: { env: 'LOCKD_SOCKET', description: 'daemon socket path', default: () => null },
  state_dir: { env: 'LOCKD_STATE_DIR', description: 'daemon state directory (log, journal, global locks, runs)', default: (e) => defaultStateDir(e) },
  build_root: { env: 'LOCKD_BUILD_ROOT', description: 'build root for local locks (--root)', default: () => process.cwd() },
  global_dir: { env: 'LOCKD_GLOBAL_DIR', description: 'directory of global lock files', default: () => null },
  runs_root: { env: 'LOCKD_RUNS_ROOT', description: 'where run directories go (default <root>/runs with --root, else <state-dir>/runs)', default: () => null },
  wait: { env: 'LOCKD_WAIT', description: 'how long to wait for locks: 90, 10m, 1h30m (0 fail fast, inf forever); 0 on a dev machine, 1800 in CI', default: (e) => String(defaultWaitSeconds(e)) },
  timeout: { env: 'LOCKD_TIMEOUT', description: 'kill the command after this long: seconds or 10m, 1h30m (none by default)', default: () => null },
  kill_after: { env: 'LOCKD_KILL_AFTER', description: 'seconds between SIGTERM and SIGKILL when stopping a tree', default: () => '5' },
  keep: { env: 'LOCKD_RUNS_KEEP', description: 'runs kept per runs root by auto-GC (0 disables)', default: () => '20' },
  progress_interval: {
    env: 'LOCKD_PROGRESS_INTERVAL',
    description: 'without a terminal, a waiting run prints a progress line this often (0 or none: never; -q silences it too)',
    default: () => '60',
  },
  holder: { env: 'LOCKD_HOLDER', description: 'holder identity (CI-aware by default)', default: () => null },
  conflict_exit_code: { env: 'LOCKD_CONFLICT_EXIT_CODE', description: 'exit code when the locks are not obtained', default: () => '75' },
  log_max_bytes: { env: 'LOCKD_LOG_MAX_BYTES', description: "cap on a run's output.log (head and tail kept)", default: () => null },
  ttl: { env: 'LOCKD_TTL', description: 'TTL of explicit holds: seconds or 15m, 2h, or none', default: () => 'none' },
  no_autostart: { env: 'LOCKD_NO_AUTOSTART', description: 'do not start a daemon when none answers (1 to disable auto-start)', default: () => '0' },
  log_level: { env: 'LOCKD_LOG_LEVEL', description: 'daemon log level', default: () => 'info' },
  // Cluster locks (docs/cluster.md): read by `lockd daemon`; on_lock_lost is also each run's default.
  cluster: {
    env: 'LOCKD_CLUSTER',
    description: 'etcd cluster for cluster-wide --global locks: etcd[s]://HOST:PORT[,HOST:PORT...][/PREFIX] (none: every lock stays on this host)',
    default: () => null,
  },
  cluster_prefix: { env: 'LOCKD_CLUSTER_PREFIX', description: "etcd key prefix of cluster locks (default: the --cluster URL's /PREFIX, else lockd)", default: () => null },
  cluster_ttl: { env: 'LOCKD_CLUSTER_TTL', description: 'cluster lease TTL in seconds (a daemon that cannot renew it stops its cluster jobs)', default: () => '10' },
  cluster_ca: { env: 'LOCKD_CLUSTER_CA', description: 'CA certificate file for etcd TLS', default: () => null },
  cluster_cert: { env: 'LOCKD_CLUSTER_CERT', description: 'client certificate file for etcd TLS (with cluster_key)', default: () => null },
  cluster_key: { env: 'LOCKD_CLUSTER_KEY', description: 'client key file for etcd TLS (with cluster_cert)', default: () => null },
  cluster_user: { env: 'LOCKD_CLUSTER_USER', description: 'etcd user (with cluster_password)', default: () => null },
  cluster_password: { env: 'LOCKD_CLUSTER_PASSWORD', description: 'etcd password (never printed)', default: () => null, secret: true },
  cluster_host: { env: 'LOCKD_CLUSTER_HOST', description: "this host's name in other hosts' status", default: () => hostname() },
  on_lock_lost: { env: 'LOCKD_ON_LOCK_LOST', description: 'a cluster lock lost while its job runs: stop the job, or warn and let it run on', default: () => 'stop' },
} satisfies Record<string, SettingSpec>;

export type SettingName = keyof typeof SETTINGS;

export interface Resolved {
  value: string | null;
  source: Source;
}

/** Edit distance (insert, delete, substitute, swap of neighbours), for "did you mean". */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/** The known key closest to `key` (also `--kebab-case` and `LOCKD_ENV` spellings), or null when none is close. */
export function nearestSetting(key: string): string | null {
  const k = key
    .toLowerCase()
    .replace(/^lockd_/, '')
    .replace(/^-+/, '')
    .replace(/-/g, '_');
  if (k in SETTINGS) return k;
  let best: string | null = null;
  let bestD = Infinity;
  for (const name of Object.keys(SETTINGS)) {
    const dist = editDistance(k, name);
    if (dist < bestD) [best, bestD] = [name, dist];
  }
  return best !== null && bestD <= Math.max(2, Math.floor(k.length / 3)) ? best : null;
}

const warnedConfigs = new Set<string>();

/** Keys the daemon reads from the state dir's lockd.json (services/pools.ts), not client settings. */
export const DAEMON_KEYS: ReadonlySet<string> = new Set(['pools', 'max_user_priority']);

/**
 * A key lockd does not know is a typo until proven otherwise (`wiat` silently meant the default): one warning line
 * per file and process, printed when the file is read, which is before the command writes anything. Keys starting
 * with `$` or `//` are left alone ($schema, comments).
 */
function warnUnknownKeys(path: string, config: Record<string, unknown>): void {
  if (warnedConfigs.has(path)) return;
  warnedConfigs.add(path);
  for (const key of Object.keys(config)) {
    if (key in SETTINGS || DAEMON_KEYS.has(key) || key.startsWith('$') || key.startsWith('//')) continue;
    const near = nearestSetting(key);
    process.stderr.write(`lockd: warning: ${path}: unknown key ${JSON.stringify(key)}${near ? ` (did you mean ${JSON.stringify(near)}?)` : ''}; lockd config lists the known keys\n`);
  }
}

function readConfig(path: string): Record<string, unknown> | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return null;
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
    warnUnknownKeys(path, v as Record<string, unknown>);
    return v as Record<string, unknown>;
  } catch {
    process.stderr.write(`lockd: warning: ignoring ${path}: not valid JSON\n`);
    return null;
  }
}

/** Resolves settings for one invocation; config files are read once, lazily. */
export class Settings {
  private buildRootConfig: Record<string, unknown> | null | undefined;
  private stateConfig: Record<string, unknown> | null | undefined;

  constructor(
    private readonly flags: Partial<Record<SettingName, string | undefined>>,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  get(name: SettingName): Resolved {
    const flag = this.flags[name];
    if (flag !== undefined) return { value: flag, source: 'flag' };
    const spec: SettingSpec = SETTINGS[name];
    const ev = this.env[spec.env];
    if (ev !== undefined && ev !== '') return { value: ev, source: 'env' };
    if (name !== 'build_root' && name !== 'state_dir') {
      const br = this.fromConfig('build-root', name);
      if (br !== undefined) return { value: br, source: 'config:build-root' };
      const sd = this.fromConfig('state-dir', name);
      if (sd !== undefined) return { value: sd, source: 'config:state-dir' };
    }
    return { value: spec.default(this.env), source: 'default' };
  }

  value(name: SettingName): string | null {
    return this.get(name).value;
  }

  /** The value when something set it (flag, env or a lockd.json), undefined when it is the default. */
  explicit(name: SettingName): string | undefined {
    const r = this.get(name);
    return r.source === 'default' || r.value === null ? undefined : r.value;
  }

  private fromConfig(which: 'build-root' | 'state-dir', name: string): string | undefined {
    if (which === 'build-root') {
      if (this.buildRootConfig === undefined) this.buildRootConfig = readConfig(join(resolve(this.value('build_root')!), 'lockd.json'));
      const v = this.buildRootConfig?.[name];
      return v === undefined || v === null ? undefined : String(v);
    }
    if (this.stateConfig === undefined) this.stateConfig = readConfig(join(resolve(this.value('state_dir')!), 'lockd.json'));
    const v = this.stateConfig?.[name];
    return v === undefined || v === null ? undefined : String(v);
  }
}
