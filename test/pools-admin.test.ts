/** lockd pool list|show|add|remove|disable|enable with the real daemon: edits in force at once, kept over a restart. */
import test from 'ava';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, lockd, lockdSpawn, printedPaths, readJson, tempDir } from './helpers/lockd.js';
import { detachedHolder, waitForWaiters } from './helpers/operate.js';
import type { PoolInfo } from '../src/protocol/messages.js';

const BOARDS = { pools: { boards: { members: { 'rpi4-a': { arch: 'arm64' }, 'rpi4-b': { arch: 'arm64' }, nuc: { arch: 'x86_64' } } } } };

function poolDir(config: unknown = BOARDS): string {
  const dir = tempDir();
  mkdirSync(join(dir, 'state'), { recursive: true });
  writeFileSync(join(dir, 'state', 'lockd.json'), JSON.stringify(config));
  return dir;
}

async function pools(d: Parameters<typeof lockd>[0], args: string[] = ['list']): Promise<PoolInfo[]> {
  const r = await lockd(d, ['pool', ...args, '--json']);
  if (r.code !== 0) throw new Error(`lockd pool ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as PoolInfo[];
}

function memberOf(ps: PoolInfo[], pool: string, member: string) {
  return ps.find((p) => p.name === pool)?.members.find((m) => m.name === member);
}

function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.startsWith('lockd:') && !/manifest ->|result ->|waiting for/.test(l));
}

test('a disabled member is never granted and shows its reason, a request that needs it fails at once naming why', async (t) => {
  const d = await startDaemon(t, { dir: poolDir() });
  const off = await lockd(d, ['pool', 'disable', 'boards/rpi4-a', '--reason', 'USB hub broken, LAB-42']);
  t.is(off.code, 0, off.stderr);
  const shown = await lockd(d, ['pool', 'show', 'boards']);
  t.regex(shown.stdout, /boards\/rpi4-a {2}disabled \(USB hub broken, LAB-42\)/);
  t.like(memberOf(await pools(d), 'boards', 'rpi4-a'), { state: 'disabled', disabled_reason: 'USB hub broken, LAB-42' });
  // Any arm64 board: only rpi4-b can be granted, every time.
  for (let i = 0; i < 3; i++) {
    const r = await lockd(d, ['run', '--pool', 'boards', '--where', 'arch=arm64', '--', 'sh', '-c', 'echo "$LOCKD_MEMBERS_boards"']);
    t.is(r.stdout, 'rpi4-b\n', r.stderr);
  }
  // Asking for the disabled one by name (or for both arm64 boards) ends at once, naming it and why.
  const named = await lockd(d, ['run', '--wait', 'inf', '--pool', 'boards:2', '--where', 'arch=arm64', '--', 'true']);
  t.is(named.code, 2);
  t.deepEqual(errorLines(named.stderr), ['lockd: pool boards: 2 wanted matching arch=arm64, only 1 can be granted: rpi4-b (disabled: rpi4-a: USB hub broken, LAB-42)']);
  const on = await lockd(d, ['pool', 'enable', 'boards/rpi4-a']);
  t.is(on.code, 0, on.stderr);
  t.like(memberOf(await pools(d), 'boards', 'rpi4-a'), { state: 'free', disabled_reason: null });
});

test('a member disabled while held and waited for: released, it goes to nobody; enabled, to the run queued for it', async (t) => {
  const d = await startDaemon(t, { dir: poolDir() });
  const h = await detachedHolder(d, 'h', ['--pool', 'boards', '--member', 'rpi4-a']);
  const waiter = lockdSpawn(t, d, ['run', '--wait', 'inf', '--pool', 'boards', '--member', 'rpi4-a', '--', 'sh', '-c', 'echo "$LOCKD_MEMBERS_boards"']);
  await waitForWaiters(d, 'boards/rpi4-a', 1);
  const off = await lockd(d, ['pool', 'disable', 'boards/rpi4-a', '--reason', 'reflash']);
  t.regex(off.stderr, /boards\/rpi4-a disabled; its holder keeps it until it is released/);
  h.release();
  // Bounded wait for the release; the waiter must still be waiting once nobody holds the member.
  const deadline = Date.now() + 20_000;
  let m = memberOf(await pools(d), 'boards', 'rpi4-a')!;
  while (m.holder !== null && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    m = memberOf(await pools(d), 'boards', 'rpi4-a')!;
  }
  t.like(m, { state: 'disabled', holder: null, disabled_reason: 'reflash' });
  t.is(waiter.proc.exitCode, null, 'the queued run still waits');
  t.is((await lockd(d, ['pool', 'enable', 'boards/rpi4-a'])).code, 0);
  const w = await waiter.done;
  t.is(w.code, 0, w.stderr);
  t.is(w.stdout, 'rpi4-a\n');
});

test('pool edits are saved in the state dir and survive a daemon restart', async (t) => {
  const dir = poolDir();
  const d1 = await startDaemon(null, { dir });
  try {
    t.is((await lockd(d1, ['pool', 'disable', 'boards/nuc', '--reason', 'in repair'])).code, 0);
    t.is((await lockd(d1, ['pool', 'add', 'boards/rpi5-c', '--prop', 'arch=arm64', '--prop', 'serial=/dev/ttyUSB2'])).code, 0);
    t.is((await lockd(d1, ['pool', 'remove', 'boards/rpi4-b'])).code, 0);
    t.is((await lockd(d1, ['pool', 'add', 'seats'])).code, 0);
    t.is((await lockd(d1, ['pool', 'add', 'seats/labview-1'])).code, 0);
  } finally {
    await d1.stop();
  }
  const saved = readJson<{ version: number }>(join(dir, 'state', 'pools-state.json'));
  t.is(saved.version, 1);
  const d2 = await startDaemon(t, { dir });
  const after = await pools(d2);
  t.deepEqual(
    after.map((p) => [p.name, p.members.map((m) => `${m.name}:${m.state}`)]),
    [
      ['boards', ['rpi4-a:free', 'nuc:disabled', 'rpi5-c:free']],
      ['seats', ['labview-1:free']],
    ],
  );
  t.is(memberOf(after, 'boards', 'nuc')!.disabled_reason, 'in repair');
  t.deepEqual(memberOf(after, 'boards', 'rpi5-c')!.properties, { arch: 'arm64', serial: '/dev/ttyUSB2' });
  const r = await lockd(d2, ['run', '--pool', 'seats', '--', 'sh', '-c', 'echo "$LOCKD_MEMBERS_seats"']);
  t.is(r.stdout, 'labview-1\n', r.stderr);
  const gone = await lockd(d2, ['run', '--pool', 'boards', '--member', 'rpi4-b', '--', 'true']);
  t.is(gone.code, 2);
  t.regex(gone.stderr, /pool boards has no member rpi4-b/);
});

test('lockd pool with bad input fails at once with one clear line (exit 2)', async (t) => {
  const d = await startDaemon(t, { dir: poolDir() });
  const cases: Array<[string[], string]> = [
    [['show', 'cards'], 'lockd: unknown pool cards (pools: boards)'],
    [['disable', 'cards/x'], 'lockd: unknown pool cards (pools: boards)'],
    [['disable', 'boards/zz'], 'lockd: pool boards has no member zz (members: rpi4-a, rpi4-b, nuc)'],
    [['show', 'boards/zz'], 'lockd: pool boards has no member zz (members: rpi4-a, rpi4-b, nuc)'],
    [['add', 'boards/nuc'], 'lockd: pool boards already has a member nuc'],
    [['add', 'boards'], 'lockd: pool boards already exists (members: rpi4-a, rpi4-b, nuc)'],
    [['frobnicate'], 'lockd: lockd pool needs one of list, show, add, remove, disable, enable, not "frobnicate" (lockd pool --help)'],
    [['disable'], 'lockd: lockd pool disable needs NAME or NAME/MEMBER'],
    [['enable', 'boards/../x'], 'lockd: lockd pool enable: "boards/../x" is not NAME or NAME/MEMBER (letters, digits, . _ -)'],
    [['enable', 'boards/nuc', '--reason', 'x'], 'lockd: --reason goes with lockd pool disable'],
  ];
  for (const [args, line] of cases) {
    const r = await lockd(d, ['pool', ...args]);
    t.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    t.deepEqual(errorLines(r.stderr), [line], args.join(' '));
  }
  // Nothing was changed by the failed edits.
  t.deepEqual(
    (await pools(d))[0]!.members.map((m) => m.state),
    ['free', 'free', 'free'],
  );
});

test('removing a held member takes effect at release: the holder keeps it, list shows it removed, then it is gone', async (t) => {
  const d = await startDaemon(t, { dir: poolDir() });
  const h = await detachedHolder(d, 'h', ['--pool', 'boards', '--member', 'rpi4-a']);
  const rm = await lockd(d, ['pool', 'remove', 'boards/rpi4-a']);
  t.is(rm.code, 0, rm.stderr);
  t.regex(rm.stderr, /boards\/rpi4-a removed; its holder keeps it until it is released/);
  const during = memberOf(await pools(d), 'boards', 'rpi4-a')!;
  t.is(during.state, 'removed');
  t.is(during.holder!.id, h.runId);
  h.release();
  // The detached holder ends on its own; wait (bounded) until the member is released and dropped from the list.
  const deadline = Date.now() + 20_000;
  while (memberOf(await pools(d), 'boards', 'rpi4-a') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  t.is(memberOf(await pools(d), 'boards', 'rpi4-a'), undefined);
  const r = await lockd(d, ['run', '--pool', 'boards', '--where', 'arch=arm64', '--', 'sh', '-c', 'echo "$LOCKD_MEMBERS_boards"']);
  t.is(r.stdout, 'rpi4-b\n');
});

test('a run queued for a member that is then removed ends at once with one clear line (exit 2, reason pool_gone)', async (t) => {
  const d = await startDaemon(t, { dir: poolDir() });
  const h = await detachedHolder(d, 'h', ['--pool', 'boards', '--member', 'rpi4-a']);
  const named = lockdSpawn(t, d, ['run', '--wait', 'inf', '--pool', 'boards', '--member', 'rpi4-a', '--', 'true']);
  // In this order: the named request first in line, so its waiting line says position 1.
  await waitForWaiters(d, 'boards/rpi4-a', 1);
  const both = lockdSpawn(t, d, ['run', '--wait', 'inf', '--pool', 'boards:2', '--where', 'arch=arm64', '--', 'true']);
  await waitForWaiters(d, 'boards/rpi4-a', 2);
  t.is((await lockd(d, ['pool', 'remove', 'boards/rpi4-a'])).code, 0);
  const [a, b] = await Promise.all([named.done, both.done]);
  t.is(a.code, 2, a.stderr);
  t.regex(a.stderr, /lockd: waiting for boards\/rpi4-a \(position 1\)/);
  t.deepEqual(errorLines(a.stderr), ['lockd: member boards/rpi4-a was removed while this run waited for it']);
  t.is(b.code, 2, b.stderr);
  t.deepEqual(errorLines(b.stderr), ['lockd: pool boards changed while this run waited: 2 wanted, 1 member(s) match now (rpi4-b)']);
  const result = readJson<{ reason: string; exit_code: number }>(printedPaths(a.stderr).result!);
  t.like(result, { reason: 'pool_gone', exit_code: 2 });
  h.release();
});

test('a daemon started with a malformed lockd.json says why a pool is unknown, in one line (exit 2)', async (t) => {
  const dir = tempDir();
  mkdirSync(join(dir, 'state'), { recursive: true });
  writeFileSync(join(dir, 'state', 'lockd.json'), '{"pools": {"boards": {"members": []}}}');
  const d = await startDaemon(t, { dir });
  const r = await lockd(d, ['run', '--wait', 'inf', '--pool', 'boards', '--', 'true']);
  t.is(r.code, 2, r.stderr);
  t.deepEqual(errorLines(r.stderr), [`lockd: unknown pool boards: lockd.json's pools are not in force (${join(d.stateDir, 'lockd.json')}: pool boards: "members" must be an object of members)`]);
});
