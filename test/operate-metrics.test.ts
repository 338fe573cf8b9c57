/**
 * `lockd metrics`: real runs, holds and queues on a real daemon, read back from the Prometheus text it prints, and
 * that text checked by `promtool check metrics` (Debian package prometheus; .ci/run installs it).
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { createConnection } from 'node:net';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, REPO, baseEnv, lockd, lockdSpawn, startDaemon, tempDir, waitForFile, type Daemon } from './helpers/lockd.js';
import { detachedHolder, holdIdOf } from './helpers/operate.js';
import { FrameDecoder, FrameKind, encodeJson } from '../src/protocol/framing.js';
import { PROTOCOL_VERSION } from '../src/protocol/version.js';
import type { MetricsSnapshot } from '../src/protocol/messages.js';

/** promtool's verdict on a scrape; a missing promtool fails the test (CI installs it), it never skips. */
function promtoolCheck(text: string): { ok: boolean; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw new Error('promtool is not installed: install the Debian package "prometheus" (it provides /usr/bin/promtool; .ci/run installs it)');
  }
  return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a text exposition (labels unescaped), in order. */
function parseSamples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_s, c: string) => (c === 'n' ? '\n' : c));
    }
    out.push({ name: m[1]!, labels, value: m[3] === '+Inf' ? Infinity : Number(m[3]) });
  }
  return out;
}

/** The one sample of `name` whose labels include `labels`; throws when there is none or more than one. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length !== 1) throw new Error(`${found.length} samples of ${name} ${JSON.stringify(labels)}`);
  return found[0]!.value;
}

/** A histogram's buckets must be cumulative and end with +Inf = _count. */
function checkHistogram(t: { true: (v: boolean, m?: string) => void; is: (a: unknown, b: unknown, m?: string) => void }, samples: Sample[], name: string, labels: Record<string, string>): void {
  const buckets = samples.filter((s) => s.name === `${name}_bucket` && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  t.true(buckets.length > 2, `${name} has buckets`);
  for (let i = 1; i < buckets.length; i++) t.true(buckets[i]!.value >= buckets[i - 1]!.value, `${name} buckets are cumulative`);
  t.is(buckets.at(-1)!.labels.le, '+Inf');
  t.is(buckets.at(-1)!.value, value(samples, `${name}_count`, labels));
}

async function scrape(
  t: { is: (a: unknown, b: unknown, m?: string) => void; true: (v: boolean, m?: string) => void },
  d: Pick<Daemon, 'env'>,
  args: string[] = [],
): Promise<{ text: string; samples: Sample[] }> {
  const r = await lockd(d, ['metrics', ...args]);
  t.is(r.code, 0, r.stderr);
  const check = promtoolCheck(r.stdout);
  t.true(check.ok, `promtool check metrics: ${check.output}`);
  return { text: r.stdout, samples: parseSamples(r.stdout) };
}

test('a holder, a waiter behind it and finished runs: wait, hold and handoff histograms, queue depth, holders, runs per verdict', async (t) => {
  const d = await startDaemon(t);
  const root = join(d.dir, 'build');
  const board = { lock: 'board', scope: 'local', path: join(root, '.locks', 'board.lock') };

  const fresh = await scrape(t, d);
  t.is(value(fresh.samples, 'lockd_runs_total', { verdict: 'pass' }), 0, 'every verdict is there from the start');
  t.is(value(fresh.samples, 'lockd_info', { mode: 'user' }), 1);
  t.true(value(fresh.samples, 'process_resident_memory_bytes') > 0);
  t.true(value(fresh.samples, 'process_start_time_seconds') > 0);

  t.is((await lockd(d, ['run', '--root', root, '--lock', 'board', '--', 'true'])).code, 0);
  t.is((await lockd(d, ['run', '--root', root, '--lock', 'board', '--', 'false'])).code, 1);
  const holder = await detachedHolder(d, 'a', ['--root', root, '--lock', 'board']);
  const waiter = lockdSpawn(t, d, ['run', '--wait', '60', '--root', root, '--lock', 'board', '--', 'true']);
  await waiter.waitForStderr('waiting for board');

  const busy = await scrape(t, d);
  t.is(value(busy.samples, 'lockd_queue_depth', board), 1);
  t.is(value(busy.samples, 'lockd_holders', board), 1);
  t.is(value(busy.samples, 'lockd_live_runs', { state: 'queued' }), 1);
  t.is(value(busy.samples, 'lockd_live_runs', { state: 'running' }), 1);
  t.is(value(busy.samples, 'lockd_lock_wait_seconds_count', board), 3, 'three grants so far, none waited');
  t.is(value(busy.samples, 'lockd_lock_hold_seconds_count', board), 2);
  t.false(busy.text.includes('holder='), 'no holder names unless asked for');

  holder.release();
  t.is((await waiter.done).code, 0);
  await waitForFile(join(root, 'runs', holder.runId, 'result.json'));

  const after = await scrape(t, d);
  const s = after.samples;
  t.is(value(s, 'lockd_queue_depth', board), 0);
  t.is(value(s, 'lockd_holders', board), 0);
  t.is(value(s, 'lockd_lock_wait_seconds_count', board), 4);
  t.true(value(s, 'lockd_lock_wait_seconds_sum', board) > 0, 'the waiter waited');
  t.is(value(s, 'lockd_lock_hold_seconds_count', board), 4);
  t.true(value(s, 'lockd_lock_hold_seconds_sum', board) > 0);
  t.is(value(s, 'lockd_handoff_seconds_count', board), 1, 'one release handed the lock to a waiter');
  for (const h of ['lockd_lock_wait_seconds', 'lockd_lock_hold_seconds', 'lockd_handoff_seconds']) checkHistogram(t, s, h, board);
  t.is(value(s, 'lockd_runs_total', { verdict: 'pass' }), 3);
  t.is(value(s, 'lockd_runs_total', { verdict: 'fail' }), 1);
  for (const verdict of ['error', 'timeout', 'infra_fail']) t.is(value(s, 'lockd_runs_total', { verdict }), 0, verdict);
  for (const state of ['queued', 'running', 'stopping']) t.is(value(s, 'lockd_live_runs', { state }), 0, state);
  t.false(after.text.includes('lockd_lock_slots{'), 'no slot count for an exclusive lock');

  // --json is the snapshot the text came from.
  const json = await lockd(d, ['metrics', '--json']);
  t.is(json.code, 0, json.stderr);
  const snap = JSON.parse(json.stdout) as MetricsSnapshot;
  const lock = snap.locks.find((l) => l.key === board.path)!;
  t.like(lock, { name: 'board', scope: 'local', holders: 0, queue_depth: 0, capacity: null });
  t.is(lock.wait_seconds.count, 4);
  t.is(lock.wait_seconds.counts.length, lock.wait_seconds.buckets.length + 1);
  t.false('holder_names' in lock);
});

test('holds, a slots lock and a run inside a hold; holder names only with --holders, escaped so promtool accepts them', async (t) => {
  const d = await startDaemon(t);
  const root = d.dir;
  const rig = { lock: 'rig', scope: 'local', path: join(root, '.locks', 'rig.lock') };
  const odd = 'carol "the\\lab"\nsecond line';
  const a = await lockd(d, ['acquire', '--root', root, 'rig', '--holder', odd]);
  t.is(a.code, 0, a.stderr);
  const first = holdIdOf(a.stdout);
  const second = lockdSpawn(t, d, ['acquire', '--root', root, 'rig', '--wait', '60', '--holder', 'dave']);
  await second.waitForStderr('waiting for rig');
  const s1 = await lockd(d, ['acquire', '--root', root, 'pool:slots=3', '--holder', 'erin']);
  const s2 = await lockd(d, ['acquire', '--root', root, 'pool:slots=3', '--holder', 'frank']);
  t.is(s1.code, 0, s1.stderr);
  t.is(s2.code, 0, s2.stderr);
  const pool = { lock: 'pool', scope: 'local', path: join(root, '.locks', 'pool.lock') };

  const plain = await scrape(t, d);
  t.is(value(plain.samples, 'lockd_holds', { state: 'held' }), 3);
  t.is(value(plain.samples, 'lockd_holds', { state: 'waiting' }), 1);
  t.is(value(plain.samples, 'lockd_queue_depth', rig), 1);
  t.is(value(plain.samples, 'lockd_holders', pool), 2);
  t.is(value(plain.samples, 'lockd_lock_slots', pool), 3);
  t.false(plain.text.includes('carol'), 'no holder names unless asked for');

  const named = await scrape(t, d, ['--holders']);
  t.is(value(named.samples, 'lockd_lock_holder', { ...rig, kind: 'hold', holder: odd }), 1);
  t.is(value(named.samples, 'lockd_lock_holder', { ...pool, holder: 'erin' }), 1);
  t.is(value(named.samples, 'lockd_lock_holder', { ...pool, holder: 'frank' }), 1);

  // The first hold goes: the waiting acquire is handed the lock; then a run joins that hold (a nested re-entry).
  t.is((await lockd(d, ['release', first, '--holder', odd])).code, 0);
  const got = await second.done;
  t.is(got.code, 0, got.stderr);
  const secondId = holdIdOf(got.stdout);
  const inside = await lockd(d, ['run', '-q', '--wait', '0', '--hold', secondId, '--root', root, '--lock', 'rig', '--', process.execPath, CLI, 'metrics'], { env: { LOCKD_HOLDER: 'dave' } });
  t.is(inside.code, 0, inside.stderr);
  const during = parseSamples(inside.stdout);
  t.is(value(during, 'lockd_holders', rig), 1, 'a run inside the hold is not a second holder');
  t.is(value(during, 'lockd_live_runs', { state: 'running' }), 1);

  const after = await scrape(t, d);
  t.is(value(after.samples, 'lockd_lock_wait_seconds_count', rig), 2, 'two holds were granted; the nested run is not a grant of its own');
  t.true(value(after.samples, 'lockd_lock_wait_seconds_sum', rig) > 0, 'the second hold waited');
  t.is(value(after.samples, 'lockd_lock_hold_seconds_count', rig), 1, 'one hold ended');
  t.is(value(after.samples, 'lockd_handoff_seconds_count', rig), 1);
  t.is(value(after.samples, 'lockd_runs_total', { verdict: 'pass' }), 1);
  t.is(value(after.samples, 'lockd_holds', { state: 'waiting' }), 0);
});

test('the metrics request on the wire: holders is optional, a wrong type is a bad_request, and the daemon serves on', async (t) => {
  const d = await startDaemon(t);
  const ask = (msg: Record<string, unknown>) =>
    new Promise<Array<{ type: string; code?: string; snapshot?: MetricsSnapshot }>>((resolve, reject) => {
      const s = createConnection(d.socket);
      const dec = new FrameDecoder();
      const replies: Array<{ type: string; code?: string; snapshot?: MetricsSnapshot }> = [];
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`no close; replies ${JSON.stringify(replies)}`));
      }, 15_000);
      s.on('connect', () => {
        s.write(encodeJson({ type: 'hello', protocol: PROTOCOL_VERSION, client_version: 'test', pid: process.pid }));
        s.write(encodeJson(msg));
      });
      s.on('data', (b: Buffer) => {
        for (const f of dec.push(b)) if (f.kind === FrameKind.Json) replies.push(JSON.parse(f.payload.toString()));
      });
      s.on('error', () => undefined);
      s.on('close', () => {
        clearTimeout(timer);
        resolve(replies);
      });
    });
  const bare = await ask({ type: 'metrics' });
  const reply = bare.find((r) => r.type === 'metrics');
  t.truthy(reply, JSON.stringify(bare));
  t.is(reply!.snapshot!.holder_names, false);
  t.deepEqual(Object.keys(reply!.snapshot!.runs_total).sort(), ['error', 'fail', 'infra_fail', 'pass', 'timeout']);
  const bad = await ask({ type: 'metrics', holders: 'yes' });
  t.is(bad.find((r) => r.type === 'error')?.code, 'bad_request');
  t.is((await lockd(d, ['metrics'])).code, 0);
});

test('no daemon: lockd metrics says so in one line, exits 125 and starts none', async (t) => {
  const dir = tempDir();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const env = baseEnv(dir);
  delete env.LOCKD_NO_AUTOSTART;
  const r = await lockd({ env }, ['metrics']);
  t.is(r.code, 125);
  t.is(r.stdout, '');
  t.regex(r.stderr, /^lockd: no lockd daemon is running on \S+; no metrics to print\n$/);
  t.false(existsSync(env.LOCKD_SOCKET!), 'no daemon was started');
});

test('the example alert rules in docs/operations.md pass promtool check rules and use only series lockd exports', async (t) => {
  const doc = readFileSync(join(REPO, 'docs', 'operations.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## Metrics'), doc.indexOf('\n## ', doc.indexOf('## Metrics') + 1));
  const yaml = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
  t.truthy(yaml, 'the metrics section has a yaml block');
  const dir = tempDir();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'rules.yml');
  writeFileSync(file, yaml!);
  const r = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8', timeout: 30_000 });
  if (r.error) throw new Error(`promtool could not run (install the Debian package "prometheus"): ${r.error.message}`);
  t.is(r.status, 0, `${r.stdout}${r.stderr}`);
  // Every lockd_* name the rules use is a series a scrape has (histograms by their _bucket/_count/_sum).
  const d = await startDaemon(t);
  t.is((await lockd(d, ['run', '--lock', 'x', '--', 'true'])).code, 0);
  const names = new Set((await scrape(t, d)).samples.map((s) => s.name));
  for (const used of new Set(yaml!.match(/\blockd_[a-z_]+/g) ?? [])) t.true(names.has(used), `${used} is exported`);
});
