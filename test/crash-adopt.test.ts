/**
 * AdoptedRuns in process, on a real DaemonCore (real lock table, journal, lock files; no socket): a re-adopted
 * run is watched by polling ONLY while it exists (an idle daemon has no timer), its slots come back exactly,
 * a conflicting record is refused, and its end releases the locks, writes result.json and closes the journal record.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { DaemonCore } from '../src/daemon/server/core.js';
import { Journal, JOURNAL_FILE, type RunRecord } from '../src/daemon/records/journal.js';
import { LockGuard } from '../src/daemon/records/lock-guard.js';
import * as lockFiles from '../src/daemon/records/lock-files.js';
import { createLogger } from '../src/daemon/server/logger.js';
import { AdoptedRuns, POLL_MAX_MS } from '../src/daemon/records/adopt.js';
import { processStartTimeSync } from '../src/util/proc.js';
import { tempDir, waitPidsGone } from './helpers/lockd.js';
import { until, within } from './helpers/crash-kit.js';
import { selectLauncher } from '../src/daemon/jobs/select-launcher.js';

/** The daemon's own choice (LOCKD_LAUNCHER or the host), so these tests run on whichever launcher the suite runs on. */
function selectLauncherForTest() {
  const c = selectLauncher();
  return { launcher: c.launcher, launcherReason: c.reason };
}

function makeCore(t: import('ava').ExecutionContext) {
  const dir = tempDir('ad');
  const stateDir = join(dir, 'state');
  mkdirSync(stateDir, { mode: 0o700 });
  const log = createLogger(stateDir);
  const { journal } = Journal.open(stateDir);
  const guard = new LockGuard(
    null,
    {
      prepareLockFile: (p, o) => lockFiles.prepareLockFile(p, o),
      writeMeta: (p, m) => lockFiles.writeMeta(p, m as unknown as lockFiles.LockMeta),
      removeMeta: (p) => lockFiles.removeMeta(p),
    },
    log,
  );
  const core = new DaemonCore({ socketPath: join(dir, 's.sock'), stateDir, mode: 'user', globalDir: join(stateDir, 'locks'), defaultKeep: 0, log, journal, guard, ...selectLauncherForTest() });
  const adopted = new AdoptedRuns(core.adoptContext, log);
  core.adopted = adopted;
  t.teardown(() => {
    adopted.dispose();
    journal.close();
    log.end();
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, stateDir, core, adopted, journal };
}

/** A live process standing in for a detached job: its own group, the run's env tag, not our child for long. */
function job(t: import('ava').ExecutionContext, runId: string, script: string): { pid: number; startTime: string } {
  const child = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore', env: { ...process.env, LOCKD_RUN_ID: runId } });
  child.unref();
  const pid = child.pid!;
  t.teardown(() => {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  });
  return { pid, startTime: processStartTimeSync(pid)! };
}

function record(dir: string, runId: string, p: { pid: number; startTime: string }, locks: RunRecord['locks']): RunRecord {
  const runDir = join(dir, 'runs', runId);
  mkdirSync(runDir, { recursive: true });
  return {
    t: 'run',
    run_id: runId,
    pid: p.pid,
    pgid: p.pid,
    start_time: p.startTime,
    locks,
    client_pid: 1,
    detach: true,
    dir: runDir,
    holder: 'tester',
    user: 'root',
    uid: 0,
    command_line: 'sh -c …',
    queued_at: Date.now() - 1000,
    started_at: Date.now() - 900,
    log_path: null,
    parent: null,
  };
}

test('polls only while adopted runs exist; the end releases, records and forgets the run', async (t) => {
  const { dir, stateDir, core, adopted, journal } = makeCore(t);
  t.false(adopted.polling, 'no timer before anything is adopted');
  const key = join(dir, 'root', '.locks', 'a.lock');
  const p = job(t, 'run-a', 'sleep 300');
  const rec = record(dir, 'run-a', p, [{ key, name: 'a', scope: 'local', mode: 'exclusive', fencing_token: 5 }]);
  journal.append(rec);
  t.true(await adopted.adopt(rec));
  t.true(adopted.polling, 'watching the adopted leader');
  t.is(core.table.snapshotKey(key)?.holders[0]?.requestId, 'run-a');
  t.true(core.busy);
  t.true(core.isLiveRun('run-a'), 'never garbage-collected while adopted');
  // Another request for the lock waits: it is held.
  t.is(core.table.tryOnly({ id: 'other', claims: [{ key, mode: 'exclusive' }], meta: core.table.snapshotKey(key)!.holders[0]!.meta }).kind, 'busy');

  process.kill(-p.pid, 'SIGKILL');
  await within(adopted.whenEmpty(), POLL_MAX_MS * 5 + 5000, 'the adopted run to be settled');
  t.false(adopted.polling, 'no timer once no adopted run is left');
  t.is(core.table.snapshotKey(key), null, 'the lock is free');
  const res = JSON.parse(readFileSync(join(rec.dir, 'result.json'), 'utf8')) as Record<string, unknown>;
  t.is(res.status, 'infra_fail');
  t.is(res.reason, 'daemon_lost');
  t.is(res.child_exit_code, null);
  t.regex(String(res.message), /re-adopted after a daemon restart; exit status unknown/);
  t.false(Journal.read(join(stateDir, JOURNAL_FILE)).runs.has('run-a'));
  t.false(core.busy);
});

test('slots come back exactly as the runs were started with them, even with lower slots free', async (t) => {
  const { dir, core, adopted } = makeCore(t);
  const key = join(dir, 'root', '.locks', 'board.lock');
  const lock = (slot: number) => [{ key, name: 'board', scope: 'local' as const, mode: 'slots' as const, slots: 4, fencing_token: 1, slot_index: slot }];
  const a = record(dir, 'run-s2', job(t, 'run-s2', 'sleep 300'), lock(2));
  const b = record(dir, 'run-s0', job(t, 'run-s0', 'sleep 300'), lock(0));
  t.true(await adopted.adopt(a));
  t.true(await adopted.adopt(b));
  const holders = core.table.snapshotKey(key)!.holders;
  t.deepEqual(holders.map((h) => [h.requestId, h.slotIndex]).sort(), [
    ['run-s0', 0],
    ['run-s2', 2],
  ]);
  // The placeholders used to steer the grant are gone: the next two requests get slots 1 and 3.
  const meta = holders[0]!.meta;
  const n1 = core.table.submit({ id: 'n1', claims: [{ key, mode: 'slots', slots: 4 }], meta });
  const n2 = core.table.submit({ id: 'n2', claims: [{ key, mode: 'slots', slots: 4 }], meta });
  t.is(n1.kind === 'granted' ? n1.grant.claims[0]!.slotIndex : null, 1);
  t.is(n2.kind === 'granted' ? n2.grant.claims[0]!.slotIndex : null, 3);
  t.is(core.table.submit({ id: 'n3', claims: [{ key, mode: 'slots', slots: 4 }], meta }).kind, 'queued');
  core.table.cancel('n3');
  // A third record claiming a slot that is taken cannot be adopted (the caller stops it instead).
  const c = record(dir, 'run-dup', job(t, 'run-dup', 'sleep 300'), lock(2));
  t.false(await adopted.adopt(c));
  t.false(adopted.has('run-dup'));
  t.is(core.table.snapshotKey(key)!.holders.length, 4, 'the refused adoption left nothing behind');
  await adopted.stopAll('test');
  t.false(adopted.polling);
});

test('stopAll kills every adopted tree (SIGTERM, then SIGKILL for those ignoring it) and records each', async (t) => {
  const { dir, adopted } = makeCore(t);
  const stubborn = job(t, 'run-stub', "trap '' TERM; sleep 300 & wait");
  const polite = job(t, 'run-pol', 'sleep 300');
  const recs = [record(dir, 'run-stub', stubborn, []), record(dir, 'run-pol', polite, [])];
  for (const r of recs) t.true(await adopted.adopt(r));
  // The stubborn job's child (found by the env tag, not by our spawn) must go too.
  const kids = await until(
    async () => {
      const { listProcesses } = await import('../src/util/proc.js');
      const k = (await listProcesses()).filter((e) => e.ppid === stubborn.pid).map((e) => e.pid);
      return k.length ? k : undefined;
    },
    5000,
    'the stubborn job to fork',
  );
  await adopted.stopAll('lockd shutdown');
  t.deepEqual(await waitPidsGone([stubborn.pid, polite.pid, ...kids], 15_000), []);
  for (const r of recs) {
    t.true(existsSync(join(r.dir, 'result.json')));
    t.regex(JSON.parse(readFileSync(join(r.dir, 'result.json'), 'utf8')).message as string, /stopped by lockd shutdown/);
  }
  t.is(adopted.size, 0);
});
