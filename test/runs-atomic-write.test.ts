import test from 'ava';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../src/runs/atomic-write.js';
import { tempDir } from './runs-helpers.js';

test('writeFileAtomic creates and replaces a file, leaving no temp files', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'result.json');
  await writeFileAtomic(file, 'first');
  t.is(await readFile(file, 'utf8'), 'first');
  await writeFileAtomic(file, Buffer.from('second'));
  t.is(await readFile(file, 'utf8'), 'second');
  t.deepEqual(await readdir(dir), ['result.json']);
});

test('writeJsonAtomic writes pretty JSON with a trailing newline', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'x.json');
  await writeJsonAtomic(file, { a: 1, b: [true] });
  const text = await readFile(file, 'utf8');
  t.true(text.endsWith('}\n'));
  t.deepEqual(JSON.parse(text), { a: 1, b: [true] });
});

test('a failed write rejects and leaves neither target nor temp file', async (t) => {
  const dir = await tempDir(t);
  await t.throwsAsync(writeFileAtomic(path.join(dir, 'missing-subdir', 'f.json'), 'x'), { code: 'ENOENT' });
  t.deepEqual(await readdir(dir), []);
});

test('a reader polling the file never sees a partial or mixed version', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'result.json');
  // Large, distinct versions so a non-atomic write would be observable mid-way.
  const version = (i: number): string => `${String(i).padStart(4, '0')}:${String.fromCharCode(65 + (i % 26)).repeat(512 * 1024)}\n`;
  await writeFileAtomic(file, version(0));
  const rounds = 40;
  let writerDone = false;
  const writer = (async () => {
    for (let i = 1; i <= rounds; i++) await writeFileAtomic(file, version(i));
    writerDone = true;
  })();
  let reads = 0;
  // Bounded: the writer finishes after `rounds` writes; a read cap guards against a hung writer.
  while (!writerDone && reads < 100_000) {
    const text = await readFile(file, 'utf8');
    const i = Number(text.slice(0, 4));
    t.is(text, version(i), `read #${reads} saw a torn file`);
    reads++;
  }
  await writer;
  t.is(await readFile(file, 'utf8'), version(rounds));
  t.true(reads > 0);
  t.deepEqual(await readdir(dir), ['result.json']);
});
