import test from 'ava';
import type { ExecutionContext } from 'ava';
import { rmSync } from 'node:fs';
import { mkdir, readdir, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { buildResult } from '../src/runs/build-result.js';
import { dirSize, gcRuns, isPinned, parseDuration, parseSize, pinRun, unpinRun } from '../src/runs/gc.js';
import { buildManifest, writeManifest } from '../src/runs/manifest.js';
import { writeResult } from '../src/runs/result.js';
import { createRunDir } from '../src/runs/run-id.js';
import { compileVerdictOptions, decideVerdict } from '../src/runs/verdict.js';
import { isLockdError } from '../src/util/errors.js';
import { assertValidManifest, assertValidResult, readJson, tempDir } from './runs-helpers.js';

const MINUTE = 60_000;
const DAY = 86_400_000;
const NOW = new Date('2025-03-01T12:00:00Z');

function idAt(ms: number, suffix: string): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getUTCFullYear() % 100)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}-${p(d.getUTCHours())}${p(d.getUTCMinutes())}-${suffix}`;
}

interface MakeRun {
  /** Write a result too (else the run looks like it is still going). */
  result?: boolean;
  /** Extra log bytes. */
  logBytes?: number;
  /** Directory mtime; defaults to the id's time. */
  mtime?: Date;
}

/** A complete run directory whose manifest and result are schema-checked. */
async function makeRun(t: ExecutionContext, root: string, runId: string, at: number, opts: MakeRun = {}): Promise<string> {
  const dir = path.join(root, runId);
  await mkdir(dir, { recursive: true });
  const manifest = buildManifest({
    runId,
    command: ['true'],
    cwd: root,
    holder: 'test',
    clientPid: 1,
    queuedAt: new Date(at),
    startTime: new Date(at),
    lockdVersion: '0.1.0',
    env: {},
  });
  assertValidManifest(t, await readJson(await writeManifest(dir, manifest)));
  if (opts.result ?? true) {
    const result = buildResult({
      runId,
      verdict: decideVerdict({ kind: 'exited', code: 0 }, null, compileVerdictOptions()),
      exit: { kind: 'exited', code: 0 },
      queuedAt: new Date(at),
      startTime: new Date(at),
      endTime: new Date(at + 1000),
      holder: 'test',
    });
    assertValidResult(t, await readJson(await writeResult(dir, result)));
  }
  if (opts.logBytes) await writeFile(path.join(dir, 'output.log'), Buffer.alloc(opts.logBytes, 'l'));
  const mtime = opts.mtime ?? new Date(at);
  await utimes(dir, mtime, mtime);
  return dir;
}

/** `count` runs one minute apart, oldest first; returns their ids oldest first. */
async function makeRuns(t: ExecutionContext, root: string, count: number, opts: MakeRun & { startMs?: number } = {}): Promise<string[]> {
  const start = opts.startMs ?? NOW.getTime() - count * MINUTE;
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const at = start + i * MINUTE;
    const id = idAt(at, (0x1000 + i).toString(16));
    await makeRun(t, root, id, at, opts);
    ids.push(id);
  }
  return ids;
}

async function runIdsOnDisk(root: string): Promise<string[]> {
  return (await readdir(root)).filter((n) => /^\d{6}-\d{4}-/.test(n)).sort();
}

test('keeps exactly the newest N and removes the rest, oldest first', async (t) => {
  const root = await tempDir(t);
  const ids = await makeRuns(t, root, 30);
  const report = await gcRuns(root, { keep: 20, now: NOW });
  t.deepEqual(
    report.removed.map((r) => r.run_id),
    ids.slice(0, 10),
  );
  t.true(report.removed.every((r) => r.bytes > 0));
  t.is(report.kept, 20);
  t.deepEqual(report.skipped, []);
  t.deepEqual(report.failed, []);
  t.deepEqual(await runIdsOnDisk(root), ids.slice(10));
  // Nothing left to do on a second pass; no trash left behind.
  const again = await gcRuns(root, { keep: 20, now: NOW });
  t.deepEqual(again.removed, []);
  t.is(again.kept, 20);
  t.false((await readdir(root)).some((n) => n.startsWith('.')));
});

test('default keep is 20', async (t) => {
  const root = await tempDir(t);
  const ids = await makeRuns(t, root, 23);
  const report = await gcRuns(root, { now: NOW });
  t.deepEqual(
    report.removed.map((r) => r.run_id),
    ids.slice(0, 3),
  );
});

test('caller-chosen ids are ordered by mtime', async (t) => {
  const root = await tempDir(t);
  await makeRun(t, root, 'old-custom', NOW.getTime() - 3 * DAY);
  await makeRun(t, root, 'new-custom', NOW.getTime() - DAY);
  const report = await gcRuns(root, { keep: 1, now: NOW });
  t.deepEqual(
    report.removed.map((r) => r.run_id),
    ['old-custom'],
  );
});

test("pinning and unpinning leave the run directory's mtime alone (GC's age of a caller-named run)", async (t) => {
  const root = await tempDir(t);
  const dir = await makeRun(t, root, 'custom-id', NOW.getTime() - 3 * DAY);
  const before = (await stat(dir)).mtimeMs;
  await pinRun(dir);
  t.true(await isPinned(dir));
  t.is((await stat(dir)).mtimeMs, before);
  await unpinRun(dir);
  t.false(await isPinned(dir));
  t.is((await stat(dir)).mtimeMs, before);
});

test('never removes live or pinned runs, and reports them as skipped', async (t) => {
  const root = await tempDir(t);
  const ids = await makeRuns(t, root, 8);
  await pinRun(path.join(root, ids[1]!));
  t.true(await isPinned(path.join(root, ids[1]!)));
  const live = new Set([ids[0]!, ids[6]!]); // ids[6] is inside keep: never even considered
  const report = await gcRuns(root, { keep: 3, isLive: (id) => live.has(id), now: NOW });
  t.deepEqual(
    report.removed.map((r) => r.run_id),
    [ids[2]!, ids[3]!, ids[4]!],
  );
  t.deepEqual(report.skipped, [
    { run_id: ids[0]!, why: 'live' },
    { run_id: ids[1]!, why: 'pinned' },
  ]);
  t.is(report.kept, 5);
  t.deepEqual(await runIdsOnDisk(root), [ids[0]!, ids[1]!, ...ids.slice(5)]);
  // Unpinned, it goes.
  await unpinRun(path.join(root, ids[1]!));
  t.false(await isPinned(path.join(root, ids[1]!)));
  const second = await gcRuns(root, { keep: 3, isLive: (id) => live.has(id), now: NOW });
  t.deepEqual(
    second.removed.map((r) => r.run_id),
    [ids[1]!],
  );
});

test("runs without result.json are someone's live run until quiet for the grace period (shared runs roots)", async (t) => {
  const root = await tempDir(t);
  const ids = await makeRuns(t, root, 4);
  // Another daemon's queued run (manifest only, a minute old) and a run that died unrecorded two days ago.
  const foreign = await makeRun(t, root, 'other-host-queued', NOW.getTime() - 60_000, { result: false });
  const dead = await makeRun(t, root, 'died-unrecorded', NOW.getTime() - 2 * DAY, { result: false });
  // A long run elsewhere: its directory is old, but its log was written a minute ago.
  const growing = await makeRun(t, root, 'long-running', NOW.getTime() - 3 * DAY, { result: false });
  // The records were written just now by the wall clock: date their files like their runs.
  for (const [dir, at] of [
    [foreign, NOW.getTime() - 60_000],
    [dead, NOW.getTime() - 2 * DAY],
    [growing, NOW.getTime() - 3 * DAY],
  ] as const) {
    await utimes(path.join(dir, 'manifest.json'), new Date(at), new Date(at));
  }
  const logAt = new Date(NOW.getTime() - 60_000);
  await writeFile(path.join(growing, 'output.log'), 'still going\n');
  await utimes(path.join(growing, 'output.log'), logAt, logAt);
  await utimes(growing, new Date(NOW.getTime() - 3 * DAY), new Date(NOW.getTime() - 3 * DAY));
  const report = await gcRuns(root, { keep: 0, now: NOW });
  t.deepEqual(report.removed.map((r) => r.run_id).sort(), [...ids, 'died-unrecorded'].sort());
  t.deepEqual(report.skipped.map((s) => [s.run_id, s.why]).sort(), [
    ['long-running', 'unfinished'],
    ['other-host-queued', 'unfinished'],
  ]);
  t.deepEqual((await readdir(root)).sort(), ['long-running', 'other-host-queued']);
  // A shorter grace (the caller's choice) lets the quiet ones go.
  const later = await gcRuns(root, { keep: 0, now: NOW, unfinishedGraceMs: 30_000 });
  t.deepEqual(later.removed.map((r) => r.run_id).sort(), ['long-running', 'other-host-queued']);
});

test('age filter: only runs beyond keep that are also older than the limit go', async (t) => {
  const root = await tempDir(t);
  const old = await makeRuns(t, root, 5, { startMs: NOW.getTime() - 30 * DAY });
  const recent = await makeRuns(t, root, 5, { startMs: NOW.getTime() - DAY });
  const report = await gcRuns(root, { keep: 2, olderThanMs: parseDuration('7d'), now: NOW });
  t.deepEqual(
    report.removed.map((r) => r.run_id),
    old,
  );
  t.deepEqual(await runIdsOnDisk(root), recent);
  // keep still wins over age.
  const all = await gcRuns(root, { keep: 2, olderThanMs: 0, now: NOW });
  t.deepEqual(
    all.removed.map((r) => r.run_id),
    recent.slice(0, 3),
  );
});

test('age uses the last activity: an old id touched recently (dir mtime) is not old', async (t) => {
  const root = await tempDir(t);
  const [id] = await makeRuns(t, root, 1, { startMs: NOW.getTime() - 30 * DAY, mtime: new Date(NOW.getTime() - DAY) });
  const report = await gcRuns(root, { keep: 0, olderThanMs: 7 * DAY, now: NOW });
  t.deepEqual(report.removed, []);
  t.deepEqual(await runIdsOnDisk(root), [id!]);
});

test('size filter: removes oldest first until the total fits, never inside keep', async (t) => {
  const root = await tempDir(t);
  const ids = await makeRuns(t, root, 10, { logBytes: 100_000 });
  const sizes = await Promise.all(ids.map((id) => dirSize(path.join(root, id))));
  const total = sizes.reduce((a, b) => a + b, 0);
  const limit = parseSize('500K');
  t.is(limit, 512_000);
  const report = await gcRuns(root, { keep: 2, maxBytes: limit, now: NOW });
  t.is(report.total_bytes_before, total);
  // The oldest k runs such that the rest fits, and k-1 would not have been enough.
  let k = 0;
  let remaining = total;
  while (remaining > limit) remaining -= sizes[k++]!;
  t.deepEqual(
    report.removed.map((r) => r.run_id),
    ids.slice(0, k),
  );
  t.deepEqual(
    report.removed.map((r) => r.bytes),
    sizes.slice(0, k),
  );
  t.true(remaining <= limit);
  t.true(remaining + sizes[k - 1]! > limit);
  // A limit nothing can meet stops at keep.
  const tight = await gcRuns(root, { keep: 2, maxBytes: 1, now: NOW });
  t.deepEqual(
    tight.removed.map((r) => r.run_id),
    ids.slice(k, 8),
  );
  t.deepEqual(await runIdsOnDisk(root), ids.slice(8));
});

test('age and size together: both rules remove (union)', async (t) => {
  const root = await tempDir(t);
  const old = await makeRuns(t, root, 2, { startMs: NOW.getTime() - 30 * DAY, logBytes: 10 });
  const recent = await makeRuns(t, root, 4, { startMs: NOW.getTime() - DAY, logBytes: 100_000 });
  const report = await gcRuns(root, { keep: 1, olderThanMs: 7 * DAY, maxBytes: 250_000, now: NOW });
  // Age takes the two old ones; size then needs two of the recent ones gone (4 × ~100 KB > 250 KB).
  t.deepEqual(
    report.removed.map((r) => r.run_id),
    [...old, recent[0]!, recent[1]!],
  );
});

test('dry run reports without touching anything', async (t) => {
  const root = await tempDir(t);
  const ids = await makeRuns(t, root, 6);
  const dry = await gcRuns(root, { keep: 2, dryRun: true, now: NOW });
  t.deepEqual(
    dry.removed.map((r) => r.run_id),
    ids.slice(0, 4),
  );
  t.deepEqual(await runIdsOnDisk(root), ids);
  const real = await gcRuns(root, { keep: 2, now: NOW });
  t.deepEqual(real.removed, dry.removed);
});

test('only touches run directories: not other folders, files, symlinks, or runs without manifest/result', async (t) => {
  const base = await tempDir(t);
  const root = path.join(base, 'runs');
  const ids = await makeRuns(t, root, 3);
  const outside = path.join(base, 'precious');
  await makeRun(t, base, 'precious', NOW.getTime() - 100 * DAY);
  await mkdir(path.join(root, 'notes'));
  await writeFile(path.join(root, 'notes', 'manifest.json'), '{}'); // valid id, but not a lockd record
  await mkdir(path.join(root, 'backup'));
  await writeFile(path.join(root, 'backup', 'result.json'), '{"schema_version":1,"run_id":"other"}');
  await mkdir(path.join(root, 'my notes'));
  await writeFile(path.join(root, 'my notes', 'manifest.json'), '{"schema_version":1,"run_id":"my notes"}');
  await mkdir(path.join(root, '200101-0000-beef')); // a run whose manifest is not written yet
  await writeFile(path.join(root, '200101-0001-f11e'), 'a file with a run-like name');
  await symlink(outside, path.join(root, '200101-0002-1111'));
  const report = await gcRuns(root, { keep: 0, now: NOW });
  t.deepEqual(report.removed.map((r) => r.run_id).sort(), [...ids].sort());
  t.deepEqual((await readdir(root)).sort(), ['200101-0000-beef', '200101-0001-f11e', '200101-0002-1111', 'backup', 'my notes', 'notes']);
  t.true((await stat(path.join(outside, 'manifest.json'))).isFile());
});

test('a missing runs root is an empty GC', async (t) => {
  const base = await tempDir(t);
  t.deepEqual(await gcRuns(path.join(base, 'nope'), { now: NOW }), { removed: [], kept: 0, skipped: [], failed: [] });
});

test('survives run directories vanishing mid-GC', async (t) => {
  const root = await tempDir(t);
  const ids = await makeRuns(t, root, 10, { logBytes: 1000 });
  // isLive is consulted while victims are chosen and again right before each removal:
  // use it to delete other victims behind GC's back at both moments.
  let calls = 0;
  const report = await gcRuns(root, {
    keep: 2,
    maxBytes: 1,
    now: NOW,
    isLive: (id) => {
      calls++;
      if (id === ids[0]) rmSync(path.join(root, ids[3]!), { recursive: true, force: true });
      if (id === ids[5]) rmSync(path.join(root, ids[6]!), { recursive: true, force: true });
      return false;
    },
  });
  t.true(calls >= 8);
  t.deepEqual(report.failed, []);
  const removed = report.removed.map((r) => r.run_id);
  t.deepEqual(removed, [ids[0]!, ids[1]!, ids[2]!, ids[4]!, ids[5]!, ids[7]!]);
  t.deepEqual(await runIdsOnDisk(root), ids.slice(8));
  t.is(report.kept, 2);
});

test('concurrent run creation during GC: new runs survive, only old ones go', async (t) => {
  const root = await tempDir(t);
  const old = await makeRuns(t, root, 20, { startMs: NOW.getTime() - 10 * DAY });
  const created: string[] = [];
  const creator = (async () => {
    for (let i = 0; i < 50; i++) {
      const { runId, dir } = await createRunDir(root);
      // The window between mkdir and manifest is exactly what GC must tolerate.
      await writeManifest(dir, buildManifest({ runId, command: ['x'], cwd: root, holder: 't', clientPid: 1, queuedAt: new Date(), lockdVersion: '0', env: {} }));
      created.push(runId);
    }
  })();
  const reports = await Promise.all([gcRuns(root, { keep: 60 }), gcRuns(root, { keep: 60, dryRun: true }), creator]);
  const report = reports[0];
  t.deepEqual(report.failed, []);
  const removed = report.removed.map((r) => r.run_id);
  t.true(
    removed.every((id) => old.includes(id)),
    `removed: ${removed.join(',')}`,
  );
  const onDisk = new Set(await readdir(root));
  t.true(created.every((id) => onDisk.has(id)));
  t.is(created.length, 50);
});

test('two GCs racing on one root both finish cleanly and remove each run once', async (t) => {
  const root = await tempDir(t);
  const ids = await makeRuns(t, root, 40, { logBytes: 5000 });
  const [a, b] = await Promise.all([gcRuns(root, { keep: 10, now: NOW }), gcRuns(root, { keep: 10, now: NOW })]);
  t.deepEqual([...a.failed, ...b.failed], []);
  const removed = [...a.removed, ...b.removed].map((r) => r.run_id).sort();
  t.deepEqual(removed, ids.slice(0, 30));
  t.deepEqual(await runIdsOnDisk(root), ids.slice(30));
  t.false((await readdir(root)).some((n) => n.startsWith('.gc-')));
});

test('leftovers of an interrupted GC are cleaned up', async (t) => {
  const root = await tempDir(t);
  await makeRuns(t, root, 1);
  await mkdir(path.join(root, '.gc-250101-0000-dead-0badf00d', 'sub'), { recursive: true });
  await writeFile(path.join(root, '.gc-250101-0000-dead-0badf00d', 'sub', 'output.log'), 'x');
  await gcRuns(root, { keep: 5, now: NOW });
  t.false((await readdir(root)).some((n) => n.startsWith('.gc-')));
});

test('parseDuration', (t) => {
  t.is(parseDuration('7d'), 7 * DAY);
  t.is(parseDuration('12h'), 12 * 3_600_000);
  t.is(parseDuration('30m'), 30 * MINUTE);
  t.is(parseDuration('90s'), 90_000);
  t.is(parseDuration('500ms'), 500);
  t.is(parseDuration('2w'), 14 * DAY);
  t.is(parseDuration('1h30m'), 90 * MINUTE);
  t.is(parseDuration('1.5s'), 1500);
  t.is(parseDuration(' 10s '), 10_000);
  // Bare numbers are seconds, as for --wait and --timeout: one grammar everywhere.
  t.is(parseDuration('7'), 7000);
  t.is(parseDuration('1.5'), 1500);
  t.is(parseDuration('1H30M'), 90 * MINUTE);
  for (const bad of ['', 'd', '7 days', '-1s', '-1', '1x', '1h 30m', '1e3s', '1e3', '0x10', 'Infinity', '1.', '.5']) {
    const err = t.throws(() => parseDuration(bad), undefined, bad);
    t.true(isLockdError(err, 'usage'));
  }
});

test('parseSize', (t) => {
  t.is(parseSize('123'), 123);
  t.is(parseSize('123B'), 123);
  t.is(parseSize('1024K'), 1024 * 1024);
  t.is(parseSize('500M'), 500 * 1024 ** 2);
  t.is(parseSize('10G'), 10 * 1024 ** 3);
  t.is(parseSize('1T'), 1024 ** 4);
  t.is(parseSize('2KiB'), 2048);
  t.is(parseSize('1.5m'), 1.5 * 1024 ** 2);
  t.is(parseSize('3 MB'), 3 * 1024 ** 2);
  for (const bad of ['', 'G', '-1', '10X', '1e3', '10 G B']) {
    const err = t.throws(() => parseSize(bad), undefined, bad);
    t.true(isLockdError(err, 'usage'));
  }
});
