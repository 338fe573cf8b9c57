/**
 * Model-based property test for pools and priorities: random pools (members with properties, some disabled), pool
 * claims with counts, `where` filters and named members, ordinary exclusive keys in the same request, holds, cancels,
 * priorities and pool redefinitions drive the real LockTable and a naive reference model that recomputes every grant
 * from scratch. After every step the two must agree (results, grants, members chosen, positions) and the table's
 * state must satisfy the rules directly: a member is held by at most one request, a disabled member is never
 * granted, and no request is granted a member an earlier waiter (by priority, then arrival) could be granted with.
 *
 * The rest of the table's rules (modes, slots, nesting, deadlock) are checked by lock-table.model.test.ts.
 */
import test from 'ava';
import fc from 'fast-check';
import { isDeepStrictEqual } from 'node:util';
import { LockTable, poolMemberKey, type Grant, type LockRequest, type PoolClaim, type PoolDefinition } from '../src/daemon/locks/lock-table.js';

type Meta = { n: number };

// ---------------------------------------------------------------------------------
// Reference model: a list of waiters in (priority desc, arrival asc) order, recomputed from scratch.
// ---------------------------------------------------------------------------------

interface MReq {
  id: string;
  seq: number;
  priority: number;
  keys: string[];
  pools: PoolClaim[];
  status: 'waiting' | 'holding';
  /** Held keys and member keys, once granted. */
  held: string[];
}

function matches(m: PoolDefinition['members'][number], pc: PoolClaim): boolean {
  if (pc.member !== undefined && m.name !== pc.member) return false;
  return Object.entries(pc.where ?? {}).every(([k, v]) => m.properties[k] === v);
}

class Model {
  reqs: MReq[] = [];
  defs: PoolDefinition[] = [];
  seq = 0;

  ordered(): MReq[] {
    return this.reqs.filter((r) => r.status === 'waiting').sort((a, b) => (a.priority !== b.priority ? b.priority - a.priority : a.seq - b.seq));
  }

  candidates(pc: PoolClaim): string[] {
    const def = this.defs.find((d) => d.name === pc.pool);
    return def ? def.members.filter((m) => !m.disabled && matches(m, pc)).map((m) => poolMemberKey(pc.pool, m.name)) : [];
  }

  /** Every key a waiter waits on: its keys and its candidates. */
  wants(r: MReq): string[] {
    return [...r.keys, ...r.pools.flatMap((pc) => this.candidates(pc))];
  }

  heldKeys(): Set<string> {
    return new Set(this.reqs.flatMap((r) => r.held));
  }

  /** The waiters ahead of r on key (those earlier in the order that want it). */
  aheadOn(r: MReq, key: string, line: MReq[]): MReq[] {
    const out: MReq[] = [];
    for (const w of line) {
      if (w === r) break;
      if (this.wants(w).includes(key)) out.push(w);
    }
    return out;
  }

  /** The members r would take now (per pool claim), or null; `line` is the waiting line r is (or would be) in. */
  choose(r: MReq, line: MReq[]): string[][] | null {
    const held = this.heldKeys();
    for (const k of r.keys) if (held.has(k) || this.aheadOn(r, k, line).length > 0) return null;
    const chosen: string[][] = [];
    for (const pc of r.pools) {
      const free = this.candidates(pc).filter((k) => !held.has(k) && this.aheadOn(r, k, line).length === 0);
      if (free.length < pc.count) return null;
      chosen.push(free.slice(0, pc.count));
    }
    return chosen;
  }

  grant(r: MReq, chosen: string[][]): string[] {
    r.status = 'holding';
    r.held = [...r.keys, ...chosen.flat()];
    return r.held;
  }

  /** Grant the first grantable waiter in line, again and again. */
  pump(): Array<{ id: string; held: string[] }> {
    const out: Array<{ id: string; held: string[] }> = [];
    for (;;) {
      const line = this.ordered();
      let granted = false;
      for (const r of line) {
        const chosen = this.choose(r, line);
        if (chosen) {
          out.push({ id: r.id, held: this.grant(r, chosen) });
          granted = true;
          break;
        }
      }
      if (!granted) return out;
    }
  }

  rejection(pools: PoolClaim[]): string | null {
    for (const pc of pools) {
      const def = this.defs.find((d) => d.name === pc.pool);
      if (!def) return 'unknown_pool';
      if (pc.member !== undefined && !def.members.some((m) => m.name === pc.member)) return 'unknown_pool';
      if (this.candidates(pc).length < pc.count) return 'pool_unsatisfiable';
    }
    return null;
  }

  position(r: MReq): number {
    const line = this.ordered();
    let worst = 0;
    for (const k of r.keys) worst = Math.max(worst, this.aheadOn(r, k, line).length + 1);
    for (const pc of r.pools) {
      const positions = this.candidates(pc)
        .map((k) => this.aheadOn(r, k, line).length + 1)
        .sort((a, b) => a - b);
      worst = Math.max(worst, positions[pc.count - 1] ?? positions[positions.length - 1] ?? 0);
    }
    return worst;
  }
}

// ---------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------

const MEMBERS = ['m0', 'm1', 'm2', 'm3', 'm4'];
const KEYS = ['/k/x', '/k/y'];

type PoolSpec = { pool: 'boards' | 'seats' | 'ghost'; count: number; arch: number | null; gpu: number | null; member: number | null };
type Op =
  | { op: 'submit'; keys: boolean[]; pools: PoolSpec[]; priority: number; tryOnly: boolean }
  | { op: 'release' | 'cancel'; pick: number }
  | { op: 'redefine'; member: number; change: 'disable' | 'enable' | 'remove' | 'add' | 'arch' };

const poolSpecArb: fc.Arbitrary<PoolSpec> = fc.record({
  pool: fc.constantFrom<PoolSpec['pool']>('boards', 'boards', 'boards', 'boards', 'seats', 'seats', 'ghost'),
  count: fc.constantFrom(1, 1, 1, 2, 2, 3),
  arch: fc.constantFrom(null, null, 0, 1),
  gpu: fc.constantFrom(null, null, null, 0, 1),
  member: fc.constantFrom(null, null, null, null, null, null, 0, 1, 2, 3, 4, 5),
});

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant<'submit'>('submit'),
      keys: fc.array(fc.boolean(), { minLength: 2, maxLength: 2 }),
      pools: fc.array(poolSpecArb, { minLength: 0, maxLength: 2 }),
      priority: fc.constantFrom(0, 0, 0, 1, 2, -1),
      tryOnly: fc.constantFrom(false, false, false, true),
    }),
  },
  { weight: 3, arbitrary: fc.record({ op: fc.constantFrom<'release' | 'cancel'>('release', 'cancel'), pick: fc.nat(50) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant<'redefine'>('redefine'),
      member: fc.nat(MEMBERS.length - 1),
      change: fc.constantFrom<'disable' | 'enable' | 'remove' | 'add' | 'arch'>('disable', 'enable', 'remove', 'add', 'arch'),
    }),
  },
);

function initialDefs(): PoolDefinition[] {
  return [
    {
      name: 'boards',
      members: MEMBERS.map((name, i) => ({ name, properties: { arch: i % 2 === 0 ? 'arm64' : 'x86', gpu: i < 2 ? 'yes' : 'no' }, ...(i === 4 ? { disabled: true } : {}) })),
    },
    {
      name: 'seats',
      members: [
        { name: 's0', properties: {} },
        { name: 's1', properties: {} },
      ],
    },
  ];
}

function toPoolClaims(specs: PoolSpec[]): PoolClaim[] {
  const seen = new Set<string>();
  const out: PoolClaim[] = [];
  for (const s of specs) {
    if (seen.has(s.pool)) continue; // one claim per pool (a second one is a bad_claim, tested in lock-table.test.ts)
    seen.add(s.pool);
    const pc: PoolClaim = { pool: s.pool, count: s.count };
    const where: Record<string, string> = {};
    if (s.arch !== null) where['arch'] = s.arch === 0 ? 'arm64' : 'x86';
    if (s.gpu !== null) where['gpu'] = s.gpu === 0 ? 'yes' : 'no';
    if (Object.keys(where).length > 0) pc.where = where;
    if (s.member !== null) pc.member = s.member === 5 ? 'nope' : (s.pool === 'seats' ? ['s0', 's1'] : MEMBERS)[s.member % (s.pool === 'seats' ? 2 : 5)]!;
    out.push(pc);
  }
  return out;
}

function redefine(defs: PoolDefinition[], member: number, change: string): PoolDefinition[] {
  const next: PoolDefinition[] = structuredClone(defs);
  const boards = next.find((d) => d.name === 'boards')!;
  const name = MEMBERS[member]!;
  const at = boards.members.findIndex((m) => m.name === name);
  const m = at >= 0 ? boards.members[at]! : undefined;
  if (change === 'disable' && m) m.disabled = true;
  if (change === 'enable' && m) delete m.disabled;
  if (change === 'remove' && at >= 0) boards.members.splice(at, 1);
  if (change === 'add' && !m) boards.members.push({ name, properties: { arch: 'arm64', gpu: 'no' } });
  if (change === 'arch' && m) m.properties['arch'] = m.properties['arch'] === 'arm64' ? 'x86' : 'arm64';
  return next;
}

const grantView = (g: Grant<Meta>) => ({ id: g.request.id, held: g.claims.map((c) => c.key) });

// redefGrants (a redefinition that grants) is rare at random; "enabling or adding a member grants…" below covers it.
const seen = { granted: 0, queued: 0, pumped: 0, rejected: 0, poolGrants: 0, multiMember: 0, backfill: 0, priorityJump: 0, redefGrants: 0 };

function runSequence(ops: Op[]): void {
  const model = new Model();
  model.defs = initialDefs();
  const table = new LockTable<Meta>({ now: () => 0, pools: model.defs });
  let fresh = 0;

  for (const [step, op] of ops.entries()) {
    const where = `step ${step} ${JSON.stringify(op)}`;
    let tableGrants: Grant<Meta>[] = [];
    let modelGrants: Array<{ id: string; held: string[] }> = [];

    if (op.op === 'submit') {
      const id = `r${fresh++}`;
      const pools = toPoolClaims(op.pools);
      const keys = KEYS.filter((_k, i) => op.keys[i]);
      if (keys.length === 0 && pools.length === 0) keys.push(KEYS[0]!);
      const request: LockRequest<Meta> = { id, claims: keys.map((key) => ({ key, mode: 'exclusive' })), pools, priority: op.priority, meta: { n: fresh } };
      const res = op.tryOnly ? table.tryOnly(request) : table.submit(request);
      const rejected = model.rejection(pools);
      if (rejected) {
        assertEq(res.kind === 'rejected' ? res.code : res.kind, rejected, `${where}: rejection`);
        seen.rejected++;
      } else {
        const r: MReq = { id, seq: ++model.seq, priority: op.priority, keys, pools, status: 'waiting', held: [] };
        model.reqs.push(r);
        const chosen = model.choose(r, model.ordered());
        if (chosen) {
          assertEq(res.kind, 'granted', `${where}: granted`);
          assertEq(grantView((res as { grant: Grant<Meta> }).grant).held, model.grant(r, chosen), `${where}: members chosen`);
          seen.granted++;
          if (pools.length > 0) seen.poolGrants++;
          if (pools.some((pc) => pc.count > 1)) seen.multiMember++;
          if (model.ordered().some((w) => w.pools.length > 0)) seen.backfill++;
        } else if (op.tryOnly) {
          assertEq(res.kind, 'busy', `${where}: busy`);
          model.reqs.splice(model.reqs.indexOf(r), 1);
        } else {
          assertEq(res.kind, 'queued', `${where}: queued`);
          seen.queued++;
          if (op.priority > 0) seen.priorityJump++;
        }
      }
    } else if (op.op === 'redefine') {
      model.defs = redefine(model.defs, op.member, op.change);
      tableGrants = table.setPools(model.defs).grants;
      modelGrants = model.pump();
      if (modelGrants.length > 0) seen.redefGrants++;
    } else if (model.reqs.length > 0) {
      const r = model.reqs[op.pick % model.reqs.length]!;
      if (op.op === 'cancel' && r.status === 'holding') {
        assertEq(table.cancel(r.id), [], `${where}: cancel of a holder does nothing`);
        continue;
      }
      tableGrants = op.op === 'release' ? table.release(r.id) : table.cancel(r.id);
      model.reqs.splice(model.reqs.indexOf(r), 1);
      modelGrants = model.pump();
    }

    assertEq(tableGrants.map(grantView), modelGrants, `${where}: grants after the change`);
    seen.pumped += modelGrants.length;
    for (const g of tableGrants) if (g.claims.filter((c) => c.member !== undefined).length > 1) seen.multiMember++;
    checkState(table, model, where);
  }
}

function checkState(table: LockTable<Meta>, model: Model, where: string): void {
  // Exclusion: every key (member or not) has at most one holder, and the holders are exactly the model's.
  const holders = new Map<string, string[]>();
  for (const s of table.snapshot()) {
    if (s.holders.length > 1) throw new Error(`${where}: ${s.key} held by ${s.holders.map((h) => h.requestId).join(', ')}`);
    if (s.holders.length === 1) holders.set(s.key, [s.holders[0]!.requestId]);
  }
  const expected = new Map<string, string[]>();
  for (const r of model.reqs) for (const k of r.held) expected.set(k, [r.id]);
  assertEq(Object.fromEntries([...holders].sort()), Object.fromEntries([...expected].sort()), `${where}: holders`);
  // No line-skipping: no waiter could be granted now (the table granted everything it may, nothing it may not).
  const line = model.ordered();
  for (const r of line) {
    if (model.choose(r, line)) throw new Error(`${where}: ${r.id} could be granted but waits`);
    assertEq(table.isWaiting(r.id), true, `${where}: ${r.id} waiting`);
    assertEq(table.queuePosition(r.id), model.position(r), `${where}: position of ${r.id}`);
  }
}

function assertEq(actual: unknown, expected: unknown, what: string): void {
  if (!isDeepStrictEqual(actual, expected)) throw new Error(`${what}: got ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
}

test.serial('pools and priorities match the reference model on random pools, counts, filters, holds, cancels and redefinitions', (t) => {
  fc.assert(fc.property(fc.array(opArb, { minLength: 1, maxLength: 40 }), runSequence), { numRuns: process.env['LOCKD_TEST_LONG'] ? 20_000 : 1500 });
  t.log(JSON.stringify(seen));
  // The sequences reached the interesting cases, not only trivial grants.
  for (const k of ['poolGrants', 'multiMember', 'backfill', 'priorityJump', 'rejected', 'pumped'] as const) t.true(seen[k] > 0, k);
});

test('a request for 2 members behind a stream of requests for 1 is granted', (t) => {
  const table = new LockTable<Meta>({ pools: [{ name: 'boards', members: ['a', 'b', 'c'].map((name) => ({ name, properties: {} })) }] });
  const one = (id: string) => ({ id, claims: [], pools: [{ pool: 'boards', count: 1 }], meta: { n: 0 } });
  const held = ['o0', 'o1', 'o2'];
  for (const id of held) t.is(table.submit(one(id)).kind, 'granted');
  t.is(table.submit({ id: 'two', claims: [], pools: [{ pool: 'boards', count: 2 }], meta: { n: 0 } }).kind, 'queued');
  let grantedTwo = false;
  for (let i = 0; i < 50 && !grantedTwo; i++) {
    // A holder of 1 leaves and a new request for 1 arrives at once, forever: the 2 must still get in.
    const grants = table.release(held.shift()!);
    grantedTwo = grants.some((g) => g.request.id === 'two');
    const next = `n${i}`;
    const r = table.submit(one(next));
    if (!grantedTwo) t.not(r.kind, 'granted', 'no request for 1 takes a member while the 2 waits');
    if (r.kind === 'granted') held.push(next);
  }
  t.true(grantedTwo);
  t.is(table.grantOf('two')!.claims.length, 2);
});

test('priorities: a higher priority waiter is granted first, FIFO within one priority', (t) => {
  const table = new LockTable<Meta>();
  const req = (id: string, priority: number) => ({ id, claims: [{ key: '/k', mode: 'exclusive' as const }], priority, meta: { n: 0 } });
  t.is(table.submit(req('h', 0)).kind, 'granted');
  for (const [id, p] of [
    ['low1', 0],
    ['high1', 5],
    ['low2', 0],
    ['high2', 5],
    ['mid', 1],
  ] as const)
    t.is(table.submit(req(id, p)).kind, 'queued');
  t.deepEqual(
    table.snapshotKey('/k')!.waiters.map((w) => [w.requestId, w.priority ?? 0, w.position]),
    [
      ['high1', 5, 1],
      ['high2', 5, 2],
      ['mid', 1, 3],
      ['low1', 0, 4],
      ['low2', 0, 5],
    ],
  );
  const order: string[] = [];
  for (let last = 'h'; ; ) {
    const g = table.release(last);
    if (g.length === 0) break;
    last = g[0]!.request.id;
    order.push(last);
  }
  t.deepEqual(order, ['high1', 'high2', 'mid', 'low1', 'low2']);
});

test('pool claims that cannot be granted are rejected at once, naming what matches', (t) => {
  const table = new LockTable<Meta>({
    pools: [
      {
        name: 'boards',
        members: [
          { name: 'rpi4-a', properties: { arch: 'arm64' } },
          { name: 'rpi4-b', properties: { arch: 'arm64' }, disabled: true },
          { name: 'nuc', properties: { arch: 'x86' } },
        ],
      },
    ],
  });
  const ask = (pc: PoolClaim) => table.submit({ id: `r${Math.random()}`, claims: [], pools: [pc], meta: { n: 0 } });
  const codeOf = (r: ReturnType<typeof ask>) => (r.kind === 'rejected' ? [r.code, r.message] : [r.kind, '']);
  t.deepEqual(codeOf(ask({ pool: 'cards', count: 1 })), ['unknown_pool', 'unknown pool cards (pools: boards)']);
  t.deepEqual(codeOf(ask({ pool: 'boards', count: 1, member: 'zz' })), ['unknown_pool', 'pool boards has no member zz (members: rpi4-a, rpi4-b, nuc)']);
  t.deepEqual(codeOf(ask({ pool: 'boards', count: 2, where: { arch: 'arm64' } })), [
    'pool_unsatisfiable',
    'pool boards: 2 wanted matching arch=arm64, only 1 can be granted: rpi4-a (disabled: rpi4-b)',
  ]);
  t.deepEqual(codeOf(ask({ pool: 'boards', count: 1, where: { arch: 'riscv' } })), ['pool_unsatisfiable', 'no member of pool boards matches arch=riscv']);
  t.is(ask({ pool: 'boards', count: 1, where: { arch: 'x86' } }).kind, 'granted');
});

test('enabling or adding a member grants the waiter queued for it, in line order', (t) => {
  const a = { name: 'a', properties: { arch: 'arm64' } };
  const table = new LockTable<Meta>({ pools: [{ name: 'boards', members: [a, { name: 'b', properties: { arch: 'arm64' }, disabled: true }] }] });
  const arm = (id: string, count: number) => ({ id, claims: [], pools: [{ pool: 'boards', count, where: { arch: 'arm64' } }], meta: { n: 0 } });
  t.is(table.submit(arm('h', 1)).kind, 'granted');
  t.is(table.submit(arm('w1', 1)).kind, 'queued');
  t.is(table.submit(arm('w2', 1)).kind, 'queued');
  const enabled = table.setPools([{ name: 'boards', members: [a, { name: 'b', properties: { arch: 'arm64' } }] }]);
  t.deepEqual(
    enabled.grants.map((g) => [g.request.id, g.claims[0]!.member]),
    [['w1', 'b']],
  );
  const added = table.setPools([{ name: 'boards', members: [a, { name: 'b', properties: { arch: 'arm64' } }, { name: 'c', properties: { arch: 'arm64' } }] }]);
  t.deepEqual(
    added.grants.map((g) => [g.request.id, g.claims[0]!.member]),
    [['w2', 'c']],
  );
  t.is(table.submit(arm('w3', 2)).kind, 'queued');
  const shrunk = table.setPools([{ name: 'boards', members: [a] }]);
  t.deepEqual(shrunk.unsatisfiable, ['w3'], 'a waiter left with too few members is reported');
});

test('a removed or disabled member stays with its holder until released, then is never granted', (t) => {
  const members = [
    { name: 'a', properties: {} },
    { name: 'b', properties: {} },
  ];
  const table = new LockTable<Meta>({ pools: [{ name: 'boards', members }] });
  const one = (id: string) => ({ id, claims: [], pools: [{ pool: 'boards', count: 1 }], meta: { n: 0 } });
  t.is(table.submit(one('h')).kind, 'granted');
  t.is(table.grantOf('h')!.claims[0]!.member, 'a');
  t.deepEqual(table.setPools([{ name: 'boards', members: [{ name: 'b', properties: {}, disabled: true }] }]), { grants: [], unsatisfiable: [] });
  t.is(table.grantOf('h')!.claims[0]!.member, 'a', 'the holder keeps its removed member');
  t.is(table.submit(one('w')).kind, 'rejected', 'only a disabled member is left');
  t.deepEqual(table.release('h'), []);
  t.is(table.snapshotKey(poolMemberKey('boards', 'a')), null, 'the removed member is gone once released');
  const change = table.setPools([{ name: 'boards', members }]);
  t.deepEqual(change.grants, []);
  t.is(table.submit(one('w2')).kind, 'granted');
});
