/** `lockd inspect LOCK`: is this one lock held? Exit 0 held, 1 free — for scripts and Make conditions. */
import { resolve } from 'node:path';
import { COMMON_OPTIONS, parse } from '../args.js';
import { apiClient } from '../common.js';
import { lockRefs } from '../locks-arg.js';
import { Settings } from '../settings.js';
import { LockdError, isLockdError } from '../../util/errors.js';
import type { LockStatus } from '../../protocol/messages.js';
import { renderLock } from '../render/status.js';
import { styleFor } from '../render/style.js';

const OPTIONS = {
  ...COMMON_OPTIONS,
  root: { type: 'string' },
  arch: { type: 'string' },
  global: { type: 'boolean' },
  'global-dir': { type: 'string' },
  json: { type: 'boolean' },
  pool: { type: 'string' },
} as const;

export const INSPECT_HELP = `Usage: lockd inspect LOCK [--root DIR] [--arch ARCH | --global [--global-dir DIR]] [--json]
       lockd inspect --pool NAME[/MEMBER] [--json]

Show who holds LOCK and who waits for it. LOCK is a local lock (<root>[/<arch>]/.locks/LOCK.lock) unless
--global is given. Never starts a daemon; with none running nothing is held.
  --json   {"key", "held", "daemon", "lock": <as in lockd status --json, or null>}
  --pool NAME/MEMBER  that pool member instead: 0 held, 1 not held (free or disabled)
  --pool NAME         the whole pool: 0 when no member can be granted now (all held or disabled), 1 when one is free

Exit status: 0 held, 1 free (also when no daemon runs), 2 usage, 125 lockd failed.

Examples:
  lockd inspect --root build --arch riscv64 qemu
  lockd inspect --global deps-fetch || make deps
  lockd inspect --pool boards/rpi4-a && echo "rpi4-a is in use"
`;

export async function inspectCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, OPTIONS, true);
  if (values.pool !== undefined) return await inspectPool(values, positionals);
  if (positionals.length !== 1) throw new LockdError('usage', 'lockd inspect needs exactly one LOCK');
  if (values.global && values.arch !== undefined) throw new LockdError('usage', '--arch names a local lock; it cannot be combined with --global');
  const settings = new Settings({ socket: values.socket, state_dir: values['state-dir'], build_root: values.root, global_dir: values['global-dir'] });
  const name = positionals[0]!;
  const [ref] = lockRefs({
    locks: values.global ? [] : [name],
    globals: values.global ? [name] : [],
    root: resolve(settings.value('build_root')!),
    arch: values.arch,
    globalDir: settings.value('global_dir'),
  });
  let key: string | null = null;
  let lock: LockStatus | null = null;
  let daemon = true;
  try {
    const reply = await apiClient(values, settings, { autostart: false }).inspect(ref!);
    key = reply.key;
    lock = reply.lock;
  } catch (e) {
    if (!isLockdError(e, 'daemon_not_running')) throw e;
    daemon = false;
  }
  const held = lock !== null && lock.holders.length > 0;
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ key, held, daemon, lock })}\n`);
  } else if (!daemon) {
    process.stdout.write(`${name}: free (no lockd daemon is running; nothing is held)\n`);
  } else if (lock === null) {
    process.stdout.write(`${name}: free  ${key}\n`);
  } else {
    process.stdout.write(renderLock(lock, styleFor(process.stdout)));
  }
  return held ? 0 : 1;
}

/** `lockd inspect --pool NAME[/MEMBER]`: the pool's members as `lockd pool show` has them, as an exit status. */
async function inspectPool(values: { pool?: string; json?: boolean; socket?: string; 'state-dir'?: string }, positionals: string[]): Promise<number> {
  if (positionals.length > 0) throw new LockdError('usage', 'lockd inspect --pool NAME[/MEMBER] takes no LOCK');
  const target = values.pool!;
  const at = target.indexOf('/');
  const pool = at < 0 ? target : target.slice(0, at);
  const member = at < 0 ? null : target.slice(at + 1);
  const reply = await apiClient(values, undefined, { autostart: false }).pool({ action: 'show', pool, member, properties: {}, reason: null });
  const members = reply.pools[0]?.members ?? [];
  const busy = member !== null ? members.some((m) => m.holder !== null) : members.every((m) => m.state !== 'free');
  if (values.json) process.stdout.write(`${JSON.stringify({ pool, member, held: busy, members })}\n`);
  else {
    const { renderPools } = await import('./pool.js');
    process.stdout.write(renderPools(reply.pools));
  }
  return busy ? 0 : 1;
}
