/** Lock semantics through the real daemon: exclusion, scopes, modes, fairness, waiting, nesting. */
import test from 'ava';
import { readFileSync, writeFileSync, mkdirSync, symlinkSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { startDaemon, lockd, lockdSpawn, waitForFile, type Daemon } from './helpers/lockd.js';

/** Parse "S|E <tag> <ns>" lines appended by children. */
function intervals(file: string): Array<{ tag: string; start: bigint; end: bigint }> {
  const starts = new Map<string, bigint>();
  const out: Array<{ tag: string; start: bigint; end: bigint }> = [];
  for (const line of readFileSync(file, 'utf8').trim().split('\n')) {
    const [kind, tag, ns] = line.split(' ');
    if (kind === 'S') starts.set(tag!, BigInt(ns!));
    else out.push({ tag: tag!, start: starts.get(tag!)!, end: BigInt(ns!) });
  }
  return out.sort((a, b) => (a.start < b.start ? -1 : 1));
}

function overlaps(iv: Array<{ start: bigint; end: bigint }>): number {
  let n = 0;
  for (let i = 1; i < iv.length; i++) if (iv[i]!.start < iv[i - 1]!.end) n++;
  return n;
}

const record = (file: string, tag: string, body = 'sleep 0.02') => ['sh', '-c', `echo "S ${tag} $(date +%s%N)" >> ${file}; ${body}; echo "E ${tag} $(date +%s%N)" >> ${file}`];

/** A run that holds its locks until `release` is called. */
async function holdUntilReleased(t: Parameters<typeof startDaemon>[0], d: Daemon, args: string[], name: string) {
  const ready = join(d.dir, `${name}.ready`);
  const go = join(d.dir, `${name}.go`);
  const c = lockdSpawn(t, d, ['run', '-q', ...args, '--', 'sh', '-c', `touch ${ready}; while [ ! -e ${go} ]; do sleep 0.02; done`]);
  await waitForFile(ready);
  return {
    c,
    release: async () => {
      writeFileSync(go, '');
      return await c.done;
    },
  };
}

test('20 concurrent clients on one lock never overlap', async (t) => {
  const d = await startDaemon(t);
  const log = join(d.dir, 'iv');
  const runs = Array.from({ length: 20 }, (_, i) => lockd(d, ['run', '-q', '--wait', 'inf', '--lock', 'one', '--', ...record(log, `r${i}`)]));
  const results = await Promise.all(runs);
  t.deepEqual(
    results.map((r) => r.code),
    Array(20).fill(0),
  );
  const iv = intervals(log);
  t.is(iv.length, 20);
  t.is(overlaps(iv), 0);
});

test('different roots and arches run in parallel; a global lock excludes across roots', async (t) => {
  const d = await startDaemon(t);
  const r1 = join(d.dir, 'r1');
  const r2 = join(d.dir, 'r2');
  const a = await holdUntilReleased(t, d, ['--root', r1, '--arch', 'riscv64', '--lock', 'qemu', '--global', 'deps'], 'a');
  // same lock name, other root: free
  const other = await lockd(d, ['run', '-q', '--wait', '0', '--root', r2, '--arch', 'riscv64', '--lock', 'qemu', '--', 'echo', 'parallel']);
  t.is(other.code, 0);
  // same root, other arch: free
  const arch = await lockd(d, ['run', '-q', '--wait', '0', '--root', r1, '--arch', 'x86_64', '--lock', 'qemu', '--', 'true']);
  t.is(arch.code, 0);
  // a global lock held via root r1 is busy from root r2
  const g = await lockd(d, ['run', '--wait', '0', '--root', r2, '--global', 'deps', '--', 'true']);
  t.is(g.code, 75);
  t.regex(g.stderr, /deps is held by run \S+ \(pid \d+/);
  // two spellings of one root are one lock
  const spelled = await lockd(d, ['run', '--wait', '0', '--root', `${d.dir}/./r1/../r1`, '--arch', 'riscv64', '--lock', 'qemu', '--', 'true']);
  t.is(spelled.code, 75);
  mkdirSync(join(d.dir, 'links'));
  symlinkSync(r1, join(d.dir, 'links', 'r1link'));
  const linked = await lockd(d, ['run', '--wait', '0', '--root', join(d.dir, 'links', 'r1link'), '--arch', 'riscv64', '--lock', 'qemu', '--', 'true']);
  t.is(linked.code, 75);
  t.is((await a.release()).code, 0);
});

test('--wait 0 fails at once with 75 naming the holder; --conflict-exit-code changes it; bounded wait gives up', async (t) => {
  const d = await startDaemon(t);
  const h = await holdUntilReleased(t, d, ['--lock', 'x', '--holder', 'alice-ci'], 'h');
  const busy = await lockd(d, ['run', '--wait', '0', '--lock', 'x', '--', 'true']);
  t.is(busy.code, 75);
  t.regex(busy.stderr, /lock_busy: x is held by run \d{6}-\d{4}-\w+ \(pid \d+, alice-ci: sh -c/);
  t.regex(busy.stderr, /since \d{4}-\d\d-\d\dT/);
  const custom = await lockd(d, ['run', '--wait', '0', '--conflict-exit-code', '9', '--lock', 'x', '--', 'true']);
  t.is(custom.code, 9);
  const started = Date.now();
  const bounded = await lockd(d, ['run', '--wait', '0.5', '--lock', 'x', '--', 'true']);
  t.is(bounded.code, 75);
  t.true(Date.now() - started >= 500);
  t.regex(bounded.stderr, /lock_wait_timeout: waited 0\.5 s: x is held by/);
  await h.release();
});

test('default wait is 0 on a developer machine and queues in CI', async (t) => {
  const d = await startDaemon(t);
  const h = await holdUntilReleased(t, d, ['--lock', 'x'], 'h');
  const dev = await lockd(d, ['run', '--lock', 'x', '--', 'true']);
  t.is(dev.code, 75);
  const ci = lockdSpawn(t, d, ['run', '--lock', 'x', '--', 'echo', 'queued-ci'], { env: { CI: 'true' } });
  await ci.waitForStderr('waiting for x (position 1)');
  await h.release();
  const r = await ci.done;
  t.is(r.code, 0);
  t.regex(r.stderr, /locks granted after/);
});

test('opposite-order multi-lock requests all complete (no deadlock)', async (t) => {
  const d = await startDaemon(t);
  const runs: Array<Promise<{ code: number | null }>> = [];
  for (let i = 0; i < 8; i++) {
    const order = i % 2 ? ['--lock', 'a', '--lock', 'b'] : ['--lock', 'b', '--lock', 'a'];
    runs.push(lockd(d, ['run', '-q', '--wait', 'inf', ...order, '--', 'sleep', '0.01']));
  }
  const res = await Promise.all(runs);
  t.deepEqual(
    res.map((r) => r.code),
    Array(8).fill(0),
  );
});

test('all-or-nothing: a waiter holds none of its locks while it waits', async (t) => {
  const d = await startDaemon(t);
  const h = await holdUntilReleased(t, d, ['--root', d.dir, '--lock', 'b'], 'h');
  const w = lockdSpawn(t, d, ['run', '--wait', 'inf', '--root', d.dir, '--lock', 'a', '--lock', 'b', '--', 'true']);
  await w.waitForStderr('waiting for a, b');
  // 'a' is free but the waiter must not hold it: no .meta, and an outside flock(1) can take the file at once.
  t.false(existsSync(join(d.dir, '.locks', 'a.lock.meta')));
  t.true(existsSync(join(d.dir, '.locks', 'b.lock.meta')));
  const outside = spawnSync('flock', ['-n', join(d.dir, '.locks', 'a.lock'), 'true']);
  t.is(outside.status, 0);
  await h.release();
  t.is((await w.done).code, 0);
});

test('shared locks run together and exclude an exclusive one', async (t) => {
  const d = await startDaemon(t);
  const s1 = await holdUntilReleased(t, d, ['--lock', 'img:shared'], 's1');
  const s2 = await holdUntilReleased(t, d, ['--lock', 'img:shared'], 's2');
  const ex = await lockd(d, ['run', '--wait', '0', '--lock', 'img', '--', 'true']);
  t.is(ex.code, 75);
  await s1.release();
  await s2.release();
  const ok = await lockd(d, ['run', '-q', '--wait', '0', '--lock', 'img', '--', 'true']);
  t.is(ok.code, 0);
});

test('slots: N holders at once, each with its own slot index; a mismatched N is refused', async (t) => {
  const d = await startDaemon(t);
  const out = join(d.dir, 'slots');
  const hold = (name: string) => {
    const ready = join(d.dir, `${name}.ready`);
    const go = join(d.dir, `${name}.go`);
    const c = lockdSpawn(t, d, ['run', '-q', '--lock', 'board:slots=2', '--', 'sh', '-c', `echo $LOCKD_SLOT_board >> ${out}; touch ${ready}; while [ ! -e ${go} ]; do sleep 0.02; done`]);
    return { c, ready, go };
  };
  const a = hold('a');
  await waitForFile(a.ready);
  const b = hold('b');
  await waitForFile(b.ready);
  const third = await lockd(d, ['run', '--wait', '0', '--lock', 'board:slots=2', '--', 'true']);
  t.is(third.code, 75);
  const mismatch = await lockd(d, ['run', '--wait', '0', '--lock', 'board:slots=3', '--', 'true']);
  t.not(mismatch.code, 0);
  t.regex(mismatch.stderr, /slot/i);
  t.deepEqual(readFileSync(out, 'utf8').trim().split('\n').sort(), ['0', '1']);
  writeFileSync(a.go, '');
  writeFileSync(b.go, '');
  t.is((await a.c.done).code, 0);
  t.is((await b.c.done).code, 0);
});

test('FIFO with head reservation: a waiting exclusive request is not starved by later shared ones', async (t) => {
  const d = await startDaemon(t);
  const order = join(d.dir, 'order');
  const s0 = await holdUntilReleased(t, d, ['--lock', 'res:shared'], 's0');
  const ex = lockdSpawn(t, d, ['run', '--wait', 'inf', '--lock', 'res', '--', 'sh', '-c', `echo ex >> ${order}`]);
  await ex.waitForStderr('waiting for res (position 1)');
  const sh = lockdSpawn(t, d, ['run', '--wait', 'inf', '--lock', 'res:shared', '--', 'sh', '-c', `echo shared >> ${order}`]);
  await sh.waitForStderr('waiting for res (position 2)');
  const ex2 = lockdSpawn(t, d, ['run', '--wait', 'inf', '--lock', 'res', '--', 'sh', '-c', `echo ex2 >> ${order}`]);
  await ex2.waitForStderr('waiting for res (position 3)');
  await s0.release();
  t.is((await ex.done).code, 0);
  t.is((await sh.done).code, 0);
  t.is((await ex2.done).code, 0);
  t.deepEqual(readFileSync(order, 'utf8').trim().split('\n'), ['ex', 'shared', 'ex2']);
});

test('nested run reentry: a command under lockd may ask for a lock its own run holds', async (t) => {
  const d = await startDaemon(t);
  const cli = join(process.cwd(), 'bin', 'lockd.js');
  const r = await lockd(d, ['run', '-q', '--lock', 'qemu', '--', process.execPath, cli, 'run', '-q', '--wait', '0', '--lock', 'qemu', '--', 'echo', 'nested-ok']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'nested-ok\n');
});

test('a forged LOCKD_RUN_ID does not grant reentry', async (t) => {
  const d = await startDaemon(t);
  const ready = join(d.dir, 'ready');
  const go = join(d.dir, 'go');
  const holder = lockdSpawn(t, d, ['run', '-q', '--lock', 'qemu', '--', 'sh', '-c', `echo $LOCKD_RUN_ID > ${ready}.tmp; mv ${ready}.tmp ${ready}; while [ ! -e ${go} ]; do sleep 0.02; done`]);
  await waitForFile(ready);
  const runId = readFileSync(ready, 'utf8').trim();
  const forged = await lockd(d, ['run', '--wait', '0', '--lock', 'qemu', '--', 'true'], { env: { LOCKD_RUN_ID: runId } });
  t.is(forged.code, 75);
  writeFileSync(go, '');
  t.is((await holder.done).code, 0);
});

test('a cycle of nested waits is detected and fails at once with a deadlock error naming it', async (t) => {
  const d = await startDaemon(t);
  const cli = join(process.cwd(), 'bin', 'lockd.js');
  const inner = (lock: string, me: string, other: string) =>
    `touch ${join(d.dir, me)}; while [ ! -e ${join(d.dir, other)} ]; do sleep 0.02; done; ${process.execPath} ${cli} run --wait 30 --lock ${lock} -- true; echo inner=$?`;
  const a = lockdSpawn(t, d, ['run', '-q', '--wait', '0', '--lock', 'a', '--', 'sh', '-c', inner('b', 'A', 'B')]);
  const b = lockdSpawn(t, d, ['run', '-q', '--wait', '0', '--lock', 'b', '--', 'sh', '-c', inner('a', 'B', 'A')]);
  const [ra, rb] = await Promise.all([a.done, b.done]);
  const all = ra.stdout + rb.stdout + ra.stderr + rb.stderr;
  t.regex(all, /deadlock/);
  // exactly one inner request was refused; the other went through once the refused run ended
  t.deepEqual([ra.stdout, rb.stdout].map((s) => /inner=(\d+)/.exec(s)![1]).sort(), ['0', '75']);
});

test('invalid lock names are refused before anything is queued', async (t) => {
  const d = await startDaemon(t);
  for (const bad of ['../x', 'a/b', '/etc/passwd', '.hidden', 'a..b', 'x'.repeat(300)]) {
    const r = await lockd(d, ['run', '--lock', bad, '--', 'true']);
    t.is(r.code, 2, bad);
    t.regex(r.stderr, /invalid lock/, bad);
  }
  const g = await lockd(d, ['run', '--global', '../../etc', '--', 'true']);
  t.is(g.code, 2);
});

test('an outside flock(1) holder makes --wait 0 fail at once and a bounded wait give up', async (t) => {
  const d = await startDaemon(t);
  const { spawn } = await import('node:child_process');
  mkdirSync(join(d.dir, '.locks'), { recursive: true });
  const file = join(d.dir, '.locks', 'legacy.lock');
  const ready = join(d.dir, 'flocked');
  // Its own process group: the flocked fd is inherited by sleep, so the whole group must go to free the file.
  const outside = spawn('flock', [file, 'sh', '-c', `touch ${ready}; exec sleep 60`], { stdio: 'ignore', detached: true });
  const killOutside = () => {
    try {
      process.kill(-outside.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  };
  t.teardown(killOutside);
  await waitForFile(ready);
  const fast = await lockd(d, ['run', '--wait', '0', '--root', d.dir, '--lock', 'legacy', '--', 'true']);
  t.is(fast.code, 75);
  t.regex(fast.stderr, /outside lockd \(flock\)/);
  const bounded = await lockd(d, ['run', '--wait', '0.3', '--root', d.dir, '--lock', 'legacy', '--', 'true']);
  t.is(bounded.code, 75);
  // the table grant was given back: once the outside holder is gone the lock works again
  killOutside();
  const after = await lockd(d, ['run', '-q', '--wait', '10', '--root', d.dir, '--lock', 'legacy', '--', 'echo', 'ok']);
  t.is(after.code, 0);
});
