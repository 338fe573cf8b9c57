import { startBenchDaemon, REPO } from '../../dist/bench/bench-daemon.js';
import { acquireHold, inBatches, localLock, releaseHold, submitRun } from '../../dist/bench/lockd-api.js';
import { buildStampProbe, handoffGaps, readStamps } from '../../dist/bench/stamp.js';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
const trace = '/tmp/bt/htrace2.jsonl'; rmSync(trace, { force: true });
const extra = process.argv[3] ? ['--import', pathToFileURL(process.argv[3]).href] : [];
const d = await startBenchDaemon({ nodeArgs: ['--import', pathToFileURL(join(REPO, 'dist/bench/trace-preload.js')).href, ...extra], daemonEnv: { LOCKD_BENCH_TRACE: trace, LOCKD_BENCH_TRACE_ROLE: 'daemon' } });
const probe = buildStampProbe(d.dir); const file = join(d.dir, 's.txt');
const { holdId } = await acquireHold(d, localLock('h', d.dir), d.dir).acquired;
const N = Number(process.argv[2] ?? 30);
const runs = await inBatches(Array.from({ length: N }, (_, i) => i), 1, async () => { const r = submitRun(d, ['--lock', 'h', '--', ...probe.argv(file)], d.dir); await r.queued; return r; });
await releaseHold(d, holdId, d.dir);
await Promise.all(runs.map((r) => r.finished));
const gaps = handoffGaps(readStamps(file));
await d.stop();
const marks = readFileSync(trace, 'utf8').split('\n').filter(Boolean).flatMap((l) => JSON.parse(l).marks).filter(([k]) => !['process_start', 'preload'].includes(k)).sort((a, b) => a[1] - b[1]);
const seg = {}; let lastExit = null;
for (const [k, t] of marks) { if (k === 'child_exit') lastExit = t; if (k === 'spawn_call' && lastExit) { (seg.exit2spawn ??= []).push(t - lastExit); lastExit = null; } }
let sc = null; for (const [k, t] of marks) { if (k === 'spawn_call') sc = t; if (k === 'spawn_return' && sc) { (seg.spawn ??= []).push(t - sc); sc = null; } }
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; };
console.log('gap p50', med(gaps).toFixed(2), 'exit→spawn_call p50', med(seg.exit2spawn).toFixed(2), 'spawn p50', med(seg.spawn).toFixed(2));
// print a stretch of the timeline
const t0 = marks.find(([k]) => k === 'child_exit')[1];
console.log(marks.filter(([, t]) => t >= t0).slice(0, 40).map(([k, t]) => `${k}@${(t - t0).toFixed(1)}`).join(' '));
