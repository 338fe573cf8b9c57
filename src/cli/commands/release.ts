/** `lockd release HOLD_ID | --lock/--global LOCK...`: give back the caller's own holds (others' only with --force). */
import { COMMON_OPTIONS, parse } from '../args.js';
import { apiClient } from '../common.js';
import { callerIdentity, holdSettings, lockRefsFrom, LOCK_OPTIONS } from '../hold-args.js';
import { LockdError, isLockdError } from '../../util/errors.js';
import { EXIT } from '../exit-codes.js';
import { mdCode, reportToGithub } from '../github.js';

const OPTIONS = {
  ...COMMON_OPTIONS,
  ...LOCK_OPTIONS,
  holder: { type: 'string' },
  force: { type: 'boolean' },
  json: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
} as const;

export const RELEASE_HELP = `Usage: lockd release [HOLD_ID] [--force]
       lockd release --lock NAME... | --global NAME... [--root DIR] [--arch ARCH] [--global-dir DIR] [--force]

Release explicit holds taken with 'lockd acquire': the one named (default: $LOCKD_HOLD_ID), or every hold
covering the named locks.
Only the holder's own holds are released (the same CI job, user, or --holder / LOCKD_HOLDER); someone
else's hold is left in place with a note and exit 0, unless --force breaks it (logged with who did it;
in system mode only root and the lockd admin group may).
Under GitHub Actions (GITHUB_OUTPUT set) the step outputs status, lock_id and queue_wait_seconds are set.

Exit status: 0 (also when there was nothing of yours to release), 2 usage, 125 lockd failed.

Examples:
  lockd release                               # the hold in $LOCKD_HOLD_ID (after eval "$(lockd acquire …)")
  lockd release --root build --arch riscv64 --lock qemu
  lockd release --global board-7 --force      # break a hold left behind by a crashed CI job
`;

export async function releaseCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, OPTIONS, true);
  const settings = holdSettings(values);
  const locks = values.lock || values.global ? lockRefsFrom(values, settings) : [];
  if (positionals.length > 1) throw new LockdError('usage', 'lockd release takes one HOLD_ID');
  if (positionals.length === 1 && locks.length > 0) throw new LockdError('usage', 'lockd release takes a HOLD_ID or --lock/--global names, not both');
  // No argument: the hold this shell took (eval "$(lockd acquire …)" exported it).
  const envHold = process.env.LOCKD_HOLD_ID || null;
  const holdId = positionals[0] ?? (locks.length > 0 ? null : envHold);
  if (holdId === null && locks.length === 0) throw new LockdError('usage', 'lockd release needs a HOLD_ID, --lock/--global names, or LOCKD_HOLD_ID in the environment');
  const { holder } = callerIdentity(settings);
  const say = (line: string) => {
    if (!values.quiet) process.stderr.write(`lockd: ${line}\n`);
  };
  const what = holdId ?? locks.map((l) => l.name).join(', ');
  let reply;
  try {
    reply = await apiClient(values, settings).releaseRaw({ hold_id: holdId, locks, cwd: process.cwd(), holder, force: values.force ?? false });
  } catch (e) {
    if (isLockdError(e, 'daemon_not_running')) {
      say(`no lockd daemon is running; nothing to release`);
      reportToGithub({ status: 'not_held', lockId: holdId ?? '', queueWaitMs: 0, summary: `**lockd**: nothing to release for ${mdCode(what)} (no daemon)` });
      return EXIT.OK;
    }
    throw e;
  }
  if (values.json) process.stdout.write(`${JSON.stringify(reply)}\n`);
  for (const id of reply.hold_ids) say(`released ${id}`);
  if (reply.note) say(reply.note);
  const status = reply.released ? 'released' : reply.note?.includes('not yours') ? 'not_owner' : 'not_held';
  const lockId = reply.hold_ids.join(',') || holdId || '';
  const summary = reply.released
    ? `released ${reply.hold_ids.map(mdCode).join(', ')}${reply.note ? ` (${reply.note})` : ''}`
    : `did not release ${mdCode(what)}: ${reply.note ?? 'nothing to release'}`;
  reportToGithub({ status, lockId, queueWaitMs: 0, summary: `**lockd**: ${summary}` });
  return EXIT.OK;
}
