/** Pools on the host backend, with the real daemon: lockd run --pool, the job's members, bad input, lockd.json edits. */
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, FAST_BIN, lockd, readJson, printedPaths } from './helpers/lockd.js';
import { detachedHolder, statusJson } from './helpers/operate.js';
import { poolDaemon } from './helpers/pools.js';

test('lockd run --pool gives the job its members by name and with their properties, and records them', async (t) => {
  const d = await poolDaemon(t);
  const r = await lockd(d, ['run', '--pool', 'boards:2', '--where', 'arch=arm64', '--', 'sh', '-c', 'echo "$LOCKD_MEMBERS_boards"; cat "$LOCKD_MEMBERS_FILE"']);
  t.is(r.code, 0, r.stderr);
  const [names, ...json] = r.stdout.split('\n');
  t.is(names, 'rpi4-a,rpi4-b');
  t.deepEqual(JSON.parse(json.join('\n')), {
    boards: [
      { name: 'rpi4-a', properties: { arch: 'arm64', serial: '/dev/ttyUSB0' } },
      { name: 'rpi4-b', properties: { arch: 'arm64', serial: '/dev/ttyUSB1' } },
    ],
  });
  const manifest = readJson<{ members: unknown; locks: Array<{ name: string }> }>(printedPaths(r.stderr).manifest!);
  t.deepEqual(
    manifest.locks.map((l) => l.name),
    ['boards/rpi4-a', 'boards/rpi4-b'],
  );
  t.deepEqual(manifest.members, JSON.parse(json.join('\n')));
});

test('a held member is not granted twice; another matching member is, and a busy pool fails at once with --wait 0', async (t) => {
  const d = await poolDaemon(t);
  const h = await detachedHolder(d, 'a', ['--pool', 'boards', '--member', 'rpi4-a']);
  const status = await statusJson(d);
  const held = status.locks.find((l) => l.name === 'boards/rpi4-a')!;
  t.like(held, { pool: 'boards', member: 'rpi4-a', properties: { arch: 'arm64', serial: '/dev/ttyUSB0' }, disabled: false });
  t.is(held.holders[0]!.id, h.runId);
  const other = await lockd(d, ['run', '--pool', 'boards', '--where', 'arch=arm64', '--', 'sh', '-c', 'echo "$LOCKD_MEMBERS_boards"']);
  t.is(other.stdout, 'rpi4-b\n');
  const busy = await lockd(d, ['run', '--wait', '0', '--pool', 'boards', '--member', 'rpi4-a', '--', 'true']);
  t.is(busy.code, 75);
  t.regex(busy.stderr, /lock_busy/);
  h.release();
});

test('bad pool requests fail at once with one clear line (exit 2)', async (t) => {
  const d = await poolDaemon(t);
  const cases: Array<[string[], RegExp]> = [
    [['--pool', 'cards'], /unknown pool cards \(pools: boards\)/],
    [['--pool', 'boards', '--member', 'zz'], /pool boards has no member zz \(members: rpi4-a, rpi4-b, nuc\)/],
    [['--pool', 'boards:3', '--where', 'arch=arm64'], /pool boards: 3 wanted matching arch=arm64, only 2 can be granted: rpi4-a, rpi4-b/],
    [['--pool', 'boards', '--where', 'arch=riscv64'], /no member of pool boards matches arch=riscv64/],
  ];
  for (const [args, re] of cases) {
    // --wait inf: a request that can never be granted must still end at once.
    const r = await lockd(d, ['run', '--wait', 'inf', ...args, '--', 'true']);
    t.is(r.code, 2, args.join(' '));
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('lockd:') && !/manifest ->|result ->/.test(l));
    t.is(lines.length, 1, r.stderr);
    t.regex(lines[0]!, re);
  }
  const usage = await lockd(d, ['run', '--pool', 'boards', '--where', 'arch', '--', 'true']);
  t.is(usage.code, 2);
  t.regex(usage.stderr, /--where must be KEY=VALUE/);
});

test('a lockd.json edit while a member is held: nothing held is lost, a malformed file keeps the last good pools, a removed member goes at release', async (t) => {
  const d = await poolDaemon(t);
  const configPath = join(d.stateDir, 'lockd.json');
  const h = await detachedHolder(d, 'a', ['--pool', 'boards', '--member', 'rpi4-a']);
  // Malformed: the daemon keeps running with the last good pools.
  writeFileSync(configPath, '{"pools": {"boards": {"members": {"rpi4-a": {"arch": 64}}}}}');
  const still = await lockd(d, ['run', '--pool', 'boards', '--member', 'nuc', '--', 'sh', '-c', 'echo "$LOCKD_MEMBERS_boards"']);
  t.is(still.stdout, 'nuc\n', still.stderr);
  // Valid again, without rpi4-a and with a new member.
  writeFileSync(configPath, JSON.stringify({ pools: { boards: { members: { 'rpi4-b': { arch: 'arm64' }, 'rpi5-c': { arch: 'arm64' } } } } }));
  const status = await statusJson(d);
  const held = status.locks.find((l) => l.name === 'boards/rpi4-a')!;
  t.is(held.holders[0]!.id, h.runId, 'the holder keeps the removed member');
  t.is(held.properties, null);
  const gone = await lockd(d, ['run', '--pool', 'boards', '--member', 'rpi4-a', '--', 'true']);
  t.is(gone.code, 2);
  t.regex(gone.stderr, /pool boards has no member rpi4-a/);
  const added = await lockd(d, ['run', '--pool', 'boards', '--member', 'rpi5-c', '--', 'sh', '-c', 'echo "$LOCKD_MEMBERS_boards"']);
  t.is(added.stdout, 'rpi5-c\n');
  h.release();
  // The daemon's log is written asynchronously: wait (bounded) for the line.
  const logPath = join(d.stateDir, 'daemon.log');
  let log = '';
  for (let i = 0; i < 100 && !/pools not loaded/.test(log); i++) {
    await new Promise((r) => setTimeout(r, 50));
    log = readFileSync(logPath, 'utf8');
  }
  t.regex(log, /lockd.json pools not loaded; the last good pools stay in force/);
  t.regex(log, /property arch must be a string/);
});

test('lockd-fast (the native run client) hands a pool request to the Node client, which runs it with its members', async (t) => {
  const d = await poolDaemon(t);
  if (!existsSync(FAST_BIN)) {
    t.log(`not run: no ${FAST_BIN} on this platform`);
    t.false(existsSync(FAST_BIN));
    return;
  }
  const r = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
    const p = spawn(FAST_BIN, ['run', '-q', '--pool', 'boards', '--member', 'nuc', '--', 'sh', '-c', 'echo "$LOCKD_MEMBERS_boards"'], { env: { ...d.env, LOCKD_FAST_NODE_CLI: CLI } });
    let out = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    p.once('close', (code) => resolve({ code, stdout: out }));
  });
  t.is(r.code, 0);
  t.is(r.stdout, 'nuc\n');
});
