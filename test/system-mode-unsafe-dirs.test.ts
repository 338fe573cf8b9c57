/**
 * The zero-setup per-user daemon (and the system daemon alike) refuses a state directory or socket directory that
 * others could write: they could forge its journal, plant files it trusts, or replace its socket.
 */
import test from 'ava';
import { chmodSync, chownSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, tempDir } from './helpers/lockd.js';

function scratch(t: import('ava').ExecutionContext): string {
  const dir = tempDir('ldu');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('a per-user daemon refuses a state directory others can write, and writes nothing into it', async (t) => {
  const dir = scratch(t);
  const state = join(dir, 'state');
  mkdirSync(state);
  chmodSync(state, 0o777);
  const err = await t.throwsAsync(startDaemon(null, { dir, env: { LOCKD_STATE_DIR: state } }));
  t.regex(err!.message, /state directory .* is writable by others/);
  t.deepEqual(readdirSync(state), []);
});

test('a per-user daemon refuses a group-writable state directory too', async (t) => {
  const dir = scratch(t);
  const state = join(dir, 'state');
  mkdirSync(state);
  chmodSync(state, 0o770);
  const err = await t.throwsAsync(startDaemon(null, { dir, env: { LOCKD_STATE_DIR: state } }));
  t.regex(err!.message, /writable by others \(mode 770\)/);
});

test('a per-user daemon refuses a socket directory others can write', async (t) => {
  const dir = scratch(t);
  const sockDir = join(dir, 'sock');
  mkdirSync(sockDir);
  chmodSync(sockDir, 0o777);
  const err = await t.throwsAsync(startDaemon(null, { dir, env: { LOCKD_SOCKET: join(sockDir, 's.sock') } }));
  t.regex(err!.message, /socket directory .* is writable by others/);
});

test('the system daemon refuses a state directory others can write', async (t) => {
  const dir = scratch(t);
  chmodSync(dir, 0o755);
  const state = join(dir, 'state');
  mkdirSync(state);
  chmodSync(state, 0o777);
  const err = await t.throwsAsync(startDaemon(null, { dir, args: ['--system', '--socket', join(dir, 's.sock'), '--state-dir', state] }));
  t.regex(err!.message, /state directory .* is writable by others/);
});

if (typeof process.getuid === 'function' && process.getuid() === 0) {
  test('a daemon refuses a state directory owned by another user', async (t) => {
    const dir = scratch(t);
    const state = join(dir, 'state');
    mkdirSync(state, { mode: 0o700 });
    chownSync(state, 65534, 65534);
    const err = await t.throwsAsync(startDaemon(null, { dir, env: { LOCKD_STATE_DIR: state } }));
    t.regex(err!.message, /owned by uid 65534, not by you/);
  });
}
