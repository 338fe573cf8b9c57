/**
 * System mode with real users: one root daemon, clients run as different users through setpriv. Covers attribution
 * from SO_PEERCRED (never from claims), jobs started as the caller, run records owned by the caller, and who may
 * stop or break whose runs and holds.
 */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { CLI, printedPaths, readJson } from './helpers/lockd.js';
import { acquireRequest, createFixture, lockdAs, rawAs, removeFixture, runRequest, spawnAsUser, startSystemDaemon, systemTestsUnavailable, type Fixture } from './system-mode-helpers.js';

const unavailable = systemTestsUnavailable();

function rand(): string {
  return randomBytes(3).toString('hex');
}

function gidOf(group: string): number {
  return Number(execFileSync('getent', ['group', group], { encoding: 'utf8' }).split(':')[2]);
}

function errorOf(x: { replies: Array<{ type: string }> }): { code: string; message: string } | undefined {
  return x.replies.find((r) => r.type === 'error') as { code: string; message: string } | undefined;
}

if (unavailable) {
  test('system-mode user tests need root on Linux with setpriv and the native addon', (t) => {
    t.log(`not run: ${unavailable}`);
    t.true(unavailable.length > 0);
  });
} else {
  let fx: Fixture;
  test.before(() => {
    fx = createFixture();
  });
  test.after.always(() => {
    if (fx) removeFixture(fx);
  });

  test('the system socket is root:<socket group> 0660; a user outside that group cannot connect', async (t) => {
    const d = await startSystemDaemon(t, fx);
    const st = statSync(d.socket);
    t.is(st.mode & 0o777, 0o660);
    t.is(st.uid, 0);
    t.is(st.gid, gidOf(fx.sockGroup));
    const outsider = await spawnAsUser(t, { name: 'nobody', uid: 65534, gid: 65534, home: '/' }, [process.execPath, CLI, 'ping'], { LOCKD_SOCKET: d.socket }).done;
    t.not(outsider.code, 0);
    t.regex(outsider.stderr, /EACCES|permission denied/i);
    const member = await lockdAs(t, fx.a, d, ['ping']).done;
    t.is(member.code, 0, member.stderr);
  });

  test('two users contend for one global lock: the second gets 75, naming the first by verified name', async (t) => {
    const d = await startSystemDaemon(t, fx);
    const lock = `g${rand()}`;
    const holder = lockdAs(t, fx.a, d, ['run', '--global', lock, '--wait', '0', '--', 'sh', '-c', 'echo holding; exec sleep 60']);
    await holder.waitForStdout('holding');
    const busy = await lockdAs(t, fx.b, d, ['run', '--global', lock, '--wait', '0', '--', 'true']).done;
    t.is(busy.code, 75, busy.stderr);
    t.true(busy.stderr.includes(`${fx.a.name} (uid ${fx.a.uid})`), busy.stderr);
    holder.proc.kill('SIGTERM');
    await holder.done;
    const after = await lockdAs(t, fx.b, d, ['run', '--global', lock, '--wait', '20', '--', 'true']).done;
    t.is(after.code, 0, after.stderr);
  });

  test('a job runs as its caller (uid, gid, groups, HOME, USER, cwd) and its records belong to the caller', async (t) => {
    const d = await startSystemDaemon(t, fx);
    const root = join(fx.a.home, `b-${rand()}`);
    // The user's own runs root with 0750: run directories take its permissions.
    const mk = await spawnAsUser(t, fx.a, ['sh', '-c', 'mkdir -p "$1" && chmod 750 "$1"', 'mk', join(root, 'runs')]).done;
    t.is(mk.code, 0, mk.stderr);
    const p = lockdAs(t, fx.a, d, ['run', '--root', root, '--', 'sh', '-c', 'id -u; id -g; id -G; echo "$HOME"; echo "$USER"; echo "$LOGNAME"; pwd']);
    const r = await p.done;
    t.is(r.code, 0, r.stderr);
    const [uid, gid, groups, home, user, logname, cwd] = r.stdout.trim().split('\n');
    t.is(Number(uid), fx.a.uid);
    t.is(Number(gid), fx.a.gid);
    t.deepEqual(
      groups!
        .trim()
        .split(/\s+/)
        .map(Number)
        .sort((x, y) => x - y),
      fx.a.groups,
    );
    t.is(home, fx.a.home);
    t.is(user, fx.a.name);
    t.is(logname, fx.a.name);
    t.is(cwd, fx.a.home);

    const paths = printedPaths(r.stderr);
    const runDir = dirname(paths.result!);
    t.is(dirname(runDir), join(root, 'runs'));
    const dirSt = statSync(runDir);
    t.is(dirSt.uid, fx.a.uid);
    t.is(dirSt.mode & 0o7777, 0o750);
    const logSt = statSync(join(runDir, 'output.log'));
    t.is(logSt.uid, fx.a.uid);
    t.is(logSt.mode & 0o777, 0o640);
    t.is(statSync(paths.manifest!).uid, fx.a.uid);
    t.is(statSync(paths.result!).uid, fx.a.uid);
    t.true(readFileSync(join(runDir, 'output.log'), 'utf8').startsWith(`${fx.a.uid}\n`));

    const manifest = readJson(paths.manifest!);
    t.is(manifest.user, fx.a.name);
    t.is(manifest.holder, `${fx.a.name} (uid ${fx.a.uid})`);
    t.is(manifest.client_pid, p.proc.pid);
    const result = readJson(paths.result!);
    t.is(result.holder, `${fx.a.name} (uid ${fx.a.uid})`);
    t.is(result.status, 'pass');
  });

  test('without a runs root, runs go to <state>/runs/<user>, private to that user', async (t) => {
    const d = await startSystemDaemon(t, fx);
    const r = await lockdAs(t, fx.b, d, ['run', '--', 'true']).done;
    t.is(r.code, 0, r.stderr);
    const mine = join(d.stateDir, 'runs', fx.b.name);
    t.is(dirname(dirname(printedPaths(r.stderr).result!)), mine);
    const st = statSync(mine);
    t.is(st.uid, fx.b.uid);
    t.is(st.mode & 0o777, 0o700);
    t.is(statSync(join(d.stateDir, 'runs')).uid, 0);
  });

  test('a user cannot make the daemon create runs or logs where that user could not write', async (t) => {
    const d = await startSystemDaemon(t, fx);
    const tag = rand();
    // A runs root under root's home, and one that is the user's symlink to /etc.
    const denied = await lockdAs(t, fx.a, d, ['run', '--runs-root', `/root/lockd-${tag}`, '--', 'true']).done;
    t.not(denied.code, 0);
    t.regex(denied.stderr, /cannot create a run directory/);
    t.false(existsSync(`/root/lockd-${tag}`));
    const link = join(fx.a.home, `etc-${tag}`);
    t.is((await spawnAsUser(t, fx.a, ['ln', '-s', '/etc', link]).done).code, 0);
    const etcBefore = readdirSync('/etc').length;
    const viaLink = await lockdAs(t, fx.a, d, ['run', '--runs-root', link, '--', 'true']).done;
    t.not(viaLink.code, 0);
    t.regex(viaLink.stderr, /cannot create a run directory/);
    t.is(readdirSync('/etc').length, etcBefore);
    // --log names a file the user could not create: refused, nothing created.
    const log = `/etc/lockd-${tag}.log`;
    const badLog = await lockdAs(t, fx.a, d, ['run', '--root', join(fx.a.home, `l-${tag}`), '--log', log, '--', 'true']).done;
    t.not(badLog.code, 0);
    t.regex(badLog.stderr, /cannot write the log/);
    t.false(existsSync(log));
    // A --log of their own works, and the file is theirs.
    const own = join(fx.a.home, `own-${tag}.log`);
    const ok = await lockdAs(t, fx.a, d, ['run', '--root', join(fx.a.home, `l-${tag}`), '--log', own, '--', 'echo', 'logged']).done;
    t.is(ok.code, 0, ok.stderr);
    t.is(readFileSync(own, 'utf8'), 'logged\n');
    t.is(statSync(own).uid, fx.a.uid);
  });

  test("users cannot stop each other's runs; an admin's --force does, logged and recorded as cancelled_by", async (t) => {
    const d = await startSystemDaemon(t, fx);
    const runId = `k-${rand()}`;
    const job = lockdAs(t, fx.a, d, ['run', '--run-id', runId, '--root', join(fx.a.home, runId), '--', 'sh', '-c', 'echo up; exec sleep 60']);
    await job.waitForStdout('up');
    const kill = (force: boolean) => ({ type: 'kill', run_id: runId, signal: 'TERM', force });
    t.is(errorOf(await rawAs(fx, fx.b, d, null, [kill(false)]))?.code, 'not_owner');
    t.is(errorOf(await rawAs(fx, fx.b, d, null, [kill(true)]))?.code, 'not_authorized');
    t.is(errorOf(await rawAs(fx, fx.admin, d, null, [kill(false)]))?.code, 'not_owner');
    t.is(job.proc.exitCode, null, 'the run survived the refused attempts');
    const forced = await rawAs(fx, fx.admin, d, null, [kill(true)]);
    t.truthy(
      forced.replies.find((r) => r.type === 'ok'),
      JSON.stringify(forced.replies),
    );
    const r = await job.done;
    const result = readJson(printedPaths(r.stderr).result!);
    t.is(result.reason, 'cancelled');
    t.regex(String(result.cancelled_by), new RegExp(`^${fx.admin.name} \\(uid ${fx.admin.uid}, admin, pid \\d+\\)$`));
    const log = readFileSync(join(d.stateDir, 'daemon.log'), 'utf8');
    t.true(log.split('\n').some((l) => l.includes('run stopped by an admin') && l.includes(runId) && l.includes(fx.admin.name)));
  });

  test("users cannot release each other's holds (whatever holder they claim); an admin's --force does, and status shows everyone's", async (t) => {
    const d = await startSystemDaemon(t, fx);
    const lock = { name: `h${rand()}`, scope: 'global', mode: 'exclusive' };
    const acq = await rawAs(fx, fx.a, d, null, [{ type: 'acquire', req: acquireRequest({ holder: fx.a.name, user: fx.a.name, locks: [lock], cwd: fx.a.home }) }]);
    const acquired = acq.replies.find((r) => r.type === 'acquired') as { hold_id: string; holder: string } | undefined;
    t.truthy(acquired, JSON.stringify(acq.replies));
    t.is(acquired!.holder, `${fx.a.name} (uid ${fx.a.uid})`);
    const holdId = acquired!.hold_id;

    const status = await rawAs(fx, fx.b, d, null, [{ type: 'status', root: null }]);
    const snap = status.replies.find((r) => r.type === 'status') as { snapshot: { holds: Array<{ hold_id: string; user: string }> } } | undefined;
    t.is(snap?.snapshot.holds.find((h) => h.hold_id === holdId)?.user, fx.a.name);
    t.false(JSON.stringify(snap).includes('"env'), 'status carries no environments');

    const release = (force: boolean) => ({ type: 'release', hold_id: holdId, locks: [], cwd: '/', holder: fx.a.name, force });
    const claimed = await rawAs(fx, fx.b, d, null, [release(false)]);
    const left = claimed.replies.find((r) => r.type === 'released') as { released: boolean; note: string } | undefined;
    t.is(left?.released, false);
    t.regex(left!.note, /not yours/);
    t.is(errorOf(await rawAs(fx, fx.b, d, null, [release(true)]))?.code, 'not_authorized');

    const broken = await rawAs(fx, fx.admin, d, null, [release(true)]);
    const done = broken.replies.find((r) => r.type === 'released') as { released: boolean; note: string; hold_ids: string[] } | undefined;
    t.is(done?.released, true);
    t.deepEqual(done!.hold_ids, [holdId]);
    t.true(done!.note.includes(`by ${fx.admin.name} (uid ${fx.admin.uid}, admin`), done!.note);
    const log = readFileSync(join(d.stateDir, 'daemon.log'), 'utf8');
    t.true(log.split('\n').some((l) => l.includes('hold broken with --force') && l.includes(holdId) && l.includes(fx.admin.name)));
  });

  test("garbage collection removes runs with the rights of the caller (or of the run's user for auto-GC), never as root", async (t) => {
    const d = await startSystemDaemon(t, fx);
    const root = join(fx.a.home, `gc-${rand()}`);
    for (let i = 0; i < 3; i++) {
      const r = await lockdAs(t, fx.a, d, ['run', '--root', root, '--keep', '0', '--', 'true']).done;
      t.is(r.code, 0, r.stderr);
    }
    const runs = join(root, 'runs');
    t.is(readdirSync(runs).length, 3);
    // B asks the root daemon to delete A's runs: the policy picks all three, B's own rights remove none.
    const x = await rawAs(fx, fx.b, d, null, [{ type: 'gc', runs_root: runs, keep: 0, older_than_ms: null, max_bytes: null, dry_run: false, all: true }]);
    const report = (x.replies.find((r) => r.type === 'gc_done') as { report: { removed: unknown[]; failed: unknown[] } } | undefined)?.report;
    t.deepEqual(report?.removed, [], JSON.stringify(x.replies));
    t.is(report?.failed.length, 3);
    t.is(readdirSync(runs).length, 3);
    // A's next run with --keep 1: auto-GC (as A) leaves just that run.
    const last = await lockdAs(t, fx.a, d, ['run', '--root', root, '--keep', '1', '--', 'true']).done;
    t.is(last.code, 0, last.stderr);
    const deadline = Date.now() + 20_000;
    while (readdirSync(runs).length > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    t.deepEqual(readdirSync(runs), [basename(dirname(printedPaths(last.stderr).result!))]);
  });

  test('forged identity claims over a raw socket are ignored: the record shows the real user, the job runs as them', async (t) => {
    const d = await startSystemDaemon(t, fx);
    const runsRoot = join(fx.b.home, `forged-${rand()}`);
    const req = runRequest({ holder: 'root', user: 'root', client_pid: 1, argv: ['sh', '-c', 'id -u'], cwd: fx.b.home, runs_root: runsRoot });
    const x = await rawAs(fx, fx.b, d, 1, [{ type: 'run', req }]);
    const fin = x.replies.find((r) => r.type === 'finished') as { outcome: { manifest_path: string; exit_code: number } } | undefined;
    t.truthy(fin, JSON.stringify(x.replies));
    t.is(fin!.outcome.exit_code, 0);
    t.is(x.output.trim(), String(fx.b.uid));
    const manifest = readJson(fin!.outcome.manifest_path);
    t.is(manifest.user, fx.b.name);
    t.is(manifest.client_pid, x.pid);
    t.is(manifest.holder, `root (by ${fx.b.name}, uid ${fx.b.uid})`);
    t.is(statSync(dirname(fin!.outcome.manifest_path)).uid, fx.b.uid);

    // Only admins may stop the system daemon.
    t.is(errorOf(await rawAs(fx, fx.b, d, 1, [{ type: 'shutdown', force: true }]))?.code, 'not_authorized');
    t.is((await lockdAs(t, fx.b, d, ['ping']).done).code, 0);
  });
}
