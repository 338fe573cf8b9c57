/**
 * `lockd clean-stale`: remove `.meta` files whose owner is gone (dead pid, or a recycled one), under build roots
 * and the global lock directory. Never touches a lock the daemon holds: when a daemon runs it is asked (status)
 * which lock files it holds; if it runs but cannot be asked, nothing is cleaned.
 */
import { resolve } from 'node:path';
import { COMMON_OPTIONS, asArray, parse } from '../args.js';
import { connectOptions } from '../common.js';
import { Settings } from '../settings.js';
import { request, type ConnectOptions } from '../../client/connection.js';
import { lookOnly } from '../../client/connect-options.js';
import { isLockdError } from '../../util/errors.js';
import { resolveStateDir } from '../../util/paths.js';
import { cleanStale, type CleanStaleResult } from '../../daemon/services/clean-stale.js';
import { EXIT } from '../exit-codes.js';
import { styleFor } from '../render/style.js';

const OPTIONS = {
  ...COMMON_OPTIONS,
  root: { type: 'string', multiple: true },
  'global-dir': { type: 'string' },
  'dry-run': { type: 'boolean', short: 'n' },
  json: { type: 'boolean' },
} as const;

export const CLEAN_STALE_HELP = `Usage: lockd clean-stale [--root DIR]... [--global-dir DIR] [--dry-run] [--json]

Remove the .meta files of locks whose owner is gone: its pid no longer exists, or now belongs to another
process (same pid, different start time). Looks in <root>/.locks and <root>/*/.locks for each build root
(default: $LOCKD_BUILD_ROOT, else the current directory) and in the global lock directory (default
<state-dir>/locks). Lock files themselves are kept (removing them is unsafe with flock users). Never touches
a lock the daemon holds, one whose owner is alive, or one someone holds a flock on.
  -n, --dry-run  only report what would be removed
  --json         {"dry_run", "daemon", "removed": [...], "kept": [...], "skipped": [...]}

Examples:
  lockd clean-stale --root build --dry-run
  lockd clean-stale --root build --root /srv/other-build
`;

/** The lock files the daemon holds right now, or null when no daemon runs. Throws when one runs but cannot answer. */
export async function daemonHeldLocks(opts: ConnectOptions): Promise<Set<string> | null> {
  try {
    const { snapshot } = await request(lookOnly(opts), { type: 'status', root: null }, ['status']);
    return new Set(snapshot.locks.filter((l) => l.holders.length > 0).map((l) => l.key));
  } catch (e) {
    if (isLockdError(e, 'daemon_not_running')) return null;
    throw e;
  }
}

export interface CleanStaleRun {
  result: CleanStaleResult;
  daemon: boolean;
  roots: string[];
  globalDir: string;
}

export async function runCleanStale(
  values: { socket?: string | undefined; 'state-dir'?: string | undefined; root?: string[] | undefined; 'global-dir'?: string | undefined },
  dryRun: boolean,
): Promise<CleanStaleRun> {
  const settings = new Settings({ socket: values.socket, state_dir: values['state-dir'], global_dir: values['global-dir'] });
  const roots = asArray(values.root).length ? asArray(values.root).map((r) => resolve(r)) : [resolve(settings.value('build_root')!)];
  const gd = settings.value('global_dir');
  const globalDir = gd ? resolve(gd) : resolve(resolveStateDir(settings.value('state_dir') ?? undefined), 'locks');
  const held = await daemonHeldLocks(connectOptions(values, settings));
  const result = await cleanStale({ roots, globalDir, dryRun, isHeldByDaemon: (p) => held?.has(p) ?? false });
  return { result, daemon: held !== null, roots, globalDir };
}

const REMOVED_WHY: Record<string, string> = { owner_dead: 'owner is gone', pid_reused: 'pid now belongs to another process', unreadable_meta: 'unreadable meta, nobody holds the lock' };
const KEPT_WHY: Record<string, string> = {
  held_by_daemon: 'held by the lockd daemon',
  owner_alive: 'owner is alive',
  flock_held: 'someone holds its flock',
  unreadable_meta: 'unreadable meta (cannot prove nobody holds it)',
};

export async function cleanStaleCommand(args: string[]): Promise<number> {
  const { values } = parse(args, OPTIONS);
  const dryRun = values['dry-run'] ?? false;
  const run = await runCleanStale(values, dryRun);
  const { result } = run;
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ dry_run: dryRun, daemon: run.daemon, roots: run.roots, global_dir: run.globalDir, ...result })}\n`);
    return EXIT.OK;
  }
  const style = styleFor(process.stdout);
  for (const r of result.removed) {
    process.stdout.write(
      `${dryRun ? 'would remove' : style.green('removed')} ${r.path} (${REMOVED_WHY[r.reason] ?? r.reason}${r.pid !== null ? `, pid ${r.pid}` : ''}${r.holder ? `, ${r.holder}` : ''})\n`,
    );
  }
  for (const k of result.kept) process.stdout.write(`${style.dim('kept')} ${k.path} (${KEPT_WHY[k.reason] ?? k.reason}${k.pid !== null ? `, pid ${k.pid}` : ''})\n`);
  for (const s of result.skipped) process.stdout.write(`${style.yellow('skipped')} ${s.path}: ${s.reason}\n`);
  if (!result.removed.length && !result.kept.length && !result.skipped.length) process.stdout.write('no lock metadata found; nothing to clean\n');
  else if (!result.removed.length) process.stdout.write('nothing stale\n');
  return EXIT.OK;
}
