/** `lockd config`: every setting's effective value and where it came from (flag, env, lockd.json, default). */
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { COMMON_OPTIONS, parse } from '../args.js';
import { SETTINGS, Settings, type SettingName, type Source } from '../settings.js';
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
};

const OPTIONS = {
  ...COMMON_OPTIONS,
  json: { type: 'boolean' },
  ...Object.fromEntries(Object.values(FLAGS).filter((f) => f !== 'socket' && f !== 'state-dir').map((f) => [f, { type: 'string' }])),
} as Record<string, { type: 'string' | 'boolean'; short?: string }>;

export const CONFIG_HELP = `Usage: lockd config [--json] [SETTING FLAGS...]

Print every setting's effective value and its source. Precedence, highest first:
  flag > LOCKD_* environment variable > <build root>/lockd.json > <state dir>/lockd.json > default
Any setting flag (--root, --wait, --ttl, --holder, ...) may be given to see what a command with that
flag would use; --root also selects which build root's lockd.json is read (default: the current directory).
  --json   {"settings": {NAME: {"value", "source", "env", "flag", "description"}}, "files": {...}}

Examples:
  lockd config
  LOCKD_WAIT=60 lockd config --root build --json | jq .settings.wait
`;

export interface ConfigEntry {
  value: string | null;
  source: Source;
  env: string;
  flag: string | null;
  description: string;
}

export function effectiveConfig(flags: Partial<Record<SettingName, string | undefined>>, env: NodeJS.ProcessEnv = process.env): { settings: Record<string, ConfigEntry>; files: Record<string, { path: string; exists: boolean }> } {
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
    settings[name] = { value, source: r.source, env: spec.env, flag: FLAGS[name] ? `--${FLAGS[name]}` : null, description: spec.description };
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
    process.stdout.write(JSON.stringify(cfg) + '\n');
    return EXIT.OK;
  }
  const style = styleFor(process.stdout);
  const rows = [['SETTING', 'VALUE', 'SOURCE', 'FLAG / ENV'].map((h) => style.dim(h))];
  for (const [name, e] of Object.entries(cfg.settings)) {
    rows.push([name, e.value ?? style.dim('(none)'), e.source === 'default' ? style.dim(e.source) : style.bold(e.source), `${e.flag ? e.flag + ' / ' : ''}${e.env}`]);
  }
  process.stdout.write(table(rows, ''));
  process.stdout.write(`\nconfig files (highest first):\n`);
  for (const [which, f] of Object.entries(cfg.files)) process.stdout.write(`  ${which.replace('_', '-')}: ${f.path}${f.exists ? '' : style.dim(' (not present)')}\n`);
  return EXIT.OK;
}
