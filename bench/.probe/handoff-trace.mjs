import { startBenchDaemon, REPO } from '../../dist/bench/bench-daemon.js';
import { acquireHold, inBatches, localLock, releaseHold, submitRun } from '../../dist/bench/lockd-api.js';
import { buildStampProbe, handoffGaps, readStamps } from '../../dist/bench/stamp.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
const trace = '/tmp/bt/htrace.jsonl';
import { rmSync } from 'node:fs'; rmSync(trace, { force: true });
const d = await startBenchDaemon({ nodeArgs: ['--import', pathToFileURL(join(REPO, 'dist/bench/trace-preload.js')).href], daemonEnv: { LOCKD_BENCH_TRACE: trace, LOCKD_BENCH_TRACE_ROLE: 'daemon' } });
const probe = buildStampProbe(d.dir);
const file = join(d.dir, 's.txt');
const gate = acquireHold(d, localLock('h', d.dir), d.dir);
const { holdId } = await gate.acquired;
const N = Number(process.argv[2] ?? 20);
const runs = await inBatches(Array.from({ length: N }, (_, i) => i), 1, async () => { const r = submitRun(d, ['--lock', 'h', '--', ...probe.argv(file)], d.dir); await r.queued; return r; });
await releaseHold(d, holdId, d.dir);
await Promise.all(runs.map((r) => r.finished));
const gaps = handoffGaps(readStamps(file));
console.log('gaps', gaps.map((g) => g.toFixed(2)).join(' '));
await d.stop();
const recs = readFileSync(trace, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
// print one daemon record relative
for (const r of recs.slice(-3)) { const t0 = r.marks[0][1]; console.log(r.marks.map(([k, v]) => `${k}@${(v - t0).toFixed(2)}`).join(' ')); }
