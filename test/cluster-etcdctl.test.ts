/**
 * lockd and etcd's own lock recipe contend on the same keys: `etcdctl lock <prefix>/<name>` and
 * `lockd run --global <name>` (daemon with --cluster-prefix <prefix>) exclude each other, both ways, in FIFO order.
 */
import type { ExecutionContext } from 'ava';
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { clusterTest, startEtcd, startHosts } from './helpers/etcd.js';
import { lockd, lockdSpawn, tempDir } from './helpers/lockd.js';

/** A temp dir removed when the test ends. */
function scratch(t: ExecutionContext, prefix: string): string {
  const dir = tempDir(prefix);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function record(file: string, who: string, sleep: string): string {
  return `echo "${who} start $(date +%s%N)" >> ${file}; sleep ${sleep}; echo "${who} end $(date +%s%N)" >> ${file}`;
}

/** Like record, but holds until the test creates `gate` (no race with a slow machine). */
function gated(file: string, who: string, gate: string): string {
  return `echo "${who} start $(date +%s%N)" >> ${file}; while [ ! -e ${gate} ]; do sleep 0.02; done; echo "${who} end $(date +%s%N)" >> ${file}`;
}

function times(file: string): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const line of readFileSync(file, 'utf8').split('\n').filter(Boolean)) {
    const [who, what, ns] = line.split(' ');
    out.set(`${who} ${what}`, BigInt(ns!));
  }
  return out;
}

async function untilFileHas(file: string, text: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!readFileSync(file, 'utf8').includes(text)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${text} in ${file}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Wait (bounded) until `n` contenders are queued under locks/x/. */
async function untilKeys(e: { ctl(args: string[]): { stdout: string } }, n: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (e.ctl(['get', '--prefix', '--keys-only', 'locks/x/']).stdout.split('\n').filter(Boolean).length < n) {
    if (Date.now() > deadline) throw new Error(`fewer than ${n} contenders ever queued`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function exited(child: import('node:child_process').ChildProcess): Promise<number | null> {
  return new Promise((r) => (child.exitCode !== null ? r(child.exitCode) : child.once('exit', (code) => r(code))));
}

clusterTest('etcdctl lock holds first: lockd waits for it, and status shows it as the holder', async (t) => {
  const e = await startEtcd(t);
  const [a] = await startHosts(t, e, 1, { ttl: 5, prefix: 'locks' });
  const dir = scratch(t, 'ce');
  const file = join(dir, 'log');
  writeFileSync(file, '');
  const ctl = e.ctlSpawn(['lock', 'locks/x', '--', 'sh', '-c', gated(file, 'ctl', join(dir, 'go'))]);
  await untilFileHas(file, 'ctl start');
  const run = lockdSpawn(t, a!, ['run', '--global', 'x', '--wait', '30', '--', 'sh', '-c', record(file, 'lockd', '0')]);
  await run.waitForStderr(/waiting for x/);
  const s = await lockd(a!, ['status', '--json']);
  const lock = (JSON.parse(s.stdout) as { locks: Array<{ name: string; scope: string; holders: Array<{ holder: string }>; waiters: unknown[] }> }).locks.find(
    (l) => l.scope === 'cluster' && l.name === 'x',
  );
  t.regex(lock!.holders[0]!.holder, /^etcd key locks\/x\//);
  t.is(lock!.waiters.length, 1);
  writeFileSync(join(dir, 'go'), '');
  const r = await run.done;
  t.is(r.code, 0, r.stderr);
  t.is(await exited(ctl), 0);
  const ts = times(file);
  t.true(ts.get('lockd start')! >= ts.get('ctl end')!, 'lockd ran after etcdctl released');
});

clusterTest('lockd holds first: etcdctl lock waits for it', async (t) => {
  const e = await startEtcd(t);
  const [a] = await startHosts(t, e, 1, { ttl: 5, prefix: 'locks' });
  const dir = scratch(t, 'ce');
  const file = join(dir, 'log');
  writeFileSync(file, '');
  const run = lockdSpawn(t, a!, ['run', '--global', 'x', '--', 'sh', '-c', gated(file, 'lockd', join(dir, 'go1'))]);
  await untilFileHas(file, 'lockd start');
  const ctl = e.ctlSpawn(['lock', 'locks/x', '--', 'sh', '-c', record(file, 'ctl', '0')]);
  await untilKeys(e, 2);
  writeFileSync(join(dir, 'go1'), '');
  const r = await run.done;
  t.is(r.code, 0, r.stderr);
  t.is(await exited(ctl), 0);
  const ts = times(file);
  t.true(ts.get('ctl start')! >= ts.get('lockd end')!, 'etcdctl ran after lockd released');
  // And the queue is FIFO across both: lockd, then etcdctl, then lockd again.
  writeFileSync(file, '');
  const first = lockdSpawn(t, a!, ['run', '--global', 'x', '--', 'sh', '-c', gated(file, 'one', join(dir, 'go2'))]);
  await untilFileHas(file, 'one start');
  const ctl2 = e.ctlSpawn(['lock', 'locks/x', '--', 'sh', '-c', record(file, 'two', '0.3')]);
  // etcdctl's key must be queued before the next lockd request: wait until it shows in etcd.
  await untilKeys(e, 2);
  const third = lockdSpawn(t, a!, ['run', '--global', 'x', '--wait', '30', '--', 'sh', '-c', record(file, 'three', '0')]);
  await third.waitForStderr(/waiting for x/);
  writeFileSync(join(dir, 'go2'), '');
  const [f, th] = await Promise.all([first.done, third.done]);
  t.is(f.code, 0, f.stderr);
  t.is(th.code, 0, th.stderr);
  t.is(await exited(ctl2), 0);
  const order = times(file);
  t.true(order.get('two start')! >= order.get('one end')!);
  t.true(order.get('three start')! >= order.get('two end')!, 'the later lockd request waited for the earlier etcdctl one');
});
