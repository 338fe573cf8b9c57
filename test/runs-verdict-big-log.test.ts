import test from 'ava';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { compileVerdictOptions, decideVerdict, scanLogFile } from '../src/runs/verdict.js';
import { tempDir } from './runs-helpers.js';

const MiB = 1024 * 1024;

/** Write `blocks` MiB of ordinary log lines plus a few special lines, without holding the file in memory. */
async function writeBigLog(file: string, blocks: number): Promise<void> {
  const out = createWriteStream(file, { highWaterMark: MiB });
  const write = async (data: string | Buffer): Promise<void> => {
    if (!out.write(data)) await once(out, 'drain');
  };
  const line = '[ 1234.567890] riscv64: running test case ................................ ok\n';
  const block = Buffer.from(line.repeat(Math.floor(MiB / line.length)));
  for (let i = 0; i < blocks; i++) {
    await write(block);
    if (i === Math.floor(blocks / 4)) {
      // An early, failing structured result that a later one must override.
      await write('TEST_RESULT_JSON: {"schema_version":1,"failed":3,"done":false}\nTEST_SUMMARY: failed=3\n');
    }
    if (i === Math.floor(blocks / 2)) {
      // An 8 MiB line without a break: only its first MiB may be buffered.
      const piece = Buffer.alloc(MiB, 'z');
      for (let j = 0; j < 8; j++) await write(piece);
      await write('\n');
    }
  }
  await write('login: \nTEST_RESULT_JSON: {"schema_version":1,"failed":0,"done":true}\nTEST_SUMMARY: failed=0\nPOWER OFF');
  out.end();
  await once(out, 'close');
}

test('a 200 MB log is scanned with bounded memory and the verdict comes from its last lines', async (t) => {
  const dir = await tempDir(t, 'lockd-biglog-');
  const file = path.join(dir, 'output.log');
  await writeBigLog(file, 200);
  const size = (await stat(file)).size;
  t.true(size >= 200 * MiB, `log is only ${size} bytes`);

  const opts = compileVerdictOptions({ requireStructured: true, requireAll: ['^login: $', 'POWER OFF$'], forbidMarker: ['Kernel panic'] });
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 10);
  let scan;
  try {
    scan = await scanLogFile(file, opts);
  } finally {
    clearInterval(sampler);
  }
  peak = Math.max(peak, process.memoryUsage().rss);

  const growth = peak - baseline;
  t.log(`scanned ${(size / MiB).toFixed(0)} MiB, rss growth ${(growth / MiB).toFixed(1)} MiB`);
  t.true(growth < 64 * MiB, `rss grew by ${(growth / MiB).toFixed(1)} MiB`);
  t.is(scan.bytes, size);
  t.is(scan.truncatedLines, 1);
  const v = decideVerdict({ kind: 'exited', code: 0 }, scan, opts);
  t.is(v.status, 'pass');
  t.is(v.reason, 'structured_passed');
  t.deepEqual(
    v.markers.required_all.map((m) => m.matched),
    [true, true],
  );
  t.false(v.markers.forbidden[0]!.matched);
});
