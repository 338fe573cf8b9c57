/** The typed Node API against a real daemon: run, acquire/heartbeat/release, status, events, errors. */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { startDaemon, REPO } from './helpers/lockd.js';
import { connect, LockdError } from '../src/index.js';

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
  t.deepEqual(seen.filter((s) => ['granted', 'started', 'released'].includes(s)), ['granted', 'started', 'released']);
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
