/** `lockd config`: every setting's effective value and where it came from (flag, env, lockd.json, default). */
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { COMMON_OPTIONS, parse } from '../args.js';
import { SETTINGS, Settings, type SettingName, type SettingSpec, type Source } from '../settings.js';
import { DEFAULT_CLUSTER_PREFIX } from '../../cluster/config.js';
import { resolveSocket } from '../../util/paths.js';
import { currentUser, holderString } from '../../client/holder.js';
import { EXIT } from '../exit-codes.js';
import { table } from '../render/table.js';
import { styleFor } from '../render/style.js';

/** The command-line flag of each setting, where one exists (the same spelling lockd run / acquire use). */
const FLAGS: Partial<Record<SettingName, string>> = {
  socket: 'socket',
  state_dir: 'state-dir',
  build_root: 'root',
  global_dir: 'global-dir',
  runs_root: 'runs-root',
  wait: 'wait',
  timeout: 'timeout',
  kill_after: 'kill-after',
  keep: 'keep',
  holder: 'holder',
  conflict_exit_code: 'conflict-exit-code',
  log_max_bytes: 'log-max-bytes',
  ttl: 'ttl',
  // Cluster settings: the spelling of `lockd daemon` (and `lockd run --on-lock-lost`).
  cluster: 'cluster',
  cluster_prefix: 'cluster-prefix',
  cluster_ttl: 'cluster-ttl',
  cluster_ca: 'cluster-ca',
  cluster_cert: 'cluster-cert',
  cluster_key: 'cluster-key',
  cluster_user: 'cluster-user',
  cluster_password: 'cluster-password',
  cluster_host: 'cluster-host',
  on_lock_lost: 'on-lock-lost',
};

/** What `lockd config` prints instead of a secret that is set. */
export const MASKED = '********';

const OPTIONS = {
  ...COMMON_OPTIONS,
  json: { type: 'boolean' },
  ...Object.fromEntries(
    Object.values(FLAGS)
      .filter((f) => f !== 'socket' && f !== 'state-dir')
      .map((f) => [f, { type: 'string' }]),
  ),
} as Record<string, { type: 'string' | 'boolean'; short?: string }>;

export const CONFIG_HELP = `Usage: lockd config [--json] [SETTING FLAGS...]

Print every setting's effective value and its source. Precedence, highest first:
  flag > LOCKD_* environment variable > <build root>/lockd.json > <state dir>/lockd.json > default
Any setting flag (--root, --wait, --ttl, --holder, ...) may be given to see what a command with that
flag would use; --root also selects which build root's lockd.json is read (default: the current directory).
The cluster settings (cluster, cluster_ttl, cluster_user, ...) are what \`lockd daemon\` started with the same
environment and files would use; a password is shown as ${MASKED} when set, never in clear.
  --json   {"settings": {NAME: {"value", "source", "env", "flag", "description"}}, "files": {...}}

Examples:
  lockd config
  LOCKD_WAIT=60 lockd config --root build --json | jq .settings.wait
`;

export interface ConfigEntry {
  value: string | null;
  source: Source;
  /** True for a secret: value is MASKED when set, null when not. */
  secret?: boolean;
  env: string;
  flag: string | null;
  description: string;
}

export function effectiveConfig(
  flags: Partial<Record<SettingName, string | undefined>>,
  env: NodeJS.ProcessEnv = process.env,
): { settings: Record<string, ConfigEntry>; files: Record<string, { path: string; exists: boolean }> } {
  const s = new Settings(flags, env);
  const settings: Record<string, ConfigEntry> = {};
  for (const name of Object.keys(SETTINGS) as SettingName[]) {
    const spec = SETTINGS[name];
    const r = s.get(name);
    let value = r.value;
    // Two defaults are computed where they are used rather than in the table; show what would be used.
    if (name === 'socket' && value === null) value = resolveSocket(undefined, env).path;
    if (name === 'holder' && value === null) value = holderString(env, process.pid, hostname(), currentUser(env)).replace(/:\d+(@[^@]*)?$/, ':<pid>$1');
    if (name === 'build_root' && value !== null) value = resolve(value);
    // The prefix defaults to the --cluster URL's /PREFIX, else lockd (cluster/config.ts).
    if (name === 'cluster_prefix' && value === null) value = defaultClusterPrefix(s.value('cluster'));
    const secret = (spec as SettingSpec).secret === true;
    if (secret && value !== null) value = MASKED;
    settings[name] = { value, source: r.source, ...(secret ? { secret } : {}), env: spec.env, flag: FLAGS[name] ? `--${FLAGS[name]}` : null, description: spec.description };
  }
  const br = join(resolve(s.value('build_root')!), 'lockd.json');
  const sd = join(resolve(s.value('state_dir')!), 'lockd.json');
  return { settings, files: { build_root: { path: br, exists: existsSync(br) }, state_dir: { path: sd, exists: existsSync(sd) } } };
}

export async function configCommand(args: string[]): Promise<number> {
  const { values } = parse(args, OPTIONS);
  const v = values as Record<string, string | boolean | undefined>;
  const flags: Partial<Record<SettingName, string | undefined>> = {};
  for (const [name, flag] of Object.entries(FLAGS) as Array<[SettingName, string]>) {
    const given = v[flag];
    if (typeof given === 'string') flags[name] = given;
  }
  const cfg = effectiveConfig(flags);
  if (v.json) {
    process.stdout.write(`${JSON.stringify(cfg)}\n`);
    return EXIT.OK;
  }
  const style = styleFor(process.stdout);
  const rows = [['SETTING', 'VALUE', 'SOURCE', 'FLAG / ENV'].map((h) => style.dim(h))];
  for (const [name, e] of Object.entries(cfg.settings)) {
    rows.push([name, e.value ?? style.dim('(none)'), e.source === 'default' ? style.dim(e.source) : style.bold(e.source), `${e.flag ? `${e.flag} / ` : ''}${e.env}`]);
  }
  process.stdout.write(table(rows, ''));
  process.stdout.write(`\nconfig files (highest first):\n`);
  for (const [which, f] of Object.entries(cfg.files)) process.stdout.write(`  ${which.replace('_', '-')}: ${f.path}${f.exists ? '' : style.dim(' (not present)')}\n`);
  return EXIT.OK;
}

/** The key prefix a cluster URL implies when no prefix is set: its /PREFIX part, else the default. */
function defaultClusterPrefix(url: string | null): string {
  const m = url ? /^etcds?:\/\/[^/]+\/(.+)$/.exec(url.trim()) : null;
  const p = m ? m[1]!.replace(/^\/+|\/+$/g, '') : null;
  return p || DEFAULT_CLUSTER_PREFIX;
}
