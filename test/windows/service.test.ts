/**
 * Windows (under Wine): `lockd service` registers a Task Scheduler logon task from XML. Wine's schtasks accepts
 * /Create /XML and /Delete (not /SC flags, nor running the task at a logon), so this proves the command line, the
 * XML it is given and that the task is registered and removed; docs/windows.md says what only Windows can show.
 */
import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI_WIN, NODE_EXE, runCli, winLockd } from './wine.js';

const tasksDir = join(process.env.WINEPREFIX ?? '', 'drive_c', 'windows', 'system32', 'tasks');

test('service install --dry-run prints the task XML and the schtasks line and registers nothing', async (t) => {
  const w = winLockd(t);
  const r = await runCli(w, ['service', 'install', '--dry-run']);
  t.is(r.code, 0, r.stderr);
  const name = /task (lockd-\S+)/.exec(r.stdout)?.[1];
  t.truthy(name, r.stdout);
  t.true(r.stdout.includes(`schtasks /Create /F /TN ${name} /XML ${w.env.LOCKD_STATE_DIR}\\${name}.task.xml`), r.stdout);
  t.true(r.stdout.includes(`<Command>${NODE_EXE}</Command>`));
  t.true(r.stdout.includes(`<Arguments>${CLI_WIN} daemon</Arguments>`));
  t.regex(r.stdout, /<LogonTrigger>/);
  t.regex(r.stdout, /<ExecutionTimeLimit>PT0S<\/ExecutionTimeLimit>/);
  t.false(existsSync(join(w.stateDir, `${name}.task.xml`)));
});

test('service install registers the logon task (schtasks /Create /XML) and uninstall removes it; --system is refused', async (t) => {
  const w = winLockd(t);
  const inst = await runCli(w, ['service', 'install']);
  t.is(inst.code, 0, inst.stderr);
  const name = /task (lockd-\S+)/.exec(inst.stdout)![1]!;
  t.teardown(() => runCli(w, ['service', 'uninstall']));
  const task = join(tasksDir, name);
  t.true(existsSync(task), `Wine keeps the registered task at ${task}`);
  const stored = readFileSync(task).toString(readFileSync(task)[0] === 0xff ? 'utf16le' : 'utf8');
  // Wine 8 keeps the XML's settings but drops its triggers and the Exec action's command (its task store does not
  // persist them), so what is checked here is that schtasks parsed lockd's XML: its description and the
  // no-time-limit setting (Wine's default is PT72H). The command itself is checked in the --dry-run test.
  t.true(stored.includes('written by lockd service install'), stored);
  t.true(stored.includes('<ExecutionTimeLimit>PT0S</ExecutionTimeLimit>'), stored);
  const un = await runCli(w, ['service', 'uninstall']);
  t.is(un.code, 0, un.stderr);
  t.false(existsSync(task));
  const sys = await runCli(w, ['service', 'install', '--system']);
  t.is(sys.code, 2, sys.stderr);
  t.regex(sys.stderr, /not on Windows/);
});
