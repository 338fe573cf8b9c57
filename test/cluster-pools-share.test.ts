/**
 * Cluster pools against a real etcd, two daemons ("hosts"): the shared definition (`lockd pool disable` on one host
 * is in force on the other, and in etcd), priorities across hosts, and --supersede across hosts.
 */
import test from 'ava';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { clusterTest, startEtcd, startHosts } from './helpers/etcd.js';
import { lockd, lockdSpawn, printedPaths, readJson, startDaemon } from './helpers/lockd.js';
import { BOARDS, heldMembers, hostsWithHolder, intervals, recorder, scratch, until } from './helpers/cluster-pools.js';
import type { PoolInfo } from '../src/protocol/messages.js';

async function memberOn(d: Parameters<typeof lockd>[0], member: string): Promise<PoolInfo['members'][number] | undefined> {
  const r = await lockd(d, ['pool', 'show', 'boards', '--json']);
  if (r.code !== 0) throw new Error(`lockd pool show failed (${r.code}): ${r.stderr}`);
  return (JSON.parse(r.stdout) as PoolInfo[])[0]?.members.find((m) => m.name === member);
}

/** Bounded: until `lockd pool show` on d says member is in state. */
async function untilState(d: Parameters<typeof lockd>[0], member: string, state: string): Promise<PoolInfo['members'][number]> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const m = await memberOn(d, member);
    if (m?.state === state) return m;
    if (Date.now() > deadline) throw new Error(`${member} never became ${state}: ${JSON.stringify(m)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

clusterTest('the shared definition: a member disabled on one host is never granted on the other; enabled, it is; etcdctl shows it', async (t) => {
  const e = await startEtcd(t);
  const [a, b] = await startHosts(t, e, 2, { ttl: 5, lockdJson: BOARDS });
  const off = await lockd(a!, ['pool', 'disable', 'boards/rpi-a', '--reason', 'reflashing, LAB-7']);
  t.is(off.code, 0, off.stderr);
  t.regex(off.stderr, /boards\/rpi-a disabled on every host of the cluster/);
  // In etcd, for etcdctl users, and in force on the other host.
  const def = JSON.parse(e.ctl(['get', '--print-value-only', 'lockd/.pools/boards/def']).stdout) as { disabled: Record<string, string> };
  t.deepEqual(def.disabled, { 'rpi-a': 'reflashing, LAB-7' });
  const shown = await untilState(b!, 'rpi-a', 'disabled');
  t.is(shown.disabled_reason, 'reflashing, LAB-7');
  // On host 2: a request that needs the disabled member fails at once naming why; any free board is the other one.
  const needs = await lockd(b!, ['run', '--pool', 'boards', '--member', 'rpi-a', '--', 'true']);
  t.is(needs.code, 2, needs.stderr);
  t.regex(needs.stderr, /disabled: rpi-a: reflashing, LAB-7/);
  const any = await lockd(b!, ['run', '--pool', 'boards', '--', 'sh', '-c', 'echo "$LOCKD_MEMBERS_boards"']);
  t.is(any.stdout, 'nuc-b\n', any.stderr);
  const two = await lockd(b!, ['run', '--pool', 'boards:2', '--wait', '0', '--', 'true']);
  t.is(two.code, 2, two.stderr);
  // Enabled on host 2: host 1 grants it again.
  t.is((await lockd(b!, ['pool', 'enable', 'boards/rpi-a'])).code, 0);
  await untilState(a!, 'rpi-a', 'free');
  const back = await lockd(a!, ['run', '--pool', 'boards', '--member', 'rpi-a', '--', 'sh', '-c', 'echo "$LOCKD_MEMBERS_boards"']);
  t.is(back.stdout, 'rpi-a\n', back.stderr);
});

test('a daemon without --cluster refuses a cluster pool with one line, at once', async (t) => {
  const dir = scratch(t, 'cp');
  mkdirSync(join(dir, 'state'), { recursive: true });
  writeFileSync(join(dir, 'state', 'lockd.json'), JSON.stringify(BOARDS));
  const d = await startDaemon(t, { dir });
  const r = await lockd(d, ['run', '--pool', 'boards', '--', 'true']);
  t.is(r.code, 2, r.stderr);
  t.regex(r.stderr, /pool boards is shared by the cluster .* this daemon runs without --cluster/);
});

clusterTest('priorities across hosts: a later request of higher priority from the other host gets the member first', async (t) => {
  const { a, b, file, holder, release } = await hostsWithHolder(t);
  const low = lockdSpawn(t, b!, ['run', '--pool', 'boards', '--member', 'rpi-a', '--wait', '60', '--', ...recorder(file, 'low')]);
  await low.waitForStderr(/waiting/);
  const high = lockdSpawn(t, a!, ['run', '--pool', 'boards', '--member', 'rpi-a', '--priority', '5', '--wait', '60', '--', ...recorder(file, 'high')]);
  await high.waitForStderr(/waiting/);
  release();
  for (const p of [holder, low, high]) t.is((await p.done).code, 0);
  t.deepEqual(
    intervals(file).map((l) => l.who),
    ['high', 'low'],
  );
});

clusterTest('--supersede across hosts: a newer run ends the older queued one on the other host (77, superseded, names it); --cancel-running stops the running one', async (t) => {
  const { e, a, b, holder } = await hostsWithHolder(t, 'rpi-a', ['--supersede', 'org/repo#main']);
  const older = lockdSpawn(t, a!, ['run', '--pool', 'boards', '--member', 'rpi-a', '--supersede', 'org/repo#main', '--wait', '60', '--', 'true']);
  await older.waitForStderr(/waiting/);
  const newer = lockdSpawn(t, b!, ['run', '--pool', 'boards', '--member', 'rpi-a', '--supersede', 'org/repo#main', '--wait', '60', '--', 'sh', '-c', 'echo newer ran']);
  await newer.waitForStderr(/waiting/);
  const o = await older.done;
  t.is(o.code, 77, o.stderr);
  const result = readJson<{ reason: string; superseded_by: string; message: string }>(printedPaths(o.stderr).result!);
  t.is(result.reason, 'superseded');
  t.regex(result.message, /superseded by run \S+ on host-2/);
  t.truthy(result.superseded_by);
  t.is(holder.proc.exitCode, null, 'without --cancel-running the running holder goes on');
  // --cancel-running from host 2: the running holder on host 1 is stopped too (and the queued newer run on host 2,
  // the same uid there, ends as on one host).
  const canceller = lockdSpawn(t, b!, ['run', '--pool', 'boards', '--member', 'rpi-a', '--supersede', 'org/repo#main', '--cancel-running', '--wait', '60', '--', 'sh', '-c', 'echo canceller ran']);
  const h = await holder.done;
  t.not(h.code, 0, h.stderr);
  const hres = readJson<{ reason: string; superseded_by?: string }>(printedPaths(h.stderr).result!);
  t.is(hres.reason, 'superseded', JSON.stringify(hres));
  const c = await canceller.done;
  t.is(c.code, 0, c.stderr);
  t.is(c.stdout, 'canceller ran\n');
  const n = await newer.done;
  t.is(n.code, 77, n.stderr);
  t.is(readJson<{ status: string }>(printedPaths(c.stderr).result!).status, 'pass');
  await until('every member key to be gone', () => Object.keys(heldMembers(e)).length === 0);
});

clusterTest('a hold reserves a cluster pool member for every host: busy elsewhere (75) until released', async (t) => {
  const e = await startEtcd(t);
  const [a, b] = await startHosts(t, e, 2, { ttl: 5, lockdJson: BOARDS });
  const hold = await lockd(a!, ['acquire', '--pool', 'boards', '--member', 'rpi-a', '--ttl', 'none']);
  t.is(hold.code, 0, hold.stderr);
  const [idLine, membersLine] = hold.stdout.trim().split('\n');
  const holdId = idLine!.replace('LOCKD_HOLD_ID=', '');
  t.is(membersLine, 'LOCKD_MEMBERS_boards=rpi-a');
  t.like(heldMembers(e)['rpi-a'], { host: 'host-1', run: holdId });
  // lockd pool show on the other host names the holder and its host.
  t.like(await memberOn(b!, 'rpi-a'), { state: 'held', holder: { id: holdId, host: 'host-1' } });
  t.like(await memberOn(b!, 'nuc-b'), { state: 'free', holder: null });
  const busy = await lockd(b!, ['run', '--wait', '0', '--pool', 'boards', '--member', 'rpi-a', '--', 'true']);
  t.is(busy.code, 75, busy.stderr);
  t.regex(busy.stderr, new RegExp(`${holdId} on host-1`));
  const late = await lockd(b!, ['run', '--wait', '1', '--pool', 'boards', '--member', 'rpi-a', '--', 'true']);
  t.is(late.code, 75, late.stderr);
  t.regex(late.stderr, new RegExp(`pool boards is held by hold ${holdId} on host-1`));
  t.is((await lockd(a!, ['release', holdId])).code, 0);
  await until('the member key to go', () => !heldMembers(e)['rpi-a']);
  const free = await lockd(b!, ['run', '--wait', '0', '--pool', 'boards', '--member', 'rpi-a', '--', 'sh', '-c', 'echo "$LOCKD_MEMBERS_boards"']);
  t.is(free.stdout, 'rpi-a\n', free.stderr);
});

clusterTest('a cluster lock and a cluster pool member in one request, from two hosts: all or nothing, one at a time', async (t) => {
  const e = await startEtcd(t);
  const hosts = await startHosts(t, e, 2, { ttl: 5, lockdJson: BOARDS });
  const file = join(scratch(t, 'cp'), 'log');
  writeFileSync(file, '');
  const runs = [];
  for (let round = 0; round < 2; round++) {
    for (let h = 0; h < 2; h++) {
      // Half ask the lock and the board, half the board alone: the board is never shared, whatever the mix.
      const lock = (round + h) % 2 === 0 ? ['--global', 'flash-station'] : [];
      runs.push(lockd(hosts[h]!, ['run', ...lock, '--pool', 'boards', '--member', 'rpi-a', '--wait', '60', '--', ...recorder(file, `h${h + 1}r${round}`)]));
    }
  }
  for (const r of await Promise.all(runs)) t.is(r.code, 0, r.stderr);
  const list = intervals(file);
  t.is(list.length, 4);
  for (let i = 1; i < list.length; i++) t.true(list[i]!.start >= list[i - 1]!.end, `${list[i]!.who} started after ${list[i - 1]!.who} ended`);
  t.deepEqual(Object.keys(heldMembers(e)), []);
  t.is(e.ctl(['get', '--prefix', '--keys-only', 'lockd/flash-station/']).stdout.trim(), '', 'no lock key left');
});

clusterTest('a member is not kept idle while its request waits for a busy local lock: another host gets it meanwhile', async (t) => {
  const e = await startEtcd(t);
  const [a, b] = await startHosts(t, e, 2, { ttl: 5, lockdJson: BOARDS });
  const dir = scratch(t, 'cp');
  const go = join(dir, 'go');
  const local = lockdSpawn(t, a!, ['run', '--global', 'scratch', '--host-only', '--', 'sh', '-c', `echo holding; while [ ! -e ${go} ]; do sleep 0.05; done`]);
  await local.waitForStdout('holding');
  const mixed = lockdSpawn(t, a!, ['run', '--global', 'scratch', '--host-only', '--pool', 'boards', '--member', 'rpi-a', '--wait', '60', '--', 'sh', '-c', 'echo "mixed $LOCKD_MEMBERS_boards"']);
  await mixed.waitForStderr(/waiting/);
  // The other host's request for the same board is granted while the mixed one waits for its local lock.
  const other = await lockd(b!, ['run', '--pool', 'boards', '--member', 'rpi-a', '--wait', '30', '--', 'sh', '-c', 'echo "other $LOCKD_MEMBERS_boards"']);
  t.is(other.code, 0, other.stderr);
  t.is(other.stdout, 'other rpi-a\n');
  t.is(mixed.proc.exitCode, null, 'the mixed request still waits');
  writeFileSync(go, '');
  const m = await mixed.done;
  t.is(m.code, 0, m.stderr);
  t.is(m.stdout, 'mixed rpi-a\n');
  t.is((await local.done).code, 0);
});

clusterTest('/metrics on every host counts a cluster member held on another host as held', async (t) => {
  const { a, b, holder, release } = await hostsWithHolder(t);
  const heldOn = (text: string) => /^lockd_pool_members\{pool="boards",state="held"\} (\d+)$/m.exec(text)?.[1];
  const mb = await lockd(b!, ['metrics']);
  t.is(mb.code, 0, mb.stderr);
  t.is(heldOn(mb.stdout), '1', 'host 2 sees the member host 1 holds');
  t.is(heldOn((await lockd(a!, ['metrics'])).stdout), '1');
  release();
  t.is((await holder.done).code, 0);
});
