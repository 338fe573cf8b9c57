import { startBenchDaemon } from '../../dist/bench/bench-daemon.js';
import { acquireHold, inBatches, localLock, releaseHold, submitRun } from '../../dist/bench/lockd-api.js';
import { buildStampProbe, handoffGaps, readStamps } from '../../dist/bench/stamp.js';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
const variants = process.argv.slice(4);
const N = Number(process.argv[2] ?? 50), R = Number(process.argv[3] ?? 2);
const ds = [];
for (const v of variants) ds.push({ v, d: await startBenchDaemon({ nodeArgs: v === '-' ? [] : ['--import', pathToFileURL(v).href] }), gaps: [] });
const probe = buildStampProbe(ds[0].d.dir);
for (let r = 0; r < R; r++) for (const x of (r % 2 ? [...ds].reverse() : ds)) {
  const d = x.d; const file = join(d.dir, `s${r}.txt`); const lock = `h${r}`;
  const { holdId } = await acquireHold(d, localLock(lock, d.dir), d.dir).acquired;
  const runs = await inBatches(Array.from({ length: N }, (_, i) => i), 1, async () => { const q = submitRun(d, ['--lock', lock, '--', ...probe.argv(file)], d.dir); await q.queued; return q; });
  await releaseHold(d, holdId, d.dir);
  await Promise.all(runs.map((q) => q.finished));
  x.gaps.push(...handoffGaps(readStamps(file)));
}
const pct = (a, p) => { const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))]; };
for (const x of ds) console.log(x.v.split('/').pop().padEnd(20), 'p50', pct(x.gaps, 50).toFixed(2), 'p90', pct(x.gaps, 90).toFixed(2), 'p99', pct(x.gaps, 99).toFixed(2), 'n', x.gaps.length);
for (const x of ds) await x.d.stop();
