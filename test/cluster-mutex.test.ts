/**
 * Cluster locks across hosts, against a real etcd: three daemons (separate state dirs and sockets, each a "host")
 * contend for `--global` locks. Mutual exclusion is checked from the children's own timestamps; fencing tokens
 * from LOCKD_FENCING_TOKEN and the manifests.
 */
import type { ExecutionContext } from 'ava';
import { mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { clusterTest, startEtcd, startHosts } from './helpers/etcd.js';
import { lockd, lockdSpawn, printedPaths, readJson, startDaemon, tempDir } from './helpers/lockd.js';
import { buildRunRequest } from '../src/cli/commands/run.js';
import { connectDaemon } from '../src/client/connection.js';

/** A temp dir removed when the test ends. */
function scratch(t: ExecutionContext, prefix: string): string {
  const dir = tempDir(prefix);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface Interval {
  who: string;
  start: bigint;
  end: bigint;
  token: number;
  slot: string;
}

/** A child that records `<who> start <ns> <token> <slot>` and `<who> end <ns>` around a short sleep. */
function recorder(file: string, who: string, sleep = '0.3', slotVar = 'LOCKD_SLOT_x'): string[] {
  return ['sh', '-c', `echo "${who} start $(date +%s%N) $LOCKD_FENCING_TOKEN \${${slotVar}:--}" >> ${file}; sleep ${sleep}; echo "${who} end $(date +%s%N)" >> ${file}`];
}

function intervals(file: string): Interval[] {
  const starts = new Map<string, { start: bigint; token: number; slot: string }>();
  const out: Interval[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n').filter(Boolean)) {
    const [who, what, ns, token, slot] = line.split(' ');
    if (what === 'start') starts.set(who!, { start: BigInt(ns!), token: Number(token), slot: slot ?? '-' });
    else {
      const s = starts.get(who!)!;
      out.push({ who: who!, start: s.start, end: BigInt(ns!), token: s.token, slot: s.slot });
    }
  }
  return out.sort((a, b) => (a.start < b.start ? -1 : 1));
}

function overlaps(list: Interval[]): Array<[string, string]> {
  const bad: Array<[string, string]> = [];
  for (let i = 0; i < list.length; i++) for (let j = i + 1; j < list.length; j++) if (list[j]!.start < list[i]!.end) bad.push([list[i]!.who, list[j]!.who]);
  return bad;
}

clusterTest('three hosts: an exclusive cluster lock is held by one run at a time, tokens grow across hosts', async (t) => {
  const e = await startEtcd(t);
  const hosts = await startHosts(t, e, 3, { ttl: 5 });
  const dir = scratch(t, 'cl');
  const file = join(dir, 'log');
  writeFileSync(file, '');
  const runs = [];
  for (let round = 0; round < 2; round++) {
    for (let h = 0; h < hosts.length; h++) {
      runs.push(lockd(hosts[h]!, ['run', '--global', 'x', '--wait', '60', '--', ...recorder(file, `h${h + 1}r${round}`, '0.2')]));
    }
  }
  const results = await Promise.all(runs);
  for (const r of results) t.is(r.code, 0, r.stderr);
  const list = intervals(file);
  t.is(list.length, 6);
  t.deepEqual(overlaps(list), [], 'no two runs held the lock at once');
  // Fencing: in grant order the tokens strictly increase, whichever host granted them.
  for (let i = 1; i < list.length; i++) t.true(list[i]!.token > list[i - 1]!.token, `token of ${list[i]!.who} grows`);
  // Every host got its turn.
  t.deepEqual([...new Set(list.map((l) => l.who.slice(0, 2)))].sort(), ['h1', 'h2', 'h3']);
  // The manifest records the token the child saw, with scope cluster and the etcd key as its path.
  const manifest = readJson<{ locks: Array<{ name: string; scope: string; path: string; fencing_token: number }> }>(printedPaths(results[0]!.stderr).manifest!);
  t.is(manifest.locks[0]!.scope, 'cluster');
  t.is(manifest.locks[0]!.path, 'etcd:lockd/x');
  t.true(list.some((l) => l.token === manifest.locks[0]!.fencing_token));
});

clusterTest('status on any host shows the holder and the waiters of every host; --wait 0 fails at once across hosts', async (t) => {
  const e = await startEtcd(t);
  const [a, b, c] = await startHosts(t, e, 3, { ttl: 5 });
  const holder = lockdSpawn(t, a!, ['run', '--global', 'board', '--', 'sh', '-c', 'echo holding; sleep 30']);
  await holder.waitForStdout('holding');
  const waiter = lockdSpawn(t, b!, ['run', '--global', 'board', '--wait', '60', '--', 'true']);
  await waiter.waitForStderr(/waiting for board/);
  const s = await lockd(c!, ['status', '--json']);
  t.is(s.code, 0, s.stderr);
  const snap = JSON.parse(s.stdout) as {
    locks: Array<{ name: string; scope: string; holders: Array<{ host: string; id: string; since_utc: string }>; waiters: Array<{ host: string; position: number }> }>;
    cluster: { host: string; healthy: boolean };
  };
  const lock = snap.locks.find((l) => l.name === 'board' && l.scope === 'cluster');
  t.truthy(lock, s.stdout);
  t.is(lock!.holders.length, 1);
  t.is(lock!.holders[0]!.host, 'host-1');
  t.truthy(lock!.holders[0]!.since_utc);
  t.deepEqual(
    lock!.waiters.map((w) => [w.host, w.position]),
    [['host-2', 1]],
  );
  t.is(snap.cluster.host, 'host-3');
  t.true(snap.cluster.healthy);
  // The human table says which host holds and which waits (and the header, which host this is).
  const human = await lockd(c!, ['status']);
  t.is(human.code, 0, human.stderr);
  const holderId = lock!.holders[0]!.id;
  t.regex(human.stdout, /^cluster: this host host-3, etcd /m);
  t.regex(human.stdout, /^ *HOST +HOLDER +ID +PID/m, human.stdout);
  t.regex(human.stdout, new RegExp(`^ *host-1 +\\S.* run ${holderId} `, 'm'), human.stdout);
  t.regex(human.stdout, /^ *# +HOST +WAITING +ID/m, human.stdout);
  t.regex(human.stdout, new RegExp(`^ *1 +host-2 +\\S.* run \\S+ .*run ${holderId} on host-1`, 'm'), human.stdout);
  // inspect renders the same table for one lock.
  const one = await lockd(b!, ['inspect', '--global', 'board']);
  t.is(one.code, 0, one.stderr);
  t.regex(one.stdout, new RegExp(`^ *host-1 +\\S.* run ${holderId} `, 'm'), one.stdout);
  // --wait 0 on a third host: busy at once, exit 75, naming the holder's host.
  const busy = await lockd(c!, ['run', '--global', 'board', '--wait', '0', '--', 'true']);
  t.is(busy.code, 75);
  t.regex(busy.stderr, /lock_busy: .*host-1/);
  holder.proc.kill('SIGINT');
  const w = await waiter.done;
  t.is(w.code, 0, w.stderr);
});

clusterTest('shared and slots semantics hold across hosts', async (t) => {
  const e = await startEtcd(t);
  const [a, b, c] = await startHosts(t, e, 3, { ttl: 5 });
  const dir = scratch(t, 'cl');
  const shared = join(dir, 'shared');
  writeFileSync(shared, '');
  // Two shared holders on two hosts overlap; an exclusive one on the third waits for both.
  const gate = join(dir, 'go');
  const holdUntilGate = (who: string) => [
    'sh',
    '-c',
    `echo "${who} start $(date +%s%N) 0 -" >> ${shared}; echo started; while [ ! -e ${gate} ]; do sleep 0.02; done; echo "${who} end $(date +%s%N)" >> ${shared}`,
  ];
  const s1 = lockdSpawn(t, a!, ['run', '--global', 'x:shared', '--', ...holdUntilGate('s1')]);
  const s2 = lockdSpawn(t, b!, ['run', '--global', 'x:shared', '--wait', '30', '--', ...holdUntilGate('s2')]);
  await Promise.all([s1.waitForStdout('started'), s2.waitForStdout('started')]);
  const ex = lockdSpawn(t, c!, ['run', '--global', 'x', '--wait', '60', '--', ...recorder(shared, 'ex', '0.1')]);
  await ex.waitForStderr(/waiting for x/);
  writeFileSync(gate, '');
  const [r1, r2, r3] = await Promise.all([s1.done, s2.done, ex.done]);
  t.is(r1.code, 0, r1.stderr);
  t.is(r2.code, 0, r2.stderr);
  t.is(r3.code, 0, r3.stderr);
  const sh = intervals(shared);
  const [i1, i2, i3] = ['s1', 's2', 'ex'].map((w) => sh.find((x) => x.who === w)!);
  t.true(i1!.start < i2!.end && i2!.start < i1!.end, 'the two shared holders overlapped');
  t.true(i3!.start >= i1!.end && i3!.start >= i2!.end, 'the exclusive one waited for both');

  // slots=2 over three hosts: at most two at once, distinct slot indices among concurrent holders.
  const slots = join(dir, 'slots');
  writeFileSync(slots, '');
  const rs = await Promise.all([a, b, c, a].map((h, i) => lockd(h!, ['run', '--global', 'y:slots=2', '--wait', '60', '--', ...recorder(slots, `k${i}`, '0.4', 'LOCKD_SLOT_y')])));
  for (const r of rs) t.is(r.code, 0, r.stderr);
  const sl = intervals(slots);
  t.is(sl.length, 4);
  for (const x of sl) {
    // At the moment x started, at most two runs (x included) held a slot.
    const atStart = sl.filter((y) => y.start <= x.start && x.start < y.end);
    t.true(atStart.length <= 2, `at most two holders when ${x.who} started`);
    const concurrent = sl.filter((y) => y !== x && y.start < x.end && x.start < y.end);
    for (const y of concurrent) t.not(y.slot, x.slot, `${x.who} and ${y.who} had different slots`);
    t.true(x.slot === '0' || x.slot === '1');
  }
});

clusterTest('a mix of local and cluster locks never holds the cluster lock while waiting for the local one', async (t) => {
  const e = await startEtcd(t);
  const [a, b] = await startHosts(t, e, 2, { ttl: 5 });
  const root = scratch(t, 'cr');
  // Host 1: a run holds the local lock L.
  const local = lockdSpawn(t, a!, ['run', '--root', root, '--lock', 'L', '--', 'sh', '-c', 'echo local-held; sleep 30']);
  await local.waitForStdout('local-held');
  // Host 1: a run wanting cluster lock X and local lock L must wait, and must not keep X meanwhile.
  const mixed = lockdSpawn(t, a!, ['run', '--root', root, '--lock', 'L', '--global', 'X', '--wait', '60', '--', 'sh', '-c', 'echo mixed-ran']);
  await mixed.waitForStderr(/waiting for/);
  // Host 2 takes X right away: the mixed run gave it back while L was busy.
  const other = await lockd(b!, ['run', '--global', 'X', '--wait', '10', '--', 'sh', '-c', 'echo other-ran']);
  t.is(other.code, 0, other.stderr);
  t.regex(other.stdout, /other-ran/);
  // Once L is free the mixed run gets both.
  local.proc.kill('SIGINT');
  const m = await mixed.done;
  t.is(m.code, 0, m.stderr);
  t.regex(m.stdout, /mixed-ran/);
  // --host-only keeps a --global lock per host even with a cluster: both hosts hold "H" at once.
  const h1 = lockdSpawn(t, a!, ['run', '--global', 'H', '--host-only', '--', 'sh', '-c', 'echo h1; sleep 30']);
  await h1.waitForStdout('h1');
  const h2 = await lockd(b!, ['run', '--global', 'H', '--host-only', '--wait', '0', '--', 'echo', 'h2']);
  t.is(h2.code, 0, h2.stderr);
  h1.proc.kill('SIGINT');
  await h1.done;
});

clusterTest('holds and nested runs: an explicit hold of a cluster lock excludes other hosts; a run inside a run re-enters', async (t) => {
  const e = await startEtcd(t);
  const [a, b] = await startHosts(t, e, 2, { ttl: 5 });
  // lockd acquire on host 1 holds the cluster lock with no child at all.
  const acq = await lockd(a!, ['acquire', '--global', 'res', '--wait', '10']);
  t.is(acq.code, 0, acq.stderr);
  const holdId = /LOCKD_HOLD_ID=(\S+)/.exec(acq.stdout)![1]!;
  const busy = await lockd(b!, ['run', '--global', 'res', '--wait', '0', '--', 'true']);
  t.is(busy.code, 75, busy.stderr);
  t.regex(busy.stderr, new RegExp(`hold ${holdId} on host-1`));
  const inspect = await lockd(b!, ['inspect', '--global', 'res', '--json']);
  t.is(inspect.code, 0, inspect.stderr);
  t.regex(inspect.stdout, new RegExp(holdId));
  const waiter = lockdSpawn(t, b!, ['run', '--global', 'res', '--wait', '60', '--', 'echo', 'after-hold']);
  await waiter.waitForStderr(/waiting for res/);
  const rel = await lockd(a!, ['release', holdId]);
  t.is(rel.code, 0, rel.stderr);
  const w = await waiter.done;
  t.is(w.code, 0, w.stderr);
  t.regex(w.stdout, /after-hold/);
  // A run whose command asks for the cluster lock it already holds gets it at once (with the same token).
  const nested = await lockd(a!, [
    'run',
    '--global',
    'n',
    '--',
    'sh',
    '-c',
    `echo "outer $LOCKD_FENCING_TOKEN"; node ${JSON.stringify(join(process.cwd(), 'bin', 'lockd.js'))} run -q --global n --wait 0 -- sh -c 'echo "inner $LOCKD_FENCING_TOKEN"'`,
  ]);
  t.is(nested.code, 0, nested.stderr);
  const outer = /outer (\d+)/.exec(nested.stdout)?.[1];
  const inner = /inner (\d+)/.exec(nested.stdout)?.[1];
  t.truthy(outer, nested.stdout);
  t.is(inner, outer);
});

clusterTest('a daemon takes its cluster settings from lockd.json, as lockd config shows them', async (t) => {
  const e = await startEtcd(t);
  const dir = tempDir('cljson');
  const stateDir = join(dir, 'state');
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  writeFileSync(join(stateDir, 'lockd.json'), JSON.stringify({ cluster: e.url, cluster_prefix: 'fromjson', cluster_ttl: 3, cluster_host: 'json-host' }));
  const d = await startDaemon(t, { dir });
  const cfg = await lockd(d, ['config', '--json']);
  t.is(cfg.code, 0, cfg.stderr);
  const settings = (JSON.parse(cfg.stdout) as { settings: Record<string, { value: string | null; source: string }> }).settings;
  t.like(settings.cluster, { value: e.url, source: 'config:state-dir' });
  t.like(settings.cluster_host, { value: 'json-host', source: 'config:state-dir' });
  t.like(settings.cluster_ttl, { value: '3', source: 'config:state-dir' });
  // The daemon uses exactly that: its status names the host and prefix, and a --global lock is an etcd key.
  const s = await lockd(d, ['status', '--json']);
  t.is(s.code, 0, s.stderr);
  const info = (JSON.parse(s.stdout) as { cluster?: { host: string; prefix: string; endpoints: string[] } }).cluster;
  t.like(info, { host: 'json-host', prefix: 'fromjson', endpoints: [e.endpoint] });
  const r = await lockd(d, ['run', '--global', 'j', '--', 'sh', '-c', 'echo "locks=$LOCKD_LOCKS"']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^locks=etcd:fromjson\/j$/m);
});

clusterTest('a run whose client goes away before or while it waits leaves no entry in the etcd queue', async (t) => {
  const e = await startEtcd(t);
  const [a, b] = await startHosts(t, e, 2, { ttl: 5 });
  const dir = scratch(t, 'clgone');
  const holder = lockdSpawn(t, a!, ['run', '--global', 'gone', '--', 'sh', '-c', 'echo holding; sleep 30']);
  await holder.waitForStdout('holding');
  const keys = () => e.ctl(['get', '--prefix', '--keys-only', 'lockd/gone/']).stdout.split('\n').filter(Boolean);
  t.is(keys().length, 1, 'only the holder is queued');
  const connect = { socketPath: b!.socket, stateDir: b!.stateDir, autostart: false };
  const { req } = buildRunRequest(['--root', dir, '--wait', 'inf', '-q', '--global', 'gone', '--', 'true'], b!.env);
  req.cwd = dir;
  // Gone at once (while the daemon creates the run, writes its manifest, or queues it in etcd), and gone once queued.
  for (let i = 0; i < 4; i++) {
    const c = await connectDaemon(connect, { type: 'run', req });
    c.socket.destroy();
  }
  const queued = await connectDaemon(connect, { type: 'run', req });
  const runId = await new Promise<string>((resolve) => {
    queued.onMessage = (m) => {
      if (m.type === 'queued') resolve(m.run_id);
    };
  });
  t.true(
    keys().some((k) => k.endsWith(`/${runId}`)),
    `the waiting run ${runId} is queued in etcd: ${keys().join(' ')}`,
  );
  queued.socket.destroy();
  // Every one of them is withdrawn: the queue is the holder alone again, and host 2 has no run left.
  const runsOnB = async () => (JSON.parse((await lockd(b!, ['status', '--json'])).stdout) as { runs: unknown[] }).runs;
  const deadline = Date.now() + 20_000;
  while ((keys().length !== 1 || (await runsOnB()).length !== 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  t.is(keys().length, 1, `still queued in etcd: ${keys().join(' ')}`);
  t.deepEqual(await runsOnB(), []);
  // And the lock passes straight on: a run queued now on host 2 is next once the holder ends.
  const next = lockdSpawn(t, b!, ['run', '--global', 'gone', '--wait', '60', '--', 'sh', '-c', 'echo "token=$LOCKD_FENCING_TOKEN"']);
  await next.waitForStderr(/waiting for gone/);
  holder.proc.kill('SIGINT');
  const n = await next.done;
  t.is(n.code, 0, n.stderr);
  t.regex(n.stdout, /^token=\d+$/m);
});
