/** `lockd acquire LOCK...`: take locks as an explicit hold that outlives this command, until released or expired. */
import { poolRefs } from '../pools-arg.js';
import { isatty } from 'node:tty';
import { COMMON_OPTIONS, parse, parseIntOption, parseSeconds } from '../args.js';
import { progressLine } from '../render/wait-progress.js';
import { apiClient } from '../common.js';
import { callerIdentity, holdSettings, lockRefsFrom, LOCK_OPTIONS } from '../hold-args.js';
import { renderHolder } from '../../client/holder.js';
import type { AcquireRequest, HolderInfo } from '../../protocol/messages.js';
import { LockdError, isLockdError } from '../../util/errors.js';
import { EXIT, exitCodeFor } from '../exit-codes.js';
import { mdCode, reportToGithub, secondsText } from '../github.js';

/** The TTL of a hold taken at a terminal without --ttl / LOCKD_TTL / lockd.json: two hours, renewed by heartbeats. */
export const TERMINAL_HOLD_TTL_S = 7200;

const OPTIONS = {
  ...COMMON_OPTIONS,
  ...LOCK_OPTIONS,
  wait: { type: 'string' },
  ttl: { type: 'string' },
  holder: { type: 'string' },
  'conflict-exit-code': { type: 'string' },
  json: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
  pool: { type: 'string', multiple: true },
  where: { type: 'string', multiple: true },
  member: { type: 'string' },
  priority: { type: 'string' },
  'progress-interval': { type: 'string' },
} as const;

export const ACQUIRE_HELP = `Usage: lockd acquire LOCK... [options]

Take locks as an explicit hold, without running anything under them (several CI steps, a debugging session
on a shared board). Once every lock is held it prints LOCKD_HOLD_ID=<id> (eval-able) and exits 0; the hold
stays after this command, until 'lockd release', or until its TTL passes without a 'lockd heartbeat'.
A 'lockd run' joins the hold only when it names it (--hold ID, or LOCKD_HOLD_ID in its environment, which
the eval below sets); runs under one hold still take its locks one at a time (shared: together), in order.
Asking again for a lock you already hold is refused with the hold's id, instead of queueing behind yourself.

Locks (as in lockd run; granted all at once or not at all):
  LOCK, --lock NAME[:shared|:slots=N]   local lock <root>[/<arch>]/.locks/NAME.lock (repeatable)
  --global NAME[:shared|:slots=N]       host-wide lock <global-dir>/global-NAME.lock (repeatable)
  --root DIR  --arch ARCH  --global-dir DIR  --host-only
  --pool NAME[:COUNT] [--where KEY=VALUE]... [--member NAME]   pool members, as in lockd run; their names are
                      printed as LOCKD_MEMBERS_<NAME>=a,b after LOCKD_HOLD_ID
  --priority N        queue priority, higher first (default 0; --priority=-N for a negative one)
Waiting:
  --wait DURATION|inf     how long to queue: 90, 10m, 1h30m (default 0 on a developer machine, 1800 in CI)
  --conflict-exit-code N  exit code when the locks are not obtained (default 75)
  --progress-interval DURATION  without a terminal (CI logs), a "still waiting" line this often while queued
                          (default 60s; 0 or none: never; LOCKD_PROGRESS_INTERVAL, lockd.json progress_interval)
Holding:
  --ttl DURATION|none     release the hold when no heartbeat comes for this long: 900, 15m (default $LOCKD_TTL; else
                          7200 (2 h) when taken at a terminal, none otherwise)
  --holder H              holder identity (default: CI-aware; release/heartbeat must come from the same holder)
Output:
  --json                  print the daemon's reply as JSON instead of LOCKD_HOLD_ID=<id>
  -q, --quiet             no notes on stderr
Under GitHub Actions (GITHUB_OUTPUT set) the step outputs status, lock_id and queue_wait_seconds are set,
and a line goes to the job summary.

Exit status: 0 held, 75 not obtained (busy, wait timed out, deadlock), 2 usage, 125 lockd failed.

Examples:
  eval "$(lockd acquire --root build --arch riscv64 qemu --wait 600 --ttl 900)"
  lockd run --root build --arch riscv64 --lock qemu -- ./flash.sh   # runs under the hold (LOCKD_HOLD_ID)
  lockd heartbeat                       # from a long step: keeps the hold alive
  lockd release                         # the hold in LOCKD_HOLD_ID
  eval "$(lockd acquire --pool boards --member rpi4-a --ttl 7200)"   # reserve a named board for two hours
  eval "$(lockd acquire --pool boards --where arch=arm64 --wait 600)"; echo "got $LOCKD_MEMBERS_boards"
`;

function blockerLine(b: HolderInfo | undefined): string {
  if (!b) return '';
  return ` behind ${b.kind} ${b.id} (${renderHolder(b.holder)}${b.pid ? `, pid ${b.pid}` : ''}${b.command_line ? `: ${b.command_line.slice(0, 60)}` : ''})`;
}

/** `LOCKD_MEMBERS_<pool>=a,b` lines (eval-able) for the pool members of a hold. */
function membersLines(locks: Array<{ pool?: string; member?: string }>): string {
  const byPool = new Map<string, string[]>();
  for (const l of locks) if (l.pool !== undefined && l.member !== undefined) byPool.set(l.pool, [...(byPool.get(l.pool) ?? []), l.member]);
  return [...byPool].map(([p, ms]) => `LOCKD_MEMBERS_${p.replace(/[^A-Za-z0-9_]/g, '_')}=${ms.join(',')}\n`).join('');
}

export async function acquireCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, OPTIONS, true);
  const settings = holdSettings(values);
  const locks = lockRefsFrom(values, settings, positionals);
  const pools = poolRefs(values.pool ?? [], values.where ?? [], values.member);
  if (locks.length === 0 && pools.length === 0) throw new LockdError('usage', 'lockd acquire needs at least one lock: lockd acquire LOCK... (or --lock / --global / --pool)');
  const waitS = parseSeconds(settings.value('wait')!, '--wait');
  // A hold taken at a terminal is a person's; one who walks away must not block the board for good, so it gets
  // a TTL unless one is set (scripts and CI, which have no terminal, keep "none": they release explicitly).
  const ttlS = parseSeconds(settings.explicit('ttl') ?? (process.stdin.isTTY ? String(TERMINAL_HOLD_TTL_S) : 'none'), '--ttl');
  if (ttlS !== null && ttlS <= 0) throw new LockdError('usage', '--ttl must be more than 0 seconds, or none');
  const conflictExit = parseIntOption(settings.value('conflict_exit_code')!, '--conflict-exit-code', 0, 255);
  const { holder, user } = callerIdentity(settings);
  const req: AcquireRequest = {
    holder,
    user,
    client_pid: process.pid,
    parent_run_id: process.env.LOCKD_RUN_ID ?? null,
    locks,
    cwd: process.cwd(),
    wait_ms: waitS === null ? null : Math.round(waitS * 1000),
    ttl_ms: ttlS === null ? null : Math.max(1, Math.round(ttlS * 1000)),
    conflict_exit_code: conflictExit,
    ...(pools.length > 0 ? { pools } : {}),
    ...(values.priority !== undefined ? { priority: parseIntOption(values.priority, '--priority', -1_000_000, 1_000_000) } : {}),
  };
  const say = (line: string) => {
    if (!values.quiet) process.stderr.write(`lockd: ${line}\n`);
  };
  // Without a terminal (a CI log) the daemon sends where the hold stands on an interval, as for lockd run.
  const progressS = parseSeconds(settings.value('progress_interval')!, '--progress-interval');
  if (!values.quiet && !isatty(2) && progressS !== null && progressS !== 0) req.progress_ms = Math.max(1, Math.round(progressS * 1000));
  const names = [...locks.map((l) => l.name), ...pools.map((p) => (p.member !== null ? `${p.pool}/${p.member}` : `${p.pool}:${p.count}`))].join(', ');
  const started = Date.now();
  let waitingSince: number | null = null;
  const github = (status: string, lockId: string, waitMs: number | null, summary: string) => reportToGithub({ status, lockId, queueWaitMs: waitMs, summary: `**lockd**: ${summary}` });

  let m;
  try {
    m = await apiClient(values, settings).acquireRaw(req, {
      onQueued: (q) => {
        waitingSince = Date.now();
        say(`waiting for ${names} (position ${q.position})${blockerLine(q.blockers[0])}`);
      },
      onProgress: (p) => {
        if (waitingSince === null) return;
        const now = Date.now();
        say(
          progressLine({ names, elapsedMs: now - waitingSince, position: p.position, blockers: p.blockers, etaMs: p.eta_ms, deadline: req.wait_ms === null ? null : waitingSince + req.wait_ms, now }),
        );
      },
    });
  } catch (e) {
    if (!isLockdError(e)) throw e;
    const summary = `could not acquire ${mdCode(names)} (${e.code}): ${e.message}`;
    if (typeof e.details?.exitCode === 'number') {
      // Not obtained (busy, wait timed out, deadlock): the daemon's exit code already honours --conflict-exit-code.
      process.stderr.write(`lockd: ${e.code}: ${e.message}\n`);
      if (values.json) process.stdout.write(`${JSON.stringify({ type: 'not_obtained', code: e.code, message: e.message, blockers: e.details.blockers, exit_code: e.details.exitCode })}\n`);
      github('not_obtained', '', Date.now() - started, summary);
      return e.details.exitCode;
    }
    process.stderr.write(`lockd: ${e.message}\n`);
    if (e.code !== 'daemon_lost') github('not_obtained', '', Date.now() - started, summary);
    const code = exitCodeFor(e.code);
    return code === EXIT.NOT_OBTAINED ? conflictExit : code;
  }
  const ttl = m.ttl_ms === null ? 'no ttl: held until released' : `ttl ${secondsText(m.ttl_ms)} s: renew with lockd heartbeat ${m.hold_id}`;
  if (values.json) process.stdout.write(`${JSON.stringify(m)}\n`);
  else process.stdout.write(`LOCKD_HOLD_ID=${m.hold_id}\n${membersLines(m.locks)}`);
  say(`holding ${names} as ${m.hold_id} after ${secondsText(m.queue_wait_ms)} s (${ttl}); release with: lockd release ${m.hold_id}`);
  github('acquired', m.hold_id, m.queue_wait_ms, `acquired ${mdCode(names)} as ${mdCode(m.hold_id)} after ${secondsText(m.queue_wait_ms)} s (holder ${mdCode(renderHolder(m.holder))})`);
  return EXIT.OK;
}
