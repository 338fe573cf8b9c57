/**
 * kill -9 of the daemon with jobs running and clients waiting, then a restart: what the new daemon finds in the
 * journal is settled before it serves (docs/crash-safety.md). Every claim is checked against the process table
 * and the records on disk, never against the daemon's word alone.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, lockd, lockdSpawn, tempDir, waitForFile, readJson, waitPidsGone, pidAlive, baseEnv, stopProcess, type Daemon } from './helpers/lockd.js';
import { ask, statusOf, kill9, cleanupRunsUnder, runProcessesUnder, until, within } from './helpers/crash-kit.js';
import { processStartTimeSync } from '../src/util/proc.js';
import { JOURNAL_FILE, Journal } from '../src/daemon/records/journal.js';
import { createConnection } from 'node:net';
import { CLI } from './helpers/lockd.js';

function socketAccepts(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** A shell loop that waits (in the job, not the test) until `file` exists. */
const waitFor = (file: string) => `while [ ! -e ${file} ]; do sleep 0.05; done`;

test('attached run + queued client: the tree is killed and recorded, the lock is free, the queued client retries once against the restarted daemon', async (t) => {
  const d = await startDaemon(t);
  cleanupRunsUnder(t, d.dir);
  const root = join(d.dir, 'root');
  const pids = join(d.dir, 'pids');
  const att = lockdSpawn(t, d, ['run', '--root', root, '--lock', 'att', '--', 'sh', '-c', `sleep 300 & echo "$$ $!" > ${pids}; echo started; wait`]);
  await att.waitForStdout('started');
  const [leader, child] = readFileSync(pids, 'utf8').trim().split(' ').map(Number) as [number, number];
  // The queued client may auto-start the next daemon itself (its retry), with the same socket and state dir.
  const autostartEnv = { ...d.env };
  delete autostartEnv.LOCKD_NO_AUTOSTART;
  const queued = lockdSpawn(t, { env: autostartEnv }, ['run', '--root', root, '--lock', 'att', '--wait', '60', '--', 'sh', '-c', 'echo second-ran']);
  await queued.waitForStderr('waiting for att');

  await kill9(d);
  const a = await within(att.done, 15_000, 'the attached client to exit');
  t.is(a.code, 125);
  const resultPath = /the run's result will be at (\S+)/.exec(a.stderr)?.[1];
  t.truthy(resultPath, `the client says where the result will be: ${a.stderr}`);
  t.regex(a.stderr, /lost the connection to the lockd daemon/);

  // The queued client retried once and auto-started the next daemon, which settled the journal first.
  const q = await within(queued.done, 30_000, 'the queued client to finish');
  t.regex(q.stderr, /went away while we were queued; retrying once/);
  if (q.code !== 0) t.log(`daemon.log:\n${readFileSync(join(d.stateDir, 'daemon.log'), 'utf8')}`);
  t.is(q.code, 0, q.stderr);
  t.is(q.stdout, 'second-ran\n');
  const pong = await ask(d, { type: 'ping' }, ['pong']);
  t.not(pong.pid, d.pid);
  t.teardown(async () => {
    try {
      process.kill(pong.pid, 'SIGTERM');
    } catch {
      /* gone */
    }
    await waitPidsGone([pong.pid], 10_000);
  });

  t.deepEqual(await waitPidsGone([leader, child]), [], 'the whole attached tree was killed');
  const res = readJson(resultPath!);
  t.is(res.status, 'infra_fail');
  t.is(res.reason, 'daemon_lost');
  t.regex(String(res.message), /client lost its connection/);
  t.is(res.child_exit_code, null);
  // No lock is held by a process that no longer exists.
  const st = await statusOf(d);
  t.deepEqual(st.locks, []);
  t.is((await lockd(d, ['run', '-q', '--root', root, '--lock', 'att', '--wait', '0', '--', 'true'])).code, 0);
});

test('a --detach run is re-adopted by pid and start time: it keeps its lock until its tree exits, then gets a result', async (t) => {
  const dir = tempDir();
  const d = await startDaemon(t, { dir });
  cleanupRunsUnder(t, dir);
  const root = join(dir, 'root');
  const go = join(dir, 'go');
  const goFirst = join(dir, 'go-first');
  // A first holder takes slot 0 and ends before the crash, so the adopted run holds slot 1 with slot 0 free:
  // a plain re-grant would hand it slot 0 and the next run slot 1 — the same slot twice.
  const first = await lockd(d, ['run', '--detach', '--root', root, '--lock', 'det:slots=3', '--', 'sh', '-c', waitFor(goFirst)]);
  t.is(first.code, 0, first.stderr);
  await until(async () => ((await statusOf(d)).locks.find((x) => x.name === 'det')?.holders[0]?.pid ? true : undefined), 10_000, 'the first run to start');
  const det = await lockd(d, ['run', '--detach', '--root', root, '--lock', 'det:slots=3', '--', 'sh', '-c', `echo "slot $LOCKD_SLOT_det"; ${waitFor(go)}; echo finished-after-restart`]);
  t.is(det.code, 0, det.stderr);
  const runId = det.stdout.trim();
  const runDir = join(root, 'runs', runId);
  const before = await until(
    async () => {
      const s = await statusOf(d);
      const l = s.locks.find((x) => x.name === 'det');
      return l && l.holders.length === 2 && l.holders.every((h) => h.pid) ? l : undefined;
    },
    10_000,
    'both detached runs to start',
  );
  const mine = before.holders.find((h) => h.id === runId)!;
  t.is(mine.slot_index, 1);
  writeFileSync(goFirst, '');
  await waitForFile(join(root, 'runs', first.stdout.trim(), 'result.json'));
  const leader = mine.pid!;
  const startTime = processStartTimeSync(leader);

  await kill9(d);
  t.true(pidAlive(leader), 'a detached run outlives the daemon');
  const d2 = await startDaemon(t, { dir });
  const st = await statusOf(d2);
  const lock = st.locks.find((x) => x.name === 'det');
  const adopted = lock?.holders.find((h) => h.id === runId);
  t.truthy(adopted, 'the new daemon holds the lock for the adopted run before serving anyone');
  t.is(adopted?.pid, leader);
  t.is(adopted?.slot_index, mine.slot_index, 'the adopted run keeps its slot');
  t.is(processStartTimeSync(leader), startTime);
  t.false(existsSync(join(runDir, 'result.json')));
  // Two more clients take the free slots 0 and 2; then the lock is full.
  for (const want of [0, 2]) {
    const more = await lockd(d2, ['run', '--detach', '--root', root, '--lock', 'det:slots=3', '--', 'sh', '-c', `echo "slot $LOCKD_SLOT_det" > ${dir}/slot-${want}; ${waitFor(go)}`]);
    t.is(more.code, 0);
    await waitForFile(join(dir, `slot-${want}`));
    await until(() => (readFileSync(join(dir, `slot-${want}`), 'utf8') === `slot ${want}\n` ? true : undefined), 5000, `the new run to get slot ${want}`);
  }
  const full = await lockd(d2, ['run', '-q', '--root', root, '--lock', 'det:slots=3', '--wait', '0', '--', 'true']);
  t.is(full.code, 75, 'no slot is granted twice');

  writeFileSync(go, '');
  await waitForFile(join(runDir, 'result.json'), 20_000);
  const res = readJson(join(runDir, 'result.json'));
  t.is(res.status, 'infra_fail');
  t.is(res.reason, 'daemon_lost');
  t.is(res.child_exit_code, null);
  t.regex(String(res.message), /re-adopted after a daemon restart; exit status unknown/);
  // It wrote into its log straight through the restart (no pipe to a dead daemon: no SIGPIPE).
  const log = readFileSync(join(runDir, 'output.log'), 'utf8');
  t.regex(log, /slot \d/);
  t.regex(log, /finished-after-restart/);
  t.deepEqual(await waitPidsGone([leader]), []);
  const after = await until(
    async () => {
      const s = await statusOf(d2);
      return s.locks.every((l) => l.holders.every((h) => h.id !== runId)) ? s : undefined;
    },
    10_000,
    'the adopted run to let go of its lock',
  );
  t.truthy(after);
  // Every run dir has its result eventually, and the journal forgets settled runs.
  await until(async () => ((await statusOf(d2)).locks.length === 0 ? true : undefined), 20_000, 'all detached runs to end');
  // (Locks are released before the result and the journal's run_end are written: wait for those too.)
  const live = await until(
    () => {
      const runs = [...Journal.read(join(d2.stateDir, JOURNAL_FILE)).runs.keys()];
      return runs.length === 0 ? runs : undefined;
    },
    10_000,
    'the journal to forget every settled run',
  );
  t.deepEqual(live, []);
});

test("lockd kill stops a re-adopted run's whole tree and records it", async (t) => {
  const dir = tempDir();
  const d = await startDaemon(t, { dir });
  cleanupRunsUnder(t, dir);
  const root = join(dir, 'root');
  const pids = join(dir, 'pids');
  const det = await lockd(d, ['run', '--detach', '--root', root, '--lock', 'k', '--', 'sh', '-c', `trap '' TERM; sleep 300 & echo "$$ $!" > ${pids}; wait`]);
  const runId = det.stdout.trim();
  await waitForFile(pids);
  const procs = await until(
    () => {
      const m = /^(\d+) (\d+)$/m.exec(readFileSync(pids, 'utf8'));
      return m ? [Number(m[1]), Number(m[2])] : undefined;
    },
    5000,
    'the job to write its pids',
  );
  // The daemon journals the start right after spawning (the job can be faster): wait until it answers with the pid.
  await until(async () => ((await statusOf(d)).locks[0]?.holders[0]?.pid === procs[0] ? true : undefined), 5000, 'the start to be journaled');
  await kill9(d);
  const d2 = await startDaemon(t, { dir });
  const reply = await ask(d2, { type: 'kill', run_id: runId, signal: 'TERM', force: false }, ['ok']);
  t.regex(String(reply.note), /stopped/);
  t.deepEqual(await waitPidsGone(procs), [], 'the leader ignoring SIGTERM was SIGKILLed, its child too');
  const res = readJson(join(root, 'runs', runId, 'result.json'));
  t.is(res.reason, 'daemon_lost');
  t.regex(String(res.message), /re-adopted after a daemon restart; exit status unknown; stopped by/);
  t.is((await lockd(d2, ['run', '-q', '--root', root, '--lock', 'k', '--wait', '0', '--', 'true'])).code, 0);
});

test('holds survive kill -9: a TTL hold keeps its remaining TTL, a --ttl none hold stays, an expired one is dropped', async (t) => {
  const dir = tempDir();
  const d = await startDaemon(t, { dir });
  const root = join(dir, 'root');
  const acquire = (name: string, ttl: number | null, holder: string) =>
    ask(
      d,
      {
        type: 'acquire',
        req: {
          locks: [{ name, scope: 'local', mode: 'exclusive', root }],
          cwd: dir,
          wait_ms: 0,
          ttl_ms: ttl,
          conflict_exit_code: 75,
          holder,
          user: 'root',
          client_pid: process.pid,
          parent_run_id: null,
        },
      },
      ['acquired'],
    );
  const long = await acquire('long', 600_000, 'ci-long');
  const forever = await acquire('forever', null, 'ci-forever');
  const short = await acquire('short', 1_000, 'ci-short');
  const before = await statusOf(d);
  const expiresLong = before.holds.find((h) => h.hold_id === long.hold_id)!.expires_utc;
  const expiresShort = Date.parse(before.holds.find((h) => h.hold_id === short.hold_id)!.expires_utc!);
  await kill9(d);
  // Stay down past the short hold's expiry (a wait on the clock itself, bounded by its 1 s TTL).
  await until(() => (Date.now() > expiresShort + 50 ? true : undefined), 5000, 'the short TTL to run out');
  const d2 = await startDaemon(t, { dir });
  const st = await statusOf(d2);
  const byId = new Map(st.holds.map((h) => [h.hold_id, h]));
  t.is(byId.get(long.hold_id)?.expires_utc, expiresLong, 'the TTL hold keeps its remaining TTL, not a fresh one');
  t.is(byId.get(long.hold_id)?.holder, 'ci-long');
  t.truthy(byId.get(forever.hold_id));
  t.is(byId.get(forever.hold_id)?.expires_utc, null);
  t.false(byId.has(short.hold_id), 'a hold whose TTL ran out while no daemon ran is dropped');
  t.is((await lockd(d2, ['run', '-q', '--root', root, '--lock', 'short', '--wait', '0', '--', 'true'])).code, 0);
  t.is((await lockd(d2, ['run', '-q', '--root', root, '--lock', 'forever', '--wait', '0', '--', 'true'])).code, 75);
  t.is((await lockd(d2, ['run', '-q', '--root', root, '--lock', 'long', '--wait', '0', '--', 'true'])).code, 75);
});

test('a restored hold keeps its slot: slot 1 stays slot 1 after kill -9, and the next taker gets slot 0', async (t) => {
  const dir = tempDir();
  const d = await startDaemon(t, { dir });
  const root = join(dir, 'root');
  const acquire = (dd: Daemon, holder: string) =>
    ask(
      dd,
      {
        type: 'acquire',
        req: {
          locks: [{ name: 'board', scope: 'local', mode: 'slots', slots: 2, root }],
          cwd: dir,
          wait_ms: 0,
          ttl_ms: null,
          conflict_exit_code: 75,
          holder,
          user: 'root',
          client_pid: process.pid,
          parent_run_id: null,
        },
      },
      ['acquired'],
    );
  const first = await acquire(d, 'ci-first');
  const second = await acquire(d, 'ci-second');
  t.is(first.locks[0]!.slot_index, 0);
  t.is(second.locks[0]!.slot_index, 1);
  await ask(d, { type: 'release', hold_id: first.hold_id, locks: [], cwd: dir, holder: 'ci-first', force: false }, ['released']);
  await kill9(d);
  const d2 = await startDaemon(t, { dir });
  const slotOf = async (id: string) => (await statusOf(d2)).locks.find((l) => l.name === 'board')?.holders.find((h) => h.id === id)?.slot_index;
  t.is(await slotOf(second.hold_id), 1, 'the restored hold is on the slot its owner was told, not the lowest free one');
  const third = await acquire(d2, 'ci-third');
  t.is(third.locks[0]!.slot_index, 0);
});

test('SIGTERM and shutdown --force write every record before exiting; detached runs are left for the next daemon', async (t) => {
  const dir = tempDir();
  const d = await startDaemon(t, { dir });
  cleanupRunsUnder(t, dir);
  const root = join(dir, 'root');
  const go = join(dir, 'go');
  const det = await lockd(d, ['run', '--detach', '--root', root, '--lock', 'd', '--', 'sh', '-c', `${waitFor(go)}; echo det-done`]);
  const detId = det.stdout.trim();
  const att = lockdSpawn(t, d, ['run', '--root', root, '--lock', 'a', '--', 'sh', '-c', 'echo started; sleep 300']);
  await att.waitForStdout('started');
  await until(async () => ((await statusOf(d)).locks.find((l) => l.name === 'd')?.holders[0]?.pid ? true : undefined), 10_000, 'the detached run to start');
  const exited = new Promise<number | null>((r) => d.proc!.once('exit', (code) => r(code)));
  d.proc!.kill('SIGTERM');
  const a = await within(att.done, 20_000, 'the attached client');
  t.is(await within(exited, 20_000, 'the daemon to exit after SIGTERM'), 0);
  const resultPath = /lockd: result -> (\S+)/.exec(a.stderr)?.[1];
  t.truthy(resultPath, a.stderr);
  const res = readJson(resultPath!);
  t.is(res.reason, 'shutdown');
  t.is(res.status, 'infra_fail');
  t.is(a.code, res.exit_code as number);
  // The detached run was not stopped and has no result yet: the next daemon takes it over.
  const detDir = join(root, 'runs', detId);
  t.false(existsSync(join(detDir, 'result.json')));
  const d2 = await startDaemon(t, { dir });
  t.truthy((await statusOf(d2)).locks.find((l) => l.name === 'd')?.holders.find((h) => h.id === detId));

  // shutdown --force: the adopted run and a fresh attached one are stopped and recorded before the daemon exits.
  const att2 = lockdSpawn(t, d2, ['run', '--root', root, '--lock', 'a', '--', 'sh', '-c', 'echo started; sleep 300']);
  await att2.waitForStdout('started');
  const sd = await lockd(d2, ['shutdown', '--force']);
  t.is(sd.code, 0, sd.stderr);
  const a2 = await within(att2.done, 20_000, 'the second attached client');
  t.is(readJson(/lockd: result -> (\S+)/.exec(a2.stderr)![1]!).reason, 'shutdown');
  const detRes = readJson(join(detDir, 'result.json'));
  t.is(detRes.reason, 'daemon_lost');
  t.regex(String(detRes.message), /stopped by lockd shutdown/);
  t.deepEqual(await runProcessesUnder(dir), [], 'nothing of any run survives a forced shutdown');
});

test("a second daemon on another socket but the same state dir is refused and leaves the first one's runs alone", async (t) => {
  const dir = tempDir();
  const d = await startDaemon(t, { dir });
  cleanupRunsUnder(t, dir);
  const root = join(dir, 'root');
  const att = lockdSpawn(t, d, ['run', '--root', root, '--lock', 'a', '--', 'sh', '-c', 'echo started; sleep 2; echo still-here']);
  await att.waitForStdout('started');
  const env = { ...d.env, LOCKD_SOCKET: join(dir, 'other.sock') };
  const second = await lockd({ env }, ['daemon']);
  t.not(second.code, 0);
  t.regex(second.stderr, /another lockd daemon is using the state directory/);
  const a = await within(att.done, 20_000, "the first daemon's run");
  t.is(a.code, 0);
  t.regex(a.stdout, /still-here/);
  t.false(existsSync(join(dir, 'other.sock')), 'the refused daemon released its socket');
});

/** Write a journal by hand, as a daemon that died would have left it. */
function writeJournal(d: { stateDir: string }, entries: unknown[]): void {
  mkdirSync(d.stateDir, { recursive: true, mode: 0o700 });
  writeFileSync(join(d.stateDir, JOURNAL_FILE), `${entries.map((e) => JSON.stringify(e)).join('\n')}\n`, { mode: 0o600 });
}

test('a run spawned but not yet journaled as started (crash in between) has its processes found by env tag and killed', async (t) => {
  const dir = tempDir();
  const env = baseEnv(dir);
  const runId = '250101-0000-dead';
  const runDir = join(dir, 'runs', runId);
  mkdirSync(runDir, { recursive: true });
  writeJournal({ stateDir: env.LOCKD_STATE_DIR! }, [
    {
      t: 'run',
      run_id: runId,
      pid: null,
      pgid: null,
      start_time: null,
      locks: [],
      client_pid: 1,
      detach: false,
      dir: runDir,
      holder: 'h',
      user: 'root',
      uid: 0,
      command_line: 'sleep',
      queued_at: Date.now(),
      started_at: null,
      log_path: null,
      parent: null,
    },
  ]);
  // The orphan: its own session and group, reparented away from us, known only by the tag every job process has.
  const orphan = spawn('setsid', ['sh', '-c', 'sleep 300 & wait'], { env: { ...process.env, LOCKD_RUN_ID: runId, LOCKD_RUN_DIR: runDir }, detached: true, stdio: 'ignore' });
  orphan.unref();
  t.teardown(() => {
    try {
      process.kill(orphan.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  });
  cleanupRunsUnder(t, dir);
  const members = await until(
    async () => {
      const p = await runProcessesUnder(runDir);
      return p.length >= 2 ? p : undefined;
    },
    5000,
    'the orphan and its child',
  );
  const d = await startDaemon(t, { dir });
  t.deepEqual(await waitPidsGone(members.map((m) => m.pid)), [], 'every tagged process was killed before serving');
  const res = readJson(join(runDir, 'result.json'));
  t.is(res.reason, 'daemon_lost');
  t.regex(String(res.message), /being started; the processes it had started were stopped/);
  t.false(readFileSync(join(d.stateDir, JOURNAL_FILE), 'utf8').includes(`"t":"run","run_id":"${runId}"`), 'the settled record is gone');
});

test('a run whose leader died with the daemon but left an escaped grandchild: the straggler is killed, the run recorded', async (t) => {
  const dir = tempDir();
  const d = await startDaemon(t, { dir });
  cleanupRunsUnder(t, dir);
  const root = join(dir, 'root');
  const pids = join(dir, 'pids');
  // The grandchild leaves the job's process group and session (setsid) and is reparented when its parent exits.
  const att = lockdSpawn(t, d, ['run', '--root', root, '--lock', 'esc', '--', 'sh', '-c', `setsid sleep 300 & echo "$$ $!" > ${pids}; echo started; sleep 300`]);
  await att.waitForStdout('started');
  const [leader, escapee] = readFileSync(pids, 'utf8').trim().split(' ').map(Number) as [number, number];
  // The daemon journals the start right after spawning (the job can be faster): a kill before that is the
  // "being started" case, tested above. Wait until it answers with the leader's pid.
  await until(async () => ((await statusOf(d)).locks.find((x) => x.name === 'esc')?.holders[0]?.pid === leader ? true : undefined), 5000, 'the start to be journaled');
  await kill9(d);
  process.kill(leader, 'SIGKILL');
  t.deepEqual(await waitPidsGone([leader]), []);
  t.true(pidAlive(escapee));
  const a = await within(att.done, 15_000, 'the client');
  const named = /the run's result will be at (\S+)/.exec(a.stderr);
  if (named === null) {
    t.fail(`the client did not name the result path; it printed: ${a.stderr}`);
    return;
  }
  const resultPath = named[1]!;
  const d2 = await startDaemon(t, { dir });
  t.deepEqual(await waitPidsGone([escapee]), [], 'the escaped grandchild was found (env tag) and killed');
  const res = readJson(resultPath);
  t.is(res.reason, 'daemon_lost');
  t.regex(String(res.message), /processes left behind by it were stopped/);
  t.deepEqual((await statusOf(d2)).locks, []);
});

test('a corrupt result.json of a lost run is set aside and replaced by a true record', async (t) => {
  const dir = tempDir();
  const env = baseEnv(dir);
  const runId = '250101-0000-beef';
  const runDir = join(dir, 'runs', runId);
  mkdirSync(runDir, { recursive: true });
  writeFileSync(join(runDir, 'result.json'), '{"schema_version":1,"status":"pa');
  writeJournal({ stateDir: env.LOCKD_STATE_DIR! }, [
    {
      t: 'run',
      run_id: runId,
      pid: 4194000,
      pgid: 4194000,
      start_time: '1',
      locks: [],
      client_pid: 1,
      detach: false,
      dir: runDir,
      holder: 'h',
      user: 'root',
      uid: 0,
      command_line: 'x',
      queued_at: Date.now() - 1000,
      started_at: Date.now() - 900,
      log_path: null,
      parent: null,
    },
  ]);
  const d: Daemon = await startDaemon(t, { dir });
  t.truthy(d.pid);
  const res = readJson(join(runDir, 'result.json'));
  t.is(res.reason, 'daemon_lost');
  const { readdirSync } = await import('node:fs');
  t.is(readdirSync(runDir).filter((f) => f.startsWith('result.json.corrupt-')).length, 1);
  t.regex(readFileSync(join(d.stateDir, 'daemon.log'), 'utf8'), /a corrupt result.json was set aside/);
});

test('clients connecting while the new daemon reconciles wait for it instead of failing', async (t) => {
  const dir = tempDir();
  const d = await startDaemon(t, { dir });
  cleanupRunsUnder(t, dir);
  const root = join(dir, 'root');
  // An attached job that ignores SIGTERM makes reconcile take its kill grace (5 s) before serving.
  const att = lockdSpawn(t, d, ['run', '--root', root, '--lock', 'slow', '--', 'sh', '-c', "trap '' TERM; echo started; while :; do sleep 1; done"]);
  await att.waitForStdout('started');
  await kill9(d);
  await within(att.done, 15_000, 'the client');
  const env = { ...d.env };
  const proc = spawn(process.execPath, [CLI, 'daemon'], { env, stdio: 'ignore' });
  t.teardown(() => stopProcess(proc));
  // As soon as the socket accepts, ask for the lock the lost run held: it must be free, never granted twice.
  await until(async () => ((await socketAccepts(d.socket)) ? true : undefined), 10_000, 'the new daemon to claim the socket');
  const started = Date.now();
  const r = await lockd({ env }, ['run', '-q', '--root', root, '--lock', 'slow', '--wait', '0', '--', 'true']);
  t.is(r.code, 0, r.stderr);
  t.true(Date.now() - started >= 1000, 'the request was answered only after reconcile had stopped the old tree');
  t.deepEqual(await runProcessesUnder(dir), []);
});
