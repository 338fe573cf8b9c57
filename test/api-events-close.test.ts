/**
 * `client.events()` closed before its connection to the daemon is made (lockd web stopped right after it started)
 * ends that connection as soon as it is made: nothing is left open to keep the process alive.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO, startDaemon, stopProcess } from './helpers/lockd.js';

test('a process whose event stream was closed before it connected exits by itself', async (t) => {
  const d = await startDaemon(t);
  const api = pathToFileURL(join(REPO, 'dist', 'src', 'index.js')).href;
  const script = `const { LockdClient } = await import(${JSON.stringify(api)});
const s = LockdClient.fromConnectOptions({ socketPath: ${JSON.stringify(d.socket)}, stateDir: ${JSON.stringify(d.stateDir)}, autostart: false }).events();
s.close();
s.ready.then(() => console.log('ready'), (e) => console.log('ended', e.code));`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => stopProcess(child, 1000));
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  const exited = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => resolve(null), 20_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
  t.is(exited, 0, `exited by itself within 20 s (output: ${out})`);
});
