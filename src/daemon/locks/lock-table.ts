/**
 * The lock table: every lock the daemon owns, who holds it and who waits for it.
 *
 * Pure, synchronous and in memory (no I/O, no timers): the daemon calls it on every
 * request and acts on the results (start a run, reply to a client, journal a token).
 *
 * Rules, in one place (the tests name them):
 *
 * - Modes. `exclusive`: one holder. `shared`: any number of shared holders, no
 *   exclusive. `slots` (capacity N): a counting semaphore; each holder takes one slot
 *   and gets the lowest free slot index 0..N-1.
 * - A key "in use" (held or waited on) has a fixed kind. Claiming it with a different
 *   N is rejected `slots_mismatch`; claiming a slots key as exclusive/shared, or an
 *   exclusive/shared key as slots, is rejected `bad_claim` (mixing would make the
 *   capacity meaningless). Once nobody holds or waits on a key, it is forgotten (the
 *   fencing counter excepted) and may be used with any kind again.
 * - All-or-nothing: a request is granted all its claims at once or waits holding none,
 *   so two multi-lock requests naming keys in opposite order can never deadlock.
 * - Fairness. Each key keeps its waiters in arrival order. A top-level request can be
 *   granted on a key only if no earlier top-level waiter and no nested waiter still
 *   waits on that key (the head reserves the key, so a stream of shared or small
 *   requests cannot starve a waiting exclusive one, and a multi-lock waiter reserves
 *   every key it names).
 * - Nesting. A request whose `parent` currently holds locks joins the parent's
 *   *family* (a family is a top-level request plus every nested request under it,
 *   transitively; it is named after that top-level request's id). A request's
 *   *ancestors* (its parent, the parent's parent, …) are transparent to it: on a key
 *   its family holds, the claim is granted as a *nested* claim (an extra holder entry
 *   with the family's slot index and fencing token) once nobody but its ancestors is in
 *   the way. Siblings are not transparent: two requests nested under one hold (or one
 *   run) respect each other's mode like any two holders, and a family's one slot of a
 *   slots key is used by one line of descent at a time. Against other families the
 *   claim is checked as before;
 *   nested requests ignore (jump ahead of) top-level waiters, because their family
 *   holds locks those waiters want. So a family holding a key shared may upgrade a
 *   nested claim to exclusive once no other family shares it. A `parent` that is
 *   unknown or not holding is ignored: the request is an ordinary top-level one.
 *   Nestedness is fixed at submit: a queued nested request whose family has since
 *   released a key gets that key as a fresh (non-nested) claim when granted.
 *   Nested waiters are ahead of every top-level waiter on their keys, so they also
 *   reserve those keys against top-level requests (otherwise a stream of shared
 *   top-level grants could starve a nested exclusive waiter).
 * - Deadlock. (Waits between siblings of one family are not edges: a sibling holding a
 *   key never waits for the one it blocks unless their own nested children wait for each
 *   other's keys, which is not detected; such requests wait out their --wait.)
 *   Wait-for relation between families: F waits for G when a nested waiter
 *   of F is blocked by a holder entry of G (a family is stuck while any of its nested
 *   requests is stuck, since the run usually waits for its descendants). A request
 *   blocked on a full slots key waits for *any* one occupying family, other claims
 *   wait for *all* conflicting families. A submit that would make some families
 *   permanently stuck (a cycle) by *waiting* is rejected `deadlock` with the cycle's
 *   family names. *Granting* a nested request can close a cycle too (its new entries
 *   block another family's waiter); such a request is held back instead (queued,
 *   its blockers are the waiters it yields to) and granted once that no longer
 *   deadlocks — this covers a queued request whose turn comes during a release.
 * - Fencing: every non-nested grant of a key gets the key's last token + 1 (starting
 *   from `initialFencing[key] ?? 0`); nested claims reuse the family's token.
 * - Grant order after a release or cancel: first nested waiters, smallest arrival
 *   first, then top-level waiters in queue order (priority, then arrival).
 * - Priorities. A top-level request has an integer priority (default 0). Each key's
 *   top-level queue is ordered by priority, higher first, then by arrival: "earlier"
 *   in the fairness rule means earlier in that order. A new request may take a free
 *   key only when no nested waiter and no top-level waiter of the same or higher
 *   priority waits on it. A queued request never loses a key it reserves to a later
 *   request of its own priority or lower; a higher one goes ahead of it.
 * - Pools. A pool (setPools) has named members with properties; a member is disabled
 *   or not. A pool claim asks for COUNT members matching every `where` KEY=VALUE (or
 *   the one `member` named). Its *candidates* are the enabled members that match. Each
 *   member is an exclusive key (poolMemberKey). A waiting pool claim is queued on every
 *   candidate, so it reserves all of them: a later request never takes a member an
 *   earlier waiter could be granted with (no line-skipping: a request for 2 is not
 *   starved by a stream of 1s). A request is granted when every ordinary claim is
 *   grantable and, for each pool claim, at least COUNT candidates are free and have it
 *   first in their queue; it takes the first COUNT such members in the pool's order.
 *   A later request that needs only members no earlier waiter can use goes ahead
 *   (backfill). Disabled members are never granted. A pool claim naming an unknown
 *   pool or member is rejected `unknown_pool`; one with fewer candidates than COUNT is
 *   rejected `pool_unsatisfiable` at submit (never a wait that cannot end). setPools
 *   replaces the definitions: holders keep what they hold (a removed or disabled
 *   member leaves when released), waiters are re-queued on their new candidates in
 *   their old order, and waiters that can no longer be satisfied are reported.
 *   Pool claims are for top-level requests (a nested one is rejected `bad_claim`).
 *
 * Files: this one holds the table's state changes (submit, grant, release, the pump after a change) and the rules
 * above, one concern; it reads through admission.ts (may a request enter, which pool members it could take),
 * claim-fit.ts (mode rules), blockers.ts (why a waiter waits, positions, snapshots) and deadlock.ts. All pure.
 *
 * Cost: an operation touches only the keys of the requests involved, the waiters of
 * those keys that it grants plus one head per key, and (for nested requests only) the
 * nested waiters. 10,000 waiters on one key release in O(1) each.
 */

import { LockdError } from '../../util/errors.js';
import type {
  LockClaim,
  LockRequest,
  GrantedClaim,
  Grant,
  Rejection,
  Blocker,
  SubmitResult,
  TryResult,
  LockSnapshot,
  LockTableOptions,
  PoolClaim,
  PoolDefinition,
  PoolsChange,
} from './lock-table-types.js';
import { comesBefore, keyOf, KeyState, MinHeap, type Entry, type QueueNode, type Req, type TableState } from './lock-table-state.js';
import { candidates, choosePoolMembers, validate, validatePoolClaims, validatePools } from './admission.js';
import { claimFits } from './claim-fit.js';
import { deadlockRejection, findDeadlock, grantWouldDeadlock } from './deadlock.js';
import { blockerIds, blockers, positionOf, snapshotOf } from './blockers.js';

const DEFAULT_MAX_WAITER_BLOCKERS = 8;

export type {
  LockMode,
  LockClaim,
  LockRequest,
  GrantedClaim,
  Grant,
  RejectCode,
  Rejection,
  Blocker,
  SubmitResult,
  TryResult,
  HolderSnapshot,
  WaiterSnapshot,
  LockSnapshot,
  LockTableOptions,
  PoolClaim,
  PoolDefinition,
  PoolMember,
  PoolsChange,
} from './lock-table-types.js';
export { poolMemberKey } from './lock-table-types.js';

// ---------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------

export class LockTable<M = unknown> {
  readonly #now: () => number;
  /** What the admission, blocker and deadlock functions read (lock-table-state.ts). */
  readonly #st: TableState<M>;
  readonly #lastToken = new Map<string, number>();
  /** Nested waiters held back because granting them would close a wait-for cycle. */
  readonly #heldBack = new Set<Req<M>>();
  #seq = 0;

  constructor(opts: LockTableOptions = {}) {
    this.#now = opts.now ?? Date.now;
    this.#st = {
      requests: new Map(),
      keys: new Map(),
      nestedWaiting: new Set(),
      pools: new Map(),
      maxWaiterBlockers: opts.maxWaiterBlockersPerKey ?? DEFAULT_MAX_WAITER_BLOCKERS,
    };
    for (const [key, token] of Object.entries(opts.initialFencing ?? {})) {
      if (!Number.isSafeInteger(token) || token < 0) {
        throw new LockdError('bad_option', `initial fencing token for ${key} must be a non-negative integer`, { key, token });
      }
      this.#lastToken.set(key, token);
    }
    if (opts.pools) this.#usePools(opts.pools);
  }

  /** Which pool member each member key is (of every definition seen, so a removed member still names itself). */
  readonly #memberOfKey = new Map<string, { pool: string; member: string }>();

  #usePools(defs: PoolDefinition[]): void {
    this.#st.pools = validatePools(defs);
    for (const d of this.#st.pools.values()) for (const m of d.members) this.#memberOfKey.set(m.key!, { pool: d.name, member: m.name });
    // Forget members nobody uses any more (bounded by the members defined plus those held).
    for (const key of this.#memberOfKey.keys()) if (!this.#st.keys.has(key) && !this.#isDefinedMember(key)) this.#memberOfKey.delete(key);
  }

  #isDefinedMember(key: string): boolean {
    const at = this.#memberOfKey.get(key);
    return at !== undefined && this.#st.pools.get(at.pool)?.members.some((m) => m.key === key) === true;
  }

  /** The pool and member a member key stands for (a removed one too, while held), or null for any other key. */
  memberOf(key: string): { pool: string; member: string } | null {
    return this.#memberOfKey.get(key) ?? null;
  }

  /**
   * Would the request's pool claims be rejected (unknown pool or member, COUNT larger than what matches)? For
   * requests granted elsewhere (cluster pools: src/cluster/cluster-pools.ts) with the definitions in force here.
   */
  checkPools(request: LockRequest<M>): Rejection | null {
    return validatePoolClaims(this.#st, request);
  }

  /** The pool definitions in force. */
  pools(): PoolDefinition[] {
    return [...this.#st.pools.values()];
  }

  /**
   * Replace the pool definitions (throws LockdError bad_option on a malformed one, changing nothing). Holders keep
   * their members; every waiting pool claim is re-queued on its new candidates, keeping its place in line.
   */
  setPools(defs: PoolDefinition[]): PoolsChange<M> {
    this.#usePools(defs);
    const dirty = new Set<KeyState<M>>();
    const unsatisfiable: string[] = [];
    const waiting = [...this.#st.requests.values()].filter((r) => r.state === 'waiting' && r.pools.length > 0).sort((a, b) => a.seq - b.seq);
    for (const r of waiting) {
      for (const nodes of r.memberNodes) {
        for (const node of nodes) {
          dirty.add(keyOf(this.#st, node));
          node.queue.remove(node);
        }
      }
      r.memberNodes = this.#queueMembers(r);
      for (const nodes of r.memberNodes) for (const node of nodes) dirty.add(keyOf(this.#st, node));
      if (r.pools.some((pc, i) => r.memberNodes[i]!.length < pc.count)) unsatisfiable.push(r.id);
    }
    // A member that was added or enabled is free for waiters queued on it now, and for nobody else.
    return { grants: this.#settle(dirty), unsatisfiable };
  }

  /** Grant now, queue, or reject. */
  submit(request: LockRequest<M>): SubmitResult<M> {
    const admitted = this.#admit(request);
    if ('kind' in admitted) return admitted;
    const r = admitted;

    if (!r.nested) {
      if (this.#freshTopGrantable(r)) return { kind: 'granted', grant: this.#grant(r) };
      this.#enqueue(r);
      return { kind: 'queued', blockers: blockers(this.#st, r) };
    }

    if (this.#holderCompatible(r)) {
      if (!grantWouldDeadlock(this.#st, r)) return { kind: 'granted', grant: this.#grant(r) };
      // Free for it, but taking it now would trap another family's waiter in a cycle.
      this.#enqueue(r);
      this.#heldBack.add(r);
      return { kind: 'queued', blockers: blockers(this.#st, r) };
    }

    const cycle = findDeadlock(this.#st, { extraWaiter: r }, r.family);
    if (cycle) return deadlockRejection(r, cycle);
    this.#enqueue(r);
    return { kind: 'queued', blockers: blockers(this.#st, r) };
  }

  /** Like submit, but never queues (for --wait 0): granted, busy (with blockers) or rejected. */
  tryOnly(request: LockRequest<M>): TryResult<M> {
    const admitted = this.#admit(request);
    if ('kind' in admitted) return admitted;
    const r = admitted;
    const grantable = r.nested ? this.#holderCompatible(r) && !grantWouldDeadlock(this.#st, r) : this.#freshTopGrantable(r);
    if (grantable) return { kind: 'granted', grant: this.#grant(r) };
    return { kind: 'busy', blockers: blockers(this.#st, r) };
  }

  /**
   * Withdraw a queued request (timeout, client gone). Returns the requests granted as a
   * consequence, in grant order. A holding or unknown id is left alone and gives [] — so a
   * timeout racing a grant never drops a granted lock; use release for holders.
   */
  cancel(requestId: string): Grant<M>[] {
    const r = this.#st.requests.get(requestId);
    if (r?.state !== 'waiting') return [];
    return this.#withdraw(r);
  }

  /**
   * Drop a request: a holder's entries go (its nested requests' entries stay), a waiter is
   * withdrawn as by cancel. Returns newly granted requests in grant order; unknown id → [].
   */
  release(requestId: string): Grant<M>[] {
    const r = this.#st.requests.get(requestId);
    if (!r) return [];
    if (r.state === 'waiting') return this.#withdraw(r);

    this.#st.requests.delete(r.id);
    const dirty = new Set<KeyState<M>>();
    for (const e of r.entries) {
      const ks = e.keyState;
      ks.holders.delete(r);
      if (e.mode === 'exclusive') ks.exclusiveCount--;
      const tally = ks.families.get(r.family)!;
      tally.entries--;
      if (e.mode === 'exclusive') tally.exclusive--;
      if (tally.entries === 0) {
        ks.families.delete(r.family);
        if (ks.slots && tally.slotIndex !== undefined) ks.slots.give(tally.slotIndex);
      }
      dirty.add(ks);
    }
    r.entries = [];
    return this.#settle(dirty);
  }

  isHolding(requestId: string): boolean {
    return this.#st.requests.get(requestId)?.state === 'holding';
  }

  isWaiting(requestId: string): boolean {
    return this.#st.requests.get(requestId)?.state === 'waiting';
  }

  /** The grant a holding request received, or null. */
  grantOf(requestId: string): Grant<M> | null {
    return this.#st.requests.get(requestId)?.grant ?? null;
  }

  /**
   * Why a waiter waits: per claim, the holders in its way, then the waiters reserving the key
   * ahead of it (at most maxWaiterBlockersPerKey per key). [] when not waiting.
   */
  blockersOf(requestId: string): Blocker<M>[] {
    const r = this.#st.requests.get(requestId);
    return r && r.state === 'waiting' ? blockers(this.#st, r) : [];
  }

  /**
   * The request ids among blockersOf(requestId): first the holders in its way (in claim order), then the waiters
   * ahead of it, each id once. What `lockd status` shows as "blocked by". [] when not waiting.
   */
  blockerIdsOf(requestId: string): string[] {
    const r = this.#st.requests.get(requestId);
    return r && r.state === 'waiting' ? blockerIds(this.#st, r) : [];
  }

  /**
   * blockerIdsOf for every waiter of one key, in the order of snapshotKey(key).waiters; [] for a key nobody uses.
   * A status snapshot needs it for every waiter: the top-level waiters with this one claim behind the first
   * maxWaiterBlockersPerKey of the line all see the same holders and the same waiters ahead, so they share one
   * array (read-only) instead of each building its own — O(1) apiece for a line of 10,000.
   */
  blockerIdsByWaiter(key: string): string[][] {
    const ks = this.#st.keys.get(key);
    if (!ks) return [];
    const out: string[][] = [];
    const shared = new Map<string, string[]>();
    let index = 0;
    for (const queue of [ks.nestedQueue, ks.topQueue]) {
      for (let node = queue.head; node; node = node.next, index++) {
        const r = node.req;
        if (r.nested || r.claims.length !== 1 || r.pools.length > 0 || index < this.#st.maxWaiterBlockers) {
          out.push(blockerIds(this.#st, r));
          continue;
        }
        // Its family is itself (it holds nothing), so only its claim's mode decides which holders are in its way.
        const sig = node.claim.mode;
        let ids = shared.get(sig);
        if (!ids) shared.set(sig, (ids = blockerIds(this.#st, r)));
        out.push(ids);
      }
    }
    return out;
  }

  /**
   * 1-based position in the longest line among its keys: on each key, nested waiters come
   * first and then top-level ones, each in arrival order; the largest such position over the
   * request's keys. 0 when not waiting. O(waiters on its keys).
   */
  queuePosition(requestId: string): number {
    const r = this.#st.requests.get(requestId);
    if (r?.state !== 'waiting') return 0;
    let worst = 0;
    for (const node of r.nodes) worst = Math.max(worst, positionOf(this.#st, node));
    // A pool claim's line is as long as its count-th shortest line among its candidates.
    r.pools.forEach((pc, i) => {
      const positions = r.memberNodes[i]!.map((node) => positionOf(this.#st, node)).sort((a, b) => a - b);
      worst = Math.max(worst, positions[pc.count - 1] ?? positions[positions.length - 1] ?? 0);
    });
    return worst;
  }

  /**
   * Every waiter's 1-based position on one key (nested waiters first, then top-level ones, each in arrival order),
   * in one walk of the key's queues: O(waiters on the key) for all of them, where asking queuePosition waiter by
   * waiter walks back to the head each time (O(N²) for a line of N). Empty for a key nobody uses.
   */
  positionsOn(key: string): Map<string, number> {
    const out = new Map<string, number>();
    const ks = this.#st.keys.get(key);
    if (!ks) return out;
    let pos = 0;
    for (const queue of [ks.nestedQueue, ks.topQueue]) for (let n = queue.head; n; n = n.next) out.set(n.req.id, ++pos);
    return out;
  }

  /** Every key held or waited on, sorted by key. */
  snapshot(): LockSnapshot<M>[] {
    const keys = [...this.#st.keys.keys()].sort();
    return keys.map((k) => snapshotOf(this.#st.keys.get(k)!));
  }

  snapshotKey(key: string): LockSnapshot<M> | null {
    const ks = this.#st.keys.get(key);
    return ks ? snapshotOf(ks) : null;
  }

  /** Last fencing token handed out per key (including initialFencing), for the journal. */
  fencingTokens(): Record<string, number> {
    return Object.fromEntries(this.#lastToken);
  }

  // -------------------------------------------------------------------------------
  // Admission and validation
  // -------------------------------------------------------------------------------

  /** Validate and build the internal request (not yet registered), or say why not. */
  #admit(request: LockRequest<M>): Req<M> | Rejection {
    const invalid = validate(this.#st, request);
    if (invalid) return invalid;
    const parent = request.parent === undefined ? undefined : this.#st.requests.get(request.parent);
    const nested = parent !== undefined && parent.state === 'holding';
    return {
      request,
      id: request.id,
      seq: ++this.#seq,
      since: this.#now(),
      family: nested ? parent.family : { name: request.id },
      nested,
      parentReq: nested ? parent : null,
      claims: request.claims.map((c) => (c.mode === 'slots' ? { key: c.key, mode: c.mode, slots: c.slots } : { key: c.key, mode: c.mode })),
      pools: (request.pools ?? []).map((pc) => {
        const copy: PoolClaim = { pool: pc.pool, count: pc.count };
        if (pc.where) copy.where = { ...pc.where };
        if (pc.member !== undefined) copy.member = pc.member;
        return copy;
      }),
      priority: request.priority ?? 0,
      state: 'waiting',
      nodes: [],
      memberNodes: [],
      entries: [],
      grant: null,
    };
  }

  // -------------------------------------------------------------------------------
  // Grantability
  // -------------------------------------------------------------------------------

  #holderCompatible(r: Req<M>): boolean {
    for (const c of r.claims) {
      const ks = this.#st.keys.get(c.key);
      if (ks && !claimFits(ks, c, r)) return false;
    }
    return true;
  }

  /** A new top-level request: on every key no waiter ahead of it (nested, or of its priority or higher), fitting. */
  #freshTopGrantable(r: Req<M>): boolean {
    for (const c of r.claims) {
      const ks = this.#st.keys.get(c.key);
      if (!ks) continue;
      if (ks.nestedQueue.size > 0 || (ks.topQueue.head && ks.topQueue.head.req.priority >= r.priority)) return false;
      if (!claimFits(ks, c, r)) return false;
    }
    return r.pools.length === 0 || choosePoolMembers(this.#st, r) !== null;
  }

  /** A queued top-level request: first top-level waiter, no nested waiter, fitting — on every key. */
  #queuedTopGrantable(r: Req<M>): boolean {
    for (const node of r.nodes) {
      const ks = keyOf(this.#st, node);
      if (ks.nestedQueue.size > 0 || ks.topQueue.head !== node) return false;
      if (!claimFits(ks, node.claim, r)) return false;
    }
    return r.pools.length === 0 || choosePoolMembers(this.#st, r) !== null;
  }

  // -------------------------------------------------------------------------------
  // Mutations
  // -------------------------------------------------------------------------------

  #ensureKey(claim: LockClaim): KeyState<M> {
    let ks = this.#st.keys.get(claim.key);
    if (!ks) {
      ks = new KeyState<M>(claim.key, claim.mode === 'slots' ? claim.slots! : null);
      this.#st.keys.set(claim.key, ks);
    }
    return ks;
  }

  #enqueue(r: Req<M>): void {
    this.#st.requests.set(r.id, r);
    r.nodes = r.claims.map((c) => {
      const ks = this.#ensureKey(c);
      return r.nested ? ks.nestedQueue.push(r, c) : ks.topQueue.insertOrdered(r, c);
    });
    r.memberNodes = this.#queueMembers(r);
    if (r.nested) this.#st.nestedWaiting.add(r);
  }

  /** Queue r on every candidate member of each of its pool claims. */
  #queueMembers(r: Req<M>): QueueNode<M>[][] {
    return r.pools.map((pc) =>
      candidates(this.#st, pc).map((m) => {
        const claim: LockClaim = { key: m.key!, mode: 'exclusive' };
        return this.#ensureKey(claim).topQueue.insertOrdered(r, claim);
      }),
    );
  }

  /** Every queue node of a waiting request: its claims', then its pool members'. */
  #allNodes(r: Req<M>): QueueNode<M>[] {
    return r.memberNodes.length === 0 ? r.nodes : r.nodes.concat(...r.memberNodes);
  }

  #unqueue(r: Req<M>): void {
    for (const node of this.#allNodes(r)) node.queue.remove(node);
    r.nodes = [];
    r.memberNodes = [];
    this.#st.nestedWaiting.delete(r);
    this.#heldBack.delete(r);
  }

  /** Turn r into a holder of all its claims (it must fit); registers it if new. */
  #grant(r: Req<M>): Grant<M> {
    const members = r.pools.length > 0 ? choosePoolMembers(this.#st, r)! : [];
    if (r.state === 'waiting') this.#unqueue(r);
    this.#st.requests.set(r.id, r);
    const grantedAt = this.#now();
    const memberClaims: LockClaim[] = members.flat().map((key) => ({ key, mode: 'exclusive' }));
    r.entries = [...r.claims, ...memberClaims].map((c) => {
      const ks = this.#ensureKey(c);
      const held = ks.families.get(r.family);
      const slotIndex = c.mode === 'slots' ? (held ? held.slotIndex : ks.slots!.take()) : undefined;
      const fencingToken = held ? held.fencingToken : this.#nextToken(c.key);
      const entry: Entry<M> = {
        req: r,
        keyState: ks,
        mode: c.mode,
        slotIndex,
        fencingToken,
        nested: held !== undefined,
        grantedAt,
      };
      ks.holders.set(r, entry);
      const isExclusive = c.mode === 'exclusive' ? 1 : 0;
      ks.exclusiveCount += isExclusive;
      if (held) {
        held.entries++;
        held.exclusive += isExclusive;
      } else {
        ks.families.set(r.family, { entries: 1, exclusive: isExclusive, slotIndex, fencingToken });
      }
      return entry;
    });
    r.state = 'holding';
    r.grant = {
      request: r.request,
      claims: r.entries.map((e, i) => {
        const g: GrantedClaim = { key: e.keyState.key, mode: e.mode, fencingToken: e.fencingToken, nested: e.nested };
        if (e.slotIndex !== undefined) g.slotIndex = e.slotIndex;
        const member = i >= r.claims.length ? this.#memberOfKey.get(e.keyState.key) : undefined;
        if (member) {
          g.pool = member.pool;
          g.member = member.member;
        }
        return g;
      }),
      grantedAt,
    };
    return r.grant;
  }

  #nextToken(key: string): number {
    const token = (this.#lastToken.get(key) ?? 0) + 1;
    this.#lastToken.set(key, token);
    return token;
  }

  #withdraw(r: Req<M>): Grant<M>[] {
    const dirty = new Set<KeyState<M>>();
    for (const node of this.#allNodes(r)) dirty.add(keyOf(this.#st, node));
    this.#unqueue(r);
    this.#st.requests.delete(r.id);
    return this.#settle(dirty);
  }

  /** Grant whatever the change on `dirty` keys made grantable, then forget idle keys. */
  #settle(dirty: Set<KeyState<M>>): Grant<M>[] {
    const grants = this.#pump(dirty);
    for (const ks of dirty) {
      if (ks.idle && this.#st.keys.get(ks.key) === ks) this.#st.keys.delete(ks.key);
    }
    return grants;
  }

  /**
   * After holders or waiters left the `dirty` keys: grant nested waiters (smallest arrival
   * first, re-checking after each grant, since a grant can un-hold-back another), then
   * top-level waiters by arrival. Only waiters of dirty keys and held-back ones can have
   * become grantable: a top-level grant adds holders (enables nothing nested), and a granted
   * waiter can enable only waiters behind it on its own keys, which become dirty.
   */
  #pump(dirty: Set<KeyState<M>>): Grant<M>[] {
    const grants: Grant<M>[] = [];

    const nestedCandidates = new Set<Req<M>>(this.#heldBack);
    for (const ks of dirty) for (const node of ks.nestedQueue) nestedCandidates.add(node.req);
    const ordered = [...nestedCandidates].sort((a, b) => a.seq - b.seq);
    for (let progressed = true; progressed; ) {
      progressed = false;
      for (let i = 0; i < ordered.length; i++) {
        const n = ordered[i]!;
        if (!this.#holderCompatible(n)) {
          // Only a holder leaving one of its keys can change that; that key will be dirty then.
          this.#heldBack.delete(n);
          ordered.splice(i--, 1);
          continue;
        }
        if (grantWouldDeadlock(this.#st, n)) {
          this.#heldBack.add(n);
          continue;
        }
        for (const node of n.nodes) dirty.add(keyOf(this.#st, node));
        grants.push(this.#grant(n));
        ordered.splice(i, 1);
        progressed = true;
        break;
      }
    }

    const heads = new MinHeap<Req<M>>(comesBefore);
    for (const ks of dirty) if (ks.topQueue.head) heads.push(ks.topQueue.head.req);
    while (heads.size > 0) {
      const t = heads.pop()!;
      if (t.state !== 'waiting' || !this.#queuedTopGrantable(t)) continue;
      const keys = this.#allNodes(t).map((node) => keyOf(this.#st, node));
      grants.push(this.#grant(t));
      for (const ks of keys) if (ks.topQueue.head) heads.push(ks.topQueue.head.req);
    }
    return grants;
  }

  // -------------------------------------------------------------------------------
  // Deadlock detection
  // -------------------------------------------------------------------------------

  // -------------------------------------------------------------------------------
  // Reporting
  // -------------------------------------------------------------------------------
}
