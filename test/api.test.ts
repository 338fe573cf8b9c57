/** The typed Node API against a real daemon: run, acquire/heartbeat/release, status, events, errors. */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { startDaemon, REPO } from './helpers/lockd.js';
import { within } from './helpers/crash-kit.js';
import { PassThrough, Writable } from 'node:stream';
import { connect, LockdClient, LockdError, type RunMessage } from '../src/index.js';

async function client(t: Parameters<typeof startDaemon>[0]) {
  const d = await startDaemon(t);
  return { d, lockd: await connect({ socket: d.socket, stateDir: d.stateDir, autostart: false }) };
}

async function collect(stream: NodeJS.ReadableStream): Promise<string> {
  let s = '';
  for await (const chunk of stream) s += chunk.toString();
  return s;
}

test('run streams output and resolves with the exit code and the record', async (t) => {
  const { d, lockd } = await client(t);
  const h = lockd.run(['sh', '-c', 'echo out; echo err >&2; exit 4'], ['x'], { root: d.dir, wait: 0 });
  const started = new Promise((r) => h.once('started', r));
  const [out, err, code] = await Promise.all([collect(h.stdout), collect(h.stderr), h.exitCode]);
  t.is(out, 'out\n');
  t.is(err, 'err\n');
  t.is(code, 4);
  const o = await h.outcome;
  t.is(o.status, 'fail');
  t.is(o.reason, 'exit_nonzero');
  t.truthy(await started);
});

test('acquire, heartbeat, status, release; a busy lock rejects with lock_busy and exit code 75', async (t) => {
  const { d, lockd } = await client(t);
  const hold = await lockd.acquire([{ name: 'board', global: true }], { wait: 0, ttl: 30, holder: 'api-test' });
  t.regex(hold.holdId, /^hold-/);
  t.is(hold.locks[0]!.name, 'board');
  await lockd.heartbeat(hold.holdId, 'api-test');
  const status = await lockd.status();
  const lock = status.locks.find((l) => l.name === 'board')!;
  t.is(lock.holders[0]!.id, hold.holdId);
  const busy = await lockd.acquire([{ name: 'board', global: true }], { wait: 0, holder: 'someone-else' }).catch((e: unknown) => e);
  t.true(busy instanceof LockdError);
  t.is((busy as LockdError).code, 'lock_busy');
  t.is((busy as LockdError).details?.exitCode, 75);
  const run = lockd.run(['true'], [{ name: 'board', global: true }], { wait: 0, holder: 'intruder' });
  run.stdout.resume();
  run.stderr.resume();
  t.is(await run.exitCode, 75);
  const rel = await lockd.release(hold.holdId, { holder: 'api-test' });
  t.true(rel.released);
  t.is((await lockd.status()).locks.length, 0);
  void d;
});

test('events() yields the lifecycle of a run in order', async (t) => {
  const { d, lockd } = await client(t);
  const seen: string[] = [];
  const stream = lockd.events();
  await stream.ready;
  const collecting = (async () => {
    for await (const e of stream) {
      seen.push(e.type);
      if (e.type === 'released') break;
    }
  })();
  const h = lockd.run(['true'], ['ev'], { root: d.dir, wait: 0 });
  h.stdout.resume();
  h.stderr.resume();
  t.is(await h.exitCode, 0);
  await collecting;
  t.deepEqual(
    seen.filter((s) => ['granted', 'started', 'released'].includes(s)),
    ['granted', 'started', 'released'],
  );
});

test("examples/node runs against a real daemon via the package's own name", async (t) => {
  const d = await startDaemon(t);
  const r = spawnSync(process.execPath, [join(REPO, 'examples', 'node', 'reserve-and-run.mjs')], { env: d.env, encoding: 'utf8', timeout: 30_000, cwd: d.dir });
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /slot 0 under run \d{6}-\d{4}-/);
  t.regex(r.stdout, /exit code 0/);
  t.regex(r.stdout, /holding hold-\w+ fencing token \d+/);
  t.regex(r.stdout, /released true/);
});

class Sink extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, cb: () => void) {
    this.text += chunk.toString();
    cb();
  }
}

test('runRaw (what lockd run uses): output into caller writables, stdin from a caller readable, on resolved connect options', async (t) => {
  const { d, lockd } = await client(t);
  const cli = LockdClient.fromConnectOptions(lockd.connectOptions);
  const req = cli.runRequest(['sh', '-c', 'read line; echo "got $line"; echo err >&2'], ['raw'], { root: d.dir, wait: 0, interactive: true });
  const out = new Sink();
  const err = new Sink();
  const input = new PassThrough();
  const h = cli.runRaw(req, { stdout: out, stderr: err, stdin: input, backlogBytes: 1 << 20 });
  t.is(h.stdin, null, 'stdin comes from the caller, not from a stream of the handle');
  const started = new Promise<RunMessage<'started'>>((r) => h.once('started', r));
  input.end('hello\n');
  const o = await within(h.outcome, 30_000, 'the run');
  t.is(o.exit_code, 0);
  t.is(out.text, 'got hello\n');
  t.is(err.text, 'err\n');
  t.is(await collect(h.stdout), '', "the handle's own streams stay empty when sinks are given");
  const s = await started;
  t.is(s.run_id, o.run_id);
  t.is(s.locks[0]!.name, 'raw');
});

test('a daemon lost while the run is only queued: one retry (event "retry"), then the error with its code', async (t) => {
  const { d, lockd } = await client(t);
  const hold = await lockd.acquire(['q'], { root: d.dir, wait: 0, holder: 'blocker' });
  t.truthy(hold.holdId);
  const h = lockd.run(['echo', 'never'], ['q'], { root: d.dir, wait: null });
  h.stdout.resume();
  h.stderr.resume();
  const retried = new Promise<void>((r) => h.once('retry', () => r()));
  await within(new Promise((r) => h.once('queued', r)), 30_000, 'the run to queue');
  process.kill(d.pid!, 'SIGKILL');
  await within(retried, 30_000, 'the retry');
  // autostart is off for this client, so the retry finds no daemon: the rejection names that.
  const e = await within(
    h.outcome.catch((x: unknown) => x),
    30_000,
    'the outcome',
  );
  t.true(e instanceof LockdError);
  t.is((e as LockdError).code, 'daemon_not_running');
});

test("acquireRaw reports queueing; inspect, heartbeat and kill answer with the daemon's words; events can be closed", async (t) => {
  const { d, lockd } = await client(t);
  const stream = lockd.events();
  await stream.ready;
  t.is(stream.info!.pid, d.pid!);
  const first = await lockd.acquire(['board'], { root: d.dir, wait: 0, ttl: 60, holder: 'first' });
  const free = await lockd.inspect('other', { root: d.dir });
  t.is(free.lock, null);
  const held = await lockd.inspect('board', { root: d.dir });
  t.is(held.lock!.holders[0]!.id, first.holdId);
  t.true(held.key.endsWith('board.lock'));
  const hb = await lockd.heartbeat(first.holdId, 'first');
  t.regex(hb.note ?? '', /^expires \d{4}-/);
  const req = {
    locks: [{ name: 'board', scope: 'local' as const, mode: 'exclusive' as const, root: d.dir }],
    cwd: d.dir,
    wait_ms: 30_000,
    ttl_ms: null,
    conflict_exit_code: 75,
    holder: 'second',
    user: 'me',
    client_pid: process.pid,
    parent_run_id: null,
  };
  let queuedAt: number | null = null;
  const second = lockd.acquireRaw(req, { onQueued: (m) => (queuedAt = m.position) });
  // Release the first hold once the second is seen waiting, from the status (no sleeps).
  for (let i = 0; i < 600 && !(await lockd.status()).locks.some((l) => l.waiters.length > 0); i++) await new Promise((r) => setTimeout(r, 50));
  t.true((await lockd.release(first.holdId, { holder: 'first' })).released);
  const got = await within(second, 30_000, 'the second hold');
  t.is(got.holder, 'second');
  t.is(queuedAt as number | null, 1);
  t.true((await lockd.release(got.hold_id, { holder: 'second' })).released);

  const h = lockd.run(['sleep', '60'], [], { root: d.dir, wait: 0 });
  h.stdout.resume();
  h.stderr.resume();
  const s = await within(new Promise<RunMessage<'started'>>((r) => h.once('started', r)), 30_000, 'the run to start');
  const k = await lockd.kill(s.run_id);
  t.regex(k.note ?? '', new RegExp(`run ${s.run_id} stopped; result -> .*result\\.json$`));
  const o = await within(h.outcome, 30_000, 'the killed run');
  t.is(o.reason, 'cancelled');

  const types: string[] = [];
  const reading = (async () => {
    for await (const e of stream) types.push(e.type);
  })();
  stream.close();
  await t.notThrowsAsync(within(reading, 10_000, 'the closed stream to end'), 'close() ends the iteration without an error');
  t.deepEqual(types, [], 'after close() nothing is yielded, not even what was buffered');
});
