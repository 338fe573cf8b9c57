/** Pools on a system daemon with real users: everyone reads pools, only admins change them; max_user_priority. */
import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createFixture, lockdAs, removeFixture, startSystemDaemon, systemTestsUnavailable, type Fixture } from './system-mode-helpers.js';

const unavailable = systemTestsUnavailable();

function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.startsWith('lockd:') && !/manifest ->|result ->/.test(l));
}

if (unavailable) {
  test('system-mode pool tests need root on Linux with setpriv and the native addon', (t) => {
    t.log(`not run: ${unavailable}`);
    t.true(unavailable.length > 0);
  });
} else {
  let fx: Fixture;
  test.before(() => {
    fx = createFixture();
  });
  test.after.always(() => {
    if (fx) removeFixture(fx);
  });

  test('system mode: users may list and show pools, only admins add, remove, disable and enable them', async (t) => {
    const d = await startSystemDaemon(t, fx);
    writeFileSync(join(d.stateDir, 'lockd.json'), JSON.stringify({ pools: { boards: { members: { a: { arch: 'arm64' }, b: { arch: 'arm64' } } } } }));
    const list = await lockdAs(t, fx.a, d, ['pool', 'list']).done;
    t.is(list.code, 0, list.stderr);
    t.regex(list.stdout, /boards: 2 member\(s\), 2 free/);
    for (const args of [
      ['disable', 'boards/a', '--reason', 'mine now'],
      ['remove', 'boards/b'],
      ['add', 'boards/c'],
      ['enable', 'boards/a'],
    ]) {
      const r = await lockdAs(t, fx.a, d, ['pool', ...args]).done;
      t.is(r.code, 125, `${args.join(' ')}: ${r.stderr}`);
      t.deepEqual(errorLines(r.stderr), [`lockd: only root or an admin of the system lockd daemon can ${args[0]} pools; everyone may read them (lockd pool list)`]);
    }
    const show = await lockdAs(t, fx.b, d, ['pool', 'show', 'boards', '--json']).done;
    t.deepEqual(
      (JSON.parse(show.stdout) as Array<{ members: Array<{ state: string }> }>)[0]!.members.map((m) => m.state),
      ['free', 'free'],
      'nothing was changed by the refused edits',
    );
    const admin = await lockdAs(t, fx.admin, d, ['pool', 'disable', 'boards/a', '--reason', 'firmware update']).done;
    t.is(admin.code, 0, admin.stderr);
    const after = await lockdAs(t, fx.b, d, ['pool', 'show', 'boards/a']).done;
    t.regex(after.stdout, /boards\/a {2}disabled \(firmware update\)/);
  });

  test('system mode: users may ask for a priority up to max_user_priority, admins for any', async (t) => {
    const d = await startSystemDaemon(t, fx);
    writeFileSync(join(d.stateDir, 'lockd.json'), JSON.stringify({ max_user_priority: 5, pools: { boards: { members: { a: {} } } } }));
    const ok = await lockdAs(t, fx.a, d, ['run', '--priority', '5', '--pool', 'boards', '--', 'sh', '-c', 'echo "$LOCKD_MEMBERS_boards"']).done;
    t.is(ok.code, 0, ok.stderr);
    t.is(ok.stdout, 'a\n');
    const low = await lockdAs(t, fx.a, d, ['run', '--priority=-3', '--', 'true']).done;
    t.is(low.code, 0, low.stderr);
    const high = await lockdAs(t, fx.a, d, ['run', '--priority', '6', '--', 'true']).done;
    t.is(high.code, 125, high.stderr);
    t.deepEqual(errorLines(high.stderr), [`lockd: --priority 6 is above max_user_priority 5 (${join(d.stateDir, 'lockd.json')}); only root or an admin may ask for more`]);
    const admin = await lockdAs(t, fx.admin, d, ['run', '--priority', '1000', '--', 'true']).done;
    t.is(admin.code, 0, admin.stderr);
  });

  test("system mode: --supersede ends only the same user's older runs with the key, never another user's", async (t) => {
    const d = await startSystemDaemon(t, fx);
    writeFileSync(join(d.stateDir, 'lockd.json'), JSON.stringify({ pools: { boards: { members: { a: {} } } } }));
    const holder = lockdAs(t, fx.admin, d, ['run', '--pool', 'boards', '--', 'sh', '-c', 'echo held; exec sleep 60']);
    await holder.waitForStdout('held');
    const older = lockdAs(t, fx.a, d, ['run', '--wait', 'inf', '--supersede', 'proj/main', '--pool', 'boards', '--', 'true']);
    const deadline = Date.now() + 20_000;
    while (!older.stderr().includes('waiting for') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    t.regex(older.stderr(), /waiting for boards:1/);
    const otherUser = await lockdAs(t, fx.b, d, ['run', '--wait', '0', '--supersede', 'proj/main', '--pool', 'boards', '--', 'true']).done;
    t.is(otherUser.code, 75, otherUser.stderr);
    t.is(older.proc.exitCode, null, "another user's run with the same key is left alone");
    const sameUser = lockdAs(t, fx.a, d, ['run', '--wait', 'inf', '--supersede', 'proj/main', '--pool', 'boards', '--', 'true']);
    const o = await older.done;
    t.is(o.code, 77, o.stderr);
    t.regex(o.stderr, /superseded by run \S+ \(--supersede proj\/main\)/);
    holder.proc.kill('SIGTERM');
    const s = await sameUser.done;
    t.is(s.code, 0, s.stderr);
  });
}
