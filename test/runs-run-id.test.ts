import test from 'ava';
import { mkdir, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { createRunDir, isValidRunId, newRunId, parseRunIdTime, runIdMinutePrefix } from '../src/runs/run-id.js';
import { isLockdError } from '../src/util/errors.js';
import { tempDir } from './runs-helpers.js';

const GENERATED_RE = /^\d{6}-\d{4}-[0-9a-f]{4}$/;

test('newRunId is YYMMDD-HHMM-xxxx in UTC', (t) => {
  const id = newRunId(new Date('2025-02-22T23:15:42.123Z'));
  t.regex(id, /^250222-2315-[0-9a-f]{4}$/);
  t.regex(newRunId(), GENERATED_RE);
  // Midnight rollover and single-digit fields are zero-padded.
  t.is(runIdMinutePrefix(new Date('2031-01-02T03:04:00Z')), '310102-0304');
});

test('newRunId can widen its random suffix', (t) => {
  t.regex(newRunId(new Date('2025-02-22T23:15:00Z'), 6), /^250222-2315-[0-9a-f]{6}$/);
});

test('parseRunIdTime reads the minute back and rejects non-dates', (t) => {
  t.is(parseRunIdTime('250222-2315-7f3a'), Date.UTC(2025, 1, 22, 23, 15));
  t.is(parseRunIdTime('nightly-build'), null);
  t.is(parseRunIdTime('250231-2315-7f3a'), null); // Feb 31st
  t.is(parseRunIdTime('251322-2315-7f3a'), null); // month 13
  t.is(parseRunIdTime('250222-2460-7f3a'), null); // 24:60
});

test('isValidRunId accepts safe names and never a path', (t) => {
  for (const ok of ['250222-2315-7f3a', 'a', 'Nightly_1.2-rc', 'x'.repeat(128), '9lives']) t.true(isValidRunId(ok), ok);
  for (const bad of ['', '.', '..', '.hidden', '-flag', 'a/b', 'a\\b', '../etc', 'a..b', 'x'.repeat(129), 'a b', 'ü', 'a\0b', '_x']) {
    t.false(isValidRunId(bad), JSON.stringify(bad));
  }
  t.false(isValidRunId(42));
  t.false(isValidRunId(null));
});

test('createRunDir creates the runs root recursively and an empty run dir', async (t) => {
  const base = await tempDir(t);
  const root = path.join(base, 'deep', 'runs');
  const { runId, dir } = await createRunDir(root);
  t.regex(runId, GENERATED_RE);
  t.is(dir, path.join(root, runId));
  t.true((await stat(dir)).isDirectory());
  t.deepEqual(await readdir(dir), []);
});

test('a caller-chosen id is used as is, and a taken one is run_id_exists', async (t) => {
  const root = await tempDir(t);
  const first = await createRunDir(root, 'nightly-42');
  t.is(first.runId, 'nightly-42');
  const err = await t.throwsAsync(createRunDir(root, 'nightly-42'));
  t.true(isLockdError(err, 'run_id_exists'), String(err));
});

test('an invalid caller-chosen id is rejected before touching the disk', async (t) => {
  const root = await tempDir(t);
  for (const bad of ['../escape', 'a/b', '..', '.git']) {
    const err = await t.throwsAsync(createRunDir(root, bad));
    t.true(isLockdError(err, 'invalid_run_id'), String(err));
  }
  t.deepEqual(await readdir(root), []);
});

test('1,000 concurrent createRunDir calls within one minute all get distinct ids and dirs', async (t) => {
  const root = await tempDir(t);
  const minute = new Date('2025-02-22T23:15:30Z');
  // All in flight at once, in the same root and the same minute.
  const results = await Promise.all(Array.from({ length: 1000 }, (_, i) => createRunDir(root, undefined, { now: () => (i % 2 ? minute : new Date(minute.getTime() + 20_000)) })));
  const ids = new Set(results.map((r) => r.runId));
  t.is(ids.size, 1000);
  for (const id of ids) t.regex(id, /^250222-2315-([0-9a-f]{4}|[0-9a-f]{6}|[0-9a-f]{8})$/);
  const onDisk = await readdir(root);
  t.is(onDisk.length, 1000);
  t.deepEqual([...onDisk].sort(), [...ids].sort());
});

test('collisions are retried, and a crowded minute widens the suffix to 6 hex', async (t) => {
  const root = await tempDir(t);
  const now = () => new Date('2025-02-22T23:15:00Z');
  // Every 4-hex draw says "0000", which another run already has; 6-hex draws count up.
  await mkdir(path.join(root, '250222-2315-0000'));
  let counter = 0;
  let narrowDraws = 0;
  const randomBytes = (size: number): Buffer => {
    if (size === 2) {
      narrowDraws++;
      return Buffer.alloc(2);
    }
    counter++;
    const b = Buffer.alloc(size);
    b.writeUIntBE(counter, 0, size);
    return b;
  };
  const ids = new Set<string>();
  for (let i = 0; i < 4; i++) {
    const got = await createRunDir(root, undefined, { now, randomBytes });
    t.regex(got.runId, /^250222-2315-[0-9a-f]{6}$/);
    ids.add(got.runId);
  }
  t.is(ids.size, 4);
  t.true(narrowDraws >= 16, `narrow draws: ${narrowDraws}`);
  // The minute is now known to be crowded: the next call starts wide right away.
  const before = narrowDraws;
  const wide = await createRunDir(root, undefined, { now, randomBytes });
  t.regex(wide.runId, /^250222-2315-[0-9a-f]{6}$/);
  t.is(narrowDraws, before);
  // A new minute starts narrow again.
  const nextMinute = await createRunDir(root, undefined, { now: () => new Date('2025-02-22T23:16:00Z') });
  t.regex(nextMinute.runId, /^250222-2316-[0-9a-f]{4}$/);
});

test('createRunDir gives up with run_id_unavailable when every id is taken', async (t) => {
  const root = await tempDir(t);
  await mkdir(path.join(root, '250222-2315-0000'));
  await mkdir(path.join(root, '250222-2315-000000'));
  await mkdir(path.join(root, '250222-2315-00000000'));
  const err = await t.throwsAsync(createRunDir(root, undefined, { now: () => new Date('2025-02-22T23:15:00Z'), randomBytes: (n) => Buffer.alloc(n) }));
  t.true(isLockdError(err, 'run_id_unavailable'), String(err));
});
