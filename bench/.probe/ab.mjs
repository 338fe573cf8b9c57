import { spawn } from 'node:child_process';
import { startBenchDaemon } from '../../dist/bench/bench-daemon.js';
const d = await startBenchDaemon();
const variants = JSON.parse(process.argv[2]);
const N = Number(process.argv[3] ?? 20);
const res = Object.fromEntries(Object.keys(variants).map((k) => [k, { wall: [], cpu: [] }]));
const run = (args) => new Promise((resolve) => {
  const t0 = process.hrtime.bigint();
  const c = spawn('perf', ['stat', '-x,', '-e', 'task-clock', ...args], { env: d.env, cwd: d.dir, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = ''; c.stderr.on('data', (b) => (err += b));
  c.on('close', (code) => { const wall = Number(process.hrtime.bigint() - t0) / 1e6; const line = err.trim().split('\n').find((l) => l.includes('task-clock')) ?? '0'; resolve({ wall, cpu: Number(line.split(',')[0]), code, err }); });
});
for (let i = 0; i < N + 3; i++) {
  const keys = Object.keys(variants); if (i % 2) keys.reverse();
  for (const k of keys) { const r = await run(variants[k]); if (r.code !== 0 && !globalThis.__e) { globalThis.__e = 1; console.error(k, r.err.slice(0, 300)); } if (i >= 3) { res[k].wall.push(r.wall); res[k].cpu.push(r.cpu); } }
}
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; };
for (const [k, v] of Object.entries(res)) console.log(k.padEnd(12), 'wall', med(v.wall).toFixed(1), 'cpu', med(v.cpu).toFixed(0));
await d.stop();
