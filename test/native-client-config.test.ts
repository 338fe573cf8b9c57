/**
 * The native `lockd run` client on a configured host: it reads lockd.json (build root, then state dir) as the Node
 * client's Settings does, and it sends pool requests itself (--pool, --where, --member, --priority, --supersede), so
 * a host with pools keeps the fast path. Whatever it cannot reproduce exactly is handed to the Node CLI, which then
 * says what Node says. Real daemon, real native client (LOCKD_FAST_BIN or the prebuilt one), Node client beside it.
 */
import test from 'ava';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, FAST_BIN, printedPaths, readJson, runProgram, startDaemon, tempDir } from './helpers/lockd.js';
import { BOARDS, poolDaemon } from './helpers/pools.js';
import { detachedHolder, waitForWaiters } from './helpers/operate.js';

const HANDOVER = /^lockd-fast: handing over to the Node CLI: (.+)$/m;
const fast = (args: string[], env: NodeJS.ProcessEnv, cwd: string) => runProgram(FAST_BIN, args, { ...env, LOCKD_FAST_DEBUG: '1' }, cwd);
const node = (args: string[], env: NodeJS.ProcessEnv, cwd: string) => runProgram(process.execPath, [CLI, ...args], env, cwd);
/** stderr without the lines that name this run (its id is in the paths) and the debug line. */
const lines = (stderr: string) =>
  stderr
    .split('\n')
    .filter((l) => l !== '' && !/^lockd: (manifest|result) -> /.test(l) && !HANDOVER.test(l))
    .map((l) => l.replace(/\d{6}-\d{4}-[0-9a-f]{4}/g, 'RUN').replace(/pid \d+/g, 'pid N'));

test('lockd.json settings are read as Node reads them (build root over state dir), without a hand-over', async (t) => {
  const d = await poolDaemon(t, { keep: 7, conflict_exit_code: 42, holder: 'from-state', wait: '10m' });
  const root = join(d.dir, 'build');
  mkdirSync(root);
  writeFileSync(join(root, 'lockd.json'), JSON.stringify({ wait: 0, holder: 'from-root', $schema: 'x', '// note': 'comments are allowed' }));
  const h = await detachedHolder(d, 'q', ['--root', root, '--lock', 'qemu']);
  const args = ['run', '--root', root, '--lock', 'qemu', '--', 'true'];
  const [a, b] = [await node(args, d.env, d.dir), await fast(args, d.env, d.dir)];
  t.notRegex(b.stderr, HANDOVER);
  // wait 0 from the build root's file (over the state dir's 10m), conflict_exit_code 42 from the state dir's
  t.is(a.code, 42, a.stderr);
  t.is(b.code, 42, b.stderr);
  t.deepEqual(lines(b.stderr), lines(a.stderr));
  h.release();
  const ok = await fast(['run', '--root', root, '--', 'true'], d.env, d.dir);
  t.is(ok.code, 0, ok.stderr);
  t.notRegex(ok.stderr, HANDOVER);
  const manifest = readJson<{ holder: string }>(printedPaths(ok.stderr).manifest!);
  t.is(manifest.holder, 'from-root');
});

test('a lockd.json this client cannot reproduce byte for byte is handed over, and Node says what it says', async (t) => {
  const d = await startDaemon(t);
  const root = join(d.dir, 'r');
  mkdirSync(root);
  const cases: Array<[string, RegExp]> = [
    ['{"wait": 0,', /not valid JSON/],
    ['{"wait": 1e1}', /number this client does not spell as Node would/],
    ['{"holder": {"a": 1}}', /not a string, number or boolean/],
    ['{"holder": "caf\u00e9"}', /non-ASCII/],
  ];
  for (const [text, why] of cases) {
    writeFileSync(join(root, 'lockd.json'), text);
    const r = await fast(['run', '-q', '--root', root, '--', 'echo', 'ran'], d.env, d.dir);
    t.regex(HANDOVER.exec(r.stderr)?.[1] ?? '', why, text);
    const n = await node(['run', '-q', '--root', root, '--', 'echo', 'ran'], d.env, d.dir);
    t.is(r.code, n.code, text);
    t.is(r.stdout, n.stdout, text);
    t.deepEqual(lines(r.stderr), lines(n.stderr), text);
  }
  // A file that is not an object is ignored by both, silently.
  writeFileSync(join(root, 'lockd.json'), '[1, 2]');
  const arr = await fast(['run', '-q', '--root', root, '--', 'echo', 'ran'], d.env, d.dir);
  t.notRegex(arr.stderr, HANDOVER);
  t.is(arr.stdout, 'ran\n');
});

test('pools: the request, the members and the records are the Node client’s, and a host with pools keeps the fast path', async (t) => {
  const d = await poolDaemon(t, BOARDS);
  const args = ['run', '--pool', 'boards:2', '--where', 'arch=arm64', '--priority', '3', '--', 'sh', '-c', 'echo "$LOCKD_MEMBERS_boards"; cat "$LOCKD_MEMBERS_FILE"'];
  const [a, b] = [await node(args, d.env, d.dir), await fast(args, d.env, d.dir)];
  t.is(b.code, 0, b.stderr);
  t.notRegex(b.stderr, HANDOVER);
  t.is(b.stdout, a.stdout);
  t.regex(b.stdout, /^rpi4-a,rpi4-b\n/);
  const ma = readJson<Record<string, unknown>>(printedPaths(a.stderr).manifest!);
  const mb = readJson<Record<string, unknown>>(printedPaths(b.stderr).manifest!);
  for (const k of ['members', 'priority', 'locks'] as const) {
    const strip = (v: unknown) => JSON.stringify(v, (key, x) => (key === 'fencing_token' ? undefined : x));
    t.is(strip(mb[k]), strip(ma[k]), k);
  }
});

test('pools: the waiting line names the pool as Node does, and bad pool input ends as Node ends it', async (t) => {
  const d = await poolDaemon(t, BOARDS);
  const h = await detachedHolder(d, 'n', ['--pool', 'boards', '--member', 'nuc']);
  const busy = ['run', '--wait', '0', '--pool', 'boards', '--where', 'arch=x86_64', '--', 'true'];
  const [a, b] = [await node(busy, d.env, d.dir), await fast(busy, d.env, d.dir)];
  t.is(b.code, 75);
  t.is(a.code, 75);
  t.notRegex(b.stderr, HANDOVER);
  t.deepEqual(lines(b.stderr), lines(a.stderr));
  // queued behind the holder: the waiting line (boards/nuc), then a timeout, both as Node prints them
  const queued = ['run', '--wait', '30', '--pool', 'boards', '--member', 'nuc', '--', 'true'];
  const waiting = fast(queued, d.env, d.dir);
  await waitForWaiters(d, 'boards/nuc', 1);
  h.release();
  const w = await waiting;
  t.is(w.code, 0, w.stderr);
  t.regex(w.stderr, /^lockd: waiting for boards\/nuc \(position 1\) behind run \S+ \(pid \d+\) /m);
  t.regex(w.stderr, /^lockd: locks granted after \d+\.\d s$/m);
  for (const bad of [
    ['--pool', 'nope'],
    ['--pool', 'boards:5'],
    ['--pool', 'boards', '--member', 'ghost'],
    ['--pool', 'boards', '--where', 'arch=sparc'],
  ]) {
    const args = ['run', ...bad, '--', 'true'];
    const [x, y] = [await node(args, d.env, d.dir), await fast(args, d.env, d.dir)];
    t.notRegex(y.stderr, HANDOVER, bad.join(' '));
    t.is(y.code, x.code, bad.join(' '));
    t.is(y.code, 2, bad.join(' '));
    t.deepEqual(lines(y.stderr), lines(x.stderr), bad.join(' '));
  }
  // what Node refuses before asking the daemon is Node's to say
  for (const bad of [
    ['--where', 'arch=arm64', '--', 'true'],
    ['--pool', 'boards', '--pool', 'boards', '--', 'true'],
    ['--pool', 'boards', '--where', 'noequals', '--', 'true'],
    ['--pool', 'boards', '--where', '1=a', '--', 'true'],
    ['--cancel-running', '--', 'true'],
    ['--priority', '2000000', '--', 'true'],
  ]) {
    const y = await fast(['run', ...bad], d.env, d.dir);
    t.regex(y.stderr, HANDOVER, bad.join(' '));
    t.is(y.code, 2, bad.join(' '));
  }
});

test('--supersede through the native client ends the older queued run of the same key (exit 77)', async (t) => {
  const d = await poolDaemon(t, BOARDS);
  const h = await detachedHolder(d, 's', ['--pool', 'boards', '--member', 'nuc']);
  const older = fast(['run', '--wait', '60', '--pool', 'boards', '--member', 'nuc', '--supersede', 'org/repo/main', '--', 'true'], d.env, d.dir);
  await waitForWaiters(d, 'boards/nuc', 1);
  const newer = fast(['run', '--wait', '60', '--pool', 'boards', '--member', 'nuc', '--supersede', 'org/repo/main', '--', 'true'], d.env, d.dir);
  const o = await older;
  t.is(o.code, 77, o.stderr);
  t.notRegex(o.stderr, HANDOVER);
  t.regex(o.stderr, /^lockd: superseded by run \S+ \(--supersede org\/repo\/main\)$/m);
  h.release();
  const n = await newer;
  t.is(n.code, 0, n.stderr);
});

test('progress lines: the native client prints the daemon’s progress messages as the Node client words them (durations, ETA, deadline)', async (t) => {
  // A peer on a socket that speaks the protocol (the real daemon cannot be made to report chosen estimates): it
  // queues the run, sends one progress message per estimate below, then finishes it.
  const { createServer } = await import('node:net');
  const { FrameDecoder, FrameKind, encodeJson } = await import('../src/protocol/framing.js');
  const { formatEstimate } = await import('../src/cli/render/format.js');
  const dir = tempDir('ncp');
  const socket = join(dir, 's.sock');
  const etas = [null, 0, 999, 1000, 1049, 1050, 1250, 2750, 4375, 9949, 9950, 9999, 10_000, 59_499, 59_500, 3_599_499, 3_599_500, 172_799_499, 172_800_000, 1e12];
  const blocker = { kind: 'run', id: 'r-1', pid: 42, holder: 'alice', user: 'alice', uid: 1000, command_line: 'make flash', since_utc: new Date().toISOString(), cwd: null, mode: 'exclusive' };
  const server = createServer((s) => {
    const dec = new FrameDecoder();
    s.on('data', (b: Buffer) => {
      for (const f of dec.push(b)) {
        if (f.kind !== FrameKind.Json) continue;
        const msg = JSON.parse(f.payload.toString('utf8')) as { type: string };
        if (msg.type === 'hello')
          s.write(encodeJson({ type: 'hello_ok', protocol: 1, version: '0.1.0', pid: process.pid, uptime_ms: 1, mode: 'user', socket, state_dir: dir, features: ['pools', 'supersede', 'progress'] }));
        if (msg.type === 'run') {
          s.write(encodeJson({ type: 'queued', run_id: 'r-2', position: 1, blockers: [blocker], manifest_path: '/m.json', result_path: '/r.json' }));
          for (const eta_ms of etas) s.write(encodeJson({ type: 'progress', position: 1, blockers: eta_ms === 0 ? [] : [blocker], eta_ms }));
          s.write(
            encodeJson({ type: 'finished', outcome: { run_id: 'r-2', exit_code: 0, status: 'pass', reason: 'pass', message: null, result_path: '/r.json', manifest_path: '/m.json', result: {} } }),
          );
        }
      }
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  t.teardown(() => server.close());
  const env = {
    PATH: process.env.PATH,
    HOME: dir,
    LOCKD_SOCKET: socket,
    LOCKD_STATE_DIR: join(dir, 'state'),
    LOCKD_NO_AUTOSTART: '1',
    ...(process.env.ASAN_OPTIONS ? { ASAN_OPTIONS: process.env.ASAN_OPTIONS } : {}),
  };
  const r = await fast(['run', '--lock', 'board', '--wait', '600', '--progress-interval', '1', '--', 'true'], env, dir);
  t.is(r.code, 0, r.stderr);
  t.notRegex(r.stderr, HANDOVER);
  const got = r.stderr.split('\n').filter((l) => l.startsWith('lockd: still waiting'));
  t.is(got.length, etas.length, r.stderr);
  for (let i = 0; i < etas.length; i++) {
    const line = got[i]!;
    const m = /^lockd: still waiting for board: (\d+\.\ds) elapsed, position 1, (.+), ETA (.+), gives up in (\S+(?: \S+)?) \(at (\d\d:\d\d:\d\d)Z\)$/.exec(line);
    t.truthy(m, line);
    t.is(m![3], formatEstimate(etas[i]!), `eta ${etas[i]}`);
    t.is(m![2], etas[i] === 0 ? 'no blocker known' : 'behind run r-1 (pid 42) alice: make flash');
    t.regex(m![4]!, /^(9m 5\ds|10m 00s)$/);
  }
});
