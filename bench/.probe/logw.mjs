import { RunLogWriter } from '../../dist/src/runs/log-writer.js';
const w = await RunLogWriter.open('/tmp/bt/logw.out', {});
const chunk = Buffer.alloc(65536, 7);
const t0 = performance.now(); let pauses = 0;
for (let i = 0; i < 1024; i++) { if (!w.write(chunk)) { pauses++; await new Promise((r) => w.once('drain', r)); } }
await w.close();
console.log('log writer 64MiB', (performance.now() - t0).toFixed(0), 'ms pauses', pauses);
