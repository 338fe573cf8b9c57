/**
 * The 'after-rename' durability order of writeFileAtomic (used for run records so a disk flush is not on every
 * run's path): the file is complete and in place when the call returns, and the deferred fsyncs report back.
 */
import test from 'ava';
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { writeFileAtomic, writeJsonAtomic } from '../src/runs/atomic-write.js';
import { tempDir } from './runs-helpers.js';
import { REPO } from './helpers/lockd.js';

function durable(): { onDurable: (err: Error | null) => void; result: Promise<Error | null> } {
  let onDurable!: (err: Error | null) => void;
  const result = new Promise<Error | null>((resolve) => (onDurable = resolve));
  return { onDurable, result };
}

// The deferred-sync timer never keeps a process alive by itself (in the daemon the server does); hold the loop open
// like the daemon would, so the batch runs on its timer rather than at exit.
let keepAlive: NodeJS.Timeout | null = null;
test.before(() => {
  keepAlive = setInterval(() => undefined, 1000);
});
test.after.always(() => {
  if (keepAlive) clearInterval(keepAlive);
});

test('after-rename: the whole file is in place when the call returns, then onDurable reports success', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'result.json');
  const d = durable();
  await writeFileAtomic(file, 'x'.repeat(100_000), { sync: 'after-rename', onDurable: d.onDurable });
  t.is(await readFile(file, 'utf8'), 'x'.repeat(100_000));
  t.deepEqual(await readdir(dir), ['result.json']);
  t.is(await d.result, null);
});

test('after-rename replaces an existing file atomically and leaves no temp file', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'manifest.json');
  await writeJsonAtomic(file, { v: 1 });
  const d = durable();
  await writeJsonAtomic(file, { v: 2 }, { sync: 'after-rename', onDurable: d.onDurable });
  t.deepEqual(JSON.parse(await readFile(file, 'utf8')), { v: 2 });
  t.is(await d.result, null);
  t.deepEqual(await readdir(dir), ['manifest.json']);
});

test('after-rename: a failed write rejects, leaves nothing behind and never reports durability', async (t) => {
  const dir = await tempDir(t);
  let called = false;
  await t.throwsAsync(writeFileAtomic(path.join(dir, 'missing-subdir', 'f.json'), 'x', { sync: 'after-rename', onDurable: () => (called = true) }), { code: 'ENOENT' });
  t.deepEqual(await readdir(dir), []);
  t.false(called);
});

test('after-rename, blocking: replaced in place before the call returns, no temp file, durability reported; a failure leaves nothing', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'manifest.json');
  await writeJsonAtomic(file, { v: 1 });
  const d = durable();
  const write = writeJsonAtomic(file, { v: 2 }, { sync: 'after-rename', blocking: true, onDurable: d.onDurable });
  // Synchronous calls: the new content is there before the returned promise is even awaited.
  t.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { v: 2 });
  await write;
  t.is(await d.result, null);
  t.deepEqual(await readdir(dir), ['manifest.json']);
  let called = false;
  await t.throwsAsync(writeFileAtomic(path.join(dir, 'missing-subdir', 'f.json'), 'x', { sync: 'after-rename', blocking: true, onDurable: () => (called = true) }), { code: 'ENOENT' });
  t.deepEqual(await readdir(dir), ['manifest.json']);
  t.false(called);
});

test('after-rename: every write of a burst reports durability; one removed meanwhile is not an error', async (t) => {
  const dir = await tempDir(t);
  const files = Array.from({ length: 40 }, (_, i) => path.join(dir, `r${i}.json`));
  const results: Array<Promise<Error | null>> = [];
  await Promise.all(
    files.map(async (f, i) => {
      const d = durable();
      results.push(d.result);
      await writeJsonAtomic(f, { i }, { sync: 'after-rename', onDurable: d.onDurable });
    }),
  );
  // Possibly gone before its fsync: then there is nothing left to make durable, which is not an error.
  await rm(files[39]!);
  t.deepEqual(
    await Promise.all(results),
    files.map(() => null),
  );
  t.is((await readdir(dir)).length, 39);
});

test('after-rename: a process that ends normally syncs its pending writes before it exits', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'result.json');
  const moduleUrl = pathToFileURL(path.join(REPO, 'dist', 'src', 'runs', 'atomic-write.js')).href;
  const script = `import { writeFileAtomic } from ${JSON.stringify(moduleUrl)};
await writeFileAtomic(${JSON.stringify(file)}, 'done', { sync: 'after-rename', onDurable: (e) => process.stdout.write('durable ' + (e ? e.message : 'ok') + '\\n') });`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  t.is(code, 0);
  t.is(out, 'durable ok\n');
  t.is(await readFile(file, 'utf8'), 'done');
});
