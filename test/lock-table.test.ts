import test from 'ava';
import { LockTable, type Grant, type LockClaim, type LockRequest, type SubmitResult, type TryResult } from '../src/daemon/locks/lock-table.js';
import { isLockdError } from '../src/util/errors.js';

interface Meta {
  who: string;
}

const ex = (key: string): LockClaim => ({ key, mode: 'exclusive' });
const sh = (key: string): LockClaim => ({ key, mode: 'shared' });
const sl = (key: string, slots: number): LockClaim => ({ key, mode: 'slots', slots });

function req(id: string, claims: LockClaim[], parent?: string): LockRequest<Meta> {
  return parent === undefined ? { id, claims, meta: { who: id } } : { id, claims, parent, meta: { who: id } };
}

/** A table on a clock that ticks once per reading, so times are distinct and predictable. */
function makeTable(initialFencing?: Record<string, number>): LockTable<Meta> {
  let clock = 1000;
  return new LockTable<Meta>({ now: () => clock++, ...(initialFencing ? { initialFencing } : {}) });
}

const ids = <M>(grants: Grant<M>[]): string[] => grants.map((g) => g.request.id);

function granted<M = Meta>(r: SubmitResult<M> | TryResult<M>): Grant<M> {
  if (r.kind !== 'granted') throw new Error(`expected granted, got ${JSON.stringify(r)}`);
  return r.grant;
}

function holderIds(t: LockTable<Meta>, key: string): string[] {
  return t.snapshotKey(key)?.holders.map((h) => h.requestId) ?? [];
}

function waiterIds(t: LockTable<Meta>, key: string): string[] {
  return t.snapshotKey(key)?.waiters.map((w) => w.requestId) ?? [];
}

// --- modes -----------------------------------------------------------------------

test('exclusive: one holder; the next waits, blocked by the holder, and is granted on release', (t) => {
  const lt = makeTable();
  granted(lt.submit(req('a', [ex('/l/x')])));
  const second = lt.submit(req('b', [ex('/l/x')]));
  t.deepEqual(second, { kind: 'queued', blockers: [{ key: '/l/x', kind: 'holder', requestId: 'a', meta: { who: 'a' } }] });
  t.true(lt.isHolding('a'));
  t.true(lt.isWaiting('b'));
  t.deepEqual(ids(lt.release('a')), ['b']);
  t.true(lt.isHolding('b'));
  t.false(lt.isHolding('a'));
  t.deepEqual(holderIds(lt, '/l/x'), ['b']);
});

test('shared: any number of shared holders; exclusive waits for all of them', (t) => {
  const lt = makeTable();
  for (const id of ['s1', 's2', 's3']) granted(lt.submit(req(id, [sh('k')])));
  t.deepEqual(holderIds(lt, 'k'), ['s1', 's2', 's3']);
  t.is(lt.snapshotKey('k')?.mode, 'shared');
  const e = lt.submit(req('e', [ex('k')]));
  t.is(e.kind, 'queued');
  t.deepEqual(
    lt.blockersOf('e').map((b) => [b.kind, b.requestId]),
    [
      ['holder', 's1'],
      ['holder', 's2'],
      ['holder', 's3'],
    ],
  );
  t.deepEqual(lt.release('s1'), []);
  t.deepEqual(lt.release('s3'), []);
  t.deepEqual(ids(lt.release('s2')), ['e']);
  t.is(lt.snapshotKey('k')?.mode, 'exclusive');
  // and shared waits for exclusive
  t.is(lt.submit(req('s4', [sh('k')])).kind, 'queued');
  t.deepEqual(ids(lt.release('e')), ['s4']);
});

test('slots: each holder takes the lowest free slot index; full key queues; freed lowest index is reused', (t) => {
  const lt = makeTable();
  const idx = (g: Grant<Meta>) => g.claims[0]!.slotIndex;
  t.is(idx(granted(lt.submit(req('a', [sl('q', 3)])))), 0);
  t.is(idx(granted(lt.submit(req('b', [sl('q', 3)])))), 1);
  t.is(idx(granted(lt.submit(req('c', [sl('q', 3)])))), 2);
  const d = lt.submit(req('d', [sl('q', 3)]));
  t.is(d.kind, 'queued');
  t.deepEqual(
    lt.blockersOf('d').map((b) => b.requestId),
    ['a', 'b', 'c'],
  );
  const [gd] = lt.release('b');
  t.is(gd?.request.id, 'd');
  t.is(gd && idx(gd), 1);
  lt.release('c');
  lt.release('a');
  // free: 0 and 2 → lowest first
  t.is(idx(granted(lt.submit(req('e', [sl('q', 3)])))), 0);
  t.is(idx(granted(lt.submit(req('f', [sl('q', 3)])))), 2);
  const snap = lt.snapshotKey('q');
  t.is(snap?.mode, 'slots');
  t.is(snap?.capacity, 3);
  t.deepEqual(
    snap?.holders.map((h) => [h.requestId, h.slotIndex]),
    [
      ['d', 1],
      ['e', 0],
      ['f', 2],
    ],
  );
});

test('slots mismatch: another slot count on a key in use is rejected; an idle key is forgotten', (t) => {
  const lt = makeTable();
  granted(lt.submit(req('a', [sl('q', 2)])));
  const r = lt.submit(req('b', [sl('q', 3)]));
  t.is(r.kind, 'rejected');
  t.is(r.kind === 'rejected' && r.code, 'slots_mismatch');
  t.false(lt.isWaiting('b'));
  // a waiter alone keeps the key in use, too
  granted(lt.submit(req('x', [ex('held')])));
  t.is(lt.submit(req('w', [ex('held'), sl('q2', 2)])).kind, 'queued');
  const r2 = lt.submit(req('c', [sl('q2', 4)]));
  t.is(r2.kind === 'rejected' && r2.code, 'slots_mismatch');
  lt.release('a');
  t.is(lt.snapshotKey('q'), null);
  t.is(granted(lt.submit(req('d', [sl('q', 5)]))).claims[0]?.slotIndex, 0);
});

test('mixing slots with exclusive/shared on a key in use is bad_claim, both ways', (t) => {
  const lt = makeTable();
  granted(lt.submit(req('a', [sl('q', 2)])));
  granted(lt.submit(req('b', [sh('p')])));
  const r1 = lt.submit(req('c', [ex('q')]));
  const r2 = lt.submit(req('d', [sl('p', 2)]));
  t.is(r1.kind === 'rejected' && r1.code, 'bad_claim');
  t.regex(r1.kind === 'rejected' ? r1.message : '', /q is in use as a 2-slot lock/);
  t.is(r2.kind === 'rejected' && r2.code, 'bad_claim');
  t.regex(r2.kind === 'rejected' ? r2.message : '', /p is in use as an exclusive\/shared lock/);
});

test('malformed requests are bad_claim; an id already in the table is duplicate_request', (t) => {
  const lt = makeTable();
  const code = (r: SubmitResult<Meta>) => (r.kind === 'rejected' ? r.code : r.kind);
  t.is(code(lt.submit(req('a', []))), 'bad_claim');
  t.is(code(lt.submit(req('a', [ex('k'), sh('k')]))), 'bad_claim');
  t.is(code(lt.submit(req('a', [{ key: 'k', mode: 'slots' }]))), 'bad_claim');
  t.is(code(lt.submit(req('a', [sl('k', 0)]))), 'bad_claim');
  t.is(code(lt.submit(req('a', [sl('k', 1.5)]))), 'bad_claim');
  t.is(code(lt.submit(req('a', [{ key: 'k', mode: 'exclusive', slots: 2 }]))), 'bad_claim');
  t.is(code(lt.submit(req('a', [{ key: '', mode: 'exclusive' }]))), 'bad_claim');
  t.is(code(lt.submit(req('a', [{ key: 'k', mode: 'weird' as 'shared' }]))), 'bad_claim');
  t.is(code(lt.submit(req('', [ex('k')]))), 'bad_claim');
  t.deepEqual(lt.snapshot(), []);
  granted(lt.submit(req('a', [ex('k')])));
  t.is(code(lt.submit(req('a', [ex('other')]))), 'duplicate_request');
  t.is(code(lt.submit(req('b', [ex('k')]))), 'queued');
  t.is(code(lt.submit(req('b', [ex('other')]))), 'duplicate_request');
  // after release the id may be used again
  lt.release('a');
  lt.release('b');
  t.is(code(lt.submit(req('a', [ex('k')]))), 'granted');
});

test('a bad initial fencing token is a LockdError', (t) => {
  const err = t.throws(() => new LockTable({ initialFencing: { k: -1 } }));
  t.true(isLockdError(err, 'bad_option'));
});

// --- all-or-nothing, ordering and fairness -------------------------------------------

test('all-or-nothing: a multi-lock request waits holding none of its keys', (t) => {
  const lt = makeTable();
  granted(lt.submit(req('h', [ex('b')])));
  t.is(lt.submit(req('w', [ex('a'), ex('b'), ex('c')])).kind, 'queued');
  t.deepEqual(holderIds(lt, 'a'), []);
  t.deepEqual(holderIds(lt, 'c'), []);
  t.deepEqual(waiterIds(lt, 'a'), ['w']);
  const [g] = lt.release('h');
  t.deepEqual(
    g?.claims.map((c) => c.key),
    ['a', 'b', 'c'],
  );
  for (const k of ['a', 'b', 'c']) t.deepEqual(holderIds(lt, k), ['w']);
});

test('opposite-order multi-lock requests never deadlock', (t) => {
  const lt = makeTable();
  granted(lt.submit(req('h', [ex('a')])));
  t.is(lt.submit(req('ab', [ex('a'), ex('b')])).kind, 'queued');
  t.is(lt.submit(req('ba', [ex('b'), ex('a')])).kind, 'queued');
  t.deepEqual(ids(lt.release('h')), ['ab']);
  t.deepEqual(ids(lt.release('ab')), ['ba']);
  t.deepEqual(lt.release('ba'), []);
  t.deepEqual(lt.snapshot(), []);
});

test('FIFO: exclusive waiters are granted in arrival order, one per release', (t) => {
  const lt = makeTable();
  granted(lt.submit(req('h', [ex('k')])));
  for (const id of ['w1', 'w2', 'w3']) lt.submit(req(id, [ex('k')]));
  t.deepEqual(waiterIds(lt, 'k'), ['w1', 'w2', 'w3']);
  t.is(lt.queuePosition('w3'), 3);
  t.deepEqual(ids(lt.release('h')), ['w1']);
  t.is(lt.queuePosition('w3'), 2);
  t.deepEqual(ids(lt.release('w1')), ['w2']);
  t.deepEqual(ids(lt.release('w2')), ['w3']);
  t.is(lt.queuePosition('w3'), 0);
});

test('head reservation: a stream of shared requests does not starve a waiting exclusive one', (t) => {
  const lt = makeTable();
  granted(lt.submit(req('s0', [sh('k')])));
  t.is(lt.submit(req('x', [ex('k')])).kind, 'queued');
  const ahead = ['x'];
  for (const id of ['s1', 's2', 's3']) {
    const r = lt.submit(req(id, [sh('k')]));
    t.is(r.kind, 'queued', `${id} must queue behind the exclusive waiter`);
    t.deepEqual(
      r.kind === 'queued' ? r.blockers.map((b) => `${b.kind}:${b.requestId}`) : [],
      ahead.map((w) => `waiter:${w}`),
    );
    ahead.push(id);
  }
  t.deepEqual(ids(lt.release('s0')), ['x']);
  t.deepEqual(ids(lt.release('x')), ['s1', 's2', 's3']);
});

test('multi-lock reservation: a waiter reserves every key it names, even free ones', (t) => {
  const lt = makeTable();
  granted(lt.submit(req('h', [ex('b')])));
  t.is(lt.submit(req('w', [ex('a'), ex('b')])).kind, 'queued');
  const x = lt.submit(req('x', [sh('a')]));
  t.is(x.kind, 'queued');
  t.deepEqual(x.kind === 'queued' ? x.blockers.map((b) => [b.key, b.kind, b.requestId]) : [], [['a', 'waiter', 'w']]);
  // unrelated key is still free
  granted(lt.submit(req('y', [ex('c')])));
  t.deepEqual(ids(lt.release('h')), ['w']);
  t.deepEqual(ids(lt.release('w')), ['x']);
});

test('cancel: a cancelled waiter unblocks the waiters it reserved against', (t) => {
  const lt = makeTable();
  granted(lt.submit(req('h', [ex('b')])));
  lt.submit(req('w', [ex('a'), ex('b')]));
  lt.submit(req('x', [ex('a')]));
  lt.submit(req('y', [sh('c')]));
  t.deepEqual(ids(lt.cancel('w')), ['x']);
  t.false(lt.isWaiting('w'));
  t.false(lt.isHolding('w'));
  t.deepEqual(waiterIds(lt, 'b'), []);
});

test('cancel and release of unknown ids return []; cancel leaves holders alone; release withdraws a waiter', (t) => {
  const lt = makeTable();
  t.deepEqual(lt.cancel('nope'), []);
  t.deepEqual(lt.release('nope'), []);
  granted(lt.submit(req('h', [ex('k')])));
  lt.submit(req('w1', [ex('k')]));
  lt.submit(req('w2', [ex('k')]));
  t.deepEqual(lt.cancel('h'), []);
  t.true(lt.isHolding('h'));
  t.deepEqual(lt.release('w1'), []);
  t.false(lt.isWaiting('w1'));
  t.deepEqual(ids(lt.release('h')), ['w2']);
  t.deepEqual(lt.release('h'), []);
});

test('tryOnly never queues: busy with blockers when it would wait, granted when free', (t) => {
  const lt = makeTable();
  granted(lt.tryOnly(req('a', [ex('k')])));
  const busy = lt.tryOnly(req('b', [ex('k')]));
  t.deepEqual(busy, { kind: 'busy', blockers: [{ key: 'k', kind: 'holder', requestId: 'a', meta: { who: 'a' } }] });
  t.false(lt.isWaiting('b'));
  t.deepEqual(waiterIds(lt, 'k'), []);
  // it respects waiters ahead, too
  lt.submit(req('w', [ex('k')]));
  lt.release('a');
  const busy2 = lt.tryOnly(req('c', [sh('k')]));
  t.is(busy2.kind, 'busy');
  const dup = lt.tryOnly(req('w', [ex('z')]));
  t.is(dup.kind === 'rejected' && dup.code, 'duplicate_request');
});

// --- nesting ---------------------------------------------------------------------

test('nesting: re-entry into a key the parent holds is granted at once as a nested claim, ahead of waiters', (t) => {
  const lt = makeTable();
  const p = granted(lt.submit(req('P', [ex('k'), sl('q', 2)])));
  lt.submit(req('T', [ex('k')]));
  const n = granted(lt.submit(req('N', [sh('k'), sl('q', 2)], 'P')));
  t.deepEqual(n.claims, [
    { key: 'k', mode: 'shared', fencingToken: p.claims[0]!.fencingToken, nested: true },
    { key: 'q', mode: 'slots', slotIndex: p.claims[1]!.slotIndex!, fencingToken: p.claims[1]!.fencingToken, nested: true },
  ]);
  t.deepEqual(holderIds(lt, 'k'), ['P', 'N']);
  t.is(lt.snapshotKey('q')?.holders.filter((h) => h.nested).length, 1);
  // grandchild via the nested request joins the same family
  granted(lt.submit(req('G', [ex('k')], 'N')));
  // the parent's own entries go; the nested ones keep the key held
  t.deepEqual(lt.release('P'), []);
  t.deepEqual(holderIds(lt, 'k'), ['N', 'G']);
  t.deepEqual(lt.release('N'), []);
  t.deepEqual(ids(lt.release('G')), ['T']);
});

test('nesting: on keys the parent does not hold, nested requests wait on holders only and jump ahead of top-level waiters', (t) => {
  const lt = makeTable();
  granted(lt.submit(req('P', [ex('a')])));
  granted(lt.submit(req('Q', [ex('b')])));
  lt.submit(req('T', [ex('b')]));
  const n = lt.submit(req('N', [ex('b')], 'P'));
  t.deepEqual(n.kind === 'queued' ? n.blockers.map((b) => [b.kind, b.requestId]) : n, [['holder', 'Q']]);
  t.deepEqual(waiterIds(lt, 'b'), ['N', 'T']);
  t.is(lt.queuePosition('N'), 1);
  t.is(lt.queuePosition('T'), 2);
  // the nested waiter reserves b against later (and earlier) top-level requests
  t.deepEqual(ids(lt.release('Q')), ['N']);
  const g = lt.grantOf('N');
  t.deepEqual(g?.claims[0], { key: 'b', mode: 'exclusive', fencingToken: 2, nested: false });
  t.deepEqual(ids(lt.release('N')), ['T']);
});

test('nesting: an unknown or non-holding parent makes an ordinary top-level request', (t) => {
  const lt = makeTable();
  granted(lt.submit(req('H', [ex('k')])));
  lt.submit(req('W', [ex('k')]));
  lt.submit(req('X', [ex('k')], 'W')); // W waits: not a parent
  lt.submit(req('Y', [ex('k')], 'ghost'));
  t.deepEqual(
    lt.snapshotKey('k')?.waiters.map((w) => [w.requestId, w.nested]),
    [
      ['W', false],
      ['X', false],
      ['Y', false],
    ],
  );
});

test('nested exclusive upgrade: waits for other sharers but not for its own family', (t) => {
  const lt = makeTable();
  granted(lt.submit(req('P', [sh('k')])));
  granted(lt.submit(req('Q', [sh('k')])));
  const up = lt.submit(req('N', [ex('k')], 'P'));
  t.deepEqual(up.kind === 'queued' ? up.blockers.map((b) => b.requestId) : up, ['Q']);
  const [g] = lt.release('Q');
  t.is(g?.request.id, 'N');
  t.deepEqual(g?.claims[0], { key: 'k', mode: 'exclusive', fencingToken: 1, nested: true });
  t.is(lt.snapshotKey('k')?.mode, 'exclusive');
  // outsiders now wait, even for shared
  t.is(lt.submit(req('S', [sh('k')])).kind, 'queued');
  // the upgrade ends: only P shares again, so S joins it
  t.deepEqual(ids(lt.release('N')), ['S']);
  t.deepEqual(holderIds(lt, 'k'), ['P', 'S']);
});

test('nested exclusive upgrade is immediate when only the family shares the key', (t) => {
  const lt = makeTable();
  granted(lt.submit(req('P', [sh('k')])));
  granted(lt.submit(req('N1', [sh('k')], 'P')));
  const up = granted(lt.submit(req('N2', [ex('k')], 'N1')));
  t.true(up.claims[0]!.nested);
});

test('siblings exclude each other: two requests nested under one holder (a hold and its runs) obey the mode, in order', (t) => {
  const lt = makeTable();
  granted(lt.submit(req('H', [ex('k')])));
  const a = granted(lt.submit(req('A', [ex('k')], 'H')));
  t.true(a.claims[0]!.nested);
  // B and C are not nested under A: they wait for it, though all three are in H's family
  t.is(lt.submit(req('B', [ex('k')], 'H')).kind, 'queued');
  t.is(lt.submit(req('C', [ex('k')], 'H')).kind, 'queued');
  t.deepEqual(lt.blockerIdsOf('B'), ['A']);
  t.deepEqual(holderIds(lt, 'k'), ['H', 'A']);
  // A's own child re-enters (A is its ancestor, and so is H)
  t.true(granted(lt.submit(req('A.1', [ex('k')], 'A'))).claims[0]!.nested);
  t.deepEqual(ids(lt.release('A.1')), []);
  t.deepEqual(ids(lt.release('A')), ['B']);
  t.deepEqual(ids(lt.release('B')), ['C']);
  // shared siblings share; an exclusive sibling waits for them
  const lt2 = makeTable();
  granted(lt2.submit(req('H', [ex('k')])));
  granted(lt2.submit(req('S1', [sh('k')], 'H')));
  granted(lt2.submit(req('S2', [sh('k')], 'H')));
  t.is(lt2.tryOnly(req('X', [ex('k')], 'H')).kind, 'busy');
  // slots: a hold's one slot is used by one of its runs at a time, at the hold's slot index
  const lt3 = makeTable();
  const h = granted(lt3.submit(req('H', [sl('b', 4)])));
  const r1 = granted(lt3.submit(req('R1', [sl('b', 4)], 'H')));
  t.is(r1.claims[0]!.slotIndex, h.claims[0]!.slotIndex);
  t.is(lt3.submit(req('R2', [sl('b', 4)], 'H')).kind, 'queued');
  t.deepEqual(lt3.blockerIdsOf('R2'), ['R1']);
  t.deepEqual(ids(lt3.release('R1')), ['R2']);
});

test('deadlock: a cycle of two runs is rejected at once, naming both', (t) => {
  const lt = makeTable();
  granted(lt.submit(req('A', [ex('a')])));
  granted(lt.submit(req('B', [ex('b')])));
  t.is(lt.submit(req('A.1', [ex('b')], 'A')).kind, 'queued');
  const r = lt.submit(req('B.1', [ex('a')], 'B'));
  if (r.kind !== 'rejected') return t.fail(`expected a rejection, got ${r.kind}`);
  t.is(r.code, 'deadlock');
  t.deepEqual(r.cycle, ['B', 'A']);
  t.regex(r.message, /B → A → B/);
  t.false(lt.isWaiting('B.1'));
  // the survivors still work: B finishing lets A's child in
  t.deepEqual(ids(lt.release('B')), ['A.1']);
});

test('deadlock: a cycle of three runs is rejected; a chain without a cycle is not', (t) => {
  const lt = makeTable();
  for (const id of ['A', 'B', 'C']) granted(lt.submit(req(id, [ex(id.toLowerCase())])));
  t.is(lt.submit(req('A.1', [ex('b')], 'A')).kind, 'queued');
  t.is(lt.submit(req('B.1', [sh('c')], 'B')).kind, 'queued');
  const r = lt.submit(req('C.1', [ex('a'), ex('z')], 'C'));
  if (r.kind !== 'rejected') return t.fail(`expected a rejection, got ${r.kind}`);
  t.is(r.code, 'deadlock');
  t.deepEqual(r.cycle, ['C', 'A', 'B']);
  for (const id of ['C', 'A', 'B']) t.true(r.message.includes(id));
  t.deepEqual(holderIds(lt, 'z'), [], 'the rejected request holds nothing');
  // C's child asking for a free key is fine
  granted(lt.submit(req('C.2', [ex('z')], 'C')));
});

test('deadlock via a nested holder counts as its root run', (t) => {
  const lt = makeTable();
  granted(lt.submit(req('A', [ex('a')])));
  granted(lt.submit(req('B', [ex('b')])));
  granted(lt.submit(req('A.1', [ex('x')], 'A')));
  t.is(lt.submit(req('B.1', [ex('x')], 'B')).kind, 'queued');
  const r = lt.submit(req('A.1.1', [ex('b')], 'A.1'));
  t.is(r.kind === 'rejected' && r.code, 'deadlock');
  t.deepEqual(r.kind === 'rejected' ? r.cycle : [], ['A', 'B']);
});

test('deadlock on a full slots key: stuck only if every occupant is stuck', (t) => {
  const lt = makeTable();
  granted(lt.submit(req('A', [sl('q', 2), ex('a')])));
  granted(lt.submit(req('B', [sl('q', 2)])));
  granted(lt.submit(req('C', [ex('c')])));
  t.is(lt.submit(req('A.1', [ex('c')], 'A')).kind, 'queued'); // A waits for C
  // C's child needs a slot: A is stuck but B is not, so this is not a deadlock
  t.is(lt.submit(req('C.1', [sl('q', 2)], 'C')).kind, 'queued');
  t.deepEqual(ids(lt.release('B')), ['C.1']);
});

test('a nested grant that would close a cycle is held back and granted later', (t) => {
  const lt = makeTable();
  granted(lt.submit(req('W', [ex('k')])));
  granted(lt.submit(req('X', [ex('a')])));
  granted(lt.submit(req('Z', [ex('d')])));
  t.is(lt.submit(req('Z.y', [ex('k')], 'Z')).kind, 'queued'); // Z waits for W
  t.is(lt.submit(req('X.n', [ex('k')], 'X')).kind, 'queued'); // X waits for W
  t.is(lt.submit(req('Z.n2', [ex('a')], 'Z')).kind, 'queued'); // Z waits for X
  // k frees: Z.y arrived first, but giving it k would make X wait for Z while Z waits for X.
  t.deepEqual(ids(lt.release('W')), ['X.n']);
  t.true(lt.isWaiting('Z.y'));
  t.deepEqual(
    lt.blockersOf('Z.y').map((b) => [b.kind, b.requestId]),
    [['holder', 'X.n']],
  );
  t.deepEqual(ids(lt.release('X.n')), ['Z.y']);
  t.deepEqual(ids(lt.release('X')), ['Z.n2']);
});

test('a nested request free to go is held back at submit when taking the key would trap another family', (t) => {
  const lt = makeTable();
  granted(lt.submit(req('X', [ex('a')])));
  granted(lt.submit(req('Z', [ex('d')])));
  granted(lt.submit(req('H', [ex('h')])));
  t.is(lt.submit(req('X.n', [ex('c'), ex('h')], 'X')).kind, 'queued'); // X waits for H (wants c too)
  t.is(lt.submit(req('Z.n', [ex('a')], 'Z')).kind, 'queued'); // Z waits for X
  const r = lt.submit(req('Z.m', [ex('c')], 'Z')); // c is free, but X.n would then wait for Z
  t.deepEqual(r.kind === 'queued' ? r.blockers.map((b) => [b.key, b.kind, b.requestId]) : r, [['c', 'waiter', 'X.n']]);
  t.deepEqual(ids(lt.release('H')), ['X.n']);
  t.deepEqual(ids(lt.release('X.n')), ['Z.m']);
});

// --- fencing and snapshots ----------------------------------------------------------

test('fencing: each non-nested grant of a key gets the last token + 1, from initialFencing', (t) => {
  const lt = makeTable({ k: 41 });
  const tok = (g: Grant<Meta>, key: string) => g.claims.find((c) => c.key === key)!.fencingToken;
  const a = granted(lt.submit(req('a', [ex('k'), sh('m')])));
  t.is(tok(a, 'k'), 42);
  t.is(tok(a, 'm'), 1);
  const b = granted(lt.submit(req('b', [sh('m')])));
  t.is(tok(b, 'm'), 2, 'shared holders each get their own token');
  const n = granted(lt.submit(req('n', [ex('k')], 'a')));
  t.is(tok(n, 'k'), 42, 'nested reuses the family token');
  lt.release('a');
  lt.release('n');
  t.is(tok(granted(lt.submit(req('c', [ex('k')]))), 'k'), 43);
  t.deepEqual(lt.fencingTokens(), { k: 43, m: 2 });
});

test('snapshot: holders and waiters per key with modes, positions, times and meta', (t) => {
  const lt = makeTable();
  granted(lt.submit(req('h', [sl('q', 2), ex('z')]))); // since 1000, granted 1001
  lt.submit(req('w', [sl('q', 2), ex('z')])); // since 1002
  lt.submit(req('n', [ex('z')], 'h')); // nested re-entry: since 1003, granted 1004
  lt.submit(req('v', [ex('z')])); // since 1005
  t.deepEqual(lt.snapshot(), [
    {
      key: 'q',
      mode: 'slots',
      capacity: 2,
      holders: [{ requestId: 'h', mode: 'slots', slotIndex: 0, fencingToken: 1, nested: false, grantedAt: 1001, meta: { who: 'h' } }],
      waiters: [{ requestId: 'w', mode: 'slots', position: 1, since: 1002, nested: false, meta: { who: 'w' } }],
    },
    {
      key: 'z',
      mode: 'exclusive',
      capacity: null,
      holders: [
        { requestId: 'h', mode: 'exclusive', fencingToken: 1, nested: false, grantedAt: 1001, meta: { who: 'h' } },
        { requestId: 'n', mode: 'exclusive', fencingToken: 1, nested: true, grantedAt: 1004, meta: { who: 'n' } },
      ],
      waiters: [
        { requestId: 'w', mode: 'exclusive', position: 1, since: 1002, nested: false, meta: { who: 'w' } },
        { requestId: 'v', mode: 'exclusive', position: 2, since: 1005, nested: false, meta: { who: 'v' } },
      ],
    },
  ]);
  t.is(lt.snapshotKey('nothing'), null);
  t.is(lt.queuePosition('v'), 2);
  t.is(lt.queuePosition('w'), 1);
});

test('blockers list at most maxWaiterBlockersPerKey waiters per key, from the front', (t) => {
  const lt = new LockTable<Meta>({ maxWaiterBlockersPerKey: 2 });
  granted(lt.submit(req('h', [ex('k')])));
  for (let i = 0; i < 5; i++) lt.submit(req(`w${i}`, [ex('k')]));
  t.deepEqual(
    lt.blockersOf('w4').map((b) => [b.kind, b.requestId]),
    [
      ['holder', 'h'],
      ['waiter', 'w0'],
      ['waiter', 'w1'],
    ],
  );
  t.is(lt.queuePosition('w4'), 5);
  t.deepEqual(lt.blockersOf('h'), []);
});

// --- scale -----------------------------------------------------------------------

test('scale: 10,000 waiters on one key are granted one by one in order', (t) => {
  const lt = new LockTable<null>();
  const N = 10_000;
  lt.submit({ id: 'h', claims: [ex('k')], meta: null });
  for (let i = 0; i < N; i++) {
    const r = lt.submit({ id: `w${i}`, claims: [ex('k')], meta: null });
    if (r.kind !== 'queued' || r.blockers.length > 9) return t.fail(`w${i}: ${r.kind}`);
  }
  t.is(lt.snapshotKey('k')?.waiters.length, N);
  let prev = 'h';
  let wrong = 0;
  for (let i = 0; i < N; i++) {
    const g = lt.release(prev);
    if (g.length !== 1 || g[0]!.request.id !== `w${i}` || g[0]!.claims[0]!.fencingToken !== i + 2) wrong++;
    prev = `w${i}`;
  }
  t.is(wrong, 0);
  lt.release(prev);
  t.deepEqual(lt.snapshot(), []);
  t.is(lt.fencingTokens()['k'], N + 1);
});

test('scale: 10,000 shared waiters behind an exclusive holder are granted together; cancels from the middle', (t) => {
  const lt = new LockTable<null>();
  const N = 10_000;
  lt.submit({ id: 'x', claims: [ex('k')], meta: null });
  for (let i = 0; i < N; i++) lt.submit({ id: `s${i}`, claims: [sh('k')], meta: null });
  for (let i = 0; i < N; i += 2) lt.cancel(`s${i}`);
  const g = lt.release('x');
  t.is(g.length, N / 2);
  t.deepEqual(
    g.slice(0, 3).map((x) => x.request.id),
    ['s1', 's3', 's5'],
  );
  t.is(lt.snapshotKey('k')?.holders.length, N / 2);
});

test('scale: 1,000 distinct held keys, then all released', (t) => {
  const lt = new LockTable<null>();
  const N = 1000;
  for (let i = 0; i < N; i++) granted(lt.submit({ id: `r${i}`, claims: [ex(`/locks/${i}`)], meta: null }));
  const wide = lt.submit({ id: 'wide', claims: Array.from({ length: N }, (_, i) => sh(`/locks/${i}`)), meta: null });
  t.is(wide.kind, 'queued');
  t.is(lt.snapshot().length, N);
  for (let i = 0; i < N - 1; i++) {
    if (lt.release(`r${i}`).length !== 0) return t.fail(`wide granted early at ${i}`);
  }
  t.deepEqual(ids(lt.release(`r${N - 1}`)), ['wide']);
  t.is(lt.snapshot().length, N);
  lt.release('wide');
  t.deepEqual(lt.snapshot(), []);
});
