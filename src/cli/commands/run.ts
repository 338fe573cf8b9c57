/**
 * `lockd run [options] [--] COMMAND...`: queue for the locks, run the command as the daemon's child, stream its
 * output, exit with its code. The hot path of every Make recipe: no heavy imports, one connection, one round trip
 * before the daemon starts work.
 */
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { writeSync } from 'node:fs';
import { isatty } from 'node:tty';
import { COMMON_OPTIONS, asArray, parse, parseIntOption, parseSeconds, splitCommand } from '../args.js';
import { connectOptions } from '../common.js';
import { Settings } from '../settings.js';
import { lockRefs, LOCK_OPTIONS } from '../locks-arg.js';
import { LockdClient, type RunMessage } from '../../api/client.js';
import { lookOnly } from '../../client/connect-options.js';
import { holderString, currentUser } from '../../client/holder.js';
import type { ForwardSignal, HolderInfo, RunRequest } from '../../protocol/messages.js';
import { poolRefs } from '../pools-arg.js';
import { LockdError } from '../../util/errors.js';
import { EXIT } from '../exit-codes.js';
import { parseSize } from '../../runs/units.js';
import { etaOfRequest, progressLine } from '../render/wait-progress.js';
import { BLOCKER_COMMAND, BLOCKER_COMMAND_MAX, BLOCKER_PID, BLOCKER_TEXT, RUN_TEXT, SAY_REASONS, fill } from '../../client/run-text.js';

export const RUN_OPTIONS = {
  ...COMMON_OPTIONS,
  ...LOCK_OPTIONS,
  wait: { type: 'string' },
  timeout: { type: 'string' },
  'kill-after': { type: 'string' },
  interactive: { type: 'boolean', short: 'i' },
  detach: { type: 'boolean' },
  'run-id': { type: 'string' },
  'runs-root': { type: 'string' },
  log: { type: 'string' },
  'log-max-bytes': { type: 'string' },
  'require-structured': { type: 'boolean' },
  'require-marker': { type: 'string', multiple: true },
  'require-all': { type: 'string', multiple: true },
  'forbid-marker': { type: 'string', multiple: true },
  'expect-timeout': { type: 'boolean' },
  keep: { type: 'string' },
  holder: { type: 'string' },
  'conflict-exit-code': { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  'result-fd': { type: 'string' },
  'on-lock-lost': { type: 'string' },
  hold: { type: 'string' },
  pool: { type: 'string', multiple: true },
  where: { type: 'string', multiple: true },
  member: { type: 'string' },
  priority: { type: 'string' },
  supersede: { type: 'string' },
  'cancel-running': { type: 'boolean' },
  'progress-interval': { type: 'string' },
} as const;

export const RUN_HELP = `Usage: lockd run [options] [--] COMMAND [ARGS...]

Run COMMAND under the named locks, held by the lockd daemon for exactly as long as the command runs.

Locks (any mix; granted all at once or not at all):
  --lock NAME[:shared|:slots=N]   local lock <root>[/<arch>]/.locks/NAME.lock (repeatable)
  --global NAME[:shared|:slots=N] host-wide lock <global-dir>/global-NAME.lock (repeatable)
  --root DIR          build root for local locks (default $LOCKD_BUILD_ROOT, else .)
  --arch ARCH         per-arch lock directory under the root
  --global-dir DIR    directory of global lock files (default <state-dir>/locks)
  --host-only         with a cluster configured (docs/cluster.md): keep --global locks per host
Pools (named members defined in <state-dir>/lockd.json "pools"; see lockd pool --help):
  --pool NAME[:COUNT] COUNT (default 1) free members of pool NAME, with the locks (repeatable); the job
                      gets LOCKD_MEMBERS_<NAME>=a,b and LOCKD_MEMBERS_FILE (their properties, JSON)
  --where KEY=VALUE   only members whose property KEY is VALUE (repeatable; needs exactly one --pool)
  --member NAME       that one member (needs exactly one --pool)
  --priority N        queue priority, higher first, FIFO within one priority (default 0; --priority=-N)
  --supersede KEY     end your older runs with this KEY that are still queued, at once (exit 77, reason
                      superseded); same user, same KEY: put the project and branch in it in CI
  --cancel-running    with --supersede: also stop the older run that is running (SIGTERM, --kill-after, SIGKILL)
Waiting:
  --wait DURATION|inf how long to queue: 90, 10m, 1h30m (default 0 on a developer machine, 1800 in CI)
  --progress-interval DURATION  without a terminal (CI logs), print a "still waiting" line this often: elapsed,
                      position, blocker, ETA, deadline (default 60; 0 or none: never; $LOCKD_PROGRESS_INTERVAL,
                      lockd.json progress_interval). On a terminal the live line shows the same; -q silences both
  --conflict-exit-code N  exit code when the locks are not obtained (default 75)
Running:
  --timeout DURATION  kill the whole process tree after this long (exit 124)
  --kill-after DURATION  grace between SIGTERM and SIGKILL (default 5)
  -i, --interactive   forward stdin to the command
  --detach            print the run id and return; the job keeps its locks until it exits
  --hold ID           run under your hold ID from lockd acquire (default $LOCKD_HOLD_ID); runs under one
                      hold still take its locks by their mode (exclusive: one at a time, in order)
  --on-lock-lost stop|warn  a cluster lock lost while running: stop the job (default; infra_fail/lock_lost)
                      or only warn (for jobs that can tolerate it)
Records:
  --run-id ID  --runs-root DIR  --log PATH  --log-max-bytes SIZE  --keep N  -q/--quiet  --result-fd N
Verdict (exit 0 pass, 1 fail/timeout, 2 error/infra_fail when any is given):
  --require-structured  --require-marker RE  --require-all RE  --forbid-marker RE  --expect-timeout
Identity:  --holder H (default: CI-aware, e.g. ci:github:org/repo#123-1/test@runner-3:4242)
Output: on Linux your own stdout/stderr are passed to the daemon, which relays the job's output to them in the
  kernel (and into output.log); LOCKD_STDIO=framed forces the framed stream through this process instead.

Examples:
  lockd run --root build --arch riscv64 --lock qemu -- ./scripts/run-qemu-session.sh
  lockd run --global deps-fetch --wait 10m -- make deps
  CI=true lockd run --lock qemu --progress-interval 30s -- ./test.sh   # a line every 30 s while queued
  lockd run --lock board:slots=4 -- ./flash.sh    # the job sees LOCKD_SLOT_board=0..3
  lockd run --pool boards --where arch=arm64 --wait 600 -- ./flash.sh   # any free arm64 board
  lockd run --pool boards:2 --priority 10 -- ./pair-test.sh
  lockd run --pool boards --supersede "$GITHUB_REPOSITORY/$GITHUB_REF" --cancel-running --wait 3600 -- ./hil.sh
`;

export function buildRunRequest(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): { req: RunRequest; quiet: boolean; resultFd: number | null; progressMs: number | null; connect: ReturnType<typeof connectOptions> } {
  const { optionArgs, command } = splitCommand(args, RUN_OPTIONS);
  const { values } = parse(optionArgs, RUN_OPTIONS);
  if (command.length === 0) throw new LockdError('usage', 'lockd run needs a command: lockd run [options] -- COMMAND [ARGS...]');
  const settings = new Settings(
    {
      socket: values.socket,
      state_dir: values['state-dir'],
      build_root: values.root,
      global_dir: values['global-dir'],
      runs_root: values['runs-root'],
      wait: values.wait,
      timeout: values.timeout,
      kill_after: values['kill-after'],
      keep: values.keep,
      holder: values.holder,
      conflict_exit_code: values['conflict-exit-code'],
      log_max_bytes: values['log-max-bytes'],
      progress_interval: values['progress-interval'],
    },
    env,
  );
  const cwd = process.cwd();
  const root = resolve(settings.value('build_root')!);
  const locks = lockRefs({
    locks: asArray(values.lock),
    globals: asArray(values.global),
    root,
    arch: values.arch,
    globalDir: settings.value('global_dir'),
    hostOnly: values['host-only'] ?? false,
  });
  const waitS = parseSeconds(settings.value('wait')!, '--wait');
  const timeoutText = settings.value('timeout');
  const timeoutS = timeoutText === null ? null : parseSeconds(timeoutText, '--timeout');
  const runsRootSetting = settings.get('runs_root');
  // --root given explicitly (flag or env) puts runs under <root>/runs, like the build systems lockd serves.
  const rootGiven = settings.get('build_root').source !== 'default';
  const runsRoot = runsRootSetting.value ? resolve(runsRootSetting.value) : rootGiven ? resolve(root, 'runs') : null;
  const user = currentUser(env);
  const holder = settings.value('holder') ?? holderString(env, process.pid, hostname(), user);
  const logMax = settings.value('log_max_bytes');
  const resultFd = values['result-fd'] !== undefined ? parseIntOption(values['result-fd'], '--result-fd', 0, 65535) : null;
  const req: RunRequest = {
    argv: command,
    cwd,
    env: Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => typeof e[1] === 'string')),
    locks,
    wait_ms: waitS === null ? null : Math.round(waitS * 1000),
    timeout_ms: timeoutS === null ? null : Math.max(1, Math.round(timeoutS * 1000)),
    kill_after_ms: Math.round((parseSeconds(settings.value('kill_after')!, '--kill-after', false) ?? 5) * 1000),
    interactive: values.interactive ?? false,
    detach: values.detach ?? false,
    run_id: values['run-id'] ?? null,
    runs_root: runsRoot,
    build_root: locks.some((l) => l.scope === 'local') || rootGiven ? root : null,
    arch: values.arch ?? null,
    log_path: values.log ? resolve(values.log) : null,
    log_max_bytes: logMax === null ? null : parseSize(logMax),
    verdict: {
      require_structured: values['require-structured'] ?? false,
      require_marker: asArray(values['require-marker']),
      require_all: asArray(values['require-all']),
      forbid_marker: asArray(values['forbid-marker']),
      expect_timeout: values['expect-timeout'] ?? false,
    },
    keep: parseIntOption(settings.value('keep')!, '--keep'),
    conflict_exit_code: parseIntOption(settings.value('conflict_exit_code')!, '--conflict-exit-code', 0, 255),
    holder,
    user,
    client_pid: process.pid,
    parent_run_id: env.LOCKD_RUN_ID ?? null,
  };
  // A run joins a hold only when it names one: matching a hold by user alone let any two runs of that user into
  // one exclusive lock at once.
  const holdId = values.hold ?? (env.LOCKD_HOLD_ID || null);
  if (holdId) req.hold_id = holdId;
  // Unset (the default): the daemon's own default applies (lockd daemon --on-lock-lost).
  const onLockLost = values['on-lock-lost'] ?? settings.explicit('on_lock_lost');
  if (onLockLost !== undefined) {
    if (onLockLost !== 'stop' && onLockLost !== 'warn') throw new LockdError('usage', `--on-lock-lost must be stop or warn, not ${JSON.stringify(onLockLost)}`);
    req.on_lock_lost = onLockLost;
  }
  const pools = poolRefs(asArray(values.pool), asArray(values.where), values.member);
  if (pools.length > 0) req.pools = pools;
  if (values.priority !== undefined) req.priority = parseIntOption(values.priority, '--priority', -1_000_000, 1_000_000);
  if (values['cancel-running'] && values.supersede === undefined) throw new LockdError('usage', '--cancel-running needs --supersede KEY (it names which older run to stop)');
  if (values.supersede !== undefined) {
    if (values.supersede === '' || values.supersede.length > 256) throw new LockdError('usage', '--supersede KEY must be 1 to 256 characters');
    req.supersede = values.supersede;
    if (values['cancel-running']) req.cancel_running = true;
  }
  const progressS = parseSeconds(settings.value('progress_interval')!, '--progress-interval');
  const progressMs = progressS === null || progressS === 0 ? null : Math.max(1, Math.round(progressS * 1000));
  return { req, quiet: values.quiet ?? false, resultFd, progressMs, connect: connectOptions(values, settings) };
}

/** How long a progress line waits for the daemon's ETA before it is printed without one (a busy daemon is no reason to go silent). */
const STATUS_BOUND_MS = 2000;

/** A pool request as the waiting line names it: boards:2[arch=arm64] or boards/rpi4-a. */
function poolLabel(p: NonNullable<RunRequest['pools']>[number]): string {
  const where = Object.entries(p.where).map(([k, v]) => `${k}=${v}`);
  return `${p.pool}${p.member !== null ? `/${p.member}` : `:${p.count}`}${where.length > 0 ? `[${where.join(',')}]` : ''}`;
}

/** Output we let queue up in our stdout/stderr before pausing the daemon's stream (RunIo.backlogBytes). */
const OUTPUT_BACKLOG_BYTES = 1024 * 1024;

/** Reasons whose message the user needs to see (client/run-text.ts, shared with the native client). */
const SAY_REASON = new Set<string>(SAY_REASONS);

function describeBlockers(blockers: HolderInfo[]): string {
  const b = blockers[0];
  if (!b) return '';
  return fill(BLOCKER_TEXT, {
    kind: b.kind,
    id: b.id,
    pid: b.pid ? fill(BLOCKER_PID, { pid: b.pid }) : '',
    holder: b.holder,
    command: b.command_line ? fill(BLOCKER_COMMAND, { command: b.command_line.slice(0, BLOCKER_COMMAND_MAX) }) : '',
  });
}

/**
 * The command is the Node API's runRaw() with a terminal around it: the child's output goes straight to our
 * stdout/stderr, signals we receive are forwarded, and the daemon's progress becomes `lockd:` lines.
 */
export async function runCommand(args: string[]): Promise<number> {
  // -h/--help among run's own options (before the command: `lockd run --lock x make -h` is make's -h).
  if (parse(splitCommand(args, RUN_OPTIONS).optionArgs, RUN_OPTIONS).values.help) {
    process.stdout.write(RUN_HELP);
    return EXIT.OK;
  }
  const { req, quiet, resultFd, progressMs, connect } = buildRunRequest(args);
  const say = (line: string) => {
    if (!quiet) process.stderr.write(`lockd: ${line}\n`);
  };
  // isatty(2), not process.stderr.isTTY: the latter builds the stderr stream, which a quiet run never writes to.
  const tty = isatty(2) && !req.detach;
  // The daemon sends the progress lines' facts (position, blockers, estimate) on the interval; an older daemon
  // ignores the field, and this client then asks for the estimate itself (progressTick below).
  const wantsProgress = !tty && !quiet && progressMs !== null;
  if (wantsProgress) req.progress_ms = progressMs;
  const names = [...req.locks.map((l) => l.name), ...(req.pools ?? []).map(poolLabel)].join(', ');
  const waitingLine = (m: { position: number; blockers: HolderInfo[] }) => fill(RUN_TEXT.waiting, { names, position: m.position, blockers: describeBlockers(m.blockers) });
  // Our own descriptors go to the daemon where it can take them (the job's output then never passes through this
  // process). The streams are getters: created only if the run falls back to the framed stream, because creating
  // process.stdout/stdin for a pipe changes its flags (O_NONBLOCK), which the job and the caller share.
  let stdinUsed = false;
  const run = LockdClient.fromConnectOptions(connect).runRaw(req, {
    get stdout() {
      return process.stdout;
    },
    get stderr() {
      return process.stderr;
    },
    ...(req.interactive
      ? {
          get stdin() {
            stdinUsed = true;
            return process.stdin;
          },
        }
      : {}),
    fds: { stdout: 1, stderr: 2, ...(req.interactive ? { stdin: 0 } : {}) },
    backlogBytes: OUTPUT_BACKLOG_BYTES,
  });

  // A second Ctrl+C within 3 s kills the whole tree; the API queues signals that arrive before the handshake.
  let lastSigint = 0;
  const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'] as NodeJS.Signals[]).map((sig): [NodeJS.Signals, () => void] => [
    sig,
    () => {
      let fwd = sig as ForwardSignal;
      if (sig === 'SIGINT') {
        const now = Date.now();
        fwd = now - lastSigint < 3000 ? 'SIGKILL' : 'SIGINT';
        lastSigint = now;
      }
      run.signal(fwd);
    },
  ]);
  for (const [sig, fn] of handlers) process.on(sig, fn);
  // On a terminal the job may write into a pty of the terminal's size: a resize follows it (one before `started` is
  // kept by the API and passed on once the job has its pty).
  if (isatty(1)) {
    const onWinch = (): void => {
      const [cols, rows] = process.stdout.getWindowSize();
      run.resize(cols, rows);
    };
    handlers.push(['SIGWINCH', onWinch]);
    process.on('SIGWINCH', onWinch);
  }

  let manifestShown = false;
  let waitingSince: number | null = null;
  let liveLine = false;
  const showManifest = (path: string) => {
    if (manifestShown) return;
    manifestShown = true;
    say(fill(RUN_TEXT.manifest, { path }));
  };
  const clearLiveLine = () => {
    if (!liveLine) return;
    process.stderr.write('\r\x1b[K');
    liveLine = false;
  };
  // Without a terminal the wait is reported on a steady interval (CI kills jobs that print nothing for minutes).
  let queue: { runId: string; position: number; blockers: HolderInfo[] } | null = null;
  let progress: NodeJS.Timeout | null = null;
  const stopProgress = () => {
    if (progress) clearInterval(progress);
    progress = null;
  };
  const progressTick = async () => {
    if (!queue || waitingSince === null) return;
    const since = waitingSince;
    // The estimate is the daemon's (recorded durations); a slow or failed status answer only leaves it unknown.
    // Look-only: a progress line never starts a daemon (losing ours is the run's own retry to handle).
    let etaMs: number | null = null;
    let bound: NodeJS.Timeout | undefined;
    try {
      const snapshot = await Promise.race([LockdClient.fromConnectOptions(lookOnly(connect)).status(), new Promise<null>((r) => (bound = setTimeout(r, STATUS_BOUND_MS, null)))]);
      if (snapshot) etaMs = etaOfRequest(snapshot, queue.runId);
    } catch {
      // unknown ETA
    } finally {
      clearTimeout(bound);
    }
    if (!progress || !queue) return;
    const now = Date.now();
    say(progressLine({ names, elapsedMs: now - since, position: queue.position, blockers: queue.blockers, etaMs, deadline: req.wait_ms === null ? null : since + req.wait_ms, now }));
  };
  run.on('queued', (m: RunMessage<'queued'>) => {
    showManifest(m.manifest_path);
    waitingSince = Date.now();
    queue = { runId: m.run_id, position: m.position, blockers: m.blockers };
    if (wantsProgress && !progress && !run.daemonFeatures.includes('progress')) {
      let ticking = false;
      progress = setInterval(() => {
        if (ticking) return;
        ticking = true;
        void progressTick().finally(() => (ticking = false));
      }, progressMs);
    }
    if (tty) {
      process.stderr.write(`\rlockd: ${waitingLine(m)}\x1b[K`);
      liveLine = true;
    } else say(waitingLine(m));
  });
  run.on('progress', (m: RunMessage<'progress'>) => {
    if (waitingSince === null || quiet) return;
    const now = Date.now();
    say(progressLine({ names, elapsedMs: now - waitingSince, position: m.position, blockers: m.blockers, etaMs: m.eta_ms, deadline: req.wait_ms === null ? null : waitingSince + req.wait_ms, now }));
  });
  run.on('waiting', (m: RunMessage<'waiting'>) => {
    if (queue) queue = { ...queue, position: m.position, blockers: m.blockers };
    if (liveLine) process.stderr.write(`\rlockd: ${waitingLine(m)}\x1b[K`);
  });
  run.on('started', (m: RunMessage<'started'>) => {
    stopProgress();
    showManifest(m.manifest_path);
    clearLiveLine();
    if (waitingSince !== null) say(fill(RUN_TEXT.granted, { seconds: ((Date.now() - waitingSince) / 1000).toFixed(1) }));
  });
  run.on('detached', (m: RunMessage<'detached'>) => {
    stopProgress();
    say(fill(RUN_TEXT.manifest, { path: m.manifest_path }));
    say(fill(RUN_TEXT.result, { path: m.result_path }));
    process.stdout.write(`${m.run_id}\n`);
  });
  run.on('not_obtained', (m: RunMessage<'not_obtained'>) => {
    stopProgress();
    clearLiveLine();
    process.stderr.write(`lockd: ${fill(RUN_TEXT.not_obtained, { code: m.code, message: m.message })}\n`);
  });
  run.on('retry', () => {
    clearLiveLine();
    say(RUN_TEXT.retry);
  });

  // A refused run (its own error code), a daemon lost or not reachable: thrown to main, which prints one line and
  // exits with the code's status (exitCodeFor), as every command does.
  try {
    const o = await run.outcome;
    if (o.status === 'detached') return EXIT.OK;
    showManifest(o.manifest_path);
    if (SAY_REASON.has(o.reason) && o.message) process.stderr.write(`lockd: ${o.message}\n`);
    else if (o.reason === 'timeout') process.stderr.write(`lockd: ${RUN_TEXT.timed_out}\n`);
    say(fill(RUN_TEXT.result, { path: o.result_path }));
    if (resultFd !== null) {
      try {
        writeSync(resultFd, `${JSON.stringify(o.result)}\n`);
      } catch (e) {
        process.stderr.write(`lockd: cannot write the result to fd ${resultFd}: ${(e as Error).message}\n`);
      }
    }
    return o.exit_code;
  } finally {
    stopProgress();
    clearLiveLine();
    for (const [sig, fn] of handlers) process.removeListener(sig, fn);
    if (stdinUsed) process.stdin.destroy();
  }
}
