import { startBenchDaemon } from '../../dist/bench/bench-daemon.js';
import { acquireHold, localLock, releaseHold } from '../../dist/bench/lockd-api.js';
import { connectDaemon } from '../../dist/src/client/connection.js';
import { buildRunRequest } from '../../dist/src/cli/commands/run.js';
const d = await startBenchDaemon();
const { holdId } = await acquireHold(d, localLock('h', d.dir), d.dir).acquired;
const seen = [[], []];
const done = [];
for (const i of [0, 1]) {
  const { req } = buildRunRequest(['--root', d.dir, '--wait', 'inf', '-q', '--lock', 'h', '--', 'true'], d.env); req.cwd = d.dir;
  const c = await connectDaemon(d.connect, { type: 'run', req });
  done.push(new Promise((r) => { c.onData = () => {}; c.onMessage = (m) => { seen[i].push(m.type); if (m.type === 'finished') r(m.outcome.reason); }; c.onClose = () => r('closed'); }));
  await new Promise((r) => setTimeout(r, 300));
}
console.log('before release', seen);
await releaseHold(d, holdId, d.dir);
console.log(await Promise.all(done), seen);
await d.stop();
