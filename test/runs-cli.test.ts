/**
 * The run-record commands against a real daemon: `lockd logs [-f]`, `lockd result`, `lockd runs`, `lockd gc`,
 * `lockd pin` / `lockd unpin`, and their --help texts.
 *
 * Serial: each test starts a daemon and several clients; run one at a time they stay well inside their bounds on a
 * loaded 2-core machine.
 */
import test, { type ExecutionContext } from 'ava';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { lockd, lockdSpawn, printedPaths, readJson, startDaemon, waitForFile, type CliResult, type Daemon } from './helpers/lockd.js';
import { assertValidResult } from './runs-helpers.js';

// biome-ignore lint/suspicious/noExplicitAny: JSON records read back from disk are walked loosely by the assertions
type Json = Record<string, any>;

function run(d: Daemon, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return lockd(d, ['run', ...args], { cwd: d.dir, ...opts });
}

/** A run that prints `first`, waits for `gate` to exist, then prints `second`. */
function gatedRun(t: ExecutionContext, d: Daemon, gate: string, args: string[]) {
  return lockdSpawn(t, d, ['run', ...args, '--', 'sh', '-c', `echo first; while [ ! -e ${gate} ]; do sleep 0.05; done; echo second`], { cwd: d.dir });
}

function runDirsIn(root: string): string[] {
  return existsSync(root)
    ? readdirSync(root)
        .filter((n) => !n.startsWith('.'))
        .sort()
    : [];
}

test.serial('logs -f follows a live run from another terminal until it ends', async (t) => {
  const d = await startDaemon(t);
  const gate = join(d.dir, 'go');
  // Recorded under a build root: a live run is found through the daemon, whatever its runs root.
  const r = gatedRun(t, d, gate, ['--root', join(d.dir, 'b'), '--run-id', 'follow-me']);
  await r.waitForStdout('first');
  const f = lockdSpawn(t, d, ['logs', '-f', 'follow-me'], { cwd: d.dir });
  await f.waitForStdout('first');
  t.is(f.proc.exitCode, null); // still following
  writeFileSync(gate, '');
  const [ran, followed] = await Promise.all([r.done, f.done]);
  t.is(ran.code, 0);
  t.is(followed.code, 0);
  t.is(followed.stdout, 'first\nsecond\n');
  t.regex(followed.stderr, /run follow-me ended: pass \(exit_zero\)/);
});

test.serial('logs -f on a queued run waits for its log to appear and follows it', async (t) => {
  const d = await startDaemon(t);
  const hready = join(d.dir, 'h.ready');
  const hgo = join(d.dir, 'h.go');
  const h = lockdSpawn(t, d, ['run', '--lock', 'x', '--', 'sh', '-c', `touch ${hready}; while [ ! -e ${hgo} ]; do sleep 0.05; done`], { cwd: d.dir });
  await waitForFile(hready);
  const q = lockdSpawn(t, d, ['run', '--wait', '30', '--run-id', 'queued-one', '--lock', 'x', '--', 'sh', '-c', 'echo late-output'], { cwd: d.dir });
  await q.waitForStderr('waiting for');
  const f = lockdSpawn(t, d, ['logs', '-f', 'queued-one'], { cwd: d.dir });
  // Not following yet? `logs` without -f says the run has not started.
  const early = await lockd(d, ['logs', 'queued-one'], { cwd: d.dir });
  t.is(early.code, 0);
  t.regex(early.stderr, /has not started yet/);
  writeFileSync(hgo, '');
  const [followed, queued] = await Promise.all([f.done, q.done, h.done]);
  t.is(queued.code, 0);
  t.is(followed.code, 0);
  t.is(followed.stdout, 'late-output\n');
});

test.serial('logs prints a finished run, a --log run, refuses bad ids and explains runs without a log', async (t) => {
  const d = await startDaemon(t);
  await run(d, ['-q', '--run-id', 'plain', '--', 'sh', '-c', 'echo out; echo err >&2']);
  const plain = await lockd(d, ['logs', 'plain']);
  t.is(plain.code, 0);
  t.true(plain.stdout === 'out\nerr\n' || plain.stdout === 'err\nout\n');

  const custom = join(d.dir, 'elsewhere.log');
  await run(d, ['-q', '--run-id', 'custom', '--log', custom, '--', 'echo', 'in custom']);
  t.is((await lockd(d, ['logs', 'custom'])).stdout, 'in custom\n');

  await run(d, ['-q', '--root', join(d.dir, 'b'), '--run-id', 'rooted', '--', 'echo', 'rooted']);
  // Not in <state-dir>/runs, but in a runs root the daemon used (run-roots.json; issue 21): found without --root.
  t.is((await lockd(d, ['logs', 'rooted'])).stdout, 'rooted\n');
  t.is((await lockd(d, ['logs', '--runs-root', join(d.dir, 'nowhere'), 'rooted'])).code, 2);
  t.is((await lockd(d, ['logs', '--root', join(d.dir, 'b'), 'rooted'])).stdout, 'rooted\n');
  t.is((await lockd(d, ['logs', '--runs-root', join(d.dir, 'b', 'runs'), 'rooted'])).stdout, 'rooted\n');

  await run(d, ['-q', '--run-id', 'never', '--', 'lockd-no-such-command-xyz']);
  const never = await lockd(d, ['logs', 'never']);
  // A spawn failure opened the log (empty); a run that never got its locks has none.
  t.is(never.code, 0);
  t.is(never.stdout, '');
  const h = lockdSpawn(t, d, ['run', '--lock', 'x', '--', 'sh', '-c', `touch ${d.dir}/r; while [ ! -e ${d.dir}/go ]; do sleep 0.05; done`], { cwd: d.dir });
  await waitForFile(join(d.dir, 'r'));
  await run(d, ['-q', '--wait', '0', '--run-id', 'busy', '--lock', 'x', '--', 'true']);
  writeFileSync(join(d.dir, 'go'), '');
  await h.done;
  const busy = await lockd(d, ['logs', 'busy']);
  t.is(busy.code, 1);
  t.regex(busy.stderr, /never started \(lock_busy\)/);

  const bad = await lockd(d, ['logs', '../x']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /invalid run id/);
  const missing = await lockd(d, ['logs', 'no-such-run']);
  t.is(missing.code, 2, missing.stderr);
  t.regex(missing.stderr, /no run no-such-run in /);
});

test.serial('result prints result.json; a live run has none yet (exit 1); unknown runs exit 2', async (t) => {
  const d = await startDaemon(t);
  await run(d, ['-q', '--run-id', 'done-run', '--', 'sh', '-c', 'exit 4']);
  const r = await lockd(d, ['result', 'done-run']);
  t.is(r.code, 0);
  const printed = JSON.parse(r.stdout) as Json;
  assertValidResult(t, printed);
  t.deepEqual(printed, readJson(join(d.stateDir, 'runs', 'done-run', 'result.json')));
  t.like(printed, { status: 'fail', reason: 'exit_nonzero', exit_code: 4 });

  const gate = join(d.dir, 'go');
  const live = gatedRun(t, d, gate, ['--run-id', 'live-run']);
  await live.waitForStdout('first');
  const pending = await lockd(d, ['result', 'live-run']);
  t.is(pending.code, 1);
  t.regex(pending.stderr, /still queued or running/);
  writeFileSync(gate, '');
  await live.done;
  t.is(JSON.parse((await lockd(d, ['result', 'live-run'])).stdout).status, 'pass');

  t.is((await lockd(d, ['result', 'nope'])).code, 2);
  t.is((await lockd(d, ['result'])).code, 2);

  // A result.json damaged after the fact is reported, not printed for the next tool in the pipe to choke on.
  writeFileSync(join(d.stateDir, 'runs', 'done-run', 'result.json'), '{"status": "pa');
  const damaged = await lockd(d, ['result', 'done-run']);
  t.is(damaged.code, 1);
  t.is(damaged.stdout, '');
  t.regex(damaged.stderr, /the result of run done-run is damaged \(.*result\.json is not valid JSON/);
});

test.serial('runs lists newest first with status, reason, duration and command; --status, --limit, --json', async (t) => {
  const d = await startDaemon(t);
  await run(d, ['-q', '--run-id', 'one', '--', 'true']);
  await run(d, ['-q', '--run-id', 'two', '--', 'sh', '-c', 'exit 1']);
  const gate = join(d.dir, 'go');
  const live = gatedRun(t, d, gate, ['--run-id', 'three']);
  await live.waitForStdout('first');

  const text = await lockd(d, ['runs']);
  t.is(text.code, 0);
  const lines = text.stdout.trimEnd().split('\n');
  t.regex(lines[0]!, /^RUN ID\s+STATUS\s+REASON\s+DURATION\s+COMMAND$/);
  t.deepEqual(
    lines.slice(1).map((l) => l.split(/\s+/)[0]),
    ['three', 'two', 'one'],
  );
  t.regex(lines[1]!, /^three\s+running\s+-\s+-\s+sh -c /);
  t.regex(lines[2]!, /^two\s+fail\s+exit_nonzero\s+\d+(ms|\.\ds)\s+sh -c 'exit 1'$/);
  t.regex(lines[3]!, /^one\s+pass\s+exit_zero\s+\S+\s+true$/);

  const json = JSON.parse((await lockd(d, ['runs', '--json'])).stdout) as Json[];
  t.deepEqual(
    json.map((r) => [r.run_id, r.status]),
    [
      ['three', 'running'],
      ['two', 'fail'],
      ['one', 'pass'],
    ],
  );
  t.is(json[2]!.dir, join(d.stateDir, 'runs', 'one'));
  const failed = JSON.parse((await lockd(d, ['runs', '--json', '--status', 'fail,error'])).stdout) as Json[];
  t.deepEqual(
    failed.map((r) => r.run_id),
    ['two'],
  );
  const limited = JSON.parse((await lockd(d, ['runs', '--json', '--limit', '1'])).stdout) as Json[];
  t.deepEqual(
    limited.map((r) => r.run_id),
    ['three'],
  );
  t.is((await lockd(d, ['runs', '--status', 'bogus'])).code, 2);
  const empty = await lockd(d, ['runs', '--runs-root', join(d.dir, 'nothing-here')]);
  t.is(empty.code, 0);
  t.is(empty.stdout, '');
  writeFileSync(gate, '');
  await live.done;
});

test.serial('gc through the daemon keeps exactly N, never removes live or pinned runs; --dry-run removes nothing', async (t) => {
  const d = await startDaemon(t);
  const root = join(d.dir, 'r');
  const noAuto = { env: { LOCKD_RUNS_KEEP: '0' } }; // no auto-GC: this test drives GC itself
  const gate = join(d.dir, 'go');
  const live = gatedRun(t, d, gate, ['--runs-root', root, '--run-id', 'live', '--keep', '0']);
  await live.waitForStdout('first');
  for (const id of ['r1', 'r2', 'r3', 'r4']) t.is((await run(d, ['-q', '--runs-root', root, '--run-id', id, '--', 'true'], noAuto)).code, 0);
  const pin = await lockd(d, ['pin', '--runs-root', root, 'r2']);
  t.is(pin.code, 0);
  t.true(existsSync(join(root, 'r2', '.pinned')));

  // LOCKD_RUNS_KEEP=0 turns auto-GC off; it does not make a plain `lockd gc` remove everything (it keeps 20).
  const plain = await lockd(d, ['gc', '--runs-root', root, '--json'], { env: { LOCKD_RUNS_KEEP: '0' } });
  t.deepEqual((JSON.parse(plain.stdout) as Json).removed, []);

  const dry = await lockd(d, ['gc', '--runs-root', root, '--keep', '1', '--dry-run', '--json']);
  t.is(dry.code, 0);
  const dryReport = JSON.parse(dry.stdout) as Json;
  t.deepEqual(dryReport.removed.map((r: Json) => r.run_id).sort(), ['r1', 'r3']);
  t.is(dryReport.collected_by, 'daemon');
  t.deepEqual(runDirsIn(root), ['live', 'r1', 'r2', 'r3', 'r4']);

  const gc = await lockd(d, ['gc', '--runs-root', root, '--keep', '1']);
  t.is(gc.code, 0);
  t.deepEqual(gc.stdout.trim().split('\n').sort(), ['r1', 'r3']);
  t.regex(gc.stderr, /removed 2 run\(s\)/);
  t.regex(gc.stderr, /kept live \(live\)/);
  t.regex(gc.stderr, /kept r2 \(pinned\)/);
  t.deepEqual(runDirsIn(root), ['live', 'r2', 'r4']);

  // Fresh runs are not old enough for --older-than; unpinned, r2 goes.
  const young = JSON.parse((await lockd(d, ['gc', '--runs-root', root, '--all', '--older-than', '1h', '--json'])).stdout) as Json;
  t.deepEqual(young.removed, []);
  t.is((await lockd(d, ['unpin', '--runs-root', root, 'r2'])).code, 0);
  t.false(existsSync(join(root, 'r2', '.pinned')));
  const all = JSON.parse((await lockd(d, ['gc', '--runs-root', root, '--all', '--json'])).stdout) as Json;
  t.deepEqual(all.removed.map((r: Json) => r.run_id).sort(), ['r2', 'r4']);
  t.deepEqual(all.skipped, [{ run_id: 'live', why: 'live' }]);
  t.deepEqual(runDirsIn(root), ['live']);
  writeFileSync(gate, '');
  t.is((await live.done).code, 0);

  t.is((await lockd(d, ['gc', '--older-than', 'soon'])).code, 2);
  t.is((await lockd(d, ['pin', 'no-such-run'])).code, 2);
});

test.serial('gc --max-bytes removes the oldest until the root fits', async (t) => {
  const d = await startDaemon(t);
  const root = join(d.dir, 'r');
  for (const id of ['a1', 'a2', 'a3']) {
    await run(d, ['-q', '--runs-root', root, '--run-id', id, '--', 'sh', '-c', 'i=0; while [ $i -lt 400 ]; do echo 0123456789012345678901234567890123456789; i=$((i+1)); done'], {
      env: { LOCKD_RUNS_KEEP: '0' },
    });
  }
  // Each run is ~16 KiB of log: 40 KiB fits two of them.
  const report = JSON.parse((await lockd(d, ['gc', '--runs-root', root, '--all', '--max-bytes', '40K', '--json'])).stdout) as Json;
  t.deepEqual(
    report.removed.map((r: Json) => r.run_id),
    ['a1'],
  );
  t.deepEqual(runDirsIn(root), ['a2', 'a3']);
});

test.serial('gc without a daemon (LOCKD_NO_AUTOSTART) collects locally; pinned runs stay', async (t) => {
  const d = await startDaemon(t);
  const root = join(d.dir, 'r');
  for (const id of ['b1', 'b2', 'b3']) await run(d, ['-q', '--runs-root', root, '--run-id', id, '--', 'true'], { env: { LOCKD_RUNS_KEEP: '0' } });
  t.is((await lockd(d, ['pin', '--runs-root', root, 'b1'])).code, 0);
  await d.stop();
  const r = await lockd(d, ['gc', '--runs-root', root, '--keep', '1', '--json']);
  t.is(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as Json;
  t.is(report.collected_by, 'local');
  t.deepEqual(
    report.removed.map((x: Json) => x.run_id),
    ['b2'],
  );
  t.deepEqual(report.skipped, [{ run_id: 'b1', why: 'pinned' }]);
  t.deepEqual(runDirsIn(root), ['b1', 'b3']);
  // The records stay readable without a daemon too.
  t.is(JSON.parse((await lockd(d, ['result', '--runs-root', root, 'b3'])).stdout).status, 'pass');
  t.deepEqual(
    (JSON.parse((await lockd(d, ['runs', '--runs-root', root, '--json'])).stdout) as Json[]).map((x) => x.run_id),
    ['b3', 'b1'],
  );
});

test.serial('auto-GC spares pinned runs', async (t) => {
  const d = await startDaemon(t);
  const root = join(d.dir, 'r');
  // Generated ids throughout: GC orders generated ids by their minute and caller-chosen ones by mtime.
  const first = await run(d, ['--runs-root', root, '--', 'true'], { env: { LOCKD_RUNS_KEEP: '0' } });
  const keepme = basename(dirname(printedPaths(first.stderr).result!));
  t.is((await lockd(d, ['pin', '--runs-root', root, keepme])).code, 0);
  for (let i = 0; i < 3; i++) await run(d, ['-q', '--runs-root', root, '--keep', '1', '--', 'true']);
  const deadline = Date.now() + 15_000;
  while (runDirsIn(root).length > 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const left = runDirsIn(root);
  t.is(left.length, 2, left.join(','));
  t.true(left.includes(keepme));
});

test.serial('every run-record command has --help with usage and an example', async (t) => {
  const d = await startDaemon(t);
  for (const cmd of ['logs', 'result', 'runs', 'gc', 'pin', 'unpin']) {
    const r = await lockd(d, [cmd, '--help']);
    t.is(r.code, 0, cmd);
    t.regex(r.stdout, new RegExp(`^Usage: lockd ${cmd} `), cmd);
    t.regex(r.stdout, /\nExamples?:\n {2}lockd /, cmd);
  }
  const top = await lockd(d, ['--help']);
  for (const cmd of ['logs', 'result', 'runs', 'gc', 'pin', 'unpin']) t.regex(top.stdout, new RegExp(`\\n {2}${cmd} +\\S`), cmd);
  // The printed record paths are the ones `lockd result` reads.
  const r = await run(d, ['--run-id', 'paths', '--', 'true']);
  t.is(printedPaths(r.stderr).result, join(d.stateDir, 'runs', 'paths', 'result.json'));
  t.is(readFileSync(printedPaths(r.stderr).result!, 'utf8').trim(), (await lockd(d, ['result', 'paths'])).stdout.trim());
});
