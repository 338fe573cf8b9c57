/**
 * `lockd pool list|show|add|remove|disable|enable NAME[/MEMBER]`: the daemon's pools (lockd.json "pools" with the
 * run-time edits laid over it, which the daemon keeps in <state-dir>/pools-state.json). Reading is for everyone;
 * in system mode only admins change pools.
 */
import { COMMON_OPTIONS, parse } from '../args.js';
import { apiClient } from '../common.js';
import type { PoolAdminAction, PoolInfo } from '../../protocol/messages.js';
import { LockdError } from '../../util/errors.js';
import { EXIT } from '../exit-codes.js';

const OPTIONS = { ...COMMON_OPTIONS, json: { type: 'boolean' }, reason: { type: 'string' }, prop: { type: 'string', multiple: true } } as const;
const ACTIONS: readonly PoolAdminAction[] = ['list', 'show', 'add', 'remove', 'disable', 'enable'];
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export const POOL_HELP = `Usage: lockd pool list [--json]
       lockd pool show NAME[/MEMBER] [--json]
       lockd pool add NAME[/MEMBER] [--prop KEY=VALUE]...
       lockd pool remove NAME[/MEMBER]
       lockd pool disable NAME[/MEMBER] [--reason TEXT]
       lockd pool enable NAME[/MEMBER]

Pools are named members with properties (a lab's boards, licence seats), defined in <state-dir>/lockd.json
("pools": {"boards": {"members": {"rpi4-a": {"arch": "arm64"}}}}) and taken with lockd run --pool NAME[:COUNT].
add/remove/disable/enable change them at run time; the daemon keeps those changes in <state-dir>/pools-state.json
(they survive a restart and win over lockd.json for the members they name). A disabled member is never granted
and shows its reason; a member removed or disabled while held stays with its holder until released. On a
system daemon everyone may list and show, only root and the admin group change pools.
A pool with "scope": "cluster" in lockd.json is shared by every daemon started with --cluster (docs/cluster.md,
"Pools"): a member is granted to one job at a time across all hosts, and add/remove/disable/enable of its members
change the one definition in etcd, in force on every host at once.
  --prop KEY=VALUE   a property of the member being added (repeatable)
  --reason TEXT      why the member is disabled (shown by list and show, and in the error of a run that asks for it)
  --json             the pools as JSON

Examples:
  lockd pool list
  lockd pool disable boards/rpi4-b --reason "USB hub broken, ticket LAB-42"
  lockd pool enable boards/rpi4-b
  lockd pool add boards/rpi5-c --prop arch=arm64 --prop serial=/dev/ttyUSB2
  lockd pool add seats && lockd pool add seats/labview-1
  lockd pool disable boards/rpi4-a --reason reflashing   # a cluster pool: disabled on every host
`;

export async function poolCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, OPTIONS, true);
  const [action, target, ...rest] = positionals;
  if (action === undefined || !(ACTIONS as readonly string[]).includes(action)) {
    throw new LockdError('usage', `lockd pool needs one of ${ACTIONS.join(', ')}${action === undefined ? '' : `, not ${JSON.stringify(action)}`} (lockd pool --help)`);
  }
  if (rest.length > 0) throw new LockdError('usage', `lockd pool ${action}: unexpected ${JSON.stringify(rest[0])}`);
  const act = action as PoolAdminAction;
  let pool: string | null = null;
  let member: string | null = null;
  if (target !== undefined) {
    const at = target.indexOf('/');
    pool = at < 0 ? target : target.slice(0, at);
    member = at < 0 ? null : target.slice(at + 1);
    if (!NAME.test(pool) || (member !== null && !NAME.test(member))) throw new LockdError('usage', `lockd pool ${act}: ${JSON.stringify(target)} is not NAME or NAME/MEMBER (letters, digits, . _ -)`);
  }
  if (act === 'list' && target !== undefined) throw new LockdError('usage', 'lockd pool list takes no NAME (use lockd pool show NAME)');
  if (act !== 'list' && pool === null) throw new LockdError('usage', `lockd pool ${act} needs NAME or NAME/MEMBER`);
  if (values.reason !== undefined && act !== 'disable') throw new LockdError('usage', '--reason goes with lockd pool disable');
  const props: Record<string, string> = {};
  for (const p of values.prop ?? []) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new LockdError('usage', `--prop must be KEY=VALUE, not ${JSON.stringify(p)}`);
    props[p.slice(0, eq)] = p.slice(eq + 1);
  }
  if (Object.keys(props).length > 0 && !(act === 'add' && member !== null)) throw new LockdError('usage', '--prop goes with lockd pool add NAME/MEMBER');
  const client = apiClient(values);
  const reply = await client.pool({ action: act, pool, member, properties: props, reason: values.reason ?? null });
  if (values.json) {
    process.stdout.write(`${JSON.stringify(reply.pools, null, 2)}\n`);
    return EXIT.OK;
  }
  if (reply.note) process.stderr.write(`lockd: ${reply.note}\n`);
  if (act === 'list' || act === 'show') process.stdout.write(renderPools(reply.pools));
  return EXIT.OK;
}

/** One line per member: pool/member, state, holder or reason, properties. */
export function renderPools(pools: PoolInfo[]): string {
  if (pools.length === 0) return 'no pools defined (add them to lockd.json "pools" or with lockd pool add NAME)\n';
  const lines: string[] = [];
  for (const p of pools) {
    if (p.config_error) lines.push(`warning: ${p.config_error} (the last good pools are in force)`);
    lines.push(`${p.name}${p.scope === 'cluster' ? ' (cluster)' : ''}: ${p.members.length} member(s), ${p.members.filter((m) => m.state === 'free').length} free`);
    for (const m of p.members) {
      const props = Object.entries(m.properties)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ');
      const who = m.holder ? ` by ${m.holder.kind} ${m.holder.id}${m.holder.host ? ` on ${m.holder.host}` : ''} (${m.holder.holder})` : '';
      const why = m.state === 'disabled' ? ` (${m.disabled_reason || 'no reason given'})` : '';
      const waiting = m.waiters > 0 ? `, ${m.waiters} waiting` : '';
      lines.push(`  ${p.name}/${m.name}  ${m.state}${why}${who}${waiting}${props ? `  ${props}` : ''}`);
    }
  }
  return `${lines.join('\n')}\n`;
}
