/**
 * The crash journal on its own: append-only (never rewritten whole per change), compacted to live entries,
 * and tolerant of anything a crash or a disk can leave behind — bad lines are counted, the damaged file is set
 * aside as journal.jsonl.corrupt-<time> with its good entries kept, and nothing ever throws.
 * Plus the daemon's side: a corrupt journal is reported in daemon.log and the daemon serves.
 */
import test from 'ava';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync, chmodSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { Journal, parseJournalLine, JOURNAL_FILE, type RunRecord, type HoldRecord } from '../src/daemon/records/journal.js';
import { tempDir, startDaemon, lockd } from './helpers/lockd.js';
import { statusOf } from './helpers/crash-kit.js';

function runRec(id: string, over: Partial<RunRecord> = {}): RunRecord {
  return {
    t: 'run',
    run_id: id,
    pid: null,
    pgid: null,
    start_time: null,
    locks: [{ key: '/tmp/x/.locks/a.lock', name: 'a', scope: 'local', mode: 'exclusive', fencing_token: 3 }],
    client_pid: 42,
    detach: false,
    dir: `/tmp/runs/${id}`,
    holder: 'h',
    user: 'u',
    uid: 0,
    command_line: 'true',
    queued_at: 1000,
    started_at: null,
    log_path: null,
    parent: null,
    ...over,
  };
}

function holdRec(id: string, over: Partial<HoldRecord> = {}): HoldRecord {
  return {
    t: 'hold',
    hold_id: id,
    locks: [{ key: '/tmp/x/.locks/b.lock', name: 'b', scope: 'local', mode: 'slots', slots: 2, fencing_token: 7 }],
    holder: 'h',
    user: 'u',
    uid: 0,
    since: 1000,
    ttl_ms: null,
    expires_at: null,
    ...over,
  };
}

test('appends are one line each on the same file (never a rewrite), and a reopen sees the live entries', (t) => {
  const dir = tempDir('jr');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { journal } = Journal.open(dir);
  const path = join(dir, JOURNAL_FILE);
  const inode = statSync(path).ino;
  let size = statSync(path).size;
  for (let i = 0; i < 50; i++) {
    journal.append(runRec(`r${i}`));
    const st = statSync(path);
    // Same file, strictly growing: appended to, not replaced.
    t.is(st.ino, inode);
    t.true(st.size > size);
    size = st.size;
  }
  for (let i = 0; i < 50; i += 2) journal.append({ t: 'run_end', run_id: `r${i}` });
  journal.append(holdRec('hold-1', { ttl_ms: 60_000, expires_at: 5000 }));
  journal.append({ t: 'hold_hb', hold_id: 'hold-1', expires_at: 9000 });
  journal.close();
  t.is(statSync(path).ino, inode);
  const lines = readFileSync(path, 'utf8').trim().split('\n');
  t.is(lines.length, 50 + 25 + 2);

  const state = Journal.read(path);
  t.is(state.badLines, 0);
  t.deepEqual([...state.runs.keys()].sort(), Array.from({ length: 25 }, (_, i) => `r${2 * i + 1}`).sort());
  t.is(state.holds.get('hold-1')?.expires_at, 9000);
  t.is(state.fences.get('/tmp/x/.locks/a.lock'), 3);
  t.is(state.fences.get('/tmp/x/.locks/b.lock'), 7);
});

test('compaction (the daemon runs it after reconcile at start-up) keeps only live entries and the fencing counters', (t) => {
  const dir = tempDir('jr');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const a = Journal.open(dir).journal;
  for (let i = 0; i < 30; i++) a.append(runRec(`r${i}`, { locks: [{ key: `/l/k${i}.lock`, name: `k${i}`, scope: 'local', mode: 'exclusive', fencing_token: i + 1 }] }));
  for (let i = 0; i < 29; i++) a.append({ t: 'run_end', run_id: `r${i}` });
  a.close();
  const { journal, previous, report } = Journal.open(dir);
  journal.compact();
  journal.close();
  t.is(report.setAsidePath, null);
  t.is(previous.runs.size, 1);
  const text = readFileSync(join(dir, JOURNAL_FILE), 'utf8');
  const entries = text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { t: string });
  t.is(entries.filter((e) => e.t === 'run').length, 1);
  // Ended runs are gone, but every lock's last token survives, so tokens only ever grow.
  t.is(entries.filter((e) => e.t === 'fence').length, 30);
  t.is(Journal.read(join(dir, JOURNAL_FILE)).fences.get('/l/k0.lock'), 1);
});

test('a journal growing past its bound is compacted in place of the appends (file replaced, live entries kept)', (t) => {
  const dir = tempDir('jr');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { journal } = Journal.open(dir);
  const path = join(dir, JOURNAL_FILE);
  const inode = statSync(path).ino;
  const big = 'x'.repeat(20_000);
  journal.append(runRec('keeper'));
  let replaced = false;
  for (let i = 0; i < 400 && !replaced; i++) {
    journal.append(runRec(`big${i}`, { command_line: big }));
    journal.append({ t: 'run_end', run_id: `big${i}` });
    replaced = statSync(path).ino !== inode;
  }
  journal.close();
  t.true(replaced, 'the file was compacted once it grew past the bound');
  t.true(statSync(path).size < 1024 * 1024);
  t.deepEqual([...Journal.read(path).runs.keys()], ['keeper']);
});

test('corrupt, truncated and ill-typed lines are counted and skipped; the file is set aside with good entries kept', (t) => {
  const dir = tempDir('jr');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, JOURNAL_FILE);
  const good1 = JSON.stringify(runRec('good-1', { pid: 1234, start_time: '99', started_at: 2000, detach: true }));
  const good2 = JSON.stringify(holdRec('hold-ok'));
  const lines = [
    good1,
    '{"t":"run","run_id":"torn","pid":12', // torn write
    '\u0000\u0001garbage\u00ff',
    '[1,2,3]',
    'null',
    '{"t":"run","run_id":"../../etc","pid":1,"locks":[]}', // bad id and shape
    JSON.stringify({ ...runRec('bad-locks'), locks: [{ key: 'relative/path', name: 'a', scope: 'local', mode: 'exclusive', fencing_token: 1 }] }),
    JSON.stringify({ ...runRec('bad-pid'), pid: '1234' }),
    JSON.stringify({ ...runRec('bad-dir'), dir: 'not/absolute' }),
    JSON.stringify({ t: 'hold', hold_id: 'h2', locks: 'nope' }),
    JSON.stringify({ t: 'fence', key: '/k', token: -1 }),
    JSON.stringify({ t: 'what' }),
    good2,
    JSON.stringify({ t: 'hold_hb', hold_id: 'hold-ok', expires_at: 'soon' }),
  ];
  writeFileSync(path, `${lines.join('\n')}\n{"t":"run_e`);
  const before = readFileSync(path);
  const { journal, previous, report } = Journal.open(dir, new Date('2030-01-02T03:04:05.678Z'));
  journal.close();
  t.is(previous.badLines, lines.length - 2 + 1);
  t.deepEqual([...previous.runs.keys()], ['good-1']);
  t.deepEqual([...previous.holds.keys()], ['hold-ok']);
  // Set aside byte for byte, under a name that says when.
  t.is(report.setAsidePath, `${path}.corrupt-20300102T030405Z`);
  t.deepEqual(readFileSync(report.setAsidePath!), before);
  // The new journal holds exactly the good entries.
  const now = Journal.read(path);
  t.is(now.badLines, 0);
  t.deepEqual([...now.runs.keys()], ['good-1']);
  t.deepEqual([...now.holds.keys()], ['hold-ok']);
});

test('a last line without its newline (a torn write that happens to parse) is kept, and the next append starts a fresh line', (t) => {
  const dir = tempDir('jr');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, JOURNAL_FILE);
  writeFileSync(path, `${JSON.stringify(runRec('a'))}\n${JSON.stringify(runRec('b'))}`);
  const { journal, previous, report } = Journal.open(dir);
  t.is(previous.badLines, 0);
  t.true(previous.tornTail);
  t.is(report.setAsidePath, null, 'nothing was lost, so nothing is set aside');
  journal.append(runRec('c'));
  journal.close();
  const after = Journal.read(path);
  t.is(after.badLines, 0);
  t.deepEqual([...after.runs.keys()].sort(), ['a', 'b', 'c']);
});

test('parseJournalLine accepts each entry kind and refuses near misses', (t) => {
  t.truthy(parseJournalLine(JSON.stringify(runRec('a'))));
  t.truthy(parseJournalLine(JSON.stringify(holdRec('h', { ttl_ms: 5, expires_at: 10 }))));
  t.deepEqual(parseJournalLine('{"t":"run_end","run_id":"a"}'), { t: 'run_end', run_id: 'a' });
  t.deepEqual(parseJournalLine('{"t":"hold_end","hold_id":"h"}'), { t: 'hold_end', hold_id: 'h' });
  t.deepEqual(parseJournalLine('{"t":"fence","key":"/k.lock","token":4}'), { t: 'fence', key: '/k.lock', token: 4 });
  t.is(parseJournalLine('{"t":"run_end","run_id":""}'), null);
  t.is(parseJournalLine('{"t":"run_end","run_id":"a/b"}'), null);
  t.is(parseJournalLine(JSON.stringify({ ...runRec('a'), pid: 1 })), null, 'pid 1 (init) is never a job');
  t.is(parseJournalLine(JSON.stringify({ ...runRec('a'), start_time: '' })), null);
  t.is(parseJournalLine(JSON.stringify({ ...holdRec('h'), locks: [] })), null);
  t.is(parseJournalLine(JSON.stringify({ ...holdRec('h'), locks: [{ key: '/k', name: 'k', scope: 'local', mode: 'slots', fencing_token: 1 }] })), null, 'slots without a count');
  t.is(parseJournalLine('x'.repeat(2 * 1024 * 1024)), null);
});

test('an unreadable journal (a directory in its place) is set aside; the daemon-side journal still works', (t) => {
  const dir = tempDir('jr');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, JOURNAL_FILE);
  mkdirSync(path);
  writeFileSync(join(path, 'junk'), 'x');
  const { journal, previous, report } = Journal.open(dir);
  t.is(previous.unreadable, 'EISDIR');
  t.truthy(report.setAsidePath);
  t.true(statSync(report.setAsidePath!).isDirectory());
  t.is(report.writeError, null);
  journal.append(runRec('after'));
  journal.close();
  t.deepEqual([...Journal.read(path).runs.keys()], ['after']);
});

test('a journal that cannot be written degrades to memory, reports once, and recovers when it can write again', (t) => {
  const dir = tempDir('jr');
  t.teardown(() => {
    try {
      execFileSync('umount', [join(dir, 'state')], { stdio: 'ignore' });
    } catch {
      /* not mounted */
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const state = join(dir, 'state');
  mkdirSync(state);
  // Root ignores permission bits, so a read-only state dir needs a read-only mount (a tmpfs mounted ro).
  let mounted = false;
  if (process.getuid?.() === 0) {
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,ro', 'tmpfs', state], { stdio: 'ignore' });
      mounted = true;
    } catch {
      mounted = false;
    }
  } else {
    chmodSync(state, 0o500);
  }
  if (process.getuid?.() === 0 && !mounted) {
    t.log('SKIPPED the read-only half: mount is not permitted here (root ignores chmod)');
  }
  const messages: string[] = [];
  const { journal, report } = Journal.open(state);
  journal.onError = (m) => messages.push(m);
  t.truthy(report.writeError, 'the open reports that the journal cannot be written');
  t.false(journal.writable);
  for (let i = 0; i < 5; i++) journal.append(runRec(`m${i}`));
  t.true(messages.length <= 1, 'reported once per failure episode, not per append');
  t.is(journal.liveRuns().length, 5, 'the live state is kept in memory');
  // Writable again: the next compaction writes the whole live state.
  if (mounted) execFileSync('mount', ['-o', 'remount,rw', state]);
  else chmodSync(state, 0o700);
  journal.compact();
  t.true(journal.writable);
  journal.append({ t: 'run_end', run_id: 'm0' });
  journal.close();
  t.deepEqual([...Journal.read(join(state, JOURNAL_FILE)).runs.keys()].sort(), ['m1', 'm2', 'm3', 'm4']);
});

test('a write that stops half-way leaves the next entry on a fresh line (no two entries glued together)', (t) => {
  const dir = tempDir('jr');
  t.teardown(() => {
    try {
      execFileSync('umount', [`${dir}/s`], { stdio: 'ignore' });
    } catch {
      /* not mounted */
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const state = join(dir, 's');
  mkdirSync(state);
  let mountError: unknown = null;
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16k', 'tmpfs', state], { stdio: 'ignore' });
  } catch (e) {
    mountError = e;
  }
  if (mountError) {
    t.log('SKIPPED: a full filesystem needs `mount -t tmpfs` (root); not permitted here');
    t.truthy(mountError, 'mount was refused, so there is no small filesystem to fill');
    return;
  }
  const { journal } = Journal.open(state);
  const errors: string[] = [];
  journal.onError = (m) => errors.push(m);
  // Fill the tmpfs with the journal itself until a write fails part-way or whole.
  const fat = 'y'.repeat(3000);
  let i = 0;
  while (errors.length === 0 && i < 100) journal.append(runRec(`f${i++}`, { command_line: fat }));
  t.true(errors.length > 0, 'the disk filled up');
  t.regex(errors[0]!, /ENOSPC/);
  // Make room (another file on the same fs would be the usual culprit) and write again.
  execFileSync('mount', ['-o', 'remount,size=1m', state]);
  journal.append(runRec('after-full'));
  journal.close();
  const text = readFileSync(join(state, JOURNAL_FILE), 'utf8');
  const state2 = Journal.read(join(state, JOURNAL_FILE));
  t.true(state2.runs.has('after-full'), 'the entry after the failure is readable');
  t.true(state2.badLines <= 1, 'at most the torn line itself is lost');
  t.false(/\}\{/.test(text), 'no entry is glued to a torn one');
});

test('a daemon started on a corrupt journal reports it, sets it aside, restores the good hold and serves', async (t) => {
  const dir = tempDir();
  const stateDir = join(dir, 'state');
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const root = join(dir, 'root');
  mkdirSync(join(root, '.locks'), { recursive: true });
  const key = join(root, '.locks', 'kept.lock');
  const hold = holdRec('hold-abcdef123456', { locks: [{ key, name: 'kept', scope: 'local', mode: 'exclusive', fencing_token: 41 }], holder: 'survivor' });
  writeFileSync(join(stateDir, JOURNAL_FILE), `${JSON.stringify(hold)}\n{{{ not json\n\u0000\u0000\n{"t":"run","run_id":"x","pid":`);
  const d = await startDaemon(t, { dir });
  const st = await statusOf(d);
  const held = st.locks.find((l) => l.key === key);
  t.truthy(held, 'the good hold was restored');
  t.is(held?.holders[0]?.holder, 'survivor');
  t.true((held?.holders[0]?.fencing_token ?? 0) > 41, 'fencing tokens keep growing across the restart');
  const aside = readdirSync(stateDir).filter((f) => f.startsWith(`${JOURNAL_FILE}.corrupt-`));
  t.is(aside.length, 1);
  const log = readFileSync(join(stateDir, 'daemon.log'), 'utf8');
  t.regex(log, /journal had unreadable lines; it was set aside/);
  t.regex(log, /"bad_lines":3/);
  const r = await lockd(d, ['run', '-q', '--root', root, '--lock', 'other', '--', 'true']);
  t.is(r.code, 0);
  t.true(existsSync(join(stateDir, JOURNAL_FILE)));
  // More garbage appended while it runs does not matter to a live daemon (it only reads at start).
  appendFileSync(join(stateDir, JOURNAL_FILE), 'garbage\n');
  t.is((await lockd(d, ['ping'])).code, 0);
});
