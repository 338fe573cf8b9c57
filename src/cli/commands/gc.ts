/**
 * `lockd gc`: remove old run directories.
 *
 * The work is done by the daemon (the `gc` message), because only the daemon knows which runs are live: a queued
 * or running run's directory must never disappear under it. When no daemon answers and auto-start is off
 * (LOCKD_NO_AUTOSTART), the collection runs right here instead: with no daemon on this socket no run of this
 * socket's daemon can be live, and a per-user runs root has no other writer. (A runs root shared by daemons on
 * other sockets is the one case this cannot see; `.pinned` runs and runs without a manifest are skipped either way.)
 */
import { DEFAULT_KEEP, gcRuns, type GcReport } from '../../runs/gc.js';
import { parseDuration, parseSize } from '../../runs/units.js';
import { request } from '../../client/connection.js';
import { isLockdError } from '../../util/errors.js';
import { parse, parseIntOption } from '../args.js';
import { connectOptions } from '../common.js';
import { EXIT } from '../exit-codes.js';
import { resolveRunsRoot, runsSettings, RUNS_ROOT_OPTIONS } from './runs.js';

export const GC_HELP = `Usage: lockd gc [options]

Remove old run directories. The newest --keep runs always stay; of the older ones, all are removed,
or with --older-than only those that old, and with --max-bytes the oldest until the root fits.
Live (queued or running) and pinned runs are never removed, nor runs without a result.json that were
written to in the last 24 hours (another daemon's live run, in a runs root shared by hosts or users).
Removed run ids go to stdout; kept ones are named on stderr with the reason (live, pinned, unfinished).

Options:
  --runs-root DIR         runs root (default $LOCKD_RUNS_ROOT, else <root>/runs with --root, else the daemon's <state-dir>/runs)
  --root DIR              build root whose runs to collect (<root>/runs)
  --keep N                newest runs always kept; 0 keeps all, as for LOCKD_RUNS_KEEP (default $LOCKD_RUNS_KEEP unless 0, else 20)
  --all                   remove every finished run (no count kept). Needed for any gc that would remove every
                          finished run (e.g. --keep 1 when the newest run is still running): refused otherwise
  --older-than DURATION   only remove runs idle this long: 90s, 30m, 12h, 7d, 2w, 1h30m
  --max-bytes SIZE        also remove the oldest until all runs take at most SIZE: 500M, 10G
  --dry-run               print what would be removed, remove nothing
  --json                  print the report as JSON

With no daemon running and LOCKD_NO_AUTOSTART set, the collection runs in this process
(no daemon means no live runs in its runs root).

Examples:
  lockd gc --keep 50
  lockd gc --root build --older-than 7d --dry-run
  lockd gc --max-bytes 10G --json
`;

type Report = GcReport & { runs_root: string; collected_by: 'daemon' | 'local' };

function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** Keep count meaning "no count limit": --keep 0 keeps every run, the same 0 as LOCKD_RUNS_KEEP and auto-GC. */
const KEEP_ALL = 2 ** 31 - 1;

/**
 * --keep as given (0 keeps all). Without it, the auto-GC setting, except that its 0 means "auto-GC off", which
 * must not turn a plain `lockd gc` into "remove everything": then the library default.
 */
function keepFor(flag: string | undefined, setting: string | null): number {
  if (flag !== undefined) {
    const n = parseIntOption(flag, '--keep');
    return n === 0 ? KEEP_ALL : n;
  }
  const n = setting === null ? DEFAULT_KEEP : parseIntOption(setting, 'LOCKD_RUNS_KEEP');
  return n === 0 ? DEFAULT_KEEP : n;
}

export async function gcCommand(args: string[]): Promise<number> {
  const { values } = parse(args, {
    ...RUNS_ROOT_OPTIONS,
    keep: { type: 'string' },
    'older-than': { type: 'string' },
    'max-bytes': { type: 'string' },
    'dry-run': { type: 'boolean' },
    json: { type: 'boolean' },
    all: { type: 'boolean' },
  });
  if (values.all && values.keep !== undefined) {
    process.stderr.write('lockd: gc: --all and --keep contradict each other (--all keeps no run)\n');
    return EXIT.USAGE;
  }
  const settings = runsSettings(values);
  const keep = values.all ? 0 : keepFor(values.keep, settings.value('keep'));
  const olderThanMs = values['older-than'] !== undefined ? parseDuration(values['older-than'], '--older-than') : null;
  const maxBytes = values['max-bytes'] !== undefined ? parseSize(values['max-bytes']) : null;
  const dryRun = values['dry-run'] ?? false;
  const runsRoot = resolveRunsRoot(settings);
  const connect = connectOptions(values, settings);

  let report: Report;
  try {
    // Without an explicit root the daemon uses its own state dir (it differs from ours for a system daemon).
    const reply = await request(
      connect,
      { type: 'gc', runs_root: runsRoot.explicit ? runsRoot.root : null, keep, older_than_ms: olderThanMs, max_bytes: maxBytes, dry_run: dryRun, all: values.all ?? false },
      ['gc_done'],
    );
    report = { ...(reply.report as unknown as GcReport & { runs_root: string }), collected_by: 'daemon' };
  } catch (e) {
    if (!isLockdError(e, 'daemon_not_running')) throw e;
    const local = await gcRuns(runsRoot.root, {
      keep,
      ...(olderThanMs !== null ? { olderThanMs } : {}),
      ...(maxBytes !== null ? { maxBytes } : {}),
      dryRun,
      refuseRemovingAll: !values.all,
    });
    report = { runs_root: runsRoot.root, ...local, collected_by: 'local' };
  }

  if (values.json) {
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } else {
    for (const r of report.removed) process.stdout.write(`${r.run_id}\n`);
    const bytes = report.removed.reduce((sum, r) => sum + r.bytes, 0);
    const verb = dryRun ? 'would remove' : 'removed';
    process.stderr.write(`lockd: ${verb} ${report.removed.length} run(s) (${formatBytes(bytes)}) from ${report.runs_root}; ${report.kept} kept\n`);
    for (const s of report.skipped) process.stderr.write(`lockd: kept ${s.run_id} (${s.why})\n`);
    for (const f of report.failed) process.stderr.write(`lockd: could not remove ${f.run_id}: ${f.error}\n`);
  }
  return report.failed.length ? EXIT.LOCKD_FAILED : EXIT.OK;
}
