// The lockd Node API: reserve a board, run two commands under one lock, watch events, release.
// Run it from the repository (after `npm install`): node examples/node/reserve-and-run.mjs
import { connect } from 'lockd';

const lockd = await connect();

// A run: output streams back, the exit code is the child's.
const run = lockd.run(['sh', '-c', 'echo "slot $LOCKD_SLOT_board under run $LOCKD_RUN_ID"'], ['board:slots=2'], { wait: 30 });
run.stdout.pipe(process.stdout);
run.stderr.pipe(process.stderr);
console.log('exit code', await run.exitCode);

// A reservation without a child (several steps, a debugging session), refreshed by heartbeats.
const hold = await lockd.acquire([{ name: 'lab-board', global: true }], { wait: 0, ttl: 60 });
console.log('holding', hold.holdId, 'fencing token', hold.locks[0].fencing_token);
await lockd.heartbeat(hold.holdId);
const status = await lockd.status();
console.log('held locks:', status.locks.map((l) => `${l.name} by ${l.holders.map((h) => h.id).join(',')}`).join('; '));
const released = await lockd.release(hold.holdId);
console.log('released', released.released);
