/**
 * Cluster pools (lockd.json `"scope": "cluster"`) against a real etcd: two daemons ("hosts") share one pool of
 * boards. Exclusion per member is checked from the children's own timestamps; FIFO from the order in which they
 * started; fencing tokens from LOCKD_FENCING_TOKEN_<pool>_<member> and the manifests; the holder of a member from
 * `etcdctl get`.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { clusterArgs, clusterTest, pauseEtcd, startEtcd, startHosts } from './helpers/etcd.js';
import { lockd, lockdSpawn, pidAlive, printedPaths, readJson, startDaemon, waitPidsGone } from './helpers/lockd.js';
import { detachedHolder, statusJson } from './helpers/operate.js';
import { kill9 } from './helpers/crash-kit.js';
import { BOARDS, heldMembers, hostsWithHolder, intervals, leaseLost, recorder, scratch, sharedMember, until } from './helpers/cluster-pools.js';

clusterTest('two hosts share a cluster pool: no member is held twice, every run gets one member, tokens grow per member', async (t) => {
  const e = await startEtcd(t);
  const hosts = await startHosts(t, e, 2, { ttl: 5, lockdJson: BOARDS });
  const file = join(scratch(t, 'cp'), 'log');
  writeFileSync(file, '');
  const runs = [];
  for (let round = 0; round < 3; round++) {
    for (let h = 0; h < hosts.length; h++) runs.push(lockd(hosts[h]!, ['run', '--pool', 'boards', '--wait', '60', '--', ...recorder(file, `h${h + 1}r${round}`)]));
  }
  const results = await Promise.all(runs);
  for (const r of results) t.is(r.code, 0, r.stderr);
  const list = intervals(file);
  t.is(list.length, 6);
  t.deepEqual(sharedMember(list), [], 'no member was held by two runs at once');
  for (const l of list) t.is(l.members.length, 1, `${l.who} got one member`);
  // Tokens of one member strictly increase, whichever host granted them.
  for (const m of ['rpi-a', 'nuc-b']) {
    const mine = list.filter((l) => l.members.includes(m));
    for (let i = 1; i < mine.length; i++) t.true(mine[i]!.token > mine[i - 1]!.token, `token of ${m} grows at ${mine[i]!.who}`);
  }
  // The manifest records the member with scope cluster, its etcd key and its token; members.json its properties.
  const manifest = readJson<{ locks: Array<{ name: string; scope: string; path: string; fencing_token: number }>; members: Record<string, unknown> }>(printedPaths(results[0]!.stderr).manifest!);
  const lock = manifest.locks[0]!;
  t.is(lock.scope, 'cluster');
  t.regex(lock.path, /^etcd:lockd\/\.pools\/boards\/m\/(rpi-a|nuc-b)$/);
  t.true(list.some((l) => l.token === lock.fencing_token));
  t.deepEqual(Object.keys(manifest.members), ['boards']);
  t.is(heldMembers(e) && Object.keys(heldMembers(e)).length, 0, 'every member key is gone once released');
});

clusterTest('COUNT and --where across hosts: the job gets the members by name, with their properties and per-member tokens', async (t) => {
  const e = await startEtcd(t);
  const [a, b] = await startHosts(t, e, 2, { ttl: 5, lockdJson: BOARDS });
  const both = await lockd(a!, [
    'run',
    '--pool',
    'boards:2',
    '--',
    'sh',
    '-c',
    'echo "$LOCKD_MEMBERS_boards $LOCKD_FENCING_TOKEN_boards_rpi_a $LOCKD_FENCING_TOKEN_boards_nuc_b"; cat "$LOCKD_MEMBERS_FILE"',
  ]);
  t.is(both.code, 0, both.stderr);
  const [line, ...json] = both.stdout.split('\n');
  const [names, tokA, tokB] = line!.split(' ');
  t.is(names, 'rpi-a,nuc-b');
  t.true(Number(tokA) > 0);
  t.is(tokA, tokB, 'one grant, one revision: both members carry the same token');
  t.deepEqual(JSON.parse(json.join('\n')), {
    boards: [
      { name: 'rpi-a', properties: { arch: 'arm64' } },
      { name: 'nuc-b', properties: { arch: 'x86_64' } },
    ],
  });
  const arm = await lockd(b!, ['run', '--pool', 'boards', '--where', 'arch=x86_64', '--', 'sh', '-c', 'echo "$LOCKD_MEMBERS_boards"']);
  t.is(arm.code, 0, arm.stderr);
  t.is(arm.stdout, 'nuc-b\n');
  // Bad input is one line at once, from the shared definition: a COUNT larger than the members, a --where nobody has.
  const tooMany = await lockd(b!, ['run', '--pool', 'boards:3', '--', 'true']);
  t.is(tooMany.code, 2, tooMany.stderr);
  t.regex(tooMany.stderr, /3 wanted.*only 2 can be granted: rpi-a, nuc-b/);
  const nobody = await lockd(b!, ['run', '--pool', 'boards', '--where', 'arch=riscv64', '--', 'true']);
  t.is(nobody.code, 2, nobody.stderr);
  t.regex(nobody.stderr, /no member of pool boards matches arch=riscv64/);
});

clusterTest('FIFO across hosts: a request for 2 is not overtaken by a later request for 1 from another host; etcdctl shows the holder', async (t) => {
  const { e, a, b, file, holder, holderPid: childPid, release } = await hostsWithHolder(t);
  // etcdctl users see who holds the board: host, run, and the job's pid once it started.
  const seen = await until('the member key to carry the child pid', () => {
    const h = heldMembers(e)['rpi-a'];
    return h && h.pid === childPid ? h : null;
  });
  t.is(seen.host, 'host-1');
  const two = lockdSpawn(t, b!, ['run', '--pool', 'boards:2', '--wait', '60', '--', ...recorder(file, 'two')]);
  await two.waitForStderr(/waiting/);
  const one = lockdSpawn(t, a!, ['run', '--pool', 'boards', '--wait', '60', '--', ...recorder(file, 'one')]);
  await one.waitForStderr(/waiting/);
  t.deepEqual(Object.keys(heldMembers(e)), ['rpi-a'], 'nuc-b is free but kept for the earlier request for 2');
  // lockd status on either host shows the held member with its host.
  const s = await lockd(b!, ['status', '--json']);
  const st = JSON.parse(s.stdout) as { locks: Array<{ name: string; scope: string; holders: Array<{ host: string }> }> };
  const member = st.locks.find((l) => l.name === 'boards/rpi-a');
  t.is(member?.scope, 'cluster', s.stdout);
  t.is(member?.holders[0]?.host, 'host-1');
  release();
  for (const p of [holder, two, one]) t.is((await p.done).code, 0);
  const list = intervals(file);
  t.deepEqual(
    list.map((l) => l.who),
    ['two', 'one'],
  );
  t.deepEqual(list[0]!.members, ['rpi-a', 'nuc-b']);
  t.deepEqual(sharedMember(list), []);
});

clusterTest('SIGKILL of a host: its member passes to the other host only after its lease, and its job is killed first', async (t) => {
  const e = await startEtcd(t);
  const [a, b] = await startHosts(t, e, 2, { ttl: 2, lockdJson: BOARDS });
  const dir = scratch(t, 'cp');
  const beats = join(dir, 'beats');
  const holder = lockdSpawn(t, a!, ['run', '--pool', 'boards', '--member', 'nuc-b', '--', 'sh', '-c', `echo "started $$"; while :; do date +%s%N >> ${beats}; sleep 0.05; done`]);
  await holder.waitForStdout(/started \d+/);
  const childPid = Number(/started (\d+)/.exec(holder.stdout())![1]);
  const bStart = join(dir, 'b-start');
  const waiter = lockdSpawn(t, b!, ['run', '--pool', 'boards', '--member', 'nuc-b', '--wait', '60', '--', 'sh', '-c', `date +%s%N > ${bStart}`]);
  await waiter.waitForStderr(/waiting/);
  const killedAt = Date.now();
  process.kill(a!.pid!, 'SIGKILL');
  const w = await waiter.done;
  t.is(w.code, 0, w.stderr);
  t.true(existsSync(bStart));
  const startedMs = Number(BigInt(readFileSync(bStart, 'utf8').trim()) / 1_000_000n);
  t.true(startedMs - killedAt >= 300, 'not released at once: the member went with the lease');
  t.deepEqual(await waitPidsGone([childPid], 10_000), [], 'the dead host’s job was killed by the watchdog');
  const lines = readFileSync(beats, 'utf8').trim().split('\n');
  t.true(Number(BigInt(lines[lines.length - 1]!) / 1_000_000n) < startedMs, "the dead host's job had stopped before the other host's job started");
  t.false(pidAlive(childPid));
});

clusterTest('etcd paused: a job holding only a cluster pool member is stopped before the lease can expire (lock_lost, 125)', async (t) => {
  const e = await startEtcd(t);
  const [a] = await startHosts(t, e, 1, { ttl: 2, lockdJson: BOARDS });
  const holder = lockdSpawn(t, a!, ['run', '--pool', 'boards', '--member', 'rpi-a', '--', 'sh', '-c', 'echo started; sleep 30']);
  await holder.waitForStdout('started');
  pauseEtcd(t, e);
  const r = await holder.done;
  t.is(r.code, 125, r.stderr);
  const result = readJson<{ status: string; reason: string; message: string; end_time_utc: string }>(printedPaths(r.stderr).result!);
  t.deepEqual([result.status, result.reason], ['infra_fail', 'lock_lost']);
  t.regex(result.message, /boards\/rpi-a lost/);
  // The daemon's own proof of how long the server keeps the lease: the job was gone before it.
  const lost = await leaseLost(a!.stateDir);
  t.true(Date.parse(result.end_time_utc) < lost.valid_until, 'the job ended before the lease could expire');
  e.resume();
  const again = await lockd(a!, ['run', '--pool', 'boards', '--member', 'rpi-a', '--wait', '30', '--', 'echo', 'again']);
  t.is(again.code, 0, again.stderr);
  t.is(again.stdout, 'again\n');
});

clusterTest('kill -9 and restart of a host with a member held: the member goes to the other host, the restarted daemon records the run and holds nothing', async (t) => {
  const e = await startEtcd(t);
  const [a, b] = await startHosts(t, e, 2, { ttl: 2, lockdJson: BOARDS });
  const det = await detachedHolder(a!, 'det', ['--pool', 'boards', '--member', 'rpi-a']);
  t.like(heldMembers(e)['rpi-a'], { host: 'host-1', run: det.runId });
  const waiter = lockdSpawn(t, b!, ['run', '--pool', 'boards', '--member', 'rpi-a', '--wait', '60', '--', 'sh', '-c', 'echo "$LOCKD_MEMBERS_boards"']);
  await waiter.waitForStderr(/waiting/);
  await kill9(a!);
  const w = await waiter.done;
  t.is(w.code, 0, w.stderr);
  t.is(w.stdout, 'rpi-a\n');
  const a2 = await startDaemon(t, { dir: a!.dir, args: [...clusterArgs(e, { ttl: 2 }), '--cluster-host', 'host-1'] });
  const resultPath = join(a2.stateDir, 'runs', det.runId, 'result.json');
  await until('the restarted daemon to record the run', () => existsSync(resultPath));
  const result = readJson<{ status: string; reason: string; message: string; locks: Array<{ name: string; scope: string; path: string }> }>(resultPath);
  t.deepEqual([result.status, result.reason], ['infra_fail', 'daemon_lost']);
  // The journal kept the run's pid and its member (a cluster key): the record says it ran, and what it held.
  t.regex(result.message, /its process had already exited/);
  t.like(result.locks[0], { name: 'boards/rpi-a', scope: 'cluster', path: 'etcd:lockd/.pools/boards/m/rpi-a' });
  const st = await statusJson(a2);
  t.falsy(
    st.locks.find((l) => l.name === 'boards/rpi-a' && l.holders.length > 0),
    'no phantom holder of the member',
  );
  const again = await lockd(a2, ['run', '--wait', '30', '--pool', 'boards', '--member', 'rpi-a', '--', 'sh', '-c', 'echo "$LOCKD_MEMBERS_boards"']);
  t.is(again.code, 0, again.stderr);
  t.is(again.stdout, 'rpi-a\n');
});
