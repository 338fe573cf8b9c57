/**
 * The cluster pool rule (src/cluster/pool-rules.ts) is the local table's rule: on random pools (properties, disabled
 * members), requests (COUNT, --where, --member, priorities), releases and cancels, every host deciding on the etcd
 * snapshot with `choose` ends up with exactly the grants the local LockTable makes. Plus the targeted cases, and
 * the journal keeping records whose locks are cluster keys.
 */
import test from 'ava';
import { LockTable, type PoolClaim } from '../src/daemon/locks/lock-table.js';
import { ahead, choose, positionOf, type PoolDefView, type PoolWaiter } from '../src/cluster/pool-rules.js';
import { parseJournalLine } from '../src/daemon/records/journal.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** The cluster side as every host sees it: queue entries and member holders, granted to a fixpoint in queue order. */
class ClusterModel {
  waiters: PoolWaiter[] = [];
  held = new Map<string, string>();
  private revision = 0;
  constructor(readonly def: PoolDefView) {}

  submit(id: string, pc: PoolClaim, priority: number): void {
    this.waiters.push({ key: id, createRevision: ++this.revision, priority, count: pc.count, where: pc.where ?? {}, member: pc.member ?? null });
    this.settle();
  }

  release(id: string): void {
    for (const [m, h] of [...this.held]) if (h === id) this.held.delete(m);
    this.waiters = this.waiters.filter((w) => w.key !== id);
    this.settle();
  }

  private settle(): void {
    for (let changed = true; changed; ) {
      changed = false;
      const order = [...this.waiters].sort((x, y) => (ahead(x, y) ? -1 : 1));
      for (const w of order) {
        const got = choose(this.def, this.waiters, new Set(this.held.keys()), w);
        if (!got) continue;
        for (const m of got) this.held.set(m, w.key);
        this.waiters = this.waiters.filter((x) => x !== w);
        changed = true;
        break;
      }
    }
  }

  holdings(): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const [m, id] of this.held) (out[id] ??= []).push(m);
    for (const v of Object.values(out)) v.sort();
    return out;
  }
}

function localHoldings(held: Map<string, string[]>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [id, ms] of held) if (ms.length) out[id] = [...ms].sort();
  return out;
}

test('random pools, requests, priorities, releases and cancels: the cluster rule grants what the local table grants', (t) => {
  let queued = 0;
  let grantedLater = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const r = rng(seed);
    const n = 1 + Math.floor(r() * 5);
    const members = Array.from({ length: n }, (_, i) => ({ name: `m${i}`, properties: { arch: r() < 0.5 ? 'arm' : 'x86' }, disabled: r() < 0.15 }));
    const def: PoolDefView = {
      members: Object.fromEntries(members.map((m) => [m.name, m.properties])),
      disabled: Object.fromEntries(members.filter((m) => m.disabled).map((m) => [m.name, ''])),
    };
    const table = new LockTable<null>({ pools: [{ name: 'p', members: members.map((m) => ({ ...m, ...(m.disabled ? { disabled: true } : {}) })) }] });
    const cluster = new ClusterModel(def);
    const held = new Map<string, string[]>();
    const waiting = new Set<string>();
    const take = (grants: Array<{ request: { id: string }; claims: Array<{ member?: string }> }>) => {
      for (const g of grants) {
        if (waiting.has(g.request.id)) grantedLater++;
        held.set(
          g.request.id,
          g.claims.filter((c) => c.member !== undefined).map((c) => c.member!),
        );
        waiting.delete(g.request.id);
      }
    };
    for (let step = 0; step < 40; step++) {
      const roll = r();
      if (roll < 0.55 || held.size + waiting.size === 0) {
        const id = `r${step}`;
        const pc: PoolClaim = { pool: 'p', count: 1 + Math.floor(r() * 2) };
        if (r() < 0.3) pc.where = { arch: r() < 0.5 ? 'arm' : 'x86' };
        if (r() < 0.15) pc.member = `m${Math.floor(r() * n)}`;
        if (pc.member) pc.count = 1;
        const priority = r() < 0.3 ? Math.floor(r() * 3) : 0;
        const request = { id, claims: [], pools: [pc], priority, meta: null };
        if (table.checkPools(request)) continue; // rejected at once on both sides
        const res = table.submit(request);
        if (res.kind === 'granted') take([res.grant]);
        else if (res.kind === 'queued') {
          waiting.add(id);
          queued++;
        } else t.fail(`seed ${seed}: ${res.message}`);
        cluster.submit(id, pc, priority);
      } else if (roll < 0.85 && held.size > 0) {
        const ids = [...held.keys()];
        const id = ids[Math.floor(r() * ids.length)]!;
        held.delete(id);
        take(table.release(id));
        cluster.release(id);
      } else if (waiting.size > 0) {
        const ids = [...waiting];
        const id = ids[Math.floor(r() * ids.length)]!;
        waiting.delete(id);
        take(table.cancel(id));
        cluster.release(id);
      }
      const want = localHoldings(held);
      const got = cluster.holdings();
      if (JSON.stringify(want) !== JSON.stringify(got)) {
        t.deepEqual(got, want, `seed ${seed}, step ${step}`);
        return;
      }
    }
  }
  // The histories are not trivial: many requests had to wait, and many waiters were granted later.
  t.true(queued > 300, `${queued} requests queued`);
  t.true(grantedLater > 200, `${grantedLater} waiters granted later`);
});

const BOARDS: PoolDefView = { members: { a: { arch: 'arm' }, b: { arch: 'arm' }, c: { arch: 'x86' } }, disabled: {} };
const w = (key: string, rev: number, count: number, extra: Partial<PoolWaiter> = {}): PoolWaiter => ({ key, createRevision: rev, priority: 0, count, where: {}, member: null, ...extra });

test('a request for 2 behind a stream of requests for 1 keeps its members: the 1s only backfill what it cannot use', (t) => {
  const two = w('two', 10, 2, { where: { arch: 'arm' } });
  const held = new Set(['a']);
  // b is free, but the earlier request for 2 arm boards can use it: a later single arm request must wait.
  t.is(choose(BOARDS, [two, w('one', 11, 1, { where: { arch: 'arm' } })], held, w('one', 11, 1, { where: { arch: 'arm' } })), null);
  // c is no use to the request for 2: a later single request gets it (no idle member).
  t.deepEqual(choose(BOARDS, [two, w('any', 12, 1)], held, w('any', 12, 1)), ['c']);
  // Released, the request for 2 gets both arm boards.
  t.deepEqual(choose(BOARDS, [two], new Set(), two), ['a', 'b']);
  t.is(positionOf(BOARDS, [two, w('one', 11, 1, { where: { arch: 'arm' } })], w('one', 11, 1, { where: { arch: 'arm' } })), 2);
});

test('priority orders the queue before arrival; disabled members are no candidates', (t) => {
  const older = w('older', 1, 1, { member: 'a' });
  const urgent = w('urgent', 2, 1, { member: 'a', priority: 5 });
  t.deepEqual(choose(BOARDS, [older, urgent], new Set(), urgent), ['a']);
  t.is(choose(BOARDS, [older, urgent], new Set(), older), null);
  t.is(choose({ ...BOARDS, disabled: { a: 'repair' } }, [urgent], new Set(), urgent), null);
});

test('the journal keeps a run record whose locks are cluster keys (a cluster lock, a cluster pool member)', (t) => {
  const rec = {
    t: 'run',
    run_id: '261207-1233-a09d',
    pid: 7691,
    pgid: 7691,
    start_time: '2456894',
    locks: [
      { key: 'etcd:lockd/.pools/boards/m/rpi-a', name: 'boards/rpi-a', scope: 'cluster', mode: 'exclusive', fencing_token: 4 },
      { key: 'etcd:lockd/deps', name: 'deps', scope: 'cluster', mode: 'exclusive', fencing_token: 4 },
    ],
    client_pid: 7670,
    detach: true,
    dir: '/tmp/x/runs/261207-1233-a09d',
    holder: 'root',
    user: 'root',
    uid: 0,
    command_line: 'sleep 1',
    queued_at: 1,
    started_at: 2,
    log_path: '/tmp/x/runs/261207-1233-a09d/output.log',
    parent: null,
  };
  t.like(parseJournalLine(JSON.stringify(rec)), { run_id: rec.run_id, pid: 7691 });
  // A relative path is still no lock key.
  t.is(parseJournalLine(JSON.stringify({ ...rec, locks: [{ ...rec.locks[0], key: 'lockd/x' }] })), null);
});
