import test from 'ava';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { elisionLine, RunLogWriter } from '../src/runs/log-writer.js';
import { isLockdError } from '../src/util/errors.js';
import { tempDir } from './runs-helpers.js';

/** Deterministic, position-dependent bytes so misplaced data is detectable. */
function pattern(offset: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = 33 + (((offset + i) * 7919) % 94);
  return b;
}

/** Feed `total` bytes of pattern() in chunks of varying size, honouring backpressure. */
async function feed(writer: RunLogWriter, total: number, chunkSizes: number[] = [1, 4096, 13, 65536, 777]): Promise<Buffer> {
  const parts: Buffer[] = [];
  let at = 0;
  let k = 0;
  while (at < total) {
    const n = Math.min(chunkSizes[k++ % chunkSizes.length]!, total - at);
    const chunk = pattern(at, n);
    parts.push(chunk);
    at += n;
    if (!writer.write(chunk)) await new Promise<void>((resolve) => writer.once('drain', resolve));
  }
  return Buffer.concat(parts);
}

test('without a cap the log is exactly the output, in order', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'output.log');
  const w = await RunLogWriter.open(file);
  w.write('stdout line\n');
  w.write(Buffer.from('stderr line\n'));
  const rest = await feed(w, 300_000);
  const stats = await w.close();
  const expected = Buffer.concat([Buffer.from('stdout line\nstderr line\n'), rest]);
  t.deepEqual(await readFile(file), expected);
  t.deepEqual(stats, { receivedBytes: expected.length, elidedBytes: 0, fileBytes: expected.length });
});

test('under or exactly at the cap nothing is elided', async (t) => {
  const dir = await tempDir(t);
  for (const size of [0, 999, 1000]) {
    const file = path.join(dir, `at-${size}.log`);
    const w = await RunLogWriter.open(file, { maxBytes: 1000 });
    const data = await feed(w, size, [7, 100]);
    const stats = await w.close();
    t.deepEqual(await readFile(file), data);
    t.is(stats.elidedBytes, 0);
  }
  t.deepEqual((await readdir(dir)).sort(), ['at-0.log', 'at-1000.log', 'at-999.log']);
});

test('over the cap: head, elision line, tail, in order; no ring file is left behind', async (t) => {
  const dir = await tempDir(t);
  const cases: [number, number][] = [
    [1000, 1001],
    [1000, 1500],
    [1000, 2000],
    [1000, 12_345],
    [1001, 50_000],
    [64 * 1024, 5 * 1024 * 1024 + 17],
  ];
  for (const [maxBytes, total] of cases) {
    const file = path.join(dir, `cap-${maxBytes}-${total}.log`);
    const w = await RunLogWriter.open(file, { maxBytes });
    const data = await feed(w, total);
    const stats = await w.close();
    const head = Math.floor(maxBytes / 2);
    const tail = maxBytes - head;
    const elided = total - maxBytes;
    const expected = Buffer.concat([data.subarray(0, head), Buffer.from(elisionLine(elided)), data.subarray(total - tail)]);
    const got = await readFile(file);
    t.true(got.equals(expected), `maxBytes=${maxBytes} total=${total}`);
    t.deepEqual(stats, { receivedBytes: total, elidedBytes: elided, fileBytes: expected.length });
  }
  t.is(elisionLine(42), '\n[lockd: 42 bytes elided]\n');
  t.true((await readdir(dir)).every((name) => name.startsWith('cap-')));
});

test('a single chunk far larger than the cap keeps its own head and tail', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'big-chunk.log');
  const w = await RunLogWriter.open(file, { maxBytes: 100 });
  const data = pattern(0, 1_000_000);
  w.write(data);
  await w.close();
  t.deepEqual(await readFile(file), Buffer.concat([data.subarray(0, 50), Buffer.from(elisionLine(999_900)), data.subarray(999_950)]));
});

test.serial('a capped writer keeps memory bounded while 200 MB stream through it', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'flood.log');
  const w = await RunLogWriter.open(file, { maxBytes: 1024 * 1024 });
  const before = process.memoryUsage().rss;
  let peak = before;
  const chunk = Buffer.alloc(64 * 1024, 'y');
  const total = 200 * 1024 * 1024;
  for (let sent = 0; sent < total; sent += chunk.length) {
    if (!w.write(chunk)) await new Promise<void>((resolve) => w.once('drain', resolve));
    if (sent % (8 * 1024 * 1024) === 0) peak = Math.max(peak, process.memoryUsage().rss);
  }
  const stats = await w.close();
  peak = Math.max(peak, process.memoryUsage().rss);
  t.log(`rss growth ${((peak - before) / 1024 / 1024).toFixed(1)} MiB`);
  t.true(peak - before < 64 * 1024 * 1024);
  t.is(stats.receivedBytes, total);
  t.is(stats.elidedBytes, total - 1024 * 1024);
  t.is(stats.fileBytes, 1024 * 1024 + elisionLine(stats.elidedBytes).length);
});

test('write() signals backpressure and emits drain', async (t) => {
  const dir = await tempDir(t);
  const w = await RunLogWriter.open(path.join(dir, 'bp.log'), { highWaterMark: 1024 });
  const drained = new Promise<void>((resolve) => w.once('drain', resolve));
  t.true(w.write(Buffer.alloc(100)));
  t.false(w.write(Buffer.alloc(2000)));
  await drained;
  t.true(w.write(Buffer.alloc(10)));
  t.is((await w.close()).fileBytes, 2110);
});

test('ENOSPC surfaces as log_write_failed through failure, error and close, without throwing from write', async (t) => {
  if (!existsSync('/dev/full')) {
    t.log('no /dev/full on this platform; checking the open-failure path instead');
    await t.throwsAsync(RunLogWriter.open('/nonexistent-dir/x.log'));
    return;
  }
  const w = await RunLogWriter.open('/dev/full');
  const events: unknown[] = [];
  w.on('error', (err) => events.push(err));
  t.true(w.write('some output\n'));
  const failure = await w.failure;
  t.true(isLockdError(failure, 'log_write_failed'));
  t.is(failure.details?.['errno'], 'ENOSPC');
  t.is(events.length, 1);
  t.is(w.failed, failure);
  // Later output is dropped without throwing or stalling the source.
  t.true(w.write('more output\n'));
  const err = await t.throwsAsync(w.close());
  t.is(err, failure);
});

test('a failure without an error listener does not crash the process', async (t) => {
  if (!existsSync('/dev/full')) {
    t.log('no /dev/full on this platform');
    t.is(await RunLogWriter.open('/nonexistent-dir/x.log').catch((e: unknown) => isLockdError(e, 'log_write_failed')), true);
    return;
  }
  const w = await RunLogWriter.open('/dev/full');
  w.write('x');
  t.true(isLockdError(await w.failure, 'log_write_failed'));
  await t.throwsAsync(w.close(), { instanceOf: Error });
});

test('a deleted run directory fails the log at close', async (t) => {
  const base = await tempDir(t);
  const dir = path.join(base, 'run');
  await mkdir(dir);
  const w = await RunLogWriter.open(path.join(dir, 'output.log'), { maxBytes: 1024 });
  w.write('before\n');
  await rm(dir, { recursive: true, force: true });
  w.write('after\n');
  const err = await t.throwsAsync(w.close());
  t.true(isLockdError(err, 'log_write_failed'), String(err));
});

test('a deleted run directory fails the log when the cap needs the ring file', async (t) => {
  const base = await tempDir(t);
  const dir = path.join(base, 'run');
  await mkdir(dir);
  const w = await RunLogWriter.open(path.join(dir, 'output.log'), { maxBytes: 100 });
  w.write('x'.repeat(50));
  await rm(dir, { recursive: true, force: true });
  w.write('y'.repeat(200));
  const failure = await w.failure;
  t.true(isLockdError(failure, 'log_write_failed'));
  await t.throwsAsync(w.close());
});

test('opening a log in a missing directory rejects with log_write_failed', async (t) => {
  const dir = await tempDir(t);
  const err = await t.throwsAsync(RunLogWriter.open(path.join(dir, 'nope', 'output.log')));
  t.true(isLockdError(err, 'log_write_failed'));
  const bad = await t.throwsAsync(RunLogWriter.open(path.join(dir, 'x.log'), { maxBytes: -1 }));
  t.true(isLockdError(bad, 'usage'));
});

test('openSync: the same log as open, capped or not; a missing directory or a bad cap throws at once', async (t) => {
  const dir = await tempDir(t);
  const plain = path.join(dir, 'plain.log');
  const w = RunLogWriter.openSync(plain);
  t.true(existsSync(plain), 'the file exists as soon as openSync returns');
  const data = await feed(w, 300_000);
  t.deepEqual(await w.close(), { receivedBytes: data.length, elidedBytes: 0, fileBytes: data.length });
  t.deepEqual(await readFile(plain), data);

  const capped = path.join(dir, 'capped.log');
  const c = RunLogWriter.openSync(capped, { maxBytes: 1000 });
  const all = await feed(c, 12_345);
  const stats = await c.close();
  const expected = Buffer.concat([all.subarray(0, 500), Buffer.from(elisionLine(12_345 - 1000)), all.subarray(12_345 - 500)]);
  t.true((await readFile(capped)).equals(expected));
  t.deepEqual(stats, { receivedBytes: 12_345, elidedBytes: 12_345 - 1000, fileBytes: expected.length });
  t.deepEqual((await readdir(dir)).sort(), ['capped.log', 'plain.log'], 'no ring file is left behind');

  const missing = t.throws(() => RunLogWriter.openSync(path.join(dir, 'nope', 'output.log')));
  t.true(isLockdError(missing, 'log_write_failed'));
  t.true(
    isLockdError(
      t.throws(() => RunLogWriter.openSync(path.join(dir, 'x.log'), { maxBytes: -1 })),
      'usage',
    ),
  );
  if (existsSync('/dev/full')) {
    const full = RunLogWriter.openSync('/dev/full');
    full.write('x');
    t.is((await full.failure).details?.['errno'], 'ENOSPC');
    await t.throwsAsync(full.close());
  }
});

test('close() is idempotent and output after close is ignored', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'o.log');
  const w = await RunLogWriter.open(file);
  w.write('a');
  const [s1, s2] = await Promise.all([w.close(), w.close()]);
  t.deepEqual(s1, s2);
  t.true(w.write('late'));
  t.is(await readFile(file, 'utf8'), 'a');
});
