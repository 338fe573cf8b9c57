// Interleaved A/B of the daemon-side phases: daemon A (as is) vs daemon B (extra preload), client runs traced.
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startBenchDaemon, REPO, CLI } from '../../dist/bench/bench-daemon.js';
const pre = pathToFileURL(join(REPO, 'dist/bench/trace-preload.js')).href;
const extra = process.argv[2] ? ['--import', pathToFileURL(process.argv[2]).href] : [];
const N = Number(process.argv[3] ?? 20);
const mk = async (tag, more) => { const f = `/tmp/bt/pab-${tag}.jsonl`; rmSync(f, { force: true }); const d = await startBenchDaemon({ nodeArgs: ['--import', pre, ...more], daemonEnv: { LOCKD_BENCH_TRACE: f, LOCKD_BENCH_TRACE_ROLE: 'daemon' } }); return { d, f, walls: [] }; };
const A = await mk('A', []); const B = await mk('B', extra);
const run = (x) => new Promise((res) => { const t0 = process.hrtime.bigint(); const c = spawn(process.execPath, [CLI, 'run', '-q', '--lock', 'x', '--', 'true'], { env: x.d.env, cwd: x.d.dir, stdio: 'ignore' }); c.on('exit', () => { x.walls.push(Number(process.hrtime.bigint() - t0) / 1e6); res(); }); });
for (let i = 0; i < N + 2; i++) { if (i % 2) { await run(A); await run(B); } else { await run(B); await run(A); } }
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; };
for (const x of [A, B]) {
  const recs = readFileSync(x.f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)).slice(2);
  const ph = {};
  for (const r of recs) { const m = Object.fromEntries(r.marks.map(([k, v]) => [k, v])); const add = (k, a, b) => { if (m[a] && m[b]) (ph[k] ??= []).push(m[b] - m[a]); };
    add('run→spawn', 'recv:run', 'spawn_call'); add('spawn', 'spawn_call', 'spawn_return'); add('spawned→exit', 'spawn_return', 'child_exit'); add('exit→finished', 'child_exit', 'send:finished'); add('total', 'recv:run', 'send:finished'); }
  console.log(x === A ? 'A' : 'B', 'wall', med(x.walls.slice(2)).toFixed(1), Object.entries(ph).map(([k, v]) => `${k} ${med(v).toFixed(2)}`).join(' | '));
}
await A.d.stop(); await B.d.stop();
